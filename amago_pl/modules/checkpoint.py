"""Does a checkpoint belong to the agent it is loaded into? Version stamp and config differences.

A checkpoint carries the Agent's hyperparameters (``hyper_parameters``), the gin bindings of the
run that wrote it (``amago_pl_gin_config``) and the amago_pl version (``amago_pl_version``).
``config_differences`` compares them with the current agent and gin config and returns one
readable line per mismatch, so a wrong resume fails with the list instead of a wall of missing
state-dict keys. Only gin bindings of the model and its losses (``amago_pl.modules.*`` and
``amago_pl.nets.*``) are compared: env, exploration and schedule settings may change between runs.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Mapping
from typing import Any

import gin

from amago_pl import compat

VERSION_KEY = "amago_pl_version"
GIN_KEY = "amago_pl_gin_config"  # written by Agent.on_save_checkpoint
# Set to 1 to resume even when the hyperparameters differ (the differences are then only logged).
ALLOW_ENV_VAR = "AMAGO_PL_ALLOW_CONFIG_CHANGE"
# gin bindings under amago_pl.modules that do not change what the model computes.
_IGNORED_SELECTORS = {"amago_pl.modules.agent_step.nonfinite_step_limit"}


def amago_pl_version() -> str:
    try:
        return importlib.metadata.version("amago_pl")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def allow_config_change() -> bool:
    return os.environ.get(ALLOW_ENV_VAR, "").strip().lower() in ("1", "true", "yes")


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
