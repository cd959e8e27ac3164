"""``amago-pl convert-checkpoint OLD NEW``: a pickled checkpoint rewritten once as plain data.

Checkpoints written before amago_pl stored plain data hold pickled gym spaces, classes and numpy
arrays, so every normal loader refuses them (``PickledCheckpointError``). This command reads such
a file with ``torch.load(weights_only=False)`` -- which runs whatever code the file names, so use it
only on files you trust -- and writes a checkpoint that ``torch.load(weights_only=True)`` reads:

- ``hyper_parameters`` as built-in types (:mod:`amago_pl.modules.hparams`); classes pickled under
  module paths of an earlier layout resolve through the alias table (``amago_pl/compat.py``);
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
from amago_pl.modules.checkpoint import GIN_KEY, unpickling_reason
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


def convert_checkpoint(old: str | os.PathLike, new: str | os.PathLike) -> list[str]:
    """Write ``new``, the plain-data form of the trusted checkpoint ``old``; returns what changed."""
    # The one place amago_pl unpickles a checkpoint: the user asked for it, for a file they trust.
    blob = torch.load(old, map_location="cpu", weights_only=False)
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
            "hyperparameters) as a plain-data checkpoint that loads with weights_only=True. It "
            "unpickles OLD, which can run any code the file names: only convert files you trust."
        ),
    )
    parser.add_argument("old", help="the pickled checkpoint (a file you trust)")
    parser.add_argument("new", help="where to write the plain-data checkpoint")
    args = parser.parse_args(argv)
    try:
        changes = convert_checkpoint(args.old, args.new)
    except (ConversionError, FileNotFoundError) as err:
        parser.exit(1, f"amago-pl convert-checkpoint: {err}\n")
    print(f"wrote {args.new}")
    for line in changes:
        print(f"  - {line}")
    return 0
