"""Every top-level checkpoint key amago_pl adds, how it is written and read, and the resume check.

Lightning writes ``state_dict``, ``hyper_parameters`` (the Agent's constructor arguments), the
optimizer, loop and callback states (under ``callbacks``: ``RolloutCallback``'s frame counters and
exploration state, ``EvalCallback``'s history) itself. amago_pl adds four keys beside them:

- ``amago_pl_version`` (``VERSION_KEY``): stamped by ``AtomicCheckpointIO``; quoted in mismatch messages.
- ``amago_pl_gin_config`` (``GIN_KEY``): written by ``Agent.on_save_checkpoint``; re-bound by
  ``Agent.load_from_checkpoint`` and compared by ``check_agent_config``.
- ``amago_pl_skipped_steps`` (``SKIPPED_STEPS_KEY``): the total of skipped non-finite steps, written
  by ``Agent.on_save_checkpoint`` and restored by ``Agent.on_load_checkpoint``.
- ``amago_pl_seed`` (``SEED_KEY``): the run seed, written and read by ``RunSeedCallback``
  (``amago_pl/callbacks/seeding.py``).

The functions below are the only code that writes or reads the first three; the Agent's
checkpoint hooks and ``AtomicCheckpointIO`` call them. ``check_agent_config`` compares a checkpoint
with the agent resuming it and lists every differing hyperparameter and model gin binding, so a
wrong resume fails with that list instead of a wall of missing state-dict keys. Only bindings of the
model and its losses (``amago_pl.modules.*`` and ``amago_pl.nets.*``) are compared: env,
exploration and schedule settings may change between launches.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Mapping, MutableMapping
from typing import Any

import gin
import torch

from amago_pl import compat

log = logging.getLogger(__name__)

VERSION_KEY = "amago_pl_version"
GIN_KEY = "amago_pl_gin_config"
SKIPPED_STEPS_KEY = "amago_pl_skipped_steps"
SEED_KEY = "amago_pl_seed"  # the run seed; callbacks/seeding.py writes it (as its CKPT_KEY)
# Set to 1 to resume even when the configuration differs (the differences are then only logged).
ALLOW_ENV_VAR = "AMAGO_PL_ALLOW_CONFIG_CHANGE"
# Model-side gin bindings that do not change what the model computes.
_IGNORED_SELECTORS = {"amago_pl.modules.nonfinite.nonfinite_step_limit"}


class CheckpointMismatchError(ValueError):
    """A checkpoint's hyperparameters or model gin bindings differ from the agent resuming it."""


def amago_pl_version() -> str:
    try:
        return importlib.metadata.version("amago_pl")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def allow_config_change() -> bool:
    return os.environ.get(ALLOW_ENV_VAR, "").strip().lower() in ("1", "true", "yes")


# ------------------------------------------------------------------------- writing


def stamp_version(checkpoint: MutableMapping[str, Any]) -> None:
    """Record the installed amago_pl version (kept if the checkpoint already has one)."""
    checkpoint.setdefault(VERSION_KEY, amago_pl_version())


def save_agent_keys(checkpoint: MutableMapping[str, Any], skipped_steps: int) -> None:
    """The Agent's keys: the gin config (encoder keywords come from gin, not from the hyperparameters,
    so the config travels with the weights) and the total of skipped non-finite steps (a run
    statistic: a resumed run keeps counting)."""
    checkpoint[GIN_KEY] = gin.config_str()
    checkpoint[SKIPPED_STEPS_KEY] = int(skipped_steps)


# ------------------------------------------------------------------------- reading


def skipped_steps_of(checkpoint: Mapping[str, Any]) -> int:
    """The recorded total of skipped steps (0 for checkpoints written before it was recorded)."""
    return int(checkpoint.get(SKIPPED_STEPS_KEY, 0))


def parse_stored_gin(path: str | os.PathLike) -> None:
    """Bind the gin config stored in the checkpoint at ``path`` (old module paths rewritten), so an
    agent rebuilt from its hyperparameters gets the same encoder keywords. Loads the whole file with
    ``weights_only=False``: only for checkpoints you trust."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    config = blob.get(GIN_KEY)
    if config:
        with gin.unlock_config():
            gin.parse_config(compat.rewrite_gin_text(config), skip_unknown=True)


def check_agent_config(checkpoint: Mapping[str, Any], hparams: Mapping[str, Any]) -> None:
    """Raise ``CheckpointMismatchError`` listing every difference between ``checkpoint`` and the agent
    with ``hparams`` (under the current gin config), unless ``AMAGO_PL_ALLOW_CONFIG_CHANGE=1``, in
    which case the differences are only logged."""
    diffs = config_differences(checkpoint, hparams)
    saved_version = checkpoint.get(VERSION_KEY)
    if not diffs:
        if saved_version is not None and saved_version != amago_pl_version():
            log.warning(
                "checkpoint written by amago_pl %s, loading into %s (same configuration)",
                saved_version,
                amago_pl_version(),
            )
        return
    message = describe_mismatch("the checkpoint", checkpoint, diffs)
    if allow_config_change():
        log.warning("%s\nContinuing because %s is set.", message, ALLOW_ENV_VAR)
        return
    raise CheckpointMismatchError(
        f"{message}\nResume with the configuration the run was started with, or set "
        f"{ALLOW_ENV_VAR}=1 to load it anyway (only if the state-dict shapes still match)."
    )


# ------------------------------------------------------------------ configuration differences


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays or objects without a usable __eq__
        return repr(a) == repr(b)


def hparam_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``name: checkpoint=X, now=Y`` for every hyperparameter that differs or exists on one side."""
    out = []
    for key in sorted(set(saved) | set(current)):
        if key not in current:
            out.append(f"{key}: checkpoint={saved[key]!r}, now=<not a parameter>")
        elif key not in saved:
            out.append(f"{key}: checkpoint=<absent>, now={current[key]!r}")
        elif not _same(saved[key], current[key]):
            out.append(f"{key}: checkpoint={saved[key]!r}, now={current[key]!r}")
    return out


def model_gin_bindings(config: str) -> dict[str, str]:
    """``{full.selector.param: value text}`` of the model's bindings in a gin config string."""
    from gin import config_parser

    out: dict[str, str] = {}
    # A checkpoint of an earlier layout names old module paths: compare under the current ones.
    config = compat.rewrite_gin_text(config)
    parser = config_parser.ConfigParser(config, gin.config.ParserDelegate(skip_unknown=True))
    try:
        statements = list(parser)
    except Exception:  # unparsable (another gin version): compare nothing rather than fail
        return out
    for st in statements:
        if type(st).__name__ != "BindingStatement":
            continue
        match = gin.config._REGISTRY.get_match(st.selector)  # noqa: SLF001 - no public lookup API
        if match is None:
            continue  # not defined in this version: cannot be built anyway
        selector = match.selector
        if not selector.startswith(("amago_pl.modules.", "amago_pl.nets.")) or selector in _IGNORED_SELECTORS:
            continue
        scope = f"{st.scope}/" if st.scope else ""
        out[f"{scope}{selector}.{st.arg_name}"] = repr(st.value)
    return out


def gin_differences(saved_config: str, current_config: str) -> list[str]:
    saved, current = model_gin_bindings(saved_config), model_gin_bindings(current_config)
    out = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key, "<default>"), current.get(key, "<default>")
        if old != new:
            out.append(f"gin {key}: checkpoint={old}, now={new}")
    return out


def config_differences(checkpoint: Mapping[str, Any], hparams: Mapping[str, Any]) -> list[str]:
    """Every hyperparameter and model gin binding that differs between a checkpoint and now."""
    diffs = hparam_differences(dict(checkpoint.get("hyper_parameters") or {}), dict(hparams))
    saved_gin = checkpoint.get(GIN_KEY)
    if saved_gin is not None:
        diffs += gin_differences(saved_gin, gin.config_str())
    return diffs


def describe_mismatch(what: str, checkpoint: Mapping[str, Any], diffs: list[str]) -> str:
    saved_version = checkpoint.get(VERSION_KEY, "unknown (written before amago_pl stamped versions)")
    lines = [f"{what} was written with a different configuration than the current agent:"]
    lines += [f"  - {d}" for d in diffs[:40]]
    if len(diffs) > 40:
        lines.append(f"  ... and {len(diffs) - 40} more")
    lines.append(f"  (checkpoint amago_pl version: {saved_version}; installed: {amago_pl_version()})")
    return "\n".join(lines)
