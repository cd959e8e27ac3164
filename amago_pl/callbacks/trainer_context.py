"""What a callback or the Experiment needs from the running Trainer outside Lightning's own loops:
the precision context, this process's rank, the published env-step count, a sum over ranks, and
logging with both x-axes (gradient steps and ``total_frames``). Shared by the rollout and evaluation
callbacks and :class:`amago_pl.Experiment`."""

from __future__ import annotations

from collections.abc import Callable

import lightning.pytorch as pl
import torch

from amago_pl.callbacks.metric_axes import TOTAL_FRAMES, define_env_step_axis, log_env_step_series


def autocast_context(trainer: pl.Trainer) -> Callable:
    """The Trainer's precision context (e.g. bf16 autocast), so rollouts match training precision."""
    return trainer.strategy.precision_plugin.forward_context


def world_info(trainer: pl.Trainer | None) -> tuple[int, int]:
    """``(global rank, world size)``; ``(0, 1)`` without a Trainer (a bare ``collect`` call)."""
    if trainer is None:
        return 0, 1
    return trainer.global_rank, trainer.world_size


def total_frames(trainer: pl.Trainer | None) -> int | None:
    """The run's env-step count as last published by the rollout callback (None before any)."""
    if trainer is None:
        return None
    value = trainer.callback_metrics.get(TOTAL_FRAMES)
    return None if value is None else int(value)


def sum_over_ranks(trainer: pl.Trainer, value: float) -> float:
    """``value`` summed over the DDP ranks (every rank must call it); itself with one process."""
    if trainer.world_size <= 1:
        return float(value)
    t = torch.tensor(float(value), dtype=torch.float64, device=trainer.strategy.root_device)
    return float(trainer.strategy.reduce(t, reduce_op="sum").item())


def log_to_loggers(trainer: pl.Trainer, metrics: dict[str, float], total_frames: int | None = None) -> None:
    """Log outside a Lightning loop's ``self.log`` (collection, ``Experiment.evaluate_test``), with
    the explicit x-axes: the logger step (gradient steps) and ``total_frames`` (env steps; see
    :mod:`amago_pl.callbacks.metric_axes`)."""
    if not metrics or trainer.global_rank != 0 or not trainer.loggers:
        return
    metrics = dict(metrics)
    if total_frames is not None:
        metrics[TOTAL_FRAMES] = float(total_frames)
    metrics["gradient_steps"] = float(trainer.global_step)
    metrics["epoch"] = float(trainer.current_epoch)
    define_env_step_axis(trainer, metrics)
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)
    log_env_step_series(trainer, metrics, total_frames)
