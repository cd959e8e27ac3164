"""Stand-ins for the original's builtin envs whose packages cannot be installed from PyPI next
to amago_pl (docs/envs.md): importing and subclassing them works, constructing one raises an
ImportError that names the missing package and why it is missing."""

from __future__ import annotations

from typing import Any


def unavailable_env(name: str, package: str, reason: str) -> type:
    """A class called ``name`` whose constructor raises an ImportError about ``package``."""
    message = (
        f"{name} is not available in amago_pl: it needs `{package}`, {reason}. "
        "amago_pl ships no adapter it cannot test; see docs/envs.md for the envs that install."
    )

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise ImportError(message)

    return type(name, (), {"__init__": __init__, "__doc__": message, "unavailable_reason": message})
