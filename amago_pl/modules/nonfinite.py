"""The non-finite-step guard: skip an optimizer step whose loss or gradients are not finite.

The original AMAGO has no such guard (``amago/experiment.py:846-874`` at 2d85600 steps whatever the
gradients are); amago_pl adds it so that one bad batch does not write NaN into the weights, the
optimizer moments and the checkpoints. The Agent owns one ``NonFiniteGuard`` and calls it from
``training_step`` (the loss) and ``on_before_optimizer_step`` (the gradients), so a plain
``Trainer.fit(agent)`` is protected too. The skipped-step total is checkpointed by the Agent
(``amago_pl_skipped_steps``, see :mod:`amago_pl.modules.checkpoint`).
"""

from __future__ import annotations

import logging
from typing import Any

import gin
import torch

log = logging.getLogger(__name__)


class NonFiniteTrainingError(RuntimeError):
    """Too many consecutive optimizer steps had a non-finite loss or gradients."""


@gin.configurable
def nonfinite_step_limit(max_consecutive: int = 20) -> int:
    """How many consecutive skipped (non-finite) optimizer steps stop training (at least 1).

    Bind it as ``nonfinite_step_limit.max_consecutive = 50``; it is read when training starts.
    """
    if int(max_consecutive) < 1:
        raise ValueError(f"nonfinite_step_limit.max_consecutive must be >= 1, got {max_consecutive}")
    return int(max_consecutive)


class NonFiniteGuard:
    """Counts and skips optimizer steps with a non-finite loss or gradients.

    ``skipped_steps`` is the run's total (restored from checkpoints); ``consecutive`` the current
    streak, which raises ``NonFiniteTrainingError`` when it reaches ``nonfinite_step_limit()``.
    """

    def __init__(self) -> None:
        self.skipped_steps = 0
        self.consecutive = 0
        self.limit: int | None = None  # read from gin at start(); lazily if start() never ran
        self._loss_bad: torch.Tensor | None = None  # () bool, accumulated over the step's batches

    def start(self) -> None:
        """Called when training starts: read the limit, forget any streak."""
        self.limit = nonfinite_step_limit()
        self.consecutive = 0
        self._loss_bad = None

    def note_loss(self, loss: torch.Tensor) -> None:
        """Remember whether this batch's loss was finite, without a device sync (checked later)."""
        bad = ~torch.isfinite(loss.detach())
        self._loss_bad = bad if self._loss_bad is None else self._loss_bad | bad

    def skip_step(self, optimizer: torch.optim.Optimizer, trainer: Any, device: torch.device) -> bool:
        """True (and the gradients dropped) if this update must be skipped.

        Runs after backward (and the DDP gradient all-reduce), before clipping and the optimizer.
        The flag is summed over ranks so every rank takes the same decision and none waits in a
        collective another skipped. Skipping sets the gradients to None, so AdamW leaves weights and
        moments untouched. Raises ``NonFiniteTrainingError`` at the limit; no checkpoint is written
        for the failing epoch.
        """
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        bad = torch.zeros((), device=device)
        if grads:
            bad = (~torch.isfinite(torch.stack(torch._foreach_norm(grads)))).any().float()
        if self._loss_bad is not None:
            bad = torch.maximum(bad, self._loss_bad.float().to(bad.device))
        self._loss_bad = None
        if trainer is not None and trainer.world_size > 1:
            bad = trainer.strategy.reduce(bad, reduce_op="sum")
        if float(bad) == 0.0:
            self.consecutive = 0
            return False
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = None
        self.skipped_steps += 1
        self.consecutive += 1
        step = trainer.global_step if trainer is not None else -1
        log.warning(
            "non-finite loss or gradients at global step %d: update skipped (%d in a row, %d in total)",
            step,
            self.consecutive,
            self.skipped_steps,
        )
        limit = self.limit if self.limit is not None else nonfinite_step_limit()
        if self.consecutive >= limit:
            ckpt = getattr(getattr(trainer, "checkpoint_callback", None), "last_model_path", "") or "none yet"
            raise NonFiniteTrainingError(
                f"training stopped at global step {step}: {self.consecutive} consecutive optimizer steps "
                f"had a non-finite loss or gradients (limit: nonfinite_step_limit.max_consecutive = {limit}). "
                f"No weights were updated by them; the last checkpoint is kept unchanged: {ckpt}. Usual causes: "
                "a learning rate that is too high, non-finite rewards, or reward_multiplier too large."
            )
        return True
