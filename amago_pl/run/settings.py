"""Start-up checks of the ``amago-pl`` CLI settings (YAML or flags), run before anything is built.

Each problem is reported with the constraint and the fix, all at once. ``data.batch_size`` is per
rank (as ``Experiment.batch_size``): each DDP rank draws its own batches, so nothing has to
divide by the number of devices.
"""

from __future__ import annotations

import importlib
from typing import Any


def _get(section: Any, key: str, default: Any = None) -> Any:
    try:
        return section[key]
    except (KeyError, TypeError):
        return default


def validate_cli_settings(cfg: Any) -> list[str]:
    """Every invalid value of the model/data/run/trainer sections, each with the fix."""
    model, data, run, trainer = (_get(cfg, k) or {} for k in ("model", "data", "run", "trainer"))
    problems: list[str] = []

    def need(section: str, values: Any, key: str, low: int | float, strict: bool = False) -> None:
        value = _get(values, key)
        if value is None:
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or value < low
            or (strict and value == low)
        ):
            bound = f"> {low}" if strict else f">= {low}"
            problems.append(f"{section}.{key}={value!r} must be {bound}")

    need("model", model, "max_seq_len", 1)
    need("model", model, "learning_rate", 0, strict=True)
    need("model", model, "lr_warmup_steps", 0)
    need("model", model, "l2_coeff", 0)
    for key in ("batch_size", "dset_max_size"):
        need("data", data, key, 1)
    for key in ("batches_per_epoch", "dset_min_size", "dloader_workers"):
        need("data", data, key, 0)
    need("run", run, "parallel_actors", 1)
    for key in ("timesteps_per_epoch", "val_timesteps", "start_collecting_at_epoch"):
        need("run", run, key, 0)
    need("run", run, "ckpt_interval", 1)
    need("trainer", trainer, "accumulate_grad_batches", 1)
    padded = _get(data, "padded_sampling")
    if padded is not None and padded not in ("none", "left", "right", "both"):
        problems.append(f"data.padded_sampling={padded!r}: use 'none', 'left', 'right' or 'both'")
    env_mode = _get(run, "env_mode")
    if env_mode is not None and env_mode not in ("sync", "async", "already_vectorized"):
        problems.append(f"run.env_mode={env_mode!r}: use 'sync', 'async' or 'already_vectorized'")
    seq, save_len = _get(model, "max_seq_len"), _get(run, "traj_save_len")
    if isinstance(seq, int) and isinstance(save_len, int) and save_len < seq:
        problems.append(
            f"run.traj_save_len={save_len} < model.max_seq_len={seq}: trajectory files would be shorter than a "
            "training window; raise run.traj_save_len (or lower model.max_seq_len)"
        )
    size, min_size = _get(data, "dset_max_size"), _get(data, "dset_min_size")
    if isinstance(size, int) and isinstance(min_size, int) and min_size >= size:
        problems.append(
            f"data.dset_min_size={min_size} >= data.dset_max_size={size}: training waits for more files than the "
            "FIFO keeps and would never start; lower dset_min_size or raise dset_max_size"
        )
    for section, key, lookup in (
        ("model", "agent", "amago_pl.modules.agent:get_agent_cls"),
        ("model", "tstep_encoder", "amago_pl.nets.registry:get_tstep_encoder_cls"),
        ("model", "traj_encoder", "amago_pl.nets.registry:get_traj_encoder_cls"),
        ("run", "exploration", "amago_pl.envs.exploration:get_exploration_cls"),
    ):
        name = _get(_get(cfg, section) or {}, key)
        if name is not None and _lookup(lookup, name)[0] is None:
            problems.append(f"{section}.{key}={name!r}: {_lookup(lookup, name)[1]}")
    return problems


def _lookup(path: str, name: str) -> tuple[Any, str]:
    """(class, "") for a registered name, (None, the registry's error) otherwise."""
    module, fn = path.split(":")
    try:
        return getattr(importlib.import_module(module), fn)(name), ""
    except (KeyError, ValueError) as err:
        return None, str(err).strip("\"'")


def cli_build_roots(cfg: Any) -> list[Any]:
    """The configurable classes a CLI run builds (for the gin.REQUIRED check)."""
    model, run = _get(cfg, "model") or {}, _get(cfg, "run") or {}
    roots = [
        _lookup("amago_pl.modules.agent:get_agent_cls", _get(model, "agent", "agent"))[0],
        _lookup("amago_pl.nets.registry:get_tstep_encoder_cls", _get(model, "tstep_encoder", "ff"))[0],
        _lookup("amago_pl.nets.registry:get_traj_encoder_cls", _get(model, "traj_encoder", "transformer"))[0],
    ]
    if _get(run, "exploration"):
        roots.append(_lookup("amago_pl.envs.exploration:get_exploration_cls", run["exploration"])[0])
    return roots
