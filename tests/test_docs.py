"""The documentation cannot rot: its code runs here, its reference is complete,
and its state diagrams are exactly the code's tables.

* The quickstart page shows ``examples/quickstart.py`` (and nothing else as
  Python); its rehearsal against the FakeAgent runs here.
* The "Testing your executor" page shows ``docs/snippets/test_sleep_executor.py``;
  its tests are collected into this module and run with the suite.
* Every public name of ``trio_mesos`` and ``trio_mesos.testing`` has an entry
  in ``docs/reference.rst``.
* ``docs/_ext/state_tables.py`` (what the Sphinx extension draws) gives one
  edge per ``(state, input, target)`` of ``trio_mesos._session.TRANSITIONS``,
  and the delivery diagram is what ``AckLedger`` does.

``make docs`` (``sphinx -W``) checks the rest: every autodoc entry imports,
every cross-reference and include resolves.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import sys
from types import ModuleType
from typing import Any

import pytest
import trio
import trio.testing

import trio_mesos
import trio_mesos.testing
from trio_mesos._acks import Delivery
from trio_mesos._session import TRANSITIONS, InputKind, State
from trio_mesos.v1 import mesos_pb2

from .test_examples import private_names

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"


def load(path: pathlib.Path, name: str) -> ModuleType:
    """Import the file at ``path`` as module ``name`` (registered in sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


quickstart = load(EXAMPLES / "quickstart.py", "quickstart")
SNIPPETS = sorted((DOCS / "snippets").glob("test_*.py"))
snippets = [load(path, f"docs_snippet_{path.stem}") for path in SNIPPETS]
tables = load(DOCS / "_ext" / "state_tables.py", "docs_state_tables")
cluster_infos = load(DOCS / "snippets" / "cluster_infos.py", "docs_snippet_cluster_infos")

# -----------------------------------------------------------------------------
# The quickstart page
# -----------------------------------------------------------------------------

_DIRECTIVE = re.compile(r"^\s*\.\. ([\w:-]+)::[ \t]*(.*)$")


def directives(rst: str) -> list[tuple[str, str, dict[str, str]]]:
    """``(directive, argument, options)`` of every directive in ``rst``."""
    found: list[tuple[str, str, dict[str, str]]] = []
    lines = rst.splitlines()
    for number, line in enumerate(lines):
        match = _DIRECTIVE.match(line)
        if not match:
            continue
        options: dict[str, str] = {}
        for following in lines[number + 1 :]:
            option = re.match(r"^\s+:([\w-]+):\s*(.*)$", following)
            if not option:
                break
            options[option.group(1)] = option.group(2).strip()
        found.append((match.group(1), match.group(2).strip(), options))
    return found


async def test_the_quickstart_rehearsal_runs(autojump_clock: trio.testing.MockClock) -> None:
    updates = await quickstart.rehearse()
    seen = [(u.task_id.value, u.state) for u in updates]
    assert seen.count(("nap", mesos_pb2.TASK_FINISHED)) == 1
    assert seen.count(("forever", mesos_pb2.TASK_KILLED)) == 1
    assert [s for t, s in seen if t == "nap"] == [mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED]


def test_the_quickstart_page_shows_only_the_tested_example() -> None:
    found = directives((DOCS / "quickstart.rst").read_text(encoding="utf-8"))
    includes = [(arg, opts) for name, arg, opts in found if name == "literalinclude"]
    assert includes, "quickstart.rst must literalinclude examples/quickstart.py"
    source = (EXAMPLES / "quickstart.py").read_text(encoding="utf-8")
    for argument, options in includes:
        assert argument == "../examples/quickstart.py"
        for marker in ("start-at", "start-after", "end-at", "end-before"):
            if marker in options:
                assert options[marker] in source, options[marker]
    # Together the includes show the whole program, from its first import.
    lines = source.splitlines()
    shown: set[int] = set()
    for _, options in includes:
        start, end = 0, len(lines)
        for number, line in enumerate(lines):
            if options.get("start-at") and options["start-at"] in line:
                start = number
            if options.get("start-after") and options["start-after"] in line:
                start = number + 1
            if options.get("end-before") and options["end-before"] in line:
                end = number
            if options.get("end-at") and options["end-at"] in line:
                end = number + 1
        shown |= set(range(start, end))
    first_import = next(n for n, line in enumerate(lines) if line.startswith("import "))
    hidden = [
        lines[n] for n in range(first_import, len(lines))
        if n not in shown and lines[n].strip() and not lines[n].startswith("# --")
    ]
    assert hidden == [], "the quickstart page must show the whole program"
    python_blocks = [
        arg for name, arg, _ in found if name in ("code-block", "code", "sourcecode")
        and arg in ("", "python", "python3", "py", "pycon")
    ]
    assert python_blocks == [], "Python on the quickstart page must come from the tested example"
    literal_blocks = [
        line for line in (DOCS / "quickstart.rst").read_text(encoding="utf-8").splitlines()
        if line.rstrip().endswith("::") and not _DIRECTIVE.match(line)
    ]
    assert literal_blocks == [], "no untested literal blocks (``::``) on the quickstart page"


def test_the_example_and_snippets_use_only_public_names() -> None:
    for path in (EXAMPLES / "quickstart.py", *sorted((DOCS / "snippets").glob("*.py"))):
        assert private_names(path.read_text(encoding="utf-8")) == [], path.name


# The tests shown on the "Testing your executor" page run as part of this module.
for _snippet in snippets:
    for _name in dir(_snippet):
        if _name.startswith("test_"):
            assert _name not in globals(), f"two snippet tests named {_name}"
            globals()[_name] = getattr(_snippet, _name)
del _snippet, _name


def test_the_testing_page_shows_the_snippets_that_run() -> None:
    found = directives((DOCS / "testing.rst").read_text(encoding="utf-8"))
    shown = {arg for name, arg, _ in found if name == "literalinclude"}
    assert shown == {f"snippets/{path.name}" for path in SNIPPETS}
    for module in snippets:
        for name in dir(module):
            if name.startswith("test_"):
                assert globals()[name] is getattr(module, name)


def test_the_cluster_page_messages_are_complete() -> None:
    executor = cluster_infos.sleep_executor_info("framework-1")
    commands = cluster_infos.command_executor_info("framework-1")
    messages = [
        executor,
        cluster_infos.sleep_task("t1", "agent-1", executor),
        commands,
        cluster_infos.command_task("c1", "agent-1", commands),
    ]
    for message in messages:
        assert message.IsInitialized(), type(message).__name__
        type(message).FromString(message.SerializeToString())
    # a task has an executor or a command, never both (Mesos refuses it)
    assert all(not task.HasField("command") for task in messages[1::2])
    assert float(messages[1].data) > 0  # what the quickstart executor sleeps


# -----------------------------------------------------------------------------
# The API reference
# -----------------------------------------------------------------------------

_MODULE_DIRECTIVES = ("module", "currentmodule", "automodule", "py:module", "py:currentmodule")


def documented_names(rst: str) -> set[str]:
    """Fully qualified names given an entry (``auto*`` or ``py:*``) in ``rst``."""
    names: set[str] = set()
    module = ""
    for name, argument, _ in directives(rst):
        target = argument.split("(")[0].strip()
        if name in _MODULE_DIRECTIVES:
            module = target
            names.add(target)
        elif name.startswith("auto") or name.startswith("py:"):
            qualified = target if "." in target and target.startswith(module) else (
                f"{module}.{target}" if module else target
            )
            names.add(qualified)
    return names


def public_names() -> list[str]:
    names = [f"trio_mesos.{name}" for name in trio_mesos.__all__]
    names += [f"trio_mesos.testing.{name}" for name in trio_mesos.testing.__all__]
    return names


def test_every_public_name_is_in_the_reference() -> None:
    documented = documented_names((DOCS / "reference.rst").read_text(encoding="utf-8"))
    missing = [name for name in public_names() if name not in documented]
    assert missing == []
    assert "trio_mesos.v1" in documented


def test_the_reference_check_can_fail() -> None:
    rst = ".. module:: trio_mesos\n\n.. autoclass:: Executor\n   :members:\n\n.. autodata:: X\n"
    documented = documented_names(rst)
    assert "trio_mesos.Executor" in documented and "trio_mesos.X" in documented
    assert "trio_mesos.ExecutorDriver" not in documented
    assert "trio_mesos.testing.FakeAgent" not in documented_names(
        ".. module:: trio_mesos.testing\n\n.. autoclass:: AckPolicy\n"
    )


# -----------------------------------------------------------------------------
# The state diagrams
# -----------------------------------------------------------------------------


def table_triples(table: Any) -> list[tuple[Any, Any, Any]]:
    return [
        (state, kind, target)
        for state, inputs in table.items()
        for kind, targets in inputs.items()
        for target in targets
    ]


def dot_edges(dot: str) -> list[tuple[str, str, str]]:
    """``(source, target, label)`` of every edge line of a DOT graph."""
    pattern = re.compile(r'^\s*(\w+) -> (\w+) \[label="((?:[^"\\]|\\.)*)"')
    return [m.groups() for line in dot.splitlines() if (m := pattern.match(line))]


def test_one_session_edge_per_transition_of_the_table() -> None:
    edges = tables.session_edges()
    triples = table_triples(TRANSITIONS)
    assert len(edges) == len(triples) == len(set(triples))
    assert {(e.source, e.label, e.target) for e in edges} == set(triples)
    drawn = dot_edges(tables.session_dot())
    assert sorted(drawn) == sorted((s.name, t.name, k.value) for s, k, t in triples)


def test_the_session_views_draw_every_edge_exactly_once() -> None:
    everything = sorted(dot_edges(tables.session_dot(view="all")))
    protocol = dot_edges(tables.session_dot(view="protocol"))
    endings = dot_edges(tables.session_dot(view="endings"))
    assert sorted(protocol + endings) == everything
    assert {label for _, _, label in endings} == {"stop", "abort"}


def test_the_session_generator_follows_the_table_it_is_given() -> None:
    # A changed table gives a changed diagram: this is what the docs draw.
    table = {state: dict(inputs) for state, inputs in TRANSITIONS.items()}
    table[State.SUBSCRIBED][InputKind.TIMER] = frozenset({State.DISCONNECTED, State.ABORTED})
    del table[State.IDLE][InputKind.START]
    edges = tables.session_edges(table)
    assert len(edges) == len(table_triples(TRANSITIONS)) + 2 - 1
    assert (State.SUBSCRIBED, InputKind.TIMER, State.DISCONNECTED) in {
        (e.source, e.label, e.target) for e in edges
    }
    assert ("IDLE", "CONNECTING", "start") not in dot_edges(tables.session_dot(edges))
    rows = tables.session_rows(table)
    assert ("subscribed", "timer", ["disconnected", "aborted"]) in rows


def test_the_delivery_diagram_is_what_the_ledger_does() -> None:
    edges = {(e.source, e.label, e.target) for e in tables.delivery_edges()}
    queued, sending, accepted = Delivery.QUEUED, Delivery.SENDING, Delivery.ACCEPTED
    # the transitions _acks.py's docstring draws
    assert {
        (tables.NEW, "update_queued", queued),
        (queued, "update_sending", sending),
        (sending, "update_accepted", accepted),
        (sending, "update_failed", queued),
        (sending, "disconnected", queued),
        (queued, "subscribed", accepted),
    } <= edges
    # an ACK, or a refusal for good, removes an update whatever its delivery
    for state in Delivery:
        assert (state, "acknowledged", tables.GONE) in edges
        assert (state, "update_rejected", tables.GONE) in edges
    # what the ledger refuses or ignores is not drawn
    assert not any(s is accepted and t in (queued, sending) for s, _, t in edges)
    assert {s for s, _, _ in edges} | {t for _, _, t in edges} >= set(Delivery)
    dot = tables.delivery_dot()
    assert {(s, t) for s, t, _ in dot_edges(dot)} == {
        (getattr(s, "name", s), getattr(t, "name", t)) for s, _, t in edges
    }
    assert set(tables.DELIVERY_OPERATIONS) >= {label for _, label, _ in edges}


@pytest.mark.parametrize("operation", sorted(tables.DELIVERY_OPERATIONS))
def test_each_delivery_operation_is_a_ledger_method(operation: str) -> None:
    from trio_mesos._acks import AckLedger

    assert callable(getattr(AckLedger, operation))


async def test_a_cancelled_rehearsal_leaves_nothing_behind() -> None:
    # The rehearsal is a well-behaved trio program: cancelling it mid-way ends it.
    with trio.move_on_after(0.05) as scope:
        await quickstart.rehearse()
    assert scope.cancelled_caught
