"""Writes gin's operative config to ``{run_dir}/config.txt`` and sends it to the loggers."""

from __future__ import annotations

import os
import re
from pathlib import Path

import gin
import lightning.pytorch as pl

_BINDING = re.compile(r"^([\w.]+(?:/[\w.]+)*)\s*=\s*(.+)$")


def gin_bindings_as_dict(config_str: str) -> dict[str, str]:
    """``{"TformerTrajEncoder.n_heads": "16", ...}`` from a gin config string (for logger hparams)."""
    out: dict[str, str] = {}
    for line in config_str.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("import"):
            continue
        m = _BINDING.match(line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def write_config_txt(run_dir: str | os.PathLike) -> Path:
    """Atomically write the operative gin config (the values actually used) to config.txt."""
    path = Path(run_dir) / "config.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".config.txt.tmp")
    tmp.write_text(gin.operative_config_str())
    os.replace(tmp, path)
    return path


class ConfigLoggingCallback(pl.Callback):
    """Once the agent and envs are built (on_train_start), record every gin value in use.

    Only rank 0 writes. The same bindings are sent to every logger as hyperparameters, so a
    dashboard run shows its configuration (the original sent them to wandb's config).
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        path = write_config_txt(self.run_dir)
        bindings = gin_bindings_as_dict(path.read_text())
        for logger in trainer.loggers:
            logger.log_hyperparams({f"gin/{k}": v for k, v in bindings.items()})
