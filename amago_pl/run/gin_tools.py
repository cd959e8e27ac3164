"""What gin will pass to the classes a run builds: unbound ``gin.REQUIRED`` keywords, the bound
value of one keyword (to catch a setting given both to a front door and to gin), and the check
that every DDP rank holds the same gin config (``GinRankCheck``).

gin has no public API to list bindings or registered configurables, so these read its registry.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gin
import lightning.pytorch as pl

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
# A string-valued setting that makes a class build another configurable (invisible to the walk).
_IMPLIED_BY_VALUE = {("TformerTrajEncoder", "pos_emb", "learnable"): "LearnablePosEmb"}


def _bound_params() -> dict[str, dict[str, Any]]:
    """``{full selector: {param: value}}`` of every gin binding (scopes merged)."""
    out: dict[str, dict[str, Any]] = {}
    for (_scope, selector), params in gin.config._CONFIG.items():  # noqa: SLF001 - no public listing API
        match = gin.config._REGISTRY.get_match(selector)  # noqa: SLF001
        if match is not None:
            out.setdefault(match.selector, {}).update(params)
    return out


def _configurable_of(obj: Any) -> Any:
    for _selector, configurable in gin.config._REGISTRY.items():  # noqa: SLF001
        if configurable.wrapped is obj:
            return configurable
    return None


def bound_value(cls: type, param: str) -> tuple[str, Any] | None:
    """(``Class.param``, value) of the gin binding that ``cls(...)`` would receive for ``param``,
    or None when gin binds nothing there.

    The first gin-registered class of ``cls``'s MRO decides: its constructor is the one gin wraps
    (a plain subclass of ``Agent`` inherits ``Agent``'s bindings).
    """
    for klass in inspect.getmro(cls):
        configurable = _configurable_of(klass)
        if configurable is None:
            continue
        values = _bound_params().get(configurable.selector, {})
        if param not in values:
            return None
        return f"{configurable.name}.{param}", values[param]
    return None


def missing_required_bindings(roots: Sequence[Any]) -> list[str]:
    """``Class.param`` for every ``gin.REQUIRED`` keyword that the run would need but nobody bound.

    Walks the classes the run builds (``roots``), the configurable classes they take as defaults
    (e.g. ``Agent.actor_type = Actor``) and the ``@references`` bound to their keywords.
    """
    bound = _bound_params()
    missing: list[str] = []
    seen: set[int] = set()
    todo = [r for r in roots if r is not None]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        configurable = _configurable_of(obj)
        if configurable is None:
            continue
        try:
            params = inspect.signature(configurable.wrapped).parameters
        except (TypeError, ValueError):
            continue
        values = bound.get(configurable.selector, {})
        for name, param in params.items():
            value = values.get(name, param.default)
            if value is gin.REQUIRED:
                missing.append(f"{configurable.name}.{name}")
            elif isinstance(value, gin.config.ConfigurableReference):
                todo.append(value.configurable.wrapped)
            elif inspect.isclass(value) or inspect.isfunction(value):
                todo.append(value)
            implied = _IMPLIED_BY_VALUE.get(
                (configurable.name, name, value if isinstance(value, str) else None)
            )
            if implied is not None:
                match = gin.config._REGISTRY.get_match(implied)  # noqa: SLF001
                if match is not None:
                    todo.append(match.wrapped)
    return sorted(set(missing))


def check_required_bindings(roots: Sequence[Any]) -> None:
    """Fail before any env or model is built when a needed ``gin.REQUIRED`` keyword is unbound."""
    missing = missing_required_bindings(roots)
    if missing:
        lines = "\n  - ".join(f"{m} (add e.g. `{m} = ...` to a .gin file or --gin)" for m in missing)
        raise ValueError(f"gin.REQUIRED settings without a value:\n  - {lines}")


def gin_bindings() -> dict[str, str]:
    """``{"scope/Class.param": "value"}`` of every binding in this process: values as gin writes
    them, else their repr without the memory address (a function bound from Python)."""
    out: dict[str, str] = {}
    for (scope, selector), params in gin.config._CONFIG.items():  # noqa: SLF001 - no public listing API
        for param, value in params.items():
            key = gin.config._format_binding_key(scope, selector, param)  # noqa: SLF001
            text = gin.config._format_value(value)  # noqa: SLF001
            out[key] = text if text is not None else _ADDRESS.sub("", repr(value))
    return out


def binding_differences(reference: dict[str, str], mine: dict[str, str], who: str) -> list[str]:
    """One line per binding on which ``mine`` differs from rank 0's ``reference``."""
    lines = []
    for key in sorted(set(reference) | set(mine)):
        ref, own = reference.get(key, "<unbound>"), mine.get(key, "<unbound>")
        if ref != own:
            lines.append(f"{key}: rank 0 has {ref}, {who} has {own}")
    return lines


class GinRankCheck(pl.Callback):
    """Stop every rank of a multi-process run whose ranks hold different gin configs.

    Each DDP rank builds its own agent from its own gin config; a rank started without the
    command line's gin settings (amago-pl before this check: Lightning's launcher re-ran a
    command line stripped of ``--gin``) silently trains other hyperparameters, or crashes inside
    DDP when layer sizes differ. ``setup`` runs on every rank after the process group exists and
    before DDP wraps the model (lightning/pytorch/trainer/trainer.py, ``_run``: the setup hooks
    come before ``strategy.setup``), so the error names the differing bindings instead.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size < 2:
            return
        strategy = trainer.strategy
        mine = gin_bindings()
        reference = strategy.broadcast(mine, src=0)
        differences = binding_differences(reference, mine, f"rank {trainer.global_rank}")
        if strategy.reduce_boolean_decision(not differences, all=True):
            return
        # Every rank learns every rank's differences (one broadcast per rank, only on failure).
        report: list[str] = []
        for rank in range(trainer.world_size):
            report += strategy.broadcast(differences, src=rank)
        raise RuntimeError(
            "the DDP ranks hold different gin configs (every rank must be started with the same "
            "--gin items and gin files):\n  - " + "\n  - ".join(report)
        )


# ------------------------------------------------------------------ gin on the command line


def gin_flags_appended(argv: list[str]) -> list[str]:
    """``--gin X`` -> ``--gin+ X``: each item is added to the list (the YAML's first), the way
    ``--gin`` was always repeated. jsonargparse's ``+`` suffix appends to a list argument."""
    out = []
    for arg in argv:
        if arg == "--gin":
            arg = "--gin+"
        elif arg.startswith("--gin="):
            arg = "--gin+=" + arg[len("--gin=") :]
        out.append(arg)
    return out


def split_gin_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Pull every ``--gin X`` / ``--gin=X`` out of argv (kept in order). Returns (gin items, rest).

    ``amago-pl`` no longer needs this (``--gin`` is a CLI argument); kept for scripts that parse
    their own command line."""
    items: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--gin":
            if i + 1 >= len(argv):
                raise SystemExit("--gin needs a value: a .gin file or a binding like 'Agent.gamma = 0.99'")
            items.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--gin="):
            items.append(arg[len("--gin=") :])
        else:
            rest.append(arg)
        i += 1
    return items, rest


def resolve_gin_file(item: str) -> str | None:
    """The path of a ``--gin`` file: as given (relative to the working directory), else relative to
    the installed package's parent, so ``amago_pl/configs/x.gin`` works outside a source checkout.
    None when neither exists."""
    if os.path.exists(item):
        return item
    packaged = Path(__file__).resolve().parents[2] / item
    if not os.path.isabs(item) and packaged.is_file():
        return str(packaged)
    return None
