"""The state machines of trio_mesos as data, and Graphviz DOT made from them.

Pure Python with no Sphinx import, so the test suite can check it
(``tests/test_docs.py``) without the documentation tools installed.

Two machines are drawn:

* the **session** (``trio_mesos._session``): its ``TRANSITIONS`` table maps
  each state to the inputs it reacts to and the states each input may lead
  to. :func:`session_edges` turns it into one edge per
  ``(state, input, target)``, nothing added, nothing dropped.
* the **delivery** of one unacknowledged update (``trio_mesos._acks.Delivery``).
  The ledger keeps no table, so :func:`delivery_edges` *measures* one: it puts
  a fresh :class:`~trio_mesos._acks.AckLedger` entry into each state with the
  ledger's own methods, applies each ledger operation and records where the
  entry ends up. Operations the ledger refuses from a state
  (``LocalProtocolError``) and those that leave the state unchanged give no
  edge. The diagram is what the code does, whatever its docstring says.
"""

from __future__ import annotations

import enum
import uuid as uuid_module
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DELIVERY_OPERATIONS",
    "GONE",
    "NEW",
    "SESSION_VIEWS",
    "Edge",
    "delivery_dot",
    "delivery_edges",
    "session_dot",
    "session_edges",
    "session_rows",
]


@dataclass(frozen=True)
class Edge:
    """One transition: ``source --label--> target``.

    ``source`` and ``target`` are enum members (or the pseudo-states
    :data:`NEW` and :data:`GONE`); ``label`` is the input or operation.
    """

    source: Any
    label: Any
    target: Any


class _Pseudo(enum.Enum):
    NEW = "new"
    GONE = "gone"


#: Pseudo-state before an update exists.
NEW = _Pseudo.NEW
#: Pseudo-state of an update that left the ledger (acknowledged or refused).
GONE = _Pseudo.GONE


def _position(member: Any) -> int:
    return list(type(member)).index(member)


def _name(member: Any) -> str:
    return str(getattr(member, "name", member))


def _text(member: Any) -> str:
    value = getattr(member, "value", member)
    return str(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# ----------------------------------------------------------------------------
# The session
# ----------------------------------------------------------------------------


Table = Mapping[Any, Mapping[Any, Iterable[Any]]]


def session_edges(transitions: Table | None = None) -> list[Edge]:
    """One :class:`Edge` per ``(state, input, target)`` of ``transitions``.

    ``transitions`` defaults to ``trio_mesos._session.TRANSITIONS``. The order
    is the table's: states as listed, inputs as listed, targets in their
    enum's order.
    """
    if transitions is None:
        from trio_mesos._session import TRANSITIONS

        transitions = TRANSITIONS
    edges = []
    for state, inputs in transitions.items():
        for kind, targets in inputs.items():
            for target in sorted(targets, key=_position):
                edges.append(Edge(state, kind, target))
    return edges


def session_rows(transitions: Table | None = None) -> list[tuple[str, str, list[str]]]:
    """``(state, input, [targets])`` per entry of the table, as display text."""
    if transitions is None:
        from trio_mesos._session import TRANSITIONS

        transitions = TRANSITIONS
    return [
        (_text(state), _text(kind), [_text(t) for t in sorted(targets, key=_position)])
        for state, inputs in transitions.items()
        for kind, targets in inputs.items()
    ]


#: Edge styles by input (``InputKind.value``): the inputs every live state
#: accepts are drawn quieter, so the protocol's own path stands out.
_SESSION_EDGE_STYLE = {
    "abort": 'color="#a40000", fontcolor="#a40000", style=dashed',
    "stop": 'color="#204a87", fontcolor="#204a87", style=dashed',
    "timer": 'color="#8f5902", fontcolor="#8f5902"',
}


#: Views of the session diagram: which inputs each one draws. ``stop`` and
#: ``abort`` are accepted in every live state, so they get their own view; the
#: two views together draw every edge of the table exactly once.
SESSION_VIEWS: dict[str, Callable[[Edge], bool]] = {
    "all": lambda edge: True,
    "protocol": lambda edge: _text(edge.label) not in ("stop", "abort"),
    "endings": lambda edge: _text(edge.label) in ("stop", "abort"),
}


def session_dot(edges: Iterable[Edge] | None = None, view: str = "all") -> str:
    """The session diagram in DOT: one DOT edge per :class:`Edge` the ``view`` keeps."""
    keep = SESSION_VIEWS[view]
    edges = [edge for edge in (session_edges() if edges is None else edges) if keep(edge)]
    states: list[Any] = []
    for edge in edges:
        for state in (edge.source, edge.target):
            if state not in states:
                states.append(state)
    states.sort(key=_position)
    finals = [_name(state) for state in states if getattr(state, "final", False)]
    lines = [
        "digraph session {",
        '  graph [rankdir=TB, nodesep=0.5, ranksep=0.55, bgcolor="transparent"];',
        '  node [shape=box, style="rounded,filled", fillcolor="#eeeeec", fontsize=11];',
        "  edge [fontsize=9, arrowsize=0.7];",
    ]
    for state in states:
        final = bool(getattr(state, "final", False))
        extra = ', peripheries=2, fillcolor="#d3d7cf"' if final else ""
        lines.append(f"  {_name(state)} [label={_quote(_text(state))}{extra}];")
    if finals:
        lines.append("  {rank=sink; " + "; ".join(finals) + ";}")
    for edge in edges:
        style = _SESSION_EDGE_STYLE.get(_text(edge.label), "")
        attrs = f"label={_quote(_text(edge.label))}" + (f", {style}" if style else "")
        lines.append(f"  {_name(edge.source)} -> {_name(edge.target)} [{attrs}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# The delivery of one update (measured on the ledger)
# ----------------------------------------------------------------------------

_TASK_ID = "task"


def _operations() -> dict[str, Callable[[Any, bytes], object]]:
    return {
        "update_sending": lambda ledger, uuid: ledger.update_sending(uuid),
        "update_accepted": lambda ledger, uuid: ledger.update_accepted(uuid),
        "update_failed": lambda ledger, uuid: ledger.update_failed(uuid),
        "disconnected": lambda ledger, uuid: ledger.disconnected(),
        "subscribed": lambda ledger, uuid: ledger.subscribed(ledger.subscribe_lists()),
        "acknowledged": lambda ledger, uuid: ledger.acknowledged(_TASK_ID, uuid),
        "update_rejected": lambda ledger, uuid: ledger.update_rejected(uuid),
    }


#: The ``AckLedger`` operations that may move an update, with what makes the
#: driver call each one (the labels of the delivery diagram).
DELIVERY_OPERATIONS: dict[str, str] = {
    "update_queued": "send_status_update()",
    "update_sending": "UPDATE call goes out",
    "update_accepted": "202 Accepted",
    "update_failed": "5xx, 404, 403 not subscribed,\nno answer, connection error",
    "disconnected": "event stream lost",
    "subscribed": "SUBSCRIBED to a SUBSCRIBE\nthat listed it",
    "acknowledged": "ACKNOWLEDGED",
    "update_rejected": "other 4xx",
}


def _ledger_in(state: Any) -> tuple[Any, bytes]:
    """A ledger whose one update is in delivery ``state``, reached with the ledger's methods."""
    from trio_mesos._acks import AckLedger, Delivery
    from trio_mesos.v1 import mesos_pb2

    ledger = AckLedger()
    task = mesos_pb2.TaskInfo(name=_TASK_ID)
    task.task_id.value = _TASK_ID
    task.agent_id.value = "agent"
    ledger.task_received(task)
    status = mesos_pb2.TaskStatus(state=mesos_pb2.TASK_RUNNING)
    status.task_id.value = _TASK_ID
    status.uuid = uuid_module.uuid4().bytes
    entry = ledger.update_queued(status)
    if state is not Delivery.QUEUED:
        ledger.update_sending(entry.uuid)
    if state is Delivery.ACCEPTED:
        ledger.update_accepted(entry.uuid)
    if entry.delivery is not state:  # pragma: no cover - the ledger changed its rules
        raise RuntimeError(f"cannot bring an update into delivery state {state}")
    return ledger, entry.uuid


def delivery_edges() -> list[Edge]:
    """The delivery transitions of one update, measured on a real ``AckLedger``."""
    from trio_mesos._acks import Delivery
    from trio_mesos._errors import LocalProtocolError

    first, _ = _ledger_in(Delivery.QUEUED)
    (entry,) = list(first)
    edges = [Edge(NEW, "update_queued", entry.delivery)]
    for state in Delivery:
        for name, operation in _operations().items():
            ledger, uuid = _ledger_in(state)
            try:
                operation(ledger, uuid)
            except LocalProtocolError:
                continue  # refused from this state: no transition
            after = ledger.get(uuid)
            target = GONE if after is None else after.delivery
            if target is not state:
                edges.append(Edge(state, name, target))
    return edges


def delivery_dot(edges: Iterable[Edge] | None = None) -> str:
    """The delivery diagram in DOT; parallel edges are merged into one arrow
    whose label lists every operation."""
    from trio_mesos._acks import Delivery

    edges = list(delivery_edges() if edges is None else edges)
    merged: dict[tuple[Any, Any], list[str]] = {}
    for edge in edges:
        merged.setdefault((edge.source, edge.target), []).append(str(edge.label))
    lines = [
        "digraph delivery {",
        '  graph [rankdir=LR, nodesep=0.6, ranksep=0.9, bgcolor="transparent"];',
        '  node [shape=box, style="rounded,filled", fillcolor="#eeeeec", fontsize=11];',
        "  edge [fontsize=9, arrowsize=0.7];",
        '  NEW [label="", shape=circle, style=filled, fillcolor=black, width=0.15];',
        '  GONE [label="left the ledger", shape=box, peripheries=2, fillcolor="#d3d7cf"];',
    ]
    for state in Delivery:
        lines.append(f"  {_name(state)} [label={_quote(_name(state))}];")
    for (source, target), names in merged.items():
        text_lines: list[str] = []
        for name in names:
            text_lines.append(f"{name}()")
            for part in DELIVERY_OPERATIONS.get(name, "").split("\n"):
                text_lines.append(f"   {part}")
        escaped = (line.replace("\\", "\\\\").replace('"', '\\"') for line in text_lines)
        label = "".join(line + "\\l" for line in escaped)
        lines.append(f'  {_name(source)} -> {_name(target)} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
