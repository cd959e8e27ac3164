"""Plain nn.Modules (no Lightning): encoders, transformer, attention, heads, distributions, PopArt.

The original's ``amago.nets.*`` paths, so those names port by a plain rename. Submodules load on
first attribute access (``amago_pl.nets.transformer`` after a bare ``import amago_pl``), which
keeps ``import amago_pl`` cheap in env worker processes.
"""

import importlib
from typing import Any

_SUBMODULES = {"actor_critic", "attention", "attention_extras", "cnn", "critics", "ff", "goal_embedders",
               "policy_dists", "popart", "registry", "traj_encoders", "transformer", "tstep_encoders",
               "utils"}  # fmt: skip


# The names the original's amago/nets/__init__.py re-exports (2d85600), and their modules.
_EXPORTS = {
    "TstepEncoder": "tstep_encoders",
    "TrajEncoder": "traj_encoders",
    "register_tstep_encoder": "registry",
    "register_traj_encoder": "registry",
    "get_tstep_encoder_cls": "registry",
    "get_traj_encoder_cls": "registry",
    "list_registered_tstep_encoders": "registry",
    "list_registered_traj_encoders": "registry",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"amago_pl.nets.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"amago_pl.nets.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'amago_pl.nets' has no attribute {name!r}")
