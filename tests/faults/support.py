"""Shared pieces of the fault tests: envs that misbehave on cue, a tiny Experiment, store checks,
and callbacks that the CLI loads by class path to kill its own process inside a write."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path
from typing import Any

import gymnasium as gym
import lightning.pytorch as pl
import numpy as np

from amago_pl.envs import AMAGOEnv
from amago_pl.envs.builtin.tmaze import TMazeAltPassive
from tests.integration.helpers import TINY_GIN, read_metrics

HORIZON = 4


class FaultyTMaze(gym.Wrapper):
    """T-Maze that misbehaves at its ``at_step``-th step (counted over its lifetime).

    fault: "raise_step", "raise_reset", "nan_obs", "inf_reward", "bad_shape", "bad_dtype",
    "missing_key" or None. With ``marker`` (a file path) the fault happens once across all
    processes (the first env to get there creates the marker); without it, every instance
    misbehaves at its own ``at_step``.
    """

    def __init__(
        self, fault: str | None, at_step: int, marker: str | None = None, rank_only: int | None = None
    ):
        super().__init__(TMazeAltPassive(corridor_length=3))
        self.fault, self.at_step, self.marker, self.rank_only = fault, at_step, marker, rank_only
        self.steps = 0
        self.resets = 0

    def _due(self, count: int) -> bool:
        if self.fault is None or count < self.at_step:
            return False
        if self.rank_only is not None and int(os.environ.get("LOCAL_RANK", "0")) != self.rank_only:
            return False
        if self.marker is None:
            return True
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def reset(self, **kwargs: Any):
        self.resets += 1
        if self.fault == "raise_reset" and self._due(self.resets):
            raise RuntimeError("FaultyTMaze: simulated crash in reset")
        return self.env.reset(**kwargs)

    def step(self, action: Any):
        self.steps += 1
        obs, rew, term, trunc, info = self.env.step(action)
        if self.fault in ("raise_reset", None) or not self._due(self.steps):
            return obs, rew, term, trunc, info
        if self.fault == "raise_step":
            raise RuntimeError("FaultyTMaze: simulated crash in step")
        if self.fault == "nan_obs":
            obs = np.full_like(obs, np.nan)
        elif self.fault == "inf_reward":
            rew = float("inf")
        elif self.fault == "bad_shape":
            obs = np.zeros(obs.shape[0] + 2, dtype=obs.dtype)
        elif self.fault == "bad_dtype":
            obs = np.array(["x"] * obs.shape[0])
        return obs, rew, term, trunc, info


class MakeFaulty:
    """Picklable factory of ``AMAGOEnv(FaultyTMaze(...))`` (for async workers and DDP ranks)."""

    def __init__(
        self,
        fault: str | None = None,
        at_step: int = 3,
        marker: str | None = None,
        rank_only: int | None = None,
    ):
        self.args = (fault, at_step, marker, rank_only)

    def __call__(self) -> AMAGOEnv:
        return AMAGOEnv(FaultyTMaze(*self.args), env_name="TMaze")


def tiny_experiment(tmp_path: Path, make_env: Any = None, agent_type: Any = None, **overrides: Any):
    """A two-actor, few-second Experiment on a 3-corridor T-Maze (FF + Transformer, tiny widths)."""
    from amago_pl import DiskTrajDataset, Experiment
    from amago_pl.cli_utils import switch_traj_encoder, switch_tstep_encoder, use_config
    from amago_pl.modules.agent import Agent

    config = dict(TINY_GIN)
    config["EpsilonGreedy.steps_anneal"] = 1000
    tstep = switch_tstep_encoder(config, "ff")
    traj = switch_traj_encoder(config, "transformer")
    use_config(config, finalize=False)
    make_env = make_env or MakeFaulty()
    kwargs: dict[str, Any] = dict(
        run_name="tiny",
        ckpt_base_dir=str(tmp_path),
        max_seq_len=HORIZON,
        dataset=DiskTrajDataset(dset_root=str(tmp_path), dset_name="tiny", dset_max_size=1000),
        tstep_encoder_type=tstep,
        traj_encoder_type=traj,
        agent_type=agent_type or Agent,
        make_train_env=make_env,
        make_val_env=MakeFaulty(),
        val_timesteps_per_epoch=HORIZON + 1,
        parallel_actors=2,
        env_mode="sync",
        epochs=3,
        train_timesteps_per_epoch=6,
        train_batches_per_epoch=3,
        batch_size=4,
        val_interval=None,
        ckpt_interval=1,
        dloader_workers=0,
        log_interval=1,
        verbose=False,
        traj_save_len=HORIZON + 1,
        seed=0,  # repeatable (an Experiment without a seed draws a fresh one)
    )
    kwargs.update(overrides)
    return Experiment(**kwargs)


def metric_values(run_dir: Path, name: str) -> list[float]:
    return [float(row[name]) for row in read_metrics(run_dir) if row.get(name) not in ("", None)]


def store_files(buffer: Path) -> list[Path]:
    """Every visible trajectory file (fifo + protected), each checked to load completely."""
    files = sorted(p for d in ("fifo", "protected") for p in (buffer / d).glob("*.npz"))
    for f in files:
        with np.load(f, allow_pickle=False) as data:
            for key in data.files:
                _ = data[key]  # decompress every member: a truncated file fails here
    return files


def digests(files: list[Path]) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


class KillInsideWrite(pl.Callback):
    """Loaded by class path into a CLI run: SIGKILLs the process inside a write, at a chosen point.

    where="trajectory": after the ``count``-th trajectory temp file is complete, before its rename.
    where="checkpoint": halfway through writing the bytes of the ``count``-th checkpoint file.
    """

    def __init__(self, where: str, count: int = 1):
        self.where, self.count = where, count
        self.seen = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.where == "trajectory":
            import amago_pl.datamodules.store as store

            real_replace = os.replace

            def replace(src: Any, dst: Any) -> None:
                if str(src).endswith(".npz.tmp"):
                    self.seen += 1
                    if self.seen >= self.count:
                        os.kill(os.getpid(), signal.SIGKILL)
                real_replace(src, dst)

            store.os = _PatchedOs(replace)  # only the store's view of os
        else:
            import amago_pl.callbacks.checkpoint_io as cio

            def write_half_then_die(path: Path, data: bytes) -> None:
                if ".ckpt." not in Path(path).name:  # latest/policy.pt goes through here too
                    return real_write(path, data)
                self.seen += 1
                if self.seen < self.count:
                    return real_write(path, data)
                with open(path, "wb") as f:
                    f.write(data[: len(data) // 2])
                    f.flush()
                os.kill(os.getpid(), signal.SIGKILL)

            real_write = cio._write_bytes
            cio._write_bytes = write_half_then_die


class _PatchedOs:
    """The ``os`` module with ``replace`` swapped (module attribute lookups fall through)."""

    def __init__(self, replace: Any):
        self.replace = replace

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)
