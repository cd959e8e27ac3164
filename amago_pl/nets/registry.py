"""Name -> class registries for timestep and trajectory encoders (used by the CLI and switch_* helpers).

The built-in names are "ff", "cnn" (timestep) and "transformer", "rnn" (alias "gru"), "ff", "mamba",
"identity" (trajectory). Register your own with the decorators::

    @register_traj_encoder("my_rnn")
    class MyRNN(TrajEncoder): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from amago_pl.nets import traj_encoders, tstep_encoders
from amago_pl.nets.traj_encoders import TrajEncoder
from amago_pl.nets.tstep_encoders import TstepEncoder

T = TypeVar("T", bound=type)

_TSTEP: dict[str, type[TstepEncoder]] = {}
_TRAJ: dict[str, type[TrajEncoder]] = {}


def _register(table: dict[str, type], base: type, kind: str, name: str) -> Callable[[T], T]:
    def decorator(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(f"{cls!r} is not a {base.__name__} subclass")
        if name in table and table[name] is not cls:
            raise ValueError(f"{kind} encoder name {name!r} is already registered to {table[name].__name__}")
        table[name] = cls
        return cls

    return decorator


def _lookup(table: dict[str, type], kind: str, name: str) -> type:
    try:
        return table[name]
    except KeyError:
        raise KeyError(f"Unknown {kind} encoder {name!r}; registered: {sorted(table)}") from None


def register_tstep_encoder(name: str) -> Callable[[T], T]:
    """Class decorator: make a TstepEncoder selectable by ``name``."""
    return _register(_TSTEP, TstepEncoder, "timestep", name)


def get_tstep_encoder_cls(name: str) -> type[TstepEncoder]:
    return _lookup(_TSTEP, "timestep", name)


def list_registered_tstep_encoders() -> list[str]:
    return sorted(_TSTEP)


def register_traj_encoder(name: str) -> Callable[[T], T]:
    """Class decorator: make a TrajEncoder selectable by ``name``."""
    return _register(_TRAJ, TrajEncoder, "trajectory", name)


def get_traj_encoder_cls(name: str) -> type[TrajEncoder]:
    return _lookup(_TRAJ, "trajectory", name)


def list_registered_traj_encoders() -> list[str]:
    return sorted(_TRAJ)


register_tstep_encoder("ff")(tstep_encoders.FFTstepEncoder)
register_tstep_encoder("cnn")(tstep_encoders.CNNTstepEncoder)
register_traj_encoder("transformer")(traj_encoders.TformerTrajEncoder)
register_traj_encoder("rnn")(traj_encoders.GRUTrajEncoder)
register_traj_encoder("gru")(traj_encoders.GRUTrajEncoder)
register_traj_encoder("ff")(traj_encoders.FFTrajEncoder)
register_traj_encoder("mamba")(traj_encoders.MambaTrajEncoder)
register_traj_encoder("identity")(traj_encoders.IdentityTrajEncoder)
