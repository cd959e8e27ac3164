"""The Agent's hyperparameters as plain data: what a checkpoint and ``hparams.yaml`` hold.

Lightning stores a module's constructor arguments in every checkpoint (``hyper_parameters``) and
hands them to its loggers (``hparams.yaml``). The Agent's arguments include gym spaces and classes;
pickled as they are, the checkpoint can only be read by ``torch.load(weights_only=False)``, which
runs whatever code the file names (https://pytorch.org/docs/stable/notes/serialization.html,
"weights_only"). Here they become built-in types instead:

- a gym space becomes ``{"__space__": "Box", "low": ..., "high": ..., "shape": [...], "dtype": "float32"}``
  (also Discrete, MultiBinary, MultiDiscrete, Text, and Dict/Tuple of those);
- a class or function becomes ``{"__import_path__": "amago_pl.nets.actor_critic.Actor"}``;
- tuples become lists, numpy scalars Python numbers.

Reading them back resolves an import path only against a registry, never by importing it: the
classes amago_pl registers (the timestep/trajectory encoder and agent registries, gin
configurables defined in amago_pl), classes passed to an Agent's constructor in this process, and
classes registered with :func:`register_checkpoint_class` (or the ``register_*`` decorators of
``amago_pl.nets.registry`` and ``amago_pl.modules.agent``). Any other path is refused, naming it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TypeVar

import gin
import gymnasium as gym
import numpy as np

from amago_pl import compat

SPACE_KEY = "__space__"
IMPORT_KEY = "__import_path__"

T = TypeVar("T")

# Registered by the user (register_checkpoint_class) or by passing them to an Agent constructor.
_REGISTERED: dict[str, Any] = {}


class UnregisteredPathError(ValueError):
    """A checkpoint names a class or function that no registry of this process holds."""


class NotPlainDataError(TypeError):
    """A hyperparameter that has no plain-data form (e.g. a ``functools.partial``)."""


# ------------------------------------------------------------------------- the registry


def import_path(obj: Any) -> str:
    """``module.QualName`` of a class or function (what a checkpoint stores for it)."""
    return f"{obj.__module__}.{obj.__qualname__}"


def register_checkpoint_class(obj: T) -> T:
    """Let checkpoints name ``obj`` (a class or function; usable as a decorator).

    Register your own encoders, heads, critics and filter functions in the process that loads a
    checkpoint naming them, before loading (e.g. at the top of the module that defines them).
    """
    if not callable(obj) or not hasattr(obj, "__qualname__"):
        raise TypeError(f"register_checkpoint_class takes a class or function, not {obj!r}")
    _REGISTERED[import_path(obj)] = obj
    return obj


def _amago_pl_objects() -> dict[str, Any]:
    """amago_pl's registered classes, keyed by import path (and gin name, where it differs).
    (``register_agent`` registers agents here itself: this module cannot import agent.py.)"""
    from amago_pl.nets import registry

    out: dict[str, Any] = {}
    found = [registry.get_tstep_encoder_cls(n) for n in registry.list_registered_tstep_encoders()]
    found += [registry.get_traj_encoder_cls(n) for n in registry.list_registered_traj_encoders()]
    for obj in found:
        out[import_path(obj)] = obj
    # gin has no public listing of its configurables (gin/config.py keeps them in _REGISTRY).
    for selector, configurable in gin.config._REGISTRY.items():  # noqa: SLF001
        if not selector.startswith("amago_pl."):
            continue
        wrapped = configurable.wrapped
        # Functions are wrapped by gin.configurable: the module attribute is what the Agent holds.
        module = sys.modules.get(getattr(wrapped, "__module__", ""), None)
        obj = getattr(module, getattr(wrapped, "__qualname__", ""), wrapped) if module else wrapped
        out[import_path(obj)] = obj
        out.setdefault(selector, obj)  # e.g. NCritics is known to gin under nets.actor_critic
    return out


def registered_objects() -> dict[str, Any]:
    """Every import path a checkpoint may name in this process -> the object it stands for."""
    return {**_amago_pl_objects(), **_REGISTERED}


def resolve_import_path(path: str, name: str = "a hyperparameter") -> Any:
    """The registered object at ``path`` (old module paths mapped by the alias table), or an error."""
    table = registered_objects()
    for candidate in (path, compat.resolve_path(path)):
        if candidate in table:
            return table[candidate]
    raise UnregisteredPathError(
        f"{name} names {path!r}, which is not a registered class or function, so it is not loaded "
        "(a checkpoint may only name classes known to this process). If it is your own class, import "
        "it and register it before loading: `from amago_pl.modules.hparams import "
        "register_checkpoint_class; register_checkpoint_class(YourClass)` (or the @register_tstep_encoder "
        "/ @register_traj_encoder / @register_agent decorators)."
    )


# ------------------------------------------------------------------------- spaces


def _compact(arr: np.ndarray) -> Any:
    # Image spaces have one bound for every pixel: keep a single number when they are all equal.
    flat = arr.reshape(-1)
    if flat.size and (flat == flat[0]).all():
        return flat[0].item()
    return arr.tolist()


def space_to_plain(space: gym.Space) -> dict[str, Any]:
    """A gym space as built-in types (round trip: :func:`space_from_plain`)."""
    s = gym.spaces
    if isinstance(space, s.Box):
        return {SPACE_KEY: "Box", "low": _compact(space.low), "high": _compact(space.high),
                "shape": list(space.shape), "dtype": np.dtype(space.dtype).name}  # fmt: skip
    if isinstance(space, s.Discrete):
        return {SPACE_KEY: "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, s.MultiBinary):
        n = space.n
        return {SPACE_KEY: "MultiBinary", "n": int(n) if np.isscalar(n) else [int(x) for x in n]}
    if isinstance(space, s.MultiDiscrete):
        return {SPACE_KEY: "MultiDiscrete", "nvec": space.nvec.tolist(), "start": space.start.tolist(),
                "dtype": np.dtype(space.dtype).name}  # fmt: skip
    if isinstance(space, s.Text):
        return {SPACE_KEY: "Text", "min_length": int(space.min_length), "max_length": int(space.max_length),
                "charset": "".join(sorted(space.character_set))}  # fmt: skip
    if isinstance(space, s.Dict):
        # Pairs keep the key order (a plain mapping would be re-sorted by gym and by YAML).
        return {SPACE_KEY: "Dict", "spaces": [[str(k), space_to_plain(v)] for k, v in space.spaces.items()]}
    if isinstance(space, s.Tuple):
        return {SPACE_KEY: "Tuple", "spaces": [space_to_plain(v) for v in space.spaces]}
    raise NotPlainDataError(
        f"{type(space).__name__} spaces have no plain-data form in checkpoints "
        "(supported: Box, Discrete, MultiBinary, MultiDiscrete, Text, Dict, Tuple)"
    )


def _numeric_dtype(name: Any) -> np.dtype:
    dtype = np.dtype(str(name))
    if dtype.kind not in "biuf":
        raise ValueError(f"a checkpoint's space has dtype {name!r}; only bool, int and float are read")
    return dtype


def _int_list(x: Any) -> list[int]:
    return [int(v) for v in np.asarray(x, dtype=np.int64).reshape(-1)]


def space_from_plain(d: Mapping[str, Any]) -> gym.Space:
    """Rebuild a space written by :func:`space_to_plain`."""
    s, kind = gym.spaces, d.get(SPACE_KEY)
    if kind == "Box":
        shape, dtype = tuple(int(n) for n in d["shape"]), _numeric_dtype(d["dtype"])
        low, high = (np.broadcast_to(np.asarray(d[k], dtype=dtype), shape).copy() for k in ("low", "high"))
        return s.Box(low=low, high=high, shape=shape, dtype=dtype)
    if kind == "Discrete":
        return s.Discrete(int(d["n"]), start=int(d.get("start", 0)))
    if kind == "MultiBinary":
        n = d["n"]
        return s.MultiBinary(int(n) if isinstance(n, (int, float)) else _int_list(n))
    if kind == "MultiDiscrete":
        dtype = _numeric_dtype(d.get("dtype", "int64"))
        return s.MultiDiscrete(np.asarray(d["nvec"], dtype=dtype), dtype=dtype,
                               start=np.asarray(d.get("start", 0), dtype=dtype))  # fmt: skip
    if kind == "Text":
        return s.Text(int(d["max_length"]), min_length=int(d["min_length"]), charset=str(d["charset"]))
    if kind == "Dict":
        return s.Dict([(str(k), space_from_plain(v)) for k, v in d["spaces"]])
    if kind == "Tuple":
        return s.Tuple([space_from_plain(v) for v in d["spaces"]])
    raise ValueError(f"unknown space {kind!r} in a checkpoint")


# ------------------------------------------------------------------------- hyperparameters


def encode_value(value: Any, name: str) -> Any:
    """One hyperparameter as built-in types (classes and functions are registered on the way)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, gym.Space):
        return space_to_plain(value)
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise NotPlainDataError(
                f"hyperparameter {name}: only string keys can be stored, got {list(value)}"
            )
        if SPACE_KEY in value or IMPORT_KEY in value:
            return {k: v for k, v in value.items()}  # already encoded
        return {k: encode_value(v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else list(value)
        return [encode_value(v, f"{name}[{i}]") for i, v in enumerate(items)]
    if isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
        path = import_path(value)
        _REGISTERED.setdefault(path, value)  # the user handed it to us: this process may name it
        return {IMPORT_KEY: path}
    raise NotPlainDataError(
        f"hyperparameter {name} = {value!r} has no plain-data form for checkpoints: pass a class or a "
        "module-level function (not a partial or an instance), or a number, string, list or dict"
    )


def encode_hparams(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Every hyperparameter as built-in types (idempotent: encoded values pass unchanged)."""
    return {str(k): encode_value(v, str(k)) for k, v in hparams.items()}


def decode_value(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        if SPACE_KEY in value:
            return space_from_plain(value)
        if IMPORT_KEY in value:
            return resolve_import_path(str(value[IMPORT_KEY]), f"hyperparameter {name}")
        return {k: decode_value(v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [decode_value(v, f"{name}[{i}]") for i, v in enumerate(value)]
    return value


def decode_hparams(hparams: Mapping[str, Any], source: str = "the checkpoint") -> dict[str, Any]:
    """Constructor arguments from plain hyperparameters: spaces rebuilt, import paths resolved
    against the registry (an unregistered path raises :class:`UnregisteredPathError`)."""
    out = {}
    for key, value in hparams.items():
        try:
            out[key] = decode_value(value, key)
        except UnregisteredPathError as err:
            raise UnregisteredPathError(f"{source}: {err}") from None
    return out


def not_plain(value: Any, where: str = "") -> list[str]:
    """Where ``value`` holds something other than None/bool/int/float/str/list/tuple/dict (e.g. a
    gym space or a class unpickled from a checkpoint written before plain-data checkpoints)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in not_plain(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in not_plain(v, f"{where}[{i}]")]
    if isinstance(value, type):
        return [f"{where} (class {import_path(value)})"]
    return [f"{where} ({import_path(type(value))})"]
