"""Hypothesis strategies shared by the tests.

Messages are built with the public generated classes (``trio_mesos.v1``) and
fill the fields an executor actually reads or writes (PROTOCOL.md §2.3), with
every proto2 required field present so that they encode in both media types.
Floats are finite: NaN breaks message equality and JSON has no infinity.
"""

from __future__ import annotations

import itertools
import uuid as _uuid
from collections.abc import Iterable

from hypothesis import strategies as st

from trio_mesos.v1 import executor_pb2, mesos_pb2

__all__ = [
    "EVENTS_BY_TYPE",
    "NON_STAGING_STATES",
    "TASK_STATES",
    "byte_splits",
    "check_statuses",
    "events",
    "fresh_uuid",
    "ids",
    "kill_policies",
    "labels",
    "split",
    "task_groups",
    "task_ids",
    "task_infos",
    "task_statuses",
    "text",
    "uuid_bytes",
]

Event = executor_pb2.Event

#: Every TaskState value, TASK_STAGING included.
TASK_STATES = tuple(v.number for v in mesos_pb2.TaskState.DESCRIPTOR.values)
#: The states an executor may send.
NON_STAGING_STATES = tuple(s for s in TASK_STATES if s != mesos_pb2.TASK_STAGING)
_REASONS = tuple(v.number for v in mesos_pb2.TaskStatus.Reason.DESCRIPTOR.values)
_SOURCES = tuple(v.number for v in mesos_pb2.TaskStatus.Source.DESCRIPTOR.values)

# ----------------------------------------------------------------------------
# Scalars
# ----------------------------------------------------------------------------

#: Text that protobuf can hold in a ``string`` field (valid UTF-8: no surrogates).
text = st.text(st.characters(codec="utf-8"), max_size=20)

#: An id value (TaskID, ExecutorID, FrameworkID, AgentID): any non-empty text.
ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30)

#: Mostly realistic task ids, sometimes arbitrary text.
task_ids = st.one_of(
    st.from_regex(r"\A[a-z][a-z0-9_.-]{0,20}\Z"),
    st.uuids().map(str),
    ids,
)

finite = st.floats(allow_nan=False, allow_infinity=False)
int64 = st.integers(-(2**63), 2**63 - 1)


def uuid_bytes(version: int | None = 4) -> st.SearchStrategy[bytes]:
    """16 raw bytes of an RFC 4122 UUID of ``version`` (any version when None)."""
    return st.uuids(version=version).map(lambda u: u.bytes)


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets, as non-empty pieces.

    Offsets outside ``1..len(data)-1`` and duplicates are ignored: an empty
    piece would mean end-of-stream to ``receive_data`` (h11's convention).
    """
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def byte_splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` split into non-empty pieces at arbitrary points.

    Joining the pieces always gives ``data`` back; ``b""`` gives no pieces.
    """
    if len(data) < 2:
        return split(data, [])
    cuts = draw(st.lists(st.integers(1, len(data) - 1), max_size=min(len(data), 40)))
    return split(data, cuts)


# ----------------------------------------------------------------------------
# Messages
# ----------------------------------------------------------------------------


@st.composite
def labels(draw: st.DrawFn) -> mesos_pb2.Labels:
    result = mesos_pb2.Labels()
    for key, value in draw(st.lists(st.tuples(text, st.none() | text), max_size=3)):
        label = result.labels.add(key=key)
        if value is not None:
            label.value = value
    return result


@st.composite
def check_statuses(draw: st.DrawFn) -> mesos_pb2.CheckStatusInfo:
    """A well-formed CheckStatusInfo: type set and its matching field present."""
    kind = draw(st.sampled_from(["command", "http", "tcp"]))
    check = mesos_pb2.CheckStatusInfo()
    if kind == "command":
        check.type = mesos_pb2.CheckInfo.COMMAND
        check.command.SetInParent()
        if draw(st.booleans()):
            check.command.exit_code = draw(st.integers(-(2**31), 2**31 - 1))
    elif kind == "http":
        check.type = mesos_pb2.CheckInfo.HTTP
        check.http.SetInParent()
        if draw(st.booleans()):
            check.http.status_code = draw(st.integers(0, 2**32 - 1))
    else:
        check.type = mesos_pb2.CheckInfo.TCP
        check.tcp.SetInParent()
        if draw(st.booleans()):
            check.tcp.succeeded = draw(st.booleans())
    return check


@st.composite
def task_statuses(
    draw: st.DrawFn,
    states: tuple[int, ...] = TASK_STATES,
    stamped: bool | None = None,
) -> mesos_pb2.TaskStatus:
    """A TaskStatus as a caller would build it (``stamped=False``), as it goes
    on the wire (``stamped=True``: uuid, source, executor_id, timestamp set), or
    either (None)."""
    status = mesos_pb2.TaskStatus(state=draw(st.sampled_from(states)))  # type: ignore[arg-type]
    status.task_id.value = draw(task_ids)
    if draw(st.booleans()):
        status.message = draw(text)
    if draw(st.booleans()):
        status.data = draw(st.binary(max_size=40))
    if draw(st.booleans()):
        status.reason = draw(st.sampled_from(_REASONS))  # type: ignore[assignment]
    if draw(st.booleans()):
        status.healthy = draw(st.booleans())
    if draw(st.booleans()):
        status.labels.CopyFrom(draw(labels()))
    if draw(st.booleans()):
        status.check_status.CopyFrom(draw(check_statuses()))
    if stamped is None:
        stamped = draw(st.booleans())
    if stamped:
        status.uuid = draw(uuid_bytes())
        status.source = mesos_pb2.TaskStatus.SOURCE_EXECUTOR
        status.executor_id.value = draw(ids)
        status.timestamp = draw(finite)
        if draw(st.booleans()):
            status.agent_id.value = draw(ids)
    elif stamped is False and draw(st.booleans()):
        # What a caller may leave in: a timestamp, a stale uuid, any source.
        if draw(st.booleans()):
            status.timestamp = draw(finite)
        if draw(st.booleans()):
            status.uuid = draw(st.binary(max_size=20))
        if draw(st.booleans()):
            status.source = draw(st.sampled_from(_SOURCES))  # type: ignore[assignment]
    return status


@st.composite
def kill_policies(draw: st.DrawFn) -> mesos_pb2.KillPolicy:
    policy = mesos_pb2.KillPolicy()
    policy.grace_period.nanoseconds = draw(int64)
    return policy


@st.composite
def task_infos(draw: st.DrawFn) -> mesos_pb2.TaskInfo:
    """A TaskInfo as the agent sends it in LAUNCH (name, ids, resources, command...)."""
    task = mesos_pb2.TaskInfo(name=draw(text))
    task.task_id.value = draw(task_ids)
    task.agent_id.value = draw(ids)
    for name, value in draw(st.lists(st.tuples(text, finite), max_size=3)):
        resource = task.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = value
    if draw(st.booleans()):
        task.command.value = draw(text)
        if draw(st.booleans()):
            task.command.shell = draw(st.booleans())
        task.command.arguments.extend(draw(st.lists(text, max_size=3)))
    if draw(st.booleans()):
        task.data = draw(st.binary(max_size=40))
    if draw(st.booleans()):
        task.kill_policy.CopyFrom(draw(kill_policies()))
    if draw(st.booleans()):
        task.labels.CopyFrom(draw(labels()))
    return task


@st.composite
def task_groups(draw: st.DrawFn) -> mesos_pb2.TaskGroupInfo:
    group = mesos_pb2.TaskGroupInfo()
    group.tasks.extend(draw(st.lists(task_infos(), max_size=2)))
    return group


@st.composite
def _subscribed(draw: st.DrawFn) -> Event:
    event = Event(type=Event.SUBSCRIBED)
    s = event.subscribed
    s.executor_info.executor_id.value = draw(ids)
    if draw(st.booleans()):
        s.executor_info.framework_id.value = draw(ids)
    if draw(st.booleans()):
        s.executor_info.command.value = draw(text)
    s.framework_info.user = draw(text)
    s.framework_info.name = draw(text)
    if draw(st.booleans()):
        s.framework_info.id.value = draw(ids)
    if draw(st.booleans()):
        s.framework_info.checkpoint = draw(st.booleans())
    s.agent_info.hostname = draw(text)
    if draw(st.booleans()):
        s.agent_info.id.value = draw(ids)
    if draw(st.booleans()):
        s.agent_info.port = draw(st.integers(-(2**31), 2**31 - 1))
    if draw(st.booleans()):
        s.container_id.value = draw(ids)
    return event


@st.composite
def _launch(draw: st.DrawFn) -> Event:
    event = Event(type=Event.LAUNCH)
    event.launch.task.CopyFrom(draw(task_infos()))
    return event


@st.composite
def _launch_group(draw: st.DrawFn) -> Event:
    event = Event(type=Event.LAUNCH_GROUP)
    event.launch_group.task_group.CopyFrom(draw(task_groups()))
    return event


@st.composite
def _kill(draw: st.DrawFn) -> Event:
    event = Event(type=Event.KILL)
    event.kill.task_id.value = draw(task_ids)
    if draw(st.booleans()):
        event.kill.kill_policy.CopyFrom(draw(kill_policies()))
    return event


@st.composite
def _acknowledged(draw: st.DrawFn) -> Event:
    event = Event(type=Event.ACKNOWLEDGED)
    event.acknowledged.task_id.value = draw(task_ids)
    event.acknowledged.uuid = draw(uuid_bytes())
    return event


@st.composite
def _message(draw: st.DrawFn) -> Event:
    event = Event(type=Event.MESSAGE)
    event.message.data = draw(st.binary(max_size=60))
    return event


@st.composite
def _error(draw: st.DrawFn) -> Event:
    event = Event(type=Event.ERROR)
    event.error.message = draw(text)
    return event


#: One strategy per event type, keyed by the type's name.
EVENTS_BY_TYPE: dict[str, st.SearchStrategy[Event]] = {
    "SUBSCRIBED": _subscribed(),
    "LAUNCH": _launch(),
    "LAUNCH_GROUP": _launch_group(),
    "KILL": _kill(),
    "ACKNOWLEDGED": _acknowledged(),
    "MESSAGE": _message(),
    "ERROR": _error(),
    "SHUTDOWN": st.just(Event.SHUTDOWN).map(lambda t: Event(type=t)),
    "HEARTBEAT": st.just(Event.HEARTBEAT).map(lambda t: Event(type=t)),
}


def events() -> st.SearchStrategy[Event]:
    """An agent Event of any known type with its payload."""
    return st.one_of(*EVENTS_BY_TYPE.values())


def fresh_uuid() -> bytes:
    """A new uuid4, for examples that need one valid uuid."""
    return _uuid.uuid4().bytes
