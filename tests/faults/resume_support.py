"""Pieces of the resume tests: an env whose episodes differ with the seed, a callback that SIGKILLs
its run in the middle of a collection, and the count of distinct stored sequences.

``ScriptedEnv`` (amago_pl/testing/envs.py) draws a number from its seeded RNG into every
observation, so two episodes are equal only when the env was seeded alike: a store holding two
equal observation/reward sequences holds a replay (tiny T-Maze episodes can coincide by chance,
see tests/integration/test_resume.py).
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np

from amago_pl.envs import AMAGOEnv
from amago_pl.testing.envs import ScriptedEnv


class MakeScripted:
    """Picklable factory of ``AMAGOEnv(ScriptedEnv(...))`` (for DDP ranks and async workers)."""

    def __call__(self) -> AMAGOEnv:
        return AMAGOEnv(ScriptedEnv(episode_lengths=(3, 5), num_actions=3), env_name="scripted")


def trajectory_files(buffer: Path) -> list[Path]:
    return sorted(p for d in ("fifo", "protected") for p in (buffer / d).glob("*.npz"))


def sequence_key(path: Path) -> str:
    """A digest of a stored file's observations and rewards (not its actions or name)."""
    digest = hashlib.sha256()
    with np.load(path, allow_pickle=False) as data:
        for key in sorted(k for k in data.files if k.startswith("obs") or k == "rews"):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(data[key]).tobytes())
    return digest.hexdigest()


def distinct_sequences(files: list[Path]) -> int:
    return len({sequence_key(f) for f in files})


class KillAfterFiles(pl.Callback):
    """SIGKILLs the run once ``files`` trajectory files were stored after ``after_ckpt`` appeared
    (so in the middle of a collection that follows that checkpoint). With ``group`` the whole
    process group dies (every DDP rank at once, as a preempted node)."""

    def __init__(self, after_ckpt: str | os.PathLike, files: int, group: bool = False):
        self.after_ckpt, self.files, self.group = Path(after_ckpt), files, group
        self.seen = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.global_rank != 0:
            return
        import amago_pl.datamodules.store as store

        real_replace = os.replace

        def replace(src: Any, dst: Any) -> None:
            real_replace(src, dst)
            if str(src).endswith(".npz.tmp") and self.after_ckpt.exists():
                self.seen += 1
                if self.seen >= self.files:
                    if self.group:
                        os.killpg(os.getpgrp(), signal.SIGKILL)
                    os.kill(os.getpid(), signal.SIGKILL)

        store.os = _PatchedOs(replace)  # only the store's view of os


class _PatchedOs:
    """The ``os`` module with ``replace`` swapped (other attributes fall through)."""

    def __init__(self, replace: Any):
        self.replace = replace

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)
