"""Old module paths and gin keys -> where they live now: one table, one mechanism.

Scripts, gin files and pickled objects written against an earlier layout (``amago_pl.modules.transformer``,
``amago_pl.experiment_utils``, ...) keep working: ``install()`` (run by ``import amago_pl``) adds an
import hook that answers an old module path with the new module object itself, so classes, gin
registrations and ``isinstance`` checks are shared, and :func:`rewrite_gin_text` maps old full-path gin
keys, in dicts, ``--gin`` strings and ``.gin`` files alike (a gin file reader is registered for
the files). Names that left their module are in :data:`MOVED_NAMES`.

This module imports nothing of amago_pl at import time (it resolves paths by string), so every layer
may use it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import io
import re
import sys
from collections.abc import Callable
from typing import Any

_NETS = ("actor_critic", "attention", "cnn", "critics", "ff", "policy_dists", "popart", "registry",
         "traj_encoders", "transformer", "tstep_encoders", "utils")  # fmt: skip

# old module path -> new module path
MOVED_MODULES: dict[str, str] = {
    **{f"amago_pl.modules.{m}": f"amago_pl.nets.{m}" for m in _NETS},
    "amago_pl.modules.agent_testing": "amago_pl.testing.batches",
    "amago_pl.modules.ckpt_compat": "amago_pl.modules.checkpoint",
    "amago_pl.modules.agent_step": "amago_pl.modules.agent",  # merged into the Agent's file
    "amago_pl.envs.testing": "amago_pl.testing.envs",
    "amago_pl.experiment_utils": "amago_pl.run.build",
    "amago_pl.cli_checks": "amago_pl.run.settings",
    "amago_pl.agent": "amago_pl.modules.agent",  # the original's amago/agent.py
}

# old "module.Name" -> new "module.Name", for names defined elsewhere than the module users know them
# from. (Classes the original kept in amago/nets/transformer.py and amago/nets/actor_critic.py at
# 2d85600 instead register with gin under those paths and are imported there: see nets/attention.py.)
MOVED_NAMES: dict[str, str] = {
    "amago_pl.nets.actor_critic.PopArtLayer": "amago_pl.nets.popart.PopArtLayer",
    "amago_pl.modules.agent.MultiTaskAgent": "amago_pl.modules.multitask_agent.MultiTaskAgent",
    **{
        f"amago_pl.envs.builtin.popgym_envs.{n}": f"amago_pl.envs.builtin.popgym_multidomain.{n}"
        for n in ("MultiDomainPOPGym", "MultiDomainPOPGymAMAGO")
    },
    # Names of the former amago_pl/modules/agent_step.py (an alias of modules.agent, above) and agent.py.
    "amago_pl.modules.agent.nonfinite_step_limit": "amago_pl.modules.nonfinite.nonfinite_step_limit",
    "amago_pl.modules.agent.NonFiniteTrainingError": "amago_pl.modules.nonfinite.NonFiniteTrainingError",
    "amago_pl.modules.agent.CheckpointMismatchError": "amago_pl.modules.checkpoint.CheckpointMismatchError",
    "amago_pl.modules.agent.SKIPPED_STEPS_CKPT_KEY": "amago_pl.modules.checkpoint.SKIPPED_STEPS_KEY",
    "amago_pl.modules.agent.GIN_CKPT_KEY": "amago_pl.modules.checkpoint.GIN_KEY",
}


def resolve_path(dotted: str) -> str:
    """The current spelling of a dotted module path or ``module.Name[.rest]`` (unchanged if current)."""
    for _ in range(4):  # an old path may need a module move and then a name move
        new = _map_prefix(dotted, MOVED_MODULES)
        new = _map_prefix(new, MOVED_NAMES)
        if new == dotted:
            return dotted
        dotted = new
    return dotted


def _map_prefix(dotted: str, table: dict[str, str]) -> str:
    # Longest old prefix that ends at a dot boundary wins.
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        head = ".".join(parts[:end])
        if head in table:
            return ".".join([table[head], *parts[end:]])
    return dotted


_DOTTED = re.compile(r"\bamago_pl(?:\.[A-Za-z_]\w*)+")


def rewrite_gin_text(text: str) -> str:
    """Every ``amago_pl.<old path>`` in gin text (bindings, ``@`` references, macros) -> its current path."""
    return _DOTTED.sub(lambda m: resolve_path(m.group(0)), text)


def rewrite_gin_key(key: str) -> str:
    """One binding key (``[scope/]amago_pl.old.path.Class.param``) -> its current spelling."""
    return rewrite_gin_text(key)


def name_getattr(module_name: str) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` (PEP 562) that serves the names :data:`MOVED_NAMES` lists for
    ``module_name``, importing their new module on first use (so no import circle is needed)."""

    def __getattr__(name: str) -> Any:
        target = MOVED_NAMES.get(f"{module_name}.{name}")
        if target is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        mod, _, attr = target.rpartition(".")
        return getattr(importlib.import_module(mod), attr)

    return __getattr__


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return importlib.import_module(self.target)  # the very module object, not a copy

    def exec_module(self, module: Any) -> None:  # already executed under its own name
        return None


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        new = MOVED_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def _gin_file_is_readable(path: str) -> bool:
    import os

    return os.path.isfile(path)


def _read_gin_file(path: str) -> io.StringIO:
    with open(path) as f:
        return io.StringIO(rewrite_gin_text(f.read()))


_installed = False


def install() -> None:
    """Add the import hook and the gin file reader (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    sys.meta_path.append(_AliasFinder())
    try:
        import gin.config as gin_config

        # gin tries its readers in order and the first whose check passes reads the file; ours must
        # come before the plain `open` so that included files are rewritten too. gin has no public
        # way to prepend a reader (register_file_reader appends).
        readers = gin_config._FILE_READERS  # noqa: SLF001
        readers.insert(0, (_read_gin_file, _gin_file_is_readable))
    except (ImportError, AttributeError):  # another gin version: fall back to use_config's rewrite
        pass
