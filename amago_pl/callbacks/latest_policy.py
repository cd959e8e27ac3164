"""The "latest policy" file: the compact policy of a run, also what connects a learner with collectors.

The learner writes ``{run_dir}/ckpts/latest/policy.pt`` atomically after every epoch, whenever a
checkpoint is saved and at the end of the run. It is the compact policy file of
``amago_pl/policy/compact.py`` (weights plus the plain-data configuration that rebuilds them, no
optimizer or replay state), so ``amago_pl.Policy.from_checkpoint`` loads it on its own. Collectors
reload its weights at the start of every epoch (with retries, since the file may be replaced while
read). Processes share nothing but the filesystem, so collectors may run on other machines that
mount the same folder.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from amago_pl.callbacks.checkpoint_io import atomic_write_bytes
from amago_pl.policy.compact import policy_bytes

log = logging.getLogger(__name__)


def latest_policy_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "ckpts" / "latest" / "policy.pt"


def save_latest_policy(pl_module: pl.LightningModule, path: str | os.PathLike, version: int) -> None:
    """Write the compact policy file of ``pl_module`` (``version``: the optimizer step)."""
    # Temp file + os.replace: readers see the old or the new file, never half of one; a full
    # disk raises CheckpointWriteError naming the path and the bytes needed.
    atomic_write_bytes(path, policy_bytes(pl_module, version=version), what="latest policy")


def load_latest_policy(
    pl_module: pl.LightningModule, path: str | os.PathLike, retries: int = 10, wait: float = 1.0
) -> int | None:
    """Load weights into ``pl_module``; returns the policy version, or None if no file exists yet."""
    path = Path(path)
    for attempt in range(retries):
        if not path.exists():
            return None
        try:
            blob = torch.load(path, map_location=pl_module.device, weights_only=True)
            pl_module.load_state_dict(blob["state_dict"])
            return int(blob["version"])
        except (RuntimeError, EOFError, OSError, KeyError) as err:
            log.warning("reading %s failed (attempt %d/%d): %s", path, attempt + 1, retries, err)
            time.sleep(wait)
    raise RuntimeError(f"could not read the latest policy at {path} after {retries} attempts")


class LatestPolicyCallback(pl.Callback):
    """Write (learner) and/or read (collector) the latest policy file.

    With ``save``, rank 0 writes it after every training epoch, whenever a checkpoint is saved and
    at the end of training (once per optimizer step: a checkpoint at an epoch's end does not write
    it twice). With ``load``, its weights are loaded before every epoch.
    """

    def __init__(self, run_dir: str | os.PathLike, save: bool = True, load: bool = False):
        self.path = latest_policy_path(run_dir)
        self.save = save
        self.load = load
        self.loaded_version: int | None = None
        self._written_step: int | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._maybe_load(pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._maybe_load(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module, force=True)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._write(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module)

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, force: bool = False) -> None:
        if not self.save or trainer.global_rank != 0:
            return
        if not force and self._written_step == trainer.global_step and self.path.exists():
            return
        save_latest_policy(pl_module, self.path, version=trainer.global_step)
        self._written_step = trainer.global_step

    def _maybe_load(self, pl_module: pl.LightningModule) -> None:
        if self.load:
            version = load_latest_policy(pl_module, self.path)
            if version is not None:
                self.loaded_version = version
