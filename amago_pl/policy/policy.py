"""``Policy``: a trained agent acting step by step in the caller's own loop.

``act`` takes what the envs just returned (observations, rewards, terminated, truncated) and returns
actions in the envs' own format. It keeps, per env, what the rollout keeps: the previous reward and
action (the agent's rl2 input), the time index within the episode and the memory (KV cache or RNN
state), and it starts a new episode in one env's memory when that env's episode ended. The step
itself is :func:`amago_pl.policy.step.act_step`, the code the training rollouts run.

When an ended episode's next observation arrives depends on the vector env's autoreset mode
(https://farama.org/Vector-Autoreset-Mode): with ``NEXT_STEP`` (gymnasium's default) the call that
reports ``done`` still carries the episode's last observation (its action is ignored by the env) and
the next call starts the new episode; with ``SAME_STEP`` the call that reports ``done`` already
carries the new episode's first observation. ``reset(env=...)`` reads the mode from the env.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from amago_pl.envs.action_spaces import ActionAdapter
from amago_pl.envs.amago_env import OBS_KEY, dict_observation_space
from amago_pl.policy import loading
from amago_pl.policy.analysis import PolicyDetails, details_of
from amago_pl.policy.step import Captured, act_step, forget, new_memory
from amago_pl.types import Timestep


class SpaceMismatchError(ValueError):
    """An env whose observation or action space is not the one the policy was trained on."""


@dataclass
class _EnvFormat:
    adapter: ActionAdapter  # the env's own action space <-> the policy's
    single: bool  # a single (not vectorized) env: inputs and outputs without the env axis


def _same_space(a: spaces.Space, b: spaces.Space) -> bool:
    """Same kind and shape (bounds and dtypes may differ: the policy acts in its own normalised space)."""
    if isinstance(a, spaces.Dict) and isinstance(b, spaces.Dict):
        return set(a.spaces) == set(b.spaces) and all(_same_space(a[k], b[k]) for k in a.spaces)
    if isinstance(a, spaces.Discrete) and isinstance(b, spaces.Discrete):
        return int(a.n) == int(b.n)
    return type(a) is type(b) and tuple(a.shape or ()) == tuple(b.shape or ())


class Policy:
    """A trained agent as a policy (Stable-Baselines3's ``predict`` for long-context memory).

    Build it with :meth:`from_checkpoint` (a run's ``ckpts/last.ckpt``, ``ckpts/epoch=N.ckpt`` or the
    compact ``ckpts/latest/policy.pt``) or :meth:`from_agent`. Then ``reset(env=vector_env)`` (or
    ``reset(num_envs)``) and call ``act`` once per env step.

    Attributes:
        agent: the ``Agent`` (eval mode); ``observation_space``/``action_space``: the spaces it was
            trained on (dict observations; actions in the policy's normalised space);
        gammas: the discount factors its critics and actor heads were trained with (the last acts).
    """

    def __init__(self, agent: Any, gin_config: str = ""):
        self.agent = agent.eval()
        self.gin_config = gin_config
        self.observation_space: spaces.Dict = agent.obs_space
        self.action_space: spaces.Space = agent.action_space
        self.gammas: list[float] = list(getattr(agent, "gammas_list", []))
        self.max_seq_len: int = int(agent.max_seq_len)
        self.num_envs: int | None = None
        self.autoreset_mode = AutoresetMode.NEXT_STEP
        self._format = _EnvFormat(ActionAdapter(self.action_space), single=False)
        self._memory: Any = None

    # ------------------------------------------------------------------ building
    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike | IO, device: torch.device | str = "cpu", agent_cls: type | None = None
    ) -> Policy:
        """Rebuild the agent from a self-describing checkpoint, read with ``weights_only=True``.

        The stored gin configuration is bound in isolation: the caller's gin configuration is the
        same afterwards (``gin.config_str()`` unchanged), and several policies of different sizes can
        be loaded in one process. The agent's class is the one the file names (registered with
        ``register_agent`` or ``register_checkpoint_class``; files written before classes were
        recorded try the registered agents, ``Agent`` first); ``agent_cls`` overrides it.
        """
        blob = loading.read_policy_source(path, map_location="cpu")
        agent = loading.build_agent(blob, path, agent_cls=agent_cls, device=device)
        return cls(agent, gin_config=loading.stored_gin_config(blob))

    @classmethod
    def from_agent(cls, agent: Any, gin_config: str | None = None) -> Policy:
        """Wrap an agent of this process (e.g. inside a training script). The same module is used:
        its weights are shared, and it is switched to eval mode."""
        import gin

        return cls(agent, gin_config=gin.config_str() if gin_config is None else gin_config)

    def save(self, path: str | os.PathLike, version: int = 0) -> Path:
        """Write the compact policy file (weights + plain-data configuration; ``policy/compact.py``)."""
        from amago_pl.policy.compact import save_policy_file

        return save_policy_file(self.agent, path, version=version, gin_config=self.gin_config)

    @property
    def device(self) -> torch.device:
        return self.agent.device

    def to(self, device: torch.device | str) -> Policy:
        self.agent.to(device)
        self._memory = None if self.num_envs is None else new_memory(self.agent, self.num_envs, device)
        return self

    # ------------------------------------------------------------------ envs
    def check_env(self, env: gym.Env | VectorEnv) -> None:
        """Raise ``SpaceMismatchError`` naming both spaces unless ``env`` matches the checkpoint."""
        vector = isinstance(env, VectorEnv)
        obs_space = env.single_observation_space if vector else env.observation_space
        act_space = env.single_action_space if vector else env.action_space
        self._check_spaces(obs_space, act_space, what=f"env {type(env).__name__}")

    def _check_spaces(self, obs_space: spaces.Space, act_space: spaces.Space, what: str) -> ActionAdapter:
        if not _same_space(dict_observation_space(obs_space), self.observation_space):
            raise SpaceMismatchError(
                f"{what} has observation space {obs_space}, but the policy was trained on "
                f"{self.observation_space}. Use the env (and wrappers) the agent was trained with."
            )
        try:
            adapter = ActionAdapter(act_space)
        except ValueError as err:
            raise SpaceMismatchError(
                f"{what} has action space {act_space}, which the policy (trained on {self.action_space}) "
                f"cannot act in: {err}"
            ) from None
        if not _same_space(adapter.policy_space, self.action_space):
            raise SpaceMismatchError(
                f"{what} has action space {act_space} (as a policy space: {adapter.policy_space}), but the "
                f"policy was trained on {self.action_space}. Use the env the agent was trained with."
            )
        return adapter

    def reset(
        self,
        num_envs: int | None = None,
        *,
        env: gym.Env | VectorEnv | None = None,
        action_space: spaces.Space | None = None,
        autoreset_mode: AutoresetMode | str | None = None,
    ) -> None:
        """Forget every env's memory and get ready for ``num_envs`` envs.

        Args:
            num_envs: number of envs per ``act`` call (taken from ``env`` when given).
            env: the gymnasium ``VectorEnv`` (or single env) to act in: its spaces are checked against
                the checkpoint, actions are returned in its action format and its autoreset mode is
                used. A single env takes and returns unbatched values.
            action_space: the env's own (single) action space, when no ``env`` is given (default: the
                policy's space, i.e. Discrete indices, Box in [-1, 1]).
            autoreset_mode: ``NEXT_STEP`` (gymnasium's default), ``SAME_STEP`` or ``DISABLED``
                (treated as ``NEXT_STEP``: the call after ``done`` starts the new episode; where you
                reset envs yourself, pass ``act(..., episode_start=...)``).
        """
        single = False
        adapter = ActionAdapter(self.action_space)
        if env is not None:
            vector = isinstance(env, VectorEnv)
            single = not vector
            obs_space = env.single_observation_space if vector else env.observation_space
            act_space = env.single_action_space if vector else env.action_space
            adapter = self._check_spaces(obs_space, act_space, what=f"env {type(env).__name__}")
            num_envs = env.num_envs if vector else 1
            if autoreset_mode is None and vector:
                autoreset_mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        elif action_space is not None:
            adapter = self._check_spaces(self.observation_space, action_space, what="the given action space")
        if num_envs is None or int(num_envs) < 1:
            raise ValueError(f"reset needs num_envs >= 1 or an env; got num_envs={num_envs!r}")
        mode = AutoresetMode(autoreset_mode) if autoreset_mode is not None else AutoresetMode.NEXT_STEP
        n = int(num_envs)
        self.num_envs, self.autoreset_mode = n, mode
        self._format = _EnvFormat(adapter, single)
        self._memory = new_memory(self.agent, n, self.device)
        self._prev_rep = np.zeros((n, adapter.action_dim), dtype=np.float32)  # (N, A)
        self._time = np.zeros(n, dtype=np.int64)  # (N,) time index of the last input
        self._starts = np.ones(n, dtype=bool)  # (N,) the next input starts an episode

    # ------------------------------------------------------------------ acting
    def act(
        self,
        obs: Any,
        reward: Any = None,
        done: Any = None,
        truncated: Any = None,
        *,
        deterministic: bool = False,
        return_details: bool = False,
        episode_start: Any = None,
    ) -> Any:
        """Actions for what the envs just returned.

        Args:
            obs: a batch of observations (``(N, ...)`` arrays or a dict of them; unbatched for a
                single env given to ``reset``).
            reward, done, truncated: the envs' last reward, ``terminated`` and ``truncated`` flags
                (after ``env.reset``: None, i.e. reward 0 and not done). None does not by itself
                start a new episode: the policy only knows an episode ended from these flags.
            deterministic: the distribution's mode/mean instead of a sample.
            episode_start: True (or ``(N,)`` bools) where ``obs`` is the first observation of an
                episode the policy was not told ended, e.g. after your own ``env.reset()`` of a
                single env whose loop stopped at ``terminated`` (Stable-Baselines3's
                ``episode_start``; the exported step's ``new_episode``). Those envs start over
                as after ``reset``; the first call after ``reset`` needs no flag.
            return_details: also return a :class:`PolicyDetails` (probabilities or mean/std of the
                acting head, values per gamma).

        Returns:
            actions in the env's action format, ``(N, ...)`` (unbatched for a single env); with
            ``return_details``, ``(actions, details)``.
        """
        if self.num_envs is None:
            raise RuntimeError("call policy.reset(num_envs) or policy.reset(env=...) before policy.act")
        n, fmt = self.num_envs, self._format
        obs = self._obs_dict(obs)
        ended = self._flags(done) | self._flags(truncated)  # (N,)
        starts = self._starts | ended if self.autoreset_mode == AutoresetMode.SAME_STEP else self._starts
        starts = starts | self._flags(episode_start)  # (N,) the caller's own resets
        rewards = np.zeros(n, dtype=np.float32) if reward is None else self._batch(reward, np.float32)
        self._memory = forget(self.agent, self._memory, starts)
        self._time = np.where(starts, 0, self._time + 1)
        rl2s = np.concatenate([rewards[:, None], self._prev_rep], axis=1)  # (N, 1 + A)
        rl2s[starts] = 0.0
        timestep = Timestep(obs=obs, rl2s=rl2s, time_idxs=self._time.copy())
        capture = Captured() if return_details else None
        actions, self._memory = act_step(
            self.agent, timestep, self._memory, sample=not deterministic, capture=capture
        )
        self._prev_rep = fmt.adapter.rep_batch(actions)  # (N, A) what the next input reports
        self._starts = ended if self.autoreset_mode != AutoresetMode.SAME_STEP else np.zeros(n, dtype=bool)
        env_actions = fmt.adapter.to_env_batch(actions)  # (N, *env action shape)
        if fmt.single:
            env_actions = env_actions[0].item() if fmt.adapter.discrete else env_actions[0]
        if not return_details:
            return env_actions
        return env_actions, details_of(self.agent, capture, actions)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.act(*args, **kwargs)

    # ------------------------------------------------------------------ helpers
    def _batch(self, value: Any, dtype: Any) -> np.ndarray:
        arr = np.asarray(value, dtype=dtype)
        if self._format.single:
            arr = arr.reshape(1)
        if arr.shape != (self.num_envs,):
            raise ValueError(f"expected {self.num_envs} values (one per env), got shape {arr.shape}")
        return arr

    def _flags(self, value: Any) -> np.ndarray:
        if value is None:
            return np.zeros(self.num_envs, dtype=bool)
        return self._batch(value, bool)

    def _obs_dict(self, obs: Any) -> dict[str, np.ndarray]:
        keys = list(self.observation_space.spaces)
        if not isinstance(obs, dict):
            if keys != [OBS_KEY]:
                raise SpaceMismatchError(
                    f"got a {type(obs).__name__} observation, but the policy was trained on the dict "
                    f"space {self.observation_space}"
                )
            obs = {OBS_KEY: obs}
        out = {}
        for key in keys:
            if key not in obs:
                raise SpaceMismatchError(
                    f"observation has keys {sorted(obs)}, but the policy was trained on {self.observation_space}"
                )
            arr = np.asarray(obs[key])
            if self._format.single:
                arr = arr[None]
            want = (self.num_envs, *self.observation_space[key].shape)
            if arr.shape != want:
                raise SpaceMismatchError(
                    f"observation {key!r} has shape {arr.shape}; expected {want} (num_envs={self.num_envs}, "
                    f"space {self.observation_space[key]}). The policy was trained on {self.observation_space}."
                )
            out[key] = arr
        return out


__all__ = ["Policy", "PolicyDetails", "SpaceMismatchError"]
