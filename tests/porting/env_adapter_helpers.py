"""Helpers for tests/porting/test_env_adapters.py: a tiny Experiment around any env factory, a
single-env view of a vector env for gymnasium's checker, and a locally built XLand benchmark."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from amago_pl import DiskTrajDataset, Experiment
from amago_pl.cli_utils import switch_traj_encoder, switch_tstep_encoder, use_config
from amago_pl.modules.agent import Agent
from tests.integration.helpers import TINY_GIN, metric_names

HORIZON = 4
BATCHES = 2
TINY_CNN = {
    "CNNTstepEncoder.img_features": 16,
    "CNNTstepEncoder.rl2_features": 4,
    "CNNTstepEncoder.d_output": 16,
}


def tiny_epoch(
    tmp_path: Path,
    make_env: Callable,
    tstep: str = "ff",
    env_mode: str = "sync",
    tstep_kwargs: dict[str, Any] | None = None,
    extra_gin: dict[str, Any] | None = None,
) -> set[str]:
    """One tiny training epoch (2 actors, a few env steps, 2 gradient updates, one validation);
    returns the logged metric names."""
    config = {**TINY_GIN, **TINY_CNN, **(extra_gin or {})}
    tstep_cls = switch_tstep_encoder(config, tstep, **(tstep_kwargs or {}))
    traj_cls = switch_traj_encoder(config, "transformer")
    use_config(config, finalize=False)
    exp = Experiment(
        run_name="adapter",
        ckpt_base_dir=str(tmp_path),
        max_seq_len=HORIZON,
        dataset=DiskTrajDataset(dset_root=str(tmp_path), dset_name="adapter", dset_max_size=100),
        tstep_encoder_type=tstep_cls,
        traj_encoder_type=traj_cls,
        agent_type=Agent,
        make_train_env=make_env,
        make_val_env=make_env,
        val_timesteps_per_epoch=HORIZON + 1,
        parallel_actors=2,
        env_mode=env_mode,
        epochs=1,
        train_timesteps_per_epoch=HORIZON + 2,
        train_batches_per_epoch=BATCHES,
        batch_size=4,
        val_interval=1,
        ckpt_interval=1,
        dloader_workers=0,
        log_interval=1,
        verbose=False,
        traj_save_len=HORIZON + 1,
        seed=0,
    )
    exp.start()
    exp.learn()
    assert exp.trainer.global_step == BATCHES
    names = metric_names(tmp_path / "adapter")
    for key in ("train/loss_critic", "train/loss_actor", "val/env_fps"):  # trained, then validated
        assert key in names, f"{key} missing from {sorted(names)}"
    return names


def _slot(tree: Any) -> Any:
    return {k: _slot(v) for k, v in tree.items()} if isinstance(tree, dict) else tree[0]


class VectorSlot(gym.Env):
    """Env 0 of a one-env gymnasium ``VectorEnv`` seen as a plain ``gym.Env``, so gymnasium's
    ``check_env`` can check the vector adapter's spaces, dtypes, seeding and step outputs."""

    def __init__(self, venv: gym.vector.VectorEnv):
        assert venv.num_envs == 1
        self.venv = venv
        self.observation_space = venv.single_observation_space
        self.action_space = venv.single_action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        obs, _ = self.venv.reset(seed=seed)
        return _slot(obs), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, rew, term, trunc, _ = self.venv.step(np.asarray([action]))
        return _slot(obs), float(rew[0]), bool(term[0]), bool(trunc[0]), {}


def xland_benchmark() -> Any:
    """Four XLand rulesets built here (one goal each, no production rules): tests never call
    ``xminigrid.load_benchmark``, which downloads and unpickles rulesets from a dataset hub."""
    import jax.numpy as jnp
    from xminigrid.benchmarks import Benchmark
    from xminigrid.core.constants import TILES_REGISTRY, Colors, Tiles
    from xminigrid.core.goals import AgentHoldGoal, AgentNearGoal
    from xminigrid.core.rules import EmptyRule

    tiles = [
        TILES_REGISTRY[Tiles.BALL, Colors.RED],
        TILES_REGISTRY[Tiles.KEY, Colors.BLUE],
        TILES_REGISTRY[Tiles.SQUARE, Colors.GREEN],
        TILES_REGISTRY[Tiles.PYRAMID, Colors.YELLOW],
    ]
    goals = [AgentNearGoal(tile=tiles[0]), AgentHoldGoal(tile=tiles[1])]
    goals += [AgentNearGoal(tile=tiles[2]), AgentHoldGoal(tile=tiles[3])]
    return Benchmark(
        goals=jnp.stack([g.encode() for g in goals]),  # (4, goal encoding)
        rules=jnp.stack([EmptyRule().encode()[None]] * 4),  # (4, 1, rule encoding)
        init_tiles=jnp.stack([t[None] for t in tiles]),  # (4, 1, 2)
        num_rules=jnp.ones(4, dtype=jnp.int32),
    )
