"""The registry of Agent classes by name (``register_agent``, ``get_agent_cls``), as the original's
amago/agent.py at 2d85600 offers them; registered agents may also be named in checkpoints."""

from __future__ import annotations

from collections.abc import Callable

from amago_pl.modules import hparams as hparams_mod

_AGENTS: dict[str, type] = {}


def register_agent(name: str) -> Callable[[type], type]:
    """Class decorator: make an Agent subclass available as ``get_agent_cls(name)``."""

    def deco(cls: type) -> type:
        _AGENTS[name] = cls
        hparams_mod.register_checkpoint_class(cls)  # checkpoints may name registered agents
        return cls

    return deco


def get_agent_cls(name: str) -> type:
    try:
        return _AGENTS[name]
    except KeyError:
        raise ValueError(f"Unknown agent {name!r}; registered: {sorted(_AGENTS)}") from None


def list_registered_agents() -> list[str]:
    return sorted(_AGENTS)


def agent_class_name(cls: type) -> str:
    """What checkpoints record as the agent's class: its ``register_agent`` name (stable when the
    defining module moves or runs as ``__main__``), else its import path (``modules/hparams.py``)."""
    for name, registered in _AGENTS.items():
        if registered is cls:
            return name
    return hparams_mod.import_path(cls)
