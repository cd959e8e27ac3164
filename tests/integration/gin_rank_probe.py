"""A callback the CLI tests add by class path (``--trainer.callbacks+=...``): when training starts,
each rank writes what it trains with (its gin config, the agent's gamma, its parameter count) to
``{out_dir}/rank{global_rank}.json`` (default: the run folder), so a test can compare the ranks of
a DDP run."""

from __future__ import annotations

import json
from pathlib import Path

import gin
import lightning.pytorch as pl


class GinProbe(pl.Callback):
    def __init__(self, out_dir: str | None = None):
        self.out_dir = out_dir

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        report = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "gin": gin.config_str(),
            "gamma": float(pl_module.gamma),
            "parameters": sum(p.numel() for p in pl_module.parameters()),
        }
        out_dir = Path(self.out_dir or trainer.default_root_dir)
        (out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))


# The command-line flag that adds this probe to an amago-pl run.
PROBE_FLAG = f"--trainer.callbacks+={__name__}.GinProbe"
