"""A full disk (ENOSPC, simulated by failing the write) while writing a trajectory or a checkpoint:
a clear error naming the path and the bytes needed; the store and the last checkpoint stay
readable and no temporary file is left behind."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

import amago_pl.callbacks.checkpoint_io as cio
from amago_pl.callbacks import CheckpointWriteError
from amago_pl.datamodules.store import StoreWriteError
from tests.faults.support import store_files, tiny_experiment


class FailFromEpoch(pl.Callback):
    """Makes ``fail`` effective from the start of ``epoch`` on (before that epoch's collection)."""

    def __init__(self, epoch: int, fail: Any):
        self.epoch, self.fail = epoch, fail

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            self.fail()


def _enospc(*_: Any, **__: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _start(tmp_path: Path, epoch: int, fail: Any, **overrides: Any):
    exp = tiny_experiment(tmp_path, epochs=4, **overrides)
    exp.start()
    exp.trainer.callbacks.insert(0, FailFromEpoch(epoch, fail))  # runs before the rollout callback
    return exp


def _loadable(ckpt: Path) -> dict:
    blob = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert all(torch.isfinite(v).all() for v in blob["state_dict"].values() if v.is_floating_point())
    return blob


def test_disk_full_during_trajectory_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def write_half_then_fail(file: Any, **arrays: Any) -> None:
        file.write(b"PK\x03\x04" + b"\0" * 64)  # a partial zip, as a real short write would leave
        _enospc()

    exp = _start(tmp_path, 2, lambda: monkeypatch.setattr(np, "savez", write_half_then_fail))
    with pytest.raises(StoreWriteError) as err:
        exp.learn()
    message = str(err.value)
    fifo = tmp_path / "tiny" / "buffer" / "fifo"
    assert "disk full" in message and str(fifo) in message and "bytes" in message
    assert int(message.split("needs about ")[1].split(" bytes")[0]) > 0
    monkeypatch.undo()
    assert not list(fifo.glob(".*"))  # the partial temp file was removed
    assert len(store_files(tmp_path / "tiny" / "buffer")) > 0  # every stored file still loads
    assert _loadable(tmp_path / "tiny" / "ckpts" / "last.ckpt")["epoch"] == 1


def test_disk_full_during_checkpoint_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def write_half_then_fail(path: Path, data: bytes) -> None:
        path.write_bytes(data[: len(data) // 2])
        _enospc()

    ckpts = tmp_path / "tiny" / "ckpts"
    # latest/policy.pt goes through the same writer and would fail first; leave it out here.
    fail = lambda: monkeypatch.setattr(cio, "_write_bytes", write_half_then_fail)  # noqa: E731
    exp = _start(tmp_path, 1, fail, always_save_latest=False)
    with pytest.raises(CheckpointWriteError) as err:
        exp.learn()
    message = str(err.value)
    assert err.value.errno == errno.ENOSPC
    assert "disk full" in message and str(ckpts / "epoch=1.ckpt") in message
    needed = int(message.split("needs ")[1].split(" bytes")[0])
    assert needed > (ckpts / "last.ckpt").stat().st_size // 2  # the real serialised size
    assert "bytes free" in message
    assert not list(ckpts.glob(".*")) and not (ckpts / "epoch=1.ckpt").exists()
    assert _loadable(ckpts / "last.ckpt")["epoch"] == 0  # the previous checkpoint is intact
    assert _loadable(ckpts / "epoch=0.ckpt")["amago_pl_version"]
    assert len(store_files(tmp_path / "tiny" / "buffer")) > 0
