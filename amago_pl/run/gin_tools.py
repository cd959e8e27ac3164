"""What gin will pass to the classes a run builds: unbound ``gin.REQUIRED`` keywords, and the
bound value of one keyword (to catch a setting given both to a front door and to gin).

gin has no public API to list bindings or registered configurables, so these read its registry.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import gin

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
