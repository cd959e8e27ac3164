"""Every top-level checkpoint key amago_pl adds, how it is written and read, and the resume check.

Lightning writes ``state_dict``, ``hyper_parameters`` (the Agent's constructor arguments), the
optimizer, loop and callback states (under ``callbacks``: ``RolloutCallback``'s frame counters and
exploration state, ``EvalCallback``'s history) itself. amago_pl adds five keys beside them:

- ``amago_pl_version`` (``VERSION_KEY``): stamped by ``AtomicCheckpointIO``; quoted in mismatch messages.
- ``amago_pl_gin_config`` (``GIN_KEY``): written by ``Agent.on_save_checkpoint``; re-bound by
  ``Agent.load_from_checkpoint`` and compared by ``check_agent_config``.
- ``amago_pl_skipped_steps`` (``SKIPPED_STEPS_KEY``): the total of skipped non-finite steps, written
  by ``Agent.on_save_checkpoint`` and restored by ``Agent.on_load_checkpoint``.
- ``amago_pl_seed`` (``SEED_KEY``): the run seed, written and read by ``RunSeedCallback``
  (``amago_pl/callbacks/seeding.py``).
- ``amago_pl_agent_class`` (``AGENT_CLASS_KEY``): the agent's class as a plain string (its
  ``register_agent`` name, else its import path), written by ``Agent.on_save_checkpoint``;
  ``Policy.from_checkpoint`` rebuilds that class, looked up only among registered classes.

The functions below are the only code that writes or reads the first three; the Agent's
checkpoint hooks and ``AtomicCheckpointIO`` call them. Every entry is plain data (the hyperparameters
through :mod:`amago_pl.modules.hparams`), so every reader here uses ``torch.load(weights_only=True)``
and refuses a pickled file (written before plain-data checkpoints) with the one-time conversion
``amago-pl convert-checkpoint OLD NEW`` (``amago_pl/run/convert.py``). ``check_agent_config`` compares a checkpoint
with the agent resuming it and lists every differing hyperparameter and model gin binding, so a
wrong resume fails with that list instead of a wall of missing state-dict keys. Only bindings of the
model and its losses (``amago_pl.modules.*`` and ``amago_pl.nets.*``) are compared: env,
exploration and schedule settings may change between launches.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import os
import pickle
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import IO, Any

import gin
import torch

from amago_pl import compat
from amago_pl.modules import hparams as hp
from amago_pl.modules.agent_registry import agent_class_name
from amago_pl.modules.stored_gin import UnsafeGinConfigError, checked_gin_text, unsafe_gin_message

log = logging.getLogger(__name__)

VERSION_KEY = "amago_pl_version"
GIN_KEY = "amago_pl_gin_config"
SKIPPED_STEPS_KEY = "amago_pl_skipped_steps"
SEED_KEY = "amago_pl_seed"  # the run seed; callbacks/seeding.py writes it (as its CKPT_KEY)
AGENT_CLASS_KEY = "amago_pl_agent_class"  # policy/loading.py reads it
# Set to 1 to resume even when the configuration differs (the differences are then only logged).
ALLOW_ENV_VAR = "AMAGO_PL_ALLOW_CONFIG_CHANGE"
# Model-side gin bindings that do not change what the model computes.
_IGNORED_SELECTORS = {"amago_pl.modules.nonfinite.nonfinite_step_limit"}


class CheckpointMismatchError(ValueError):
    """A checkpoint's hyperparameters or model gin bindings differ from the agent resuming it."""


class PickledCheckpointError(RuntimeError):
    """A checkpoint holding pickled Python objects (written before plain-data checkpoints)."""


CONVERT_COMMAND = "amago-pl convert-checkpoint"


def pickled_checkpoint_message(source: Any, reason: str) -> str:
    return (
        f"{source} holds pickled Python objects ({reason}), so it is not loaded: unpickling can run "
        "any code the file names. amago_pl checkpoints written before checkpoints held plain data "
        f"look like this. If you trust the file, convert it once:\n    {CONVERT_COMMAND} {source} NEW.ckpt\n"
        'and load NEW.ckpt instead (docs/resume.md, "Checkpoints are plain data").'
    )


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


def save_agent_keys(
    checkpoint: MutableMapping[str, Any], skipped_steps: int, agent_cls: type | None = None
) -> None:
    """The Agent's keys: the gin config (encoder keywords come from gin, not from the hyperparameters,
    so the config travels with the weights), the total of skipped non-finite steps (a run
    statistic: a resumed run keeps counting) and, given ``agent_cls``, the name of its class."""
    checkpoint[GIN_KEY] = gin.config_str()
    checkpoint[SKIPPED_STEPS_KEY] = int(skipped_steps)
    if agent_cls is not None:
        checkpoint[AGENT_CLASS_KEY] = agent_class_name(agent_cls)


# ------------------------------------------------------------------------- reading


def skipped_steps_of(checkpoint: Mapping[str, Any]) -> int:
    """The recorded total of skipped steps (0 for checkpoints written before it was recorded)."""
    return int(checkpoint.get(SKIPPED_STEPS_KEY, 0))


def read_checkpoint(source: str | os.PathLike | IO, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(source, weights_only=True)``; a pickled file raises ``PickledCheckpointError``
    naming it and the conversion command."""
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise PickledCheckpointError(pickled_checkpoint_message(source, unpickling_reason(err))) from None


def unpickling_reason(err: BaseException) -> str:
    """The line of torch's weights-only error that names the refused object."""
    text = str(err)
    named = re.search(r"GLOBAL (\S+)", text) or re.search(r"but got (<[^>]+>)", text)
    if named:
        return f"it names {named.group(1)}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else type(err).__name__


def check_plain(checkpoint: Mapping[str, Any], source: Any = "the checkpoint") -> dict[str, Any]:
    """The stored hyperparameters as constructor arguments, after checking they are plain data (a
    pickled checkpoint read with ``weights_only=False`` is refused like any pickled file) and that
    every class they name is registered (``UnregisteredPathError`` names the path)."""
    stored = checkpoint.get("hyper_parameters") or {}
    found = hp.not_plain(dict(stored))
    if found:
        raise PickledCheckpointError(
            pickled_checkpoint_message(source, "hyper_parameters: " + ", ".join(found[:5]))
        )
    return hp.decode_hparams(stored, source=str(source))


def bind_stored_gin(checkpoint: Mapping[str, Any], source: Any = "the checkpoint") -> None:
    """Bind the gin config stored in ``checkpoint`` (old module paths rewritten), so an agent rebuilt
    from its hyperparameters gets the same encoder keywords. The text is checked first
    (``checked_gin_text``): nothing in it is imported, included or bound unless registered here."""
    config = checkpoint.get(GIN_KEY)
    if not config:
        return
    text = checked_gin_text(config, source)
    with gin.unlock_config():
        gin.parse_config(text)


def check_checkpoint_content(checkpoint: Mapping[str, Any], source: Any = "the checkpoint") -> None:
    """Every check a loaded checkpoint passes before anything of it is used: the hyperparameters
    are plain data naming only registered classes (``check_plain``), the stored gin config binds
    only registered configurables and imports nothing (``checked_gin_text``)."""
    if not isinstance(checkpoint, Mapping):
        raise PickledCheckpointError(f"{source} is not a checkpoint (it holds a {type(checkpoint).__name__})")
    check_plain(checkpoint, source)
    config = checkpoint.get(GIN_KEY)
    if config is not None and not isinstance(config, str):
        raise UnsafeGinConfigError(unsafe_gin_message(source, [f"{GIN_KEY} is a {type(config).__name__}"]))
    if config:
        checked_gin_text(config, source)


def read_checkpoint_safely(source: str | os.PathLike | IO, map_location: Any = "cpu") -> dict[str, Any]:
    """The one safe reader of a checkpoint file, for every loader (resume, fine-tune, agent and
    policy loading): ``torch.load(weights_only=True)`` (a pickled file is refused with the
    conversion command, nothing in it runs), then ``check_checkpoint_content``."""
    blob = read_checkpoint(source, map_location)
    check_checkpoint_content(blob, source)
    return blob


def parse_stored_gin(path: str | os.PathLike) -> None:
    """Bind the gin config stored in the checkpoint at ``path`` (see ``bind_stored_gin``)."""
    bind_stored_gin(read_checkpoint_safely(path), path)


def load_agent(
    cls: type,
    source: str | Path | IO,
    map_location: Any = None,
    hparams_file: str | Path | None = None,
    strict: bool | None = None,
    weights_only: bool | None = None,
    **kwargs: Any,
) -> Any:
    """``cls.load_from_checkpoint``: read ``source`` once (always ``weights_only=True``: a
    ``weights_only=False`` is ignored, nothing is unpickled), check and bind its gin config, rebuild the agent from its plain hyperparameters (or ``hparams_file``, e.g.
    a logger's ``hparams.yaml``) with ``kwargs`` overriding them, then restore the weights, as
    Lightning's loader does (lightning/pytorch/core/saving.py ``_load_state``, Lightning 2.6)."""
    if map_location is None and not torch.cuda.is_available():
        map_location = "cpu"
    if weights_only is False:
        # Lightning's keyword is accepted, but never unpickles: amago_pl checkpoints are plain data.
        log.info("weights_only=False ignored: checkpoints are read as plain data (weights_only=True)")
    blob = read_checkpoint(source, map_location)
    stored = dict(blob.get("hyper_parameters") or {})
    if hparams_file is not None:
        from lightning.pytorch.core.saving import load_hparams_from_yaml

        stored = dict(load_hparams_from_yaml(hparams_file))
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        stored = {k: v for k, v in stored.items() if k in params}  # e.g. the loggers' gin/* entries
    blob["hyper_parameters"] = stored
    init = check_plain(blob, source)
    bind_stored_gin(blob, source)
    blob["hyper_parameters"] = {**stored, **hp.encode_hparams(kwargs)}
    agent = cls(**{**init, **kwargs})
    strict = agent.strict_loading if strict is None else strict
    agent.on_load_checkpoint(blob)
    agent.load_state_dict(blob["state_dict"], strict=strict)
    tensors = [t for t in blob["state_dict"].values() if isinstance(t, torch.Tensor)]
    return agent.to(tensors[0].device) if tensors else agent


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
