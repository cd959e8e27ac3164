"""amago_pl: AMAGO's off-policy RL with long-context sequence models, on PyTorch Lightning.

The public API mirrors the original library (``amago``) with the package renamed; see
docs/porting.md for the module map.
"""

import importlib
from typing import Any

from amago_pl import compat

compat.install()  # old module paths and gin keys keep resolving (amago_pl/compat.py)

# Public names and the module defining each. Imported lazily (PEP 562) so that `import amago_pl`
# stays cheap in env worker processes, which only need the env layer. The second half are the
# names the original exports at its top level (amago/__init__.py at 2d85600).
_EXPORTS = {
    "AMAGOEnv": "amago_pl.envs",
    "EpsilonGreedy": "amago_pl.envs",
    "BilevelEpsilonGreedy": "amago_pl.envs",
    "DiskTrajDataset": "amago_pl.datamodules",
    "DoNothingDataset": "amago_pl.datamodules",
    "MixtureOfDatasets": "amago_pl.datamodules",
    "RLDataset": "amago_pl.datamodules",
    "Experiment": "amago_pl.experiment",
    "Agent": "amago_pl.modules.agent",
    "Policy": "amago_pl.policy",
    "evaluate_policy": "amago_pl.policy",
    "MultiTaskAgent": "amago_pl.modules.agent",
    "FFTrajEncoder": "amago_pl.nets.traj_encoders",
    "GRUTrajEncoder": "amago_pl.nets.traj_encoders",
    "IdentityTrajEncoder": "amago_pl.nets.traj_encoders",
    "MambaTrajEncoder": "amago_pl.nets.traj_encoders",
    "TformerTrajEncoder": "amago_pl.nets.traj_encoders",
    "CNNTstepEncoder": "amago_pl.nets.tstep_encoders",
    "FFTstepEncoder": "amago_pl.nets.tstep_encoders",
    # as in the original's package
    "register_agent": "amago_pl.modules.agent",
    "get_agent_cls": "amago_pl.modules.agent",
    "list_registered_agents": "amago_pl.modules.agent",
    "TstepEncoder": "amago_pl.nets.tstep_encoders",
    "TrajEncoder": "amago_pl.nets.traj_encoders",
    "register_tstep_encoder": "amago_pl.nets.registry",
    "get_tstep_encoder_cls": "amago_pl.nets.registry",
    "list_registered_tstep_encoders": "amago_pl.nets.registry",
    "register_traj_encoder": "amago_pl.nets.registry",
    "get_traj_encoder_cls": "amago_pl.nets.registry",
    "list_registered_traj_encoders": "amago_pl.nets.registry",
    "ExplorationWrapper": "amago_pl.envs.exploration",
    "register_exploration": "amago_pl.envs.exploration",
    "get_exploration_cls": "amago_pl.envs.exploration",
    "list_registered_explorations": "amago_pl.envs.exploration",
}


# Subpackages reachable as attributes after a bare `import amago_pl` (as in the original).
_SUBMODULES = {"nets", "modules", "envs", "datamodules", "callbacks", "run", "testing", "cli_utils",
               "experiment", "types", "compat", "policy", "utils", "agent", "loading", "hindsight"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"amago_pl.{name}")
    raise AttributeError(f"module 'amago_pl' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [  # noqa: F822 - resolved lazily by __getattr__
    "AMAGOEnv",
    "Agent",
    "BilevelEpsilonGreedy",
    "CNNTstepEncoder",
    "DiskTrajDataset",
    "DoNothingDataset",
    "EpsilonGreedy",
    "Experiment",
    "FFTrajEncoder",
    "FFTstepEncoder",
    "GRUTrajEncoder",
    "IdentityTrajEncoder",
    "MambaTrajEncoder",
    "MixtureOfDatasets",
    "MultiTaskAgent",
    "Policy",
    "RLDataset",
    "TformerTrajEncoder",
    "TrajEncoder",
    "TstepEncoder",
    "ExplorationWrapper",
    "evaluate_policy",
    "get_agent_cls",
    "get_exploration_cls",
    "get_traj_encoder_cls",
    "get_tstep_encoder_cls",
    "list_registered_agents",
    "list_registered_explorations",
    "list_registered_traj_encoders",
    "list_registered_tstep_encoders",
    "register_agent",
    "register_exploration",
    "register_traj_encoder",
    "register_tstep_encoder",
]
