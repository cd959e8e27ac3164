"""The package's layer order and the absence of import circles, read from the source.

Every ``import``/``from ... import`` in ``amago_pl`` counts, function-level ones included
(``if TYPE_CHECKING:`` blocks excluded: they never run). Layers, lowest first:

    types < nets < modules;   types < envs;   types < datamodules;
    {envs, modules} < policy;   {envs, datamodules, modules, policy} < callbacks < run < {experiment, cli, cli_utils}

``testing`` (synthetic batches, scripted envs) may import anything and nothing imports it;
``compat`` holds the old-path alias table and resolves names by string, so it imports nothing
of the package at module level. Nets never import Lightning, envs or disk code (the store).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "amago_pl"

# layer -> the layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "types": set(),
    "nets": {"types"},
    "envs": {"types"},
    "datamodules": {"types"},
    "modules": {"types", "nets"},
    "policy": {"types", "nets", "envs", "modules"},
    "callbacks": {"types", "nets", "envs", "datamodules", "modules", "policy"},
    "run": {"types", "nets", "envs", "datamodules", "modules", "policy", "callbacks"},
    "experiment": {"types", "nets", "envs", "datamodules", "modules", "policy", "callbacks", "run"},
    "cli": {"types", "nets", "envs", "datamodules", "modules", "policy", "callbacks", "run", "experiment"},
    "testing": {
        "types",
        "nets",
        "envs",
        "datamodules",
        "modules",
        "policy",
        "callbacks",
        "run",
        "experiment",
        "cli",
    },
    "compat": set(),
    "package": {"compat"},  # amago_pl/__init__.py: installs the aliases; other names resolved lazily
}
# Top-level modules that belong to a layer other than their own name.
TOP_LEVEL = {
    "types": "types",
    "experiment": "experiment",
    "cli": "cli",
    "cli_utils": "cli",
    "compat": "compat",
    "utils": "cli",  # the original's amago.utils names, mapped for porting
    "__init__": "package",
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    head = parts[1]
    if (PKG / head).is_dir():
        return head
    return TOP_LEVEL.get(head, head)


def _type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) for every import in ``path`` outside TYPE_CHECKING blocks."""
    me = module_name(path)
    return imports_in(path.read_text(), me if path.name == "__init__.py" else me.rpartition(".")[0])


def imports_in(source: str, package: str) -> list[tuple[str, int]]:
    tree = ast.parse(source)
    out: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            for child in node.orelse:  # the else branch does run
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                # `from pkg import submodule` is an import of the submodule.
                is_sub = (PKG.parent / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    PKG.parent / Path(*sub.split("."))
                ).is_dir()
                out.append((sub if is_sub else mod, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def package_files() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def internal_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in package_files():
        me = module_name(path)
        graph[me]  # noqa: B018 - every module is a node
        for mod, _ in imports_of(path):
            if mod.startswith("amago_pl") and mod != me:
                graph[me].add(mod)
    return graph


def test_every_import_follows_the_layer_order():
    bad = []
    for path in package_files():
        me = module_name(path)
        mine = layer_of(me)
        for mod, line in imports_of(path):
            if not mod.startswith("amago_pl") or mod == "amago_pl":
                continue
            theirs = layer_of(mod)
            if theirs == "compat":  # the alias table imports nothing of ours: any layer may use it
                continue
            if theirs != mine and theirs not in ALLOWED.get(mine, set()):
                bad.append(f"{path.relative_to(PKG.parent)}:{line} ({mine}) imports {mod} ({theirs})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_nets_import_no_lightning_envs_or_disk_code():
    banned = ("lightning", "pytorch_lightning", "amago_pl.envs", "amago_pl.datamodules", "amago_pl.callbacks")
    bad = []
    for path in (PKG / "nets").rglob("*.py"):
        for mod, line in imports_of(path):
            if mod.startswith(banned):
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_the_store_never_imports_nets():
    bad = [
        f"{path.relative_to(PKG.parent)}:{line} imports {mod}"
        for path in (PKG / "datamodules").rglob("*.py")
        for mod, line in imports_of(path)
        if mod.startswith(("amago_pl.nets", "amago_pl.modules"))
    ]
    assert not bad, "\n".join(bad)


def test_no_import_circles():
    graph = internal_graph()
    # Edges to a module's own parent package are how Python loads it anyway (not a circle of ours).
    for me, deps in graph.items():
        deps.difference_update({d for d in deps if me.startswith(d + ".")})
    color: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def dfs(node: str) -> None:
        color[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if color.get(dep, 0) == 0:
                dfs(dep)
            elif color.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
        stack.pop()
        color[node] = 2

    for node in sorted(graph):
        if color.get(node, 0) == 0:
            dfs(node)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from amago_pl.nets import ff\n", "amago_pl.nets.ff"),
        ("if TYPE_CHECKING:\n    import amago_pl.run\nimport os\n", "os"),
        ("def f():\n    from . import ff\n", "amago_pl.nets.ff"),
    ],
)
def test_the_parser_sees_what_python_runs(source, expected):
    assert [m for m, _ in imports_in(source, "amago_pl.nets")] == [expected]
