"""``amago-pl convert-checkpoint OLD NEW``: a pickled checkpoint rewritten once as plain data.

Checkpoints written before amago_pl stored plain data hold pickled gym spaces, classes and numpy
arrays, so every normal loader refuses them (``PickledCheckpointError``). This command reads such
a file without running code from it: ``torch.load(weights_only=True)`` with an allowlist of the
objects such a checkpoint may name (``allowed_globals``: numpy arrays, scalars and dtypes, gym
space classes, and classes and functions registered in this process, old module paths mapped by
the alias table). Unpickling rebuilds only those; a file naming anything else (``os.system``, a
class nobody registered) is refused, naming it. The result is written as a checkpoint that
``torch.load(weights_only=True)`` reads without any allowlist:

- ``hyper_parameters`` as built-in types (:mod:`amago_pl.modules.hparams`);
- the stored gin config with old module paths rewritten to the current ones;
- numpy arrays (e.g. the numpy RNG state in ``RolloutCallback``'s state) as lists, numpy scalars
  as Python numbers.

The result is checked by reading it back with ``weights_only=True`` before it is written
(atomically: ``NEW`` is either the complete converted file or absent).
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
from typing import Any

import numpy as np
import torch

from amago_pl import compat
from amago_pl.callbacks.checkpoint_io import atomic_write_bytes
from amago_pl.modules.checkpoint import GIN_KEY, check_checkpoint_content, unpickling_reason
from amago_pl.modules.hparams import encode_hparams


class ConversionError(RuntimeError):
    """The old checkpoint holds something that has no plain-data form."""


def _plain(value: Any) -> Any:
    """numpy arrays -> lists and numpy scalars -> Python numbers, everywhere in ``value``."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def allowed_globals(old: str | os.PathLike) -> list[tuple[Any, str]]:
    """``(object, name)`` for every global the pickle in ``old`` names, or ``ConversionError``
    naming the first one that is not allowed. The names are read from the file without unpickling
    (``torch.serialization.get_unsafe_globals_in_checkpoint``)."""
    import gymnasium as gym

    from amago_pl.modules.hparams import UnregisteredPathError, resolve_import_path

    out = []
    for name in torch.serialization.get_unsafe_globals_in_checkpoint(old):
        module, _, attr = name.rpartition(".")
        obj = None
        if module in _NUMPY_MODULES and attr in _NUMPY_NAMES:
            obj = _numpy_object(module, attr)
        elif module.startswith("gymnasium.spaces"):
            candidate = getattr(gym.spaces, attr, None)
            if isinstance(candidate, type) and issubclass(candidate, gym.spaces.Space):
                obj = candidate
        else:
            try:
                obj = resolve_import_path(name, "the checkpoint")
            except UnregisteredPathError as err:
                raise ConversionError(f"{old} is not converted: {err}") from None
        if obj is None:
            raise ConversionError(
                f"{old} names {name}, which a checkpoint may not hold (allowed: numpy arrays, scalars "
                "and dtypes, gym spaces, registered classes and functions), so it is not loaded"
            )
        out.append((obj, name))
    # A dtype's BUILD step names its class (numpy.dtypes.Float32DType, ...), not listed as a global.
    dtype_classes = {type(np.dtype(c)) for c in np.typecodes["All"]}
    out += [(cls, f"numpy.dtypes.{cls.__name__}") for cls in dtype_classes]
    return out


_NUMPY_MODULES = ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.dtypes")
_NUMPY_NAMES = {"ndarray", "dtype", "_reconstruct", "scalar"}


def _numpy_object(module: str, attr: str) -> Any:
    if attr == "_reconstruct":
        return np._core.multiarray._reconstruct  # noqa: SLF001 - what numpy arrays pickle through
    if attr == "scalar":
        return np._core.multiarray.scalar  # noqa: SLF001
    return getattr(np, attr)


def convert_checkpoint(old: str | os.PathLike, new: str | os.PathLike) -> list[str]:
    """Write ``new``, the plain-data form of the pickled checkpoint ``old``; returns what changed.
    Nothing in ``old`` runs: it is unpickled with ``weights_only=True`` and ``allowed_globals``."""
    try:
        with torch.serialization.safe_globals(allowed_globals(old)):
            blob = torch.load(old, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ConversionError(f"{old} is not converted: {unpickling_reason(err)}") from None
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise ConversionError(f"{old} is not a Lightning checkpoint (no state_dict)")
    changes = []
    stored = blob.get("hyper_parameters")
    if stored:
        blob["hyper_parameters"] = encode_hparams(dict(stored))
        changes.append(f"hyper_parameters: {len(stored)} entries as plain data")
    if isinstance(blob.get(GIN_KEY), str):
        rewritten = compat.rewrite_gin_text(blob[GIN_KEY])
        if rewritten != blob[GIN_KEY]:
            blob[GIN_KEY] = rewritten
            changes.append("gin config: old module paths rewritten")
    blob = _plain(blob)
    # What every loader checks: a crafted file must not become a trusted-looking converted one.
    check_checkpoint_content(blob, old)
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    try:
        torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ConversionError(
            f"{old} still holds an object without a plain-data form after conversion "
            f"({unpickling_reason(err)}); it cannot be converted automatically"
        ) from None
    atomic_write_bytes(new, buffer.getvalue())
    return changes


def main(argv: list[str] | None = None) -> int:
    """``amago-pl convert-checkpoint OLD NEW``."""
    parser = argparse.ArgumentParser(
        prog="amago-pl convert-checkpoint",
        description=(
            "Rewrite a checkpoint written before amago_pl checkpoints held plain data (pickled "
            "hyperparameters) as a plain-data checkpoint that loads with weights_only=True. OLD is "
            "read without running code: it may only name numpy arrays, gym spaces and registered "
            "classes (import and register your own classes first)."
        ),
    )
    parser.add_argument("old", help="the pickled checkpoint")
    parser.add_argument("new", help="where to write the plain-data checkpoint")
    args = parser.parse_args(argv)
    try:
        changes = convert_checkpoint(args.old, args.new)
    except (ConversionError, FileNotFoundError, ValueError, RuntimeError) as err:
        parser.exit(1, f"amago-pl convert-checkpoint: {err}\n")
    print(f"wrote {args.new}")
    for line in changes:
        print(f"  - {line}")
    return 0
