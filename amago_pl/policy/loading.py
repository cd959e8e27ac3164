"""Rebuilding an agent from a checkpoint for acting, without touching the caller's gin config.

Two kinds of files are read, both with ``torch.load(weights_only=True)`` through
``modules.checkpoint.read_checkpoint`` (a pickled file is refused with the conversion command):

- a Lightning checkpoint written by a run (``ckpts/last.ckpt``, ``ckpts/epoch=N.ckpt``);
- the compact policy file (``policy/compact.py``, ``ckpts/latest/policy.pt``): weights plus the
  plain-data configuration, no optimizer, no loop or replay state.

The agent's encoders take their keywords from gin, and gin's configuration is process-global. The
stored configuration is therefore bound inside :func:`isolated_gin`, which saves gin's state, builds
the agent from a clean configuration and puts the caller's state back, so two policies of different
sizes can live in one process and a training script's configuration is left as it was.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import gin
import gin.config as gin_config
import torch

from amago_pl.modules import checkpoint as ckpt
from amago_pl.modules import hparams as hp

# The compact policy file (policy/compact.py): its marker key and the newest layout this code reads.
FORMAT_KEY = "amago_pl_policy_format"
FORMAT_VERSION = 1
# The agent's class: the key every checkpoint and policy file writes (its register_agent name or
# import path), and the key early policy files (format 1) wrote its import path under.
AGENT_CLASS_KEY = ckpt.AGENT_CLASS_KEY
OLD_AGENT_CLASS_KEY = "agent_class"


class PolicyLoadError(ValueError):
    """A checkpoint that cannot be turned into a policy (another version, another model, not a policy)."""


@contextlib.contextmanager
def isolated_gin() -> Iterator[None]:
    """Run the body against an empty gin configuration, then restore the caller's exactly.

    gin keeps its state in module-level containers of ``gin.config`` (gin-config 0.5: ``_CONFIG``,
    ``_OPERATIVE_CONFIG``, ``_SINGLETONS``, ``_IMPORTS``, the lock flag); there is no public
    save/restore, so they are copied and put back. Not thread-safe, like gin itself.
    """
    saved_config = copy.deepcopy(dict(gin_config._CONFIG))  # noqa: SLF001 - no public API
    saved_operative = copy.deepcopy(dict(gin_config._OPERATIVE_CONFIG))  # noqa: SLF001
    saved_singletons = dict(gin_config._SINGLETONS)  # noqa: SLF001
    saved_imports = copy.copy(gin_config._IMPORTS)  # noqa: SLF001
    locked = gin_config.config_is_locked()
    gin.clear_config()
    try:
        yield
    finally:
        gin.clear_config()
        gin_config._CONFIG.update(saved_config)  # noqa: SLF001
        with gin_config._OPERATIVE_CONFIG_LOCK:  # noqa: SLF001
            gin_config._OPERATIVE_CONFIG.update(saved_operative)  # noqa: SLF001
        gin_config._SINGLETONS.update(saved_singletons)  # noqa: SLF001
        gin_config._IMPORTS.update(saved_imports)  # noqa: SLF001
        gin_config._set_config_is_locked(locked)  # noqa: SLF001


def read_policy_source(source: str | os.PathLike | IO, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint's contents, read with ``weights_only=True`` (never unpickling code)."""
    if isinstance(source, (str, os.PathLike)) and not Path(source).exists():
        raise FileNotFoundError(f"no checkpoint at {source}")
    blob = ckpt.read_checkpoint_safely(source, map_location)
    if not isinstance(blob, Mapping) or "state_dict" not in blob:
        raise PolicyLoadError(
            f"{source} is not an amago_pl checkpoint or policy file (no 'state_dict' entry). Give a "
            "run's ckpts/last.ckpt, ckpts/epoch=N.ckpt or ckpts/latest/policy.pt."
        )
    fmt = blob.get(FORMAT_KEY)
    if fmt is not None and int(fmt) > FORMAT_VERSION:
        raise PolicyLoadError(
            f"{source} is a policy file of format {fmt}, written by amago_pl "
            f"{blob.get(ckpt.VERSION_KEY, 'unknown')}; this amago_pl ({ckpt.amago_pl_version()}) reads "
            f"formats up to {FORMAT_VERSION}. Upgrade amago_pl, or export the policy again with this version."
        )
    if "hyper_parameters" not in blob:
        written = blob.get(ckpt.VERSION_KEY)
        raise PolicyLoadError(
            f"{source} holds weights but not the configuration needed to rebuild the network "
            f"(no 'hyper_parameters'){_version_note(written)}. Policy files written before amago_pl "
            "stored the configuration with them cannot be rebuilt: load a Lightning checkpoint of the "
            "run (ckpts/last.ckpt) instead."
        )
    return dict(blob)


def _version_note(written: Any) -> str:
    installed = ckpt.amago_pl_version()
    if written is None:
        return f" (written by an amago_pl version that did not record itself; installed: {installed})"
    if str(written) != installed:
        return f" (written by amago_pl {written}; installed: {installed})"
    return ""


def recorded_agent_class(blob: Mapping[str, Any], source: Any) -> type | None:
    """The agent class ``blob`` names (None for files written before classes were recorded).

    The name is looked up among ``register_agent`` names, then among registered import paths
    (``hparams.resolve_import_path``); nothing is ever imported because a file names it.
    """
    from amago_pl.modules.agent import Agent, get_agent_cls, list_registered_agents

    name = blob.get(AGENT_CLASS_KEY) or blob.get(OLD_AGENT_CLASS_KEY)
    if name is None:
        return None
    if not isinstance(name, str):
        raise PolicyLoadError(
            f"{source}: {AGENT_CLASS_KEY} should be a class name, found a {type(name).__name__}; "
            "the file is damaged or was not written by amago_pl."
        )
    if name in list_registered_agents():
        return get_agent_cls(name)
    try:
        found = hp.resolve_import_path(name, name="its agent class")
    except hp.UnregisteredPathError:
        raise PolicyLoadError(
            f"{source} was written by the agent class {name!r}, which is not registered in this "
            "process, so it is not rebuilt (a checkpoint never imports the modules it names). Import "
            "the module that defines the class and register it there, either with the decorator "
            '`@register_agent("a_name")` (from amago_pl.modules.agent import register_agent) or with '
            "`register_checkpoint_class(YourAgent)` (from amago_pl.modules.hparams import "
            "register_checkpoint_class); or pass agent_cls=YourAgent to Policy.from_checkpoint. "
            f"Registered agent names: {list_registered_agents()}."
        ) from None
    if not (isinstance(found, type) and issubclass(found, Agent)):
        raise PolicyLoadError(
            f"{source} names {name!r} as its agent class, but that is {found!r}, not an Agent subclass; "
            "pass agent_cls= with the agent class the run trained."
        )
    return found


def _agent_classes(blob: Mapping[str, Any], source: Any, agent_cls: type | None) -> list[type]:
    """The class to rebuild: the one given, else the one the file names, else (a checkpoint written
    before classes were recorded) every registered agent, the plain ``Agent`` first."""
    from amago_pl.modules.agent import Agent, get_agent_cls, list_registered_agents

    if agent_cls is not None:
        return [agent_cls]
    named = recorded_agent_class(blob, source)
    if named is not None:
        return [named]
    others = [get_agent_cls(n) for n in list_registered_agents()]
    return [Agent] + [c for c in others if c is not Agent]


def build_agent(
    blob: Mapping[str, Any], source: Any, agent_cls: type | None = None, device: Any = "cpu"
) -> Any:
    """The agent of ``blob`` (from :func:`read_policy_source`) with its weights, in eval mode.

    Raises ``PolicyLoadError`` naming the file, the versions and the mismatching weights when no
    candidate class accepts the stored weights.
    """
    init = ckpt.check_plain(blob, source)
    state = blob["state_dict"]
    errors = []
    for cls in _agent_classes(blob, source, agent_cls):
        params = inspect.signature(cls.__init__).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            init = {k: v for k, v in init.items() if k in params}  # e.g. the loggers' gin/* entries
        with isolated_gin():
            ckpt.bind_stored_gin(blob, source)
            try:
                agent = cls(**init)
            except Exception as err:  # a class that does not take these arguments
                errors.append(f"{cls.__name__}: {type(err).__name__}: {err}")
                continue
        missing, unexpected = _key_mismatch(agent.state_dict(), state)
        if missing or unexpected:
            errors.append(f"{cls.__name__}: missing {missing[:4]}, unexpected {unexpected[:4]}")
            continue
        try:
            agent.load_state_dict(state, strict=True)
        except RuntimeError as err:  # same names, other shapes
            errors.append(f"{cls.__name__}: {str(err).splitlines()[0]} ...")
            continue
        agent.nonfinite_guard.skipped_steps = ckpt.skipped_steps_of(blob)
        return agent.to(device).eval()
    raise PolicyLoadError(
        f"the weights in {source} do not fit the network its configuration describes"
        f"{_version_note(blob.get(ckpt.VERSION_KEY))}:\n  "
        + "\n  ".join(errors)
        + "\nIf the file was written by another amago_pl version, load it with that version, or pass "
        "agent_cls= for an agent class this process does not register."
    )


def _key_mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    missing = sorted(k for k in expected if k not in found)
    unexpected = sorted(k for k in found if k not in expected)
    return missing, unexpected


def stored_gin_config(blob: Mapping[str, Any]) -> str:
    return str(blob.get(ckpt.GIN_KEY) or "")


def weights_of(agent: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of every weight and buffer (what the compact file stores)."""
    return {k: v.detach().cpu() for k, v in agent.state_dict().items()}
