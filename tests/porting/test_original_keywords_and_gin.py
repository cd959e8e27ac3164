"""Keywords of the original (AMAGO 3.3.0 at 2d85600) that its examples use, and gin files written
with the original's ``amago.*`` keys, work after the rename."""

from __future__ import annotations

from argparse import ArgumentParser

import gin
import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from amago_pl import cli_utils
from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.mazerunner import MazeRunnerAMAGOEnv
from amago_pl.envs.builtin.toy_gym import MetaFrozenLake
from amago_pl.nets.transformer import SigmaReparam
from tests.porting.porting_helpers import tiny_run


class SelfResettingBatch(gym.Env):
    """An env batched inside, the original's ``batched_envs`` contract: (N, ...) arrays, single-env
    spaces, and ended envs reset by the env in the same step. Each env's episode lasts 4 steps."""

    def __init__(self, n: int = 2):
        self.n = n
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.t = np.zeros(n, dtype=np.int64)

    def reset(self, *, seed=None, options=None):
        self.t[:] = 0
        return np.zeros((self.n, 3), np.float32), {}

    def step(self, action):
        assert np.asarray(action).shape == (self.n,)
        self.t += 1
        done = self.t >= 4
        reward = (np.asarray(action) == 1).astype(np.float32)
        self.t[done] = 0
        obs = np.stack([self.t / 4, np.zeros(self.n), np.ones(self.n)], axis=1).astype(np.float32)
        return obs, reward, done, np.zeros(self.n, bool), {}


def test_batched_envs_keyword_runs_an_already_vectorized_experiment(tmp_path):
    def make_env():
        return AMAGOEnv(SelfResettingBatch(2), env_name="batch", batched_envs=2)

    env = make_env()
    assert env.batched_envs == 2 and env.action_space == spaces.Discrete(2)
    with pytest.raises(TypeError, match="already_vectorized"):
        env.reset()
    tiny_run(tmp_path, make_env, env_mode="already_vectorized", max_seq_len=4)


def test_meta_frozen_lake_show_k_progress():
    shown, hidden = MetaFrozenLake(3, k_episodes=4), MetaFrozenLake(3, k_episodes=4, show_k_progress=False)
    for env in (shown, hidden):
        env.reset(seed=0)
        env.attempt = 1  # one of four attempts done
    assert shown._obs(False)[3] == 0.25 and hidden._obs(False)[3] == 0.0


def test_mazerunner_randomized_action_space():
    fixed = MazeRunnerAMAGOEnv(maze_dim=7, num_goals=1, time_limit=10)
    rewired = MazeRunnerAMAGOEnv(maze_dim=7, num_goals=1, time_limit=10, randomized_action_space=True)
    maps = set()
    for seed in range(4):
        fixed.reset(seed=seed)
        rewired.reset(seed=seed)
        moves = rewired.unwrapped.moves
        assert sorted(map(tuple, moves.tolist())) == sorted(map(tuple, fixed.unwrapped.moves.tolist()))
        maps.add(str(moves.tolist()))
    assert len(maps) > 1  # the same five moves, assigned to the action indices anew per reset


def test_sigma_reparam_fast_init():
    torch.manual_seed(0)
    exact = SigmaReparam(6, 5)  # 20 power iterations: u^T W v is the top singular value
    top = torch.linalg.matrix_norm(exact.weight.detach(), ord=2)
    assert torch.isclose(exact.sigma().detach(), top, rtol=1e-3)
    torch.manual_seed(1)
    fast = SigmaReparam(6, 5, fast_init=True)  # the original's legacy start: random u, v
    assert fast.sigma().detach().abs() < torch.linalg.matrix_norm(fast.weight.detach(), ord=2) * 0.99
    with gin.unlock_config():
        gin.bind_parameter("SigmaReparam.fast_init", True)
    torch.manual_seed(1)
    assert torch.equal(SigmaReparam(6, 5).u, fast.u)  # the gin key reaches the keyword


def test_identity_traj_encoder_from_the_common_cli(tmp_path):
    parser = ArgumentParser()
    cli_utils.add_common_cli(parser)
    assert parser.parse_args(
        ["--run_name", "x", "--buffer_dir", "y", "--traj_encoder", "identity"]
    ).traj_encoder
    cli_utils.register_all_configurables()
    assert gin.config._REGISTRY.get_match("IdentityTrajEncoder") is not None  # noqa: SLF001
    from amago_pl.envs.builtin.tmaze import TMazeAltPassive

    tiny_run(
        tmp_path, lambda: AMAGOEnv(TMazeAltPassive(corridor_length=2)), traj_encoder="identity", max_seq_len=3
    )


ORIGINAL_GIN = """
# keys as written for the original AMAGO
amago.agent.Agent.reward_multiplier = 3.0
amago.agent.Agent.fbc_filter_func = @amago.agent.exp_filter
amago.agent.exp_filter.beta = 0.5
amago.nets.traj_encoders.TformerTrajEncoder.d_model = 48
amago.nets.traj_encoders.TformerTrajEncoder.attention_type = @amago.nets.transformer.FlashAttention
amago.nets.transformer.SigmaReparam.fast_init = True
amago.nets.tstep_encoders.FFTstepEncoder.d_output = 24
amago.envs.exploration.EpsilonGreedy.eps_start = 0.5
amago.loading.DiskTrajDataset.dset_min_size = 3
include '{inner}'
"""


def _check_bound() -> None:
    from amago_pl.modules import losses

    q = gin.query_parameter
    assert q("amago_pl.modules.agent.Agent.reward_multiplier") == 3.0
    assert q("amago_pl.modules.agent.Agent.fbc_filter_func").scoped_configurable_fn.__wrapped__ is (
        losses.exp_filter.__wrapped__
    )
    assert q("amago_pl.modules.losses.exp_filter.beta") == 0.5
    assert q("TformerTrajEncoder.d_model") == 48 and q("SigmaReparam.fast_init") is True
    assert q("FFTstepEncoder.d_output") == 24 and q("EpsilonGreedy.eps_start") == 0.5
    assert q("DiskTrajDataset.dset_min_size") == 3
    assert q("MultiTaskAgent.gamma") == 0.95


@pytest.mark.parametrize("how", ["use_config", "gin.parse_config_file"])
def test_a_gin_file_with_the_originals_keys(tmp_path, how):
    inner = tmp_path / "inner.gin"
    inner.write_text("amago.agent.MultiTaskAgent.gamma = 0.95\n")
    outer = tmp_path / "amago.gin"  # a quoted path containing "amago." is left alone
    outer.write_text(ORIGINAL_GIN.format(inner=inner))
    cli_utils.register_all_configurables()
    if how == "use_config":
        cli_utils.use_config({}, gin_configs=[str(outer)], finalize=False)
    else:
        gin.parse_config_file(str(outer))
    _check_bound()


def test_gin_strings_with_the_originals_keys_and_references():
    cli_utils.parse_gin(bindings=["amago.agent.Agent.fbc_filter_func = @amago.agent.binary_filter"])
    from amago_pl.modules import losses

    bound = gin.query_parameter("amago_pl.modules.agent.Agent.fbc_filter_func")
    assert bound.scoped_configurable_fn.__wrapped__ is losses.binary_filter.__wrapped__
