"""NaN/inf loss or gradients: the update is skipped (weights and optimizer moments untouched) and
counted in ``train/skipped_steps``; a run of them stops training and keeps the last checkpoint."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from amago_pl.cli_utils import bind
from amago_pl.modules.agent import Agent
from amago_pl.modules.nonfinite import NonFiniteTrainingError
from tests.faults.support import metric_values, tiny_experiment


class PoisonedAgent(Agent):
    """Injects a NaN loss (``NAN_LOSS`` global steps) or a NaN gradient (``NAN_GRAD`` steps) and
    records whether the trained weights moved at each step (target copies still track them)."""

    NAN_LOSS: set[int] | range = set()
    NAN_GRAD: set[int] = set()

    def compute_loss(self, batch: Any, diagnostics: bool = False) -> dict[str, torch.Tensor]:
        parts = super().compute_loss(batch, diagnostics)
        if self.global_step in self.NAN_LOSS:
            parts["loss_actor"] = parts["loss_actor"] * float("nan")
        return parts

    def on_after_backward(self) -> None:
        if self.global_step in self.NAN_GRAD:
            p = next(p for p in self.actor.parameters() if p.grad is not None)
            p.grad.view(-1)[0] = float("inf")

    def _online(self) -> list[torch.Tensor]:
        return [p.detach().clone() for m in self.trainable_modules.values() for p in m.parameters()]

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._before = self._online()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(outputs, batch, batch_idx)
        moved = any(not torch.equal(a, p) for a, p in zip(self._before, self._online()))
        self.moved = getattr(self, "moved", []) + [moved]


def test_nonfinite_steps_are_skipped_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PoisonedAgent, "NAN_LOSS", {1, 2})
    monkeypatch.setattr(PoisonedAgent, "NAN_GRAD", {4})
    exp = tiny_experiment(tmp_path, agent_type=PoisonedAgent, epochs=2, lr_warmup_steps=0)
    exp.start()
    exp.learn()
    agent = exp.agent
    assert exp.trainer.global_step == 6
    assert agent.skipped_steps == 3
    assert agent.moved == [True, False, False, True, False, True]  # skipped steps change nothing
    assert all(torch.isfinite(p).all() for p in agent.parameters())
    assert all(torch.isfinite(b).all() for b in agent.popart.buffers())  # statistics not poisoned
    assert max(metric_values(tmp_path / "tiny", "train/skipped_steps")) == 3.0


def test_run_of_nonfinite_steps_stops_and_keeps_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PoisonedAgent, "NAN_LOSS", range(3, 1000))  # every step from epoch 1 on
    exp = tiny_experiment(tmp_path, agent_type=PoisonedAgent, epochs=3)
    bind("nonfinite_step_limit.max_consecutive", 2)
    exp.start()
    last = tmp_path / "tiny" / "ckpts" / "last.ckpt"
    digest: dict[str, str] = {}

    class Snapshot(pl.Callback):  # records last.ckpt's bytes when epoch 1 starts
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if trainer.current_epoch == 1:
                digest["epoch0"] = hashlib.sha256(last.read_bytes()).hexdigest()

    exp.trainer.callbacks.append(Snapshot())
    with pytest.raises(NonFiniteTrainingError) as err:
        exp.learn()
    message = str(err.value)
    assert "global step 4" in message and "2 consecutive" in message
    assert "nonfinite_step_limit.max_consecutive = 2" in message and str(last) in message
    assert hashlib.sha256(last.read_bytes()).hexdigest() == digest["epoch0"]  # not overwritten
    blob = torch.load(last, map_location="cpu", weights_only=False)
    assert blob["epoch"] == 0 and blob["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in blob["state_dict"].values() if v.is_floating_point())
    assert not (tmp_path / "tiny" / "ckpts" / "epoch=1.ckpt").exists()


def test_skipped_step_count_survives_a_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PoisonedAgent, "NAN_LOSS", {1})
    exp = tiny_experiment(tmp_path, agent_type=PoisonedAgent, epochs=2, lr_warmup_steps=0)
    exp.start()
    exp.learn()
    assert exp.agent.skipped_steps == 1
    ckpt = torch.load(tmp_path / "tiny" / "ckpts" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["amago_pl_skipped_steps"] == 1
    fresh = tiny_experiment(tmp_path / "again", agent_type=PoisonedAgent, epochs=2, lr_warmup_steps=0)
    fresh.start()
    fresh.agent.on_load_checkpoint(ckpt)
    assert fresh.agent.skipped_steps == 1
