"""Old module paths and gin keys -> where they live now: one table, one mechanism.

Two kinds of old code keep working through it: scripts and gin files of the original AMAGO (3.3.0,
2d85600) after renaming ``amago`` to ``amago_pl`` (``amago.loading``, ``amago.hindsight``,
``amago.agent.exp_filter``, ...), and those written against an earlier amago_pl layout
(``amago_pl.modules.transformer``, ``amago_pl.experiment_utils``, ...). ``install()`` (run by
``import amago_pl``) adds an import hook that answers an old module path with the new module object
itself, so classes, gin registrations and ``isinstance`` checks are shared, or, for an old module
whose names all moved, with a module serving those names. :func:`rewrite_gin_text` maps the
original's ``amago.*`` keys and old full-path keys, in dicts, ``--gin`` strings and ``.gin`` files
alike (a gin file reader is registered for the files, included ones too). Names that left their
module are in :data:`MOVED_NAMES`.

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

_DATA = "amago_pl.datamodules"
_ORIG = "amago_pl.datamodules.original_layout"  # the original's array layouts, for ported user code

# old "module.Name" -> new "module.Name", for names defined elsewhere than the module users know them
# from. (Classes the original kept in amago/nets/transformer.py and amago/nets/actor_critic.py at
# 2d85600 instead register with gin under those paths and are imported there: see nets/attention.py.)
# An old module path that has no module of its own (``amago_pl.loading``, ``amago_pl.hindsight``)
# imports as a module that serves exactly the names listed for it here.
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
    # The original's amago/agent.py names (2d85600) that live elsewhere here. The filters register
    # with gin in modules/losses.py, so `amago.agent.exp_filter.beta` rewrites to that path.
    **{
        f"amago_pl.agent.{n}": f"amago_pl.modules.losses.{n}"
        for n in ("binary_filter", "exp_filter", "leaky_relu_filter", "nstep_return")
    },  # fmt: skip
    "amago_pl.agent.get_action_dim_and_type": "amago_pl.envs.amago_env.get_action_dim_and_type",
    "amago_pl.agent.BaseAgent": "amago_pl.modules.agent.Agent",  # one Agent class (a LightningModule)
    # amago/loading.py
    "amago_pl.loading.RLDataset": f"{_DATA}.dataset.RLDataset",
    "amago_pl.loading.DoNothingDataset": f"{_DATA}.dataset.DoNothingDataset",
    "amago_pl.loading.DiskTrajDataset": f"{_DATA}.disk.DiskTrajDataset",
    "amago_pl.loading.MixtureOfDatasets": f"{_DATA}.mixture.MixtureOfDatasets",
    "amago_pl.loading.Batch": "amago_pl.types.Batch",  # with an explicit mask instead of pad values
    **{
        f"amago_pl.loading.{n}": f"{_ORIG}.{n}"
        for n in (
            "RLData",
            "MAGIC_PAD_VAL",
            "pad",
            "RLData_pad_collate",
            "load_traj_from_disk",
            "get_path_to_trajs",
        )
    },  # fmt: skip
    # amago/hindsight.py: a relabeler written for the original gets the original's (L, 1) arrays.
    "amago_pl.hindsight.Timestep": "amago_pl.types.Timestep",
    "amago_pl.hindsight.split_batched_timestep": f"{_ORIG}.split_batched_timestep",
    "amago_pl.hindsight.FrozenTraj": f"{_ORIG}.OriginalFrozenTraj",
    "amago_pl.hindsight.Trajectory": f"{_ORIG}.Trajectory",
    "amago_pl.hindsight.Relabeler": f"{_DATA}.relabel.OriginalRelabeler",
    "amago_pl.hindsight.NoOpRelabeler": f"{_DATA}.relabel.NoOpRelabeler",
    # amago/nets: the registries live in nets/registry.py (it imports the encoders, not the reverse)
    **{
        f"amago_pl.nets.{mod}.{fn}": f"amago_pl.nets.registry.{fn}"
        for mod, kind in (("tstep_encoders", "tstep_encoder"), ("traj_encoders", "traj_encoder"))
        for fn in (f"register_{kind}", f"get_{kind}_cls", f"list_registered_{kind}s")
    },  # fmt: skip
    "amago_pl.nets.transformer.RotaryPosEmb": "amago_pl.nets.transformer.RotaryEmb",
    **{
        f"amago_pl.nets.transformer.{n}": f"amago_pl.nets.attention_extras.{n}"
        for n in ("VanillaFlexAttention", "ClippedSlidingSinkAttention", "AttentionLayer")
    },  # fmt: skip
    "amago_pl.nets.transformer.Cache": "amago_pl.nets.transformer.KVCache",  # one cache object holds
    "amago_pl.nets.transformer.TformerHiddenState": "amago_pl.nets.transformer.KVCache",  # k, v, lengths
    # amago/envs/builtin/tmaze.py: the env base class, and the T-Maze example's exploration, which
    # is a library class here in its own module, so that a script defining its own
    # `TMazeExploration` (as the original example does) is the only one gin knows by that name.
    "amago_pl.envs.builtin.tmaze.TMazeAlt": "amago_pl.envs.builtin.tmaze.TMaze",
    "amago_pl.envs.builtin.tmaze.TMazeExploration": "amago_pl.envs.builtin.tmaze_exploration.TMazeExploration",
}


def resolve_path(dotted: str) -> str:
    """The current spelling of a dotted module path or ``module.Name[.rest]`` (unchanged if current)."""
    for _ in range(4):  # an old path may need a module move and then a name move
        new = _map_prefix(dotted, MOVED_NAMES)  # names first: they are keyed by the path users write
        if new == dotted:
            new = _map_prefix(dotted, MOVED_MODULES)
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


# A quoted string (left alone: file paths, names) or a dotted path starting with the package name,
# ours or the original's (``amago.agent.Agent`` -> ``amago_pl.agent.Agent`` -> its current path).
_TOKEN = re.compile(
    r"""("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|(?<![\w.])(amago(?:_pl)?)((?:\.[A-Za-z_]\w*)+)"""
)


def _rewrite_token(m: re.Match) -> str:
    if m.group(1) is not None:
        return m.group(1)
    return resolve_path("amago_pl" + m.group(3))


def rewrite_gin_text(text: str) -> str:
    """Every ``amago.<path>`` (the original's) and ``amago_pl.<old path>`` in gin text (bindings,
    ``@`` references, macros, ``import`` lines) -> its current path. Quoted strings are left alone."""
    return _TOKEN.sub(_rewrite_token, text)


def rewrite_gin_key(key: str) -> str:
    """One binding key (``[scope/]amago.path.Class.param``) -> its current spelling."""
    return rewrite_gin_text(key)


def _old_paths_of(module_name: str) -> list[str]:
    """``module_name`` and every old module path that imports as it."""
    return [module_name, *(old for old, new in MOVED_MODULES.items() if new == module_name)]


def moved_names_of(module_name: str) -> dict[str, str]:
    """Name -> new ``module.Name`` for every name :data:`MOVED_NAMES` lists under ``module_name``
    or under an old path of it."""
    out: dict[str, str] = {}
    for prefix in _old_paths_of(module_name):
        for old, new in MOVED_NAMES.items():
            head, _, name = old.rpartition(".")
            if head == prefix:
                out.setdefault(name, new)
    return out


def name_getattr(module_name: str) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` (PEP 562) that serves the names :data:`MOVED_NAMES` lists for
    ``module_name`` (or an old path of it), importing their new module on first use (so no import
    circle is needed)."""

    def __getattr__(name: str) -> Any:
        target = moved_names_of(module_name).get(name)
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


class _NamesOnlyLoader(importlib.abc.Loader):
    """An old module path whose names all moved: a module that serves them (``moved_names_of``)."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return None  # the default module object

    def exec_module(self, module: Any) -> None:
        names = moved_names_of(module.__name__)
        module.__doc__ = f"Old path {module.__name__}; its names now live at: " + ", ".join(
            f"{k} -> {v}" for k, v in sorted(names.items())
        )
        module.__all__ = sorted(names)
        module.__getattr__ = name_getattr(module.__name__)
        module.__dir__ = lambda: sorted(names)


class _AliasFinder(importlib.abc.MetaPathFinder):
    # Appended to sys.meta_path: asked only for module paths no real module answers.
    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        new = MOVED_MODULES.get(fullname)
        if new is not None:
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))
        if fullname.startswith("amago_pl.") and moved_names_of(fullname):
            return importlib.machinery.ModuleSpec(fullname, _NamesOnlyLoader())
        return None


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
