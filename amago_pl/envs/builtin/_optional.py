"""Import helpers for builtin envs whose packages are optional extras."""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = "pip install amago_pl[envs]"


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{feature} needs the `{module}` package: `{INSTALL_HINT}`") from e
