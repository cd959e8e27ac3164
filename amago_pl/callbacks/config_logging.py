"""Writes gin's operative config to ``{run_dir}/config.txt`` and sends it to the loggers: every
binding as a typed hyperparameter, and the file itself to wandb."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

import gin
import lightning.pytorch as pl
from gin import config_parser

_BINDING = re.compile(r"^([\w.]+(?:/[\w.]+)*)\s*=\s*(.+)$")


class _ReferencesAsText(config_parser.ParserDelegate):
    """Reads ``@Name``, ``@Name()`` and ``%MACRO`` as the text they are written as (gin would
    otherwise need every named configurable to be registered to parse the config)."""

    def configurable_reference(self, scoped_configurable_name: str, evaluate: bool) -> str:
        return f"@{scoped_configurable_name}" + ("()" if evaluate else "")

    def macro(self, macro_name: str) -> str:
        return f"%{macro_name}"


def plain_value(value: Any) -> Any:
    """Built-in YAML/JSON types only: tuples become lists (recursively); dicts keep string keys."""
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def gin_bindings_as_dict(config_str: str) -> dict[str, Any]:
    """``{"TformerTrajEncoder.n_heads": 16, "Agent.gamma": 0.999, ...}`` from a gin config string.

    Values keep their types (numbers, booleans, None, strings, lists); references and macros stay
    their text (``"@FFTstepEncoder"``). Values spanning several lines are read whole, by gin's own
    parser.
    """
    out: dict[str, Any] = {}
    try:
        for statement in config_parser.ConfigParser(config_str, _ReferencesAsText()):
            if isinstance(statement, config_parser.BindingStatement):
                selector = (
                    f"{statement.scope}/{statement.selector}" if statement.scope else statement.selector
                )
                key = f"{selector}.{statement.arg_name}" if statement.arg_name else selector
                out[key] = plain_value(statement.value)
        return out
    except (SyntaxError, ValueError):
        # Not gin syntax after all: the line-by-line reading, values as text.
        out.clear()
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
    text = gin.operative_config_str()
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()  # a full disk often fails here or at close, not at write()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, write_failure(path, e, len(text.encode()))) from e
    return path


def write_failure(path: Path, error: OSError, size: int | None = None) -> str:
    """``could not write PATH (disk full): ...`` with what to do; shared with the CSV logger."""
    reason = "disk full" if error.errno == errno.ENOSPC else (error.strerror or str(error))
    needs = f" ({size} bytes)" if size is not None else ""
    return (
        f"could not write {path}{needs}: {reason}. Free space on {path.parent} (or point the run at "
        "another folder with ckpt_base_dir / --run.run_dir) and start the run again; a resume continues "
        "from the last checkpoint"
    )


def save_file_to_wandb(trainer: pl.Trainer, path: Path) -> None:
    """Attach ``path`` to every wandb run of the trainer as a file (offline runs too: wandb links
    it into the run's ``files/`` folder and uploads it on sync). ``live``: later rewrites of the
    file (the seed record) are uploaded as well."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.save(str(path), base_path=str(path.parent), policy="live")


class ConfigLoggingCallback(pl.Callback):
    """Once the agent and envs are built (on_train_start), record every gin value in use.

    Only rank 0 writes. The same bindings are sent to every logger as hyperparameters
    (``gin/<binding>``, with their types), so a dashboard run shows its configuration (the original
    sent them to wandb's config), and config.txt itself is saved to wandb as a file.
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
        save_file_to_wandb(trainer, path)
