"""Plain nn.Modules (no Lightning): encoders, transformer, attention, heads, distributions, PopArt.

The original's ``amago.nets.*`` paths, so those names port by a plain rename. Submodules load on
first attribute access (``amago_pl.nets.transformer`` after a bare ``import amago_pl``), which
keeps ``import amago_pl`` cheap in env worker processes.
"""

import importlib
from typing import Any

_SUBMODULES = {"actor_critic", "attention", "cnn", "critics", "ff", "policy_dists", "popart", "registry",
               "traj_encoders", "transformer", "tstep_encoders", "utils"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"amago_pl.nets.{name}")
    raise AttributeError(f"module 'amago_pl.nets' has no attribute {name!r}")
