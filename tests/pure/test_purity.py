"""The sans-IO boundary: pure modules never import trio, h11, os, time or socket.

Pure modules take the outside world as arguments (``now``, a ``random.Random``,
the environment as a mapping), which is what lets them be tested with plain
``@given`` and driven by ``trio.testing.MockClock`` through the shell.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import trio_mesos

PACKAGE = pathlib.Path(trio_mesos.__file__).resolve().parent

PURE_MODULES = [
    "_errors",
    "_status",
    "_config",
    "_backoff",
    "_recordio",
    "_messages",
    "_protobuf_compat",
    "_acks",
    "_answers",
    "_session",
    "_record",
    # The FakeAgent's answer rules and book-keeping (trio_mesos.testing).
    "testing/_request",
    "testing/_rules",
    "testing/_auth",
    "testing/_tasks",
    "testing/_subscribed",
]
FORBIDDEN = frozenset({"trio", "h11", "os", "time", "socket", "ssl", "outcome", "threading"})


def forbidden_imports(source: str) -> list[str]:
    """Top-level names of forbidden modules that ``source`` imports, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names = [str(node.args[0].value)]
        else:
            continue
        found += [n for n in names if n.split(".")[0] in FORBIDDEN]
    return found


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_no_io(module: str) -> None:
    source = (PACKAGE / f"{module}.py").read_text()
    assert forbidden_imports(source) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "import trio",
        "import trio.testing",
        "from trio import sleep",
        "import os.path",
        "from time import monotonic",
        "def f():\n    import h11\n",
        "import socket as s",
        "x = __import__('time')",
    ],
)
def test_the_purity_check_catches_forbidden_imports(snippet: str) -> None:
    # A test of the test: each of these must be caught, wherever it stands.
    assert forbidden_imports("import json\n" + snippet) != []


@pytest.mark.parametrize(
    "snippet",
    ["import json", "from . import _errors", "from .os import x", "import random"],
)
def test_the_purity_check_allows_the_rest(snippet: str) -> None:
    assert forbidden_imports(snippet) == []


def test_a_pure_module_that_imports_trio_fails(tmp_path: pathlib.Path) -> None:
    # The same check, on a copy of a real pure module with a trio import added.
    source = (PACKAGE / "_recordio.py").read_text()
    bad = source.replace("import enum\n", "import enum\nimport trio\n", 1)
    assert bad != source
    assert forbidden_imports(bad) == ["trio"]
