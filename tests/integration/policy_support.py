"""Builders shared by the policy tests: tiny agents for CartPole (Discrete) and Pendulum (Box), and
envs that record the actions they execute."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gin
import gymnasium as gym
import torch

from amago_pl.envs import AMAGOEnv
from amago_pl.modules.agent import Agent
from amago_pl.nets.traj_encoders import FFTrajEncoder, GRUTrajEncoder, IdentityTrajEncoder, TformerTrajEncoder
from amago_pl.nets.tstep_encoders import FFTstepEncoder

MAX_SEQ_LEN = 4  # every test episode is longer than this


def raw_env(name: str) -> gym.Env:
    """CartPole: episodes of about 8-30 steps ending in ``terminated`` (Discrete(2)); Pendulum: 11
    steps, ending in ``truncated`` (Box(-2, 2), rescaled from the policy's [-1, 1])."""
    if name == "cartpole":
        return gym.make("CartPole-v1", max_episode_steps=40)
    return gym.make("Pendulum-v1", max_episode_steps=11)


class Recorder(gym.Wrapper):
    """Appends every executed action to ``log`` (one list per env index)."""

    def __init__(self, env: gym.Env, log: list[Any]):
        super().__init__(env)
        self.log = log

    def step(self, action: Any):
        self.log.append(action.copy() if hasattr(action, "copy") else action)
        return self.env.step(action)


def recorded_factories(name: str, logs: list[list[Any]], amago: bool) -> list[Callable[[], gym.Env]]:
    """One factory per env index, recording below ``AMAGOEnv`` (so both see env-format actions)."""

    def factory(i: int) -> Callable[[], gym.Env]:
        def make() -> gym.Env:
            env = Recorder(raw_env(name), logs[i])
            return AMAGOEnv(env, env_name=name) if amago else env

        return make

    return [factory(i) for i in range(len(logs))]


def tiny_agent(
    name: str,
    traj: str = "transformer",
    d_model: int = 32,
    n_layers: int = 2,
    seed: int = 0,
    attention: type | None = None,
) -> Agent:
    """An untrained agent for env ``name`` built under the process's (test-cleared) gin config.

    ``traj``: "transformer", "gru", "ff" or "identity"; ``attention``: the Transformer's
    ``attention_type`` (default: its own, ``FlashAttention``)."""
    bindings = {
        "FFTstepEncoder.d_hidden": 32,
        "FFTstepEncoder.d_output": 16,
        "TformerTrajEncoder.d_model": d_model,
        "TformerTrajEncoder.d_ff": 2 * d_model,
        "TformerTrajEncoder.n_layers": n_layers,
        "TformerTrajEncoder.n_heads": 2,
        "TformerTrajEncoder.dropout_ff": 0.0,
        "TformerTrajEncoder.dropout_emb": 0.0,
        "GRUTrajEncoder.d_hidden": d_model,
        "GRUTrajEncoder.d_output": d_model,
        "GRUTrajEncoder.n_layers": n_layers,
        "FFTrajEncoder.d_model": d_model,
        "Actor.d_hidden": 32,
        "NCritics.d_hidden": 32,
    }
    if attention is not None:
        bindings["TformerTrajEncoder.attention_type"] = attention
    with gin.unlock_config():
        for key, value in bindings.items():
            gin.bind_parameter(key, value)
    env = AMAGOEnv(raw_env(name))
    torch.manual_seed(seed)
    encoders = {"transformer": TformerTrajEncoder, "gru": GRUTrajEncoder, "ff": FFTrajEncoder}
    encoder = {**encoders, "identity": IdentityTrajEncoder}[traj]
    agent = Agent(
        env.observation_space, env.rl2_space, env.action_space, MAX_SEQ_LEN, FFTstepEncoder, encoder
    )
    if agent.discrete:
        with torch.no_grad():  # a sharper head: untrained greedy actions then depend on the input
            for param in agent.actor.parameters():
                param.mul_(10.0)
    return agent.eval()
