"""Symbolic DeepMind Alchemy (the original's amago/envs/builtin/alchemy.py at 2d85600): not
available here. Constructing ``SymbolicAlchemy`` raises an ImportError that says why (see
``REASON``).
"""

from __future__ import annotations

from amago_pl.envs.builtin._unavailable import unavailable_env

PACKAGE = "dm_alchemy"
REASON = (
    "which is not published on PyPI (the original installs it from DeepMind's git repository, "
    "github.com/deepmind/dm_alchemy), so amago_pl cannot install it from a registry or test an "
    "adapter for it"
)

SymbolicAlchemy = unavailable_env("SymbolicAlchemy", PACKAGE, REASON)
