"""The package's import structure: the driver's sibling tasks never import the driver,
and no module imports itself back through others (``TYPE_CHECKING``-only imports aside).

Beside test_purity: that one keeps I/O out of the pure core, this one keeps the
shell's layers apart (issue "The driver's end is a cancel scope, by construction").
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import trio_mesos

PACKAGE = pathlib.Path(trio_mesos.__file__).resolve().parent

#: The driver's sibling-task modules: they report through narrow interfaces.
TASK_MODULES = ["_subscription", "_calls", "_dispatch", "_events", "_exits", "_answers"]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(module: str) -> set[str]:
    """The package modules ``module`` imports at run time (``trio_mesos.x`` names)."""
    path = PACKAGE / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skipped |= {id(inner) for stmt in node.body for inner in ast.walk(stmt)}
    package = module.rsplit(".", 1)[0] if "." in module else ""
    if path.name == "__init__.py":
        package = module
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0:
            if node.module and node.module.startswith("trio_mesos."):
                found.add(node.module.removeprefix("trio_mesos."))
            continue
        base = package.split(".") if package else []
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        target = ".".join([*base, *([node.module] if node.module else [])])
        if node.module is None:  # from . import x
            found |= {".".join([*base, alias.name]) for alias in node.names}
        else:
            found.add(target)
    return {name for name in found if name and _exists(name)}


def _exists(name: str) -> bool:
    path = PACKAGE / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def all_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "_proto":
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            names.append(".".join(parts))
    return names


@pytest.mark.parametrize("module", TASK_MODULES)
def test_a_task_module_never_imports_the_driver(module: str) -> None:
    assert "_driver" not in runtime_imports(module)


def test_the_package_has_no_import_cycle() -> None:
    graph = {module: runtime_imports(module) for module in all_modules()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == "" or nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in graph:
        if module not in state and module != "":
            visit(module, [module])
    # The package's __init__ re-exports: it may import anything, nothing imports it back.
    assert [c for c in cycles if "" not in c] == []


def test_the_checker_sees_imports_and_type_checking_blocks() -> None:
    # The test of the test: _executor imports _driver only for type checking.
    assert "_driver" not in runtime_imports("_executor")
    assert "_events" in runtime_imports("_driver")
    assert "_driver" in runtime_imports("")  # the package's __init__
