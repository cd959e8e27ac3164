"""The names of amago_pl's own gin configurables, read from its source without importing it.

A checkpoint's stored gin config may bind configurables of amago_pl modules that the loading
process has not imported (an env or exploration setting when only a policy is loaded; optional
envs whose packages are absent). Those bindings are amago_pl's own and configure nothing here, so
the checkpoint check skips them; any other binding of a configurable unknown in this process is
refused (``stored_gin.checked_gin_text``). Reading the source with ``ast`` tells the two apart
without importing the optional modules (and their packages) to find out.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # .../amago_pl


def _is_gin_configurable(decorator: ast.expr) -> bool:
    """``@gin.configurable`` or ``@gin.configurable(...)``."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "configurable"


def _explicit_module(decorator: ast.expr) -> str | None:
    """The ``module=`` keyword of ``@gin.configurable(module=...)``, when it is a literal."""
    if isinstance(decorator, ast.Call):
        for kw in decorator.keywords:
            if kw.arg == "module" and isinstance(kw.value, ast.Constant):
                return str(kw.value.value)
    return None


@functools.cache
def amago_pl_configurables() -> frozenset[str]:
    """Short names (``EpsilonGreedy``) and full selectors (``amago_pl.envs.exploration.EpsilonGreedy``)
    of every class or function in amago_pl decorated with ``@gin.configurable``."""
    names: set[str] = set()
    for path in sorted(_PACKAGE_ROOT.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        module = ".".join(path.relative_to(_PACKAGE_ROOT.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        for node in ast.walk(tree):
            if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                continue
            for decorator in node.decorator_list:
                if _is_gin_configurable(decorator):
                    names.add(node.name)
                    names.add(f"{_explicit_module(decorator) or module}.{node.name}")
    return frozenset(names)


def is_amago_pl_configurable(selector: str) -> bool:
    """True when ``selector`` (``scope/name``, ``name`` or ``module.name``) names one of amago_pl's
    configurables, or an old amago / amago_pl module path that ``compat`` rewrites."""
    name = selector.split("/")[-1]
    if name in amago_pl_configurables():
        return True
    return name.startswith(("amago_pl.", "amago.")) and name.rsplit(".", 1)[-1] in amago_pl_configurables()
