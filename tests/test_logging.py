"""The ``trio_mesos`` logger hierarchy is the one docs/installation.rst documents.

Loggers are named for what they log (``trio_mesos.driver``), never for a private
module (``trio_mesos._driver``): every ``logging.getLogger(...)`` in the package
names a documented logger, and every documented logger is used.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

import trio_mesos

PACKAGE = pathlib.Path(trio_mesos.__file__).resolve().parent
ROOT = PACKAGE.parent
LOGGING_DOCS = ROOT / "docs" / "installation.rst"

#: Modules whose logger is being renamed: path -> the documented name it must
#: use (an expected failure until then). Empty: every module is named.
PENDING: dict[str, str] = {}


def documented_loggers() -> set[str]:
    """The first column of the logger table under the "Logging" heading."""
    text = LOGGING_DOCS.read_text(encoding="utf-8")
    section = text[text.index("\nLogging\n-------") :]
    return set(re.findall(r"^``(trio_mesos[\w.]*)``  ", section, flags=re.MULTILINE))


def logger_names(source: str, module: str) -> list[str]:
    """The logger names ``source`` asks ``logging.getLogger`` for (``__name__`` is ``module``)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "getLogger"
            and node.args
        ):
            arg = node.args[0]
            if isinstance(arg, ast.Name) and arg.id == "__name__":
                names.append(module)
            else:
                assert isinstance(arg, ast.Constant), ast.unparse(node)
                names.append(str(arg.value))
    return names


def loggers_of(module: str) -> list[str]:
    """The logger names of ``module``, a path relative to the package."""
    path = PACKAGE / module
    dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return logger_names(path.read_text(encoding="utf-8"), dotted)


def problems(names: list[str]) -> list[str]:
    """Names that are not in the documented table or that name a private module."""
    documented = documented_loggers()
    return [
        name
        for name in names
        if name not in documented or any(part.startswith("_") for part in name.split("."))
    ]


MODULES = sorted(
    str(path.relative_to(PACKAGE))
    for path in PACKAGE.rglob("*.py")
    if "_proto" not in path.parts and "getLogger" in path.read_text(encoding="utf-8")
)


def test_the_table_lists_the_hierarchy() -> None:
    names = documented_loggers()
    assert "trio_mesos" in names
    assert all(name.startswith("trio_mesos.") for name in names - {"trio_mesos"})
    assert len(names) >= 5


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(m, marks=pytest.mark.xfail(strict=True, reason="renamed with issue 12"))
        if m in PENDING
        else m
        for m in MODULES
    ],
)
def test_each_logger_is_documented_and_named_for_what_it_logs(module: str) -> None:
    names = loggers_of(module)
    assert names
    assert problems(names) == []


def test_every_documented_logger_is_used() -> None:
    used = {name for module in MODULES if module not in PENDING for name in loggers_of(module)}
    assert documented_loggers() - {"trio_mesos"} == used | set(PENDING.values())


def test_the_check_can_fail() -> None:
    source = 'import logging\nlog = logging.getLogger(__name__)\nx = logging.getLogger("t")\n'
    names = logger_names(source, "trio_mesos._private")
    assert names == ["trio_mesos._private", "t"]
    assert problems(names) == names
    assert problems(["trio_mesos.driver"]) == []
