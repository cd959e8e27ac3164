"""The env-step axis of the dashboards: ``rollout/``, ``val/`` and ``test/`` metrics against
``total_frames`` (env steps summed over ranks) as well as against gradient steps.

Lightning's loggers take one step per call, the optimizer step. Two additions give every logger
the env-step view as well:

* wandb: ``define_metric`` makes ``total_frames`` the x-axis of the three families.
* TensorBoard: each scalar is written a second time as ``{key}/by_env_step`` with
  ``global_step = total_frames``, so it sits in the same section next to the gradient-step curve.

Only rank 0 writes (the other ranks' logger experiments are placeholders).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import lightning.pytorch as pl

TOTAL_FRAMES = "total_frames"  # env steps summed over ranks: the x-axis of rollout and eval metrics
ENV_STEP_FAMILIES = ("rollout", "val", "test")
BY_ENV_STEP = "by_env_step"  # TensorBoard tag suffix of the series against env steps

# Attribute set on a WandbLogger: the metric names already given the env-step axis in its run.
_DEFINED = "_amago_pl_env_step_keys"


def on_env_step_axis(key: str) -> bool:
    """True for the metric names plotted against env steps (``rollout/...``, ``val/...``, ``test/...``)."""
    return key.partition("/")[0] in ENV_STEP_FAMILIES and "/" in key


def define_env_step_axis(trainer: pl.Trainer | None, keys: Iterable[str] = ()) -> None:
    """Make ``total_frames`` the wandb x-axis of the env-step families and of ``keys``.

    The globs (``val/*`` ...) cover every metric of a family. Each key is also defined by name the
    first time it is seen: Lightning's WandbLogger defines the glob ``*`` on its own axis, and
    wandb picks among matching globs in map order (core/internal/runmetric/runmetric.go,
    ``matchGlobMetric``, in github.com/wandb/wandb), while a metric defined by name always wins.
    """
    if trainer is None or trainer.global_rank != 0:
        return
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if not isinstance(logger, WandbLogger):
            continue
        run = logger.experiment
        defined: set[str] | None = getattr(logger, _DEFINED, None)
        if defined is None:
            defined = set()
            setattr(logger, _DEFINED, defined)
            run.define_metric(TOTAL_FRAMES)
            for family in ENV_STEP_FAMILIES:
                run.define_metric(f"{family}/*", step_metric=TOTAL_FRAMES, step_sync=True)
        for key in keys:
            if on_env_step_axis(key) and key not in defined:
                run.define_metric(key, step_metric=TOTAL_FRAMES, step_sync=True)
                defined.add(key)


def log_env_step_series(trainer: pl.Trainer | None, metrics: Mapping[str, Any], frames: int | None) -> None:
    """Write the env-step families to every TensorBoard logger again, against ``frames`` env steps."""
    if trainer is None or frames is None or trainer.global_rank != 0:
        return
    from lightning.pytorch.loggers import TensorBoardLogger

    writers = [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
    if not writers:
        return
    scalars = {k: float(v) for k, v in metrics.items() if on_env_step_axis(k)}
    for writer in writers:
        for key, value in scalars.items():
            writer.add_scalar(f"{key}/{BY_ENV_STEP}", value, global_step=int(frames))
