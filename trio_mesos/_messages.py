"""Calls to the agent as bytes, events from the agent as typed values.

Theory of operation
-------------------
The executor endpoint takes one ``mesos.v1.executor.Call`` per request and
streams ``mesos.v1.executor.Event`` records back, either as proto2 binary
(``application/x-protobuf``) or as JSON (``application/json``). What the
agent's *code* requires (PROTOCOL.md §1.2, §1.6, §3.4):

* JSON uses the proto field names (``executor_id``); the agent silently
  drops lowerCamelCase names and then fails on missing required fields.
  Enums go by name, bytes as standard base64.
* Every UPDATE carries ``status.uuid`` = 16 raw bytes of an RFC 4122 UUID with
  a known version nibble (we use uuid4), ``status.source = SOURCE_EXECUTOR``
  (unset reads as SOURCE_MASTER and is refused), and is never
  ``TASK_STAGING``. If ``status.executor_id`` is set it must equal the call's.
  The agent does not stamp ``status.timestamp``, so we do.
* Events whose type this code does not know (a newer agent; HEARTBEAT to a
  pre-1.8 build) read as ``UNKNOWN`` and must be ignored, never fatal.

This module is pure: the caller passes the clock reading (``now``) and the
fresh uuid bytes. Protobuf decode failures are turned into
:class:`~trio_mesos.RemoteProtocolError` here and nowhere else.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

from google.protobuf.message import DecodeError, EncodeError
from google.protobuf.message import Message as _ProtoMessage

from ._errors import LocalProtocolError, RemoteProtocolError
from ._proto import executor_pb2, mesos_pb2
from ._protobuf_compat import is_repeated
from ._record import record

__all__ = [
    "TERMINAL_STATES",
    "Acknowledged",
    "AgentEvent",
    "ContentType",
    "Error",
    "Heartbeat",
    "Kill",
    "Launch",
    "LaunchGroup",
    "Message",
    "Shutdown",
    "Subscribed",
    "UnknownEvent",
    "decode_message",
    "encode_message",
    "encode_update_call",
    "heartbeat_call",
    "is_terminal",
    "is_valid_uuid",
    "message_call",
    "parse_event",
    "prepare_status",
    "subscribe_call",
    "update_call",
]

M = TypeVar("M", bound=_ProtoMessage)

Call = executor_pb2.Call
Event = executor_pb2.Event


class ContentType(str, enum.Enum):
    """The two media types the executor endpoint speaks."""

    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"

    def __str__(self) -> str:
        return self.value


#: Terminal task states (``isTerminalState`` in Mesos's protobuf_utils.cpp).
TERMINAL_STATES: Final = frozenset(
    {
        mesos_pb2.TASK_FINISHED,
        mesos_pb2.TASK_FAILED,
        mesos_pb2.TASK_KILLED,
        mesos_pb2.TASK_LOST,
        mesos_pb2.TASK_ERROR,
        mesos_pb2.TASK_DROPPED,
        mesos_pb2.TASK_GONE,
        mesos_pb2.TASK_GONE_BY_OPERATOR,
    }
)


def is_terminal(state: int) -> bool:
    """Whether a ``TaskState`` value is terminal (no update may follow it)."""
    return state in TERMINAL_STATES


def is_valid_uuid(value: bytes) -> bool:
    """Whether ``value`` passes the agent's UUID check.

    Exactly 16 bytes whose RFC 4122 version nibble is 1-5 (stout's
    ``UUID::fromBytes`` + Boost ``uuid.version()``; PROTOCOL.md §1.6).
    """
    return len(value) == 16 and 1 <= value[6] >> 4 <= 5


# --------------------------------------------------------------------------
# Encoding and decoding of whole messages
# --------------------------------------------------------------------------


def encode_message(message: _ProtoMessage, content_type: ContentType) -> bytes:
    """Serialize a Call or Event in the given media type.

    JSON is compact, uses proto field names and enum names, as the agent
    writes and reads it. Protobuf output keeps unknown fields.

    Raises:
        LocalProtocolError: a required field is missing.
    """
    if content_type is ContentType.PROTOBUF:
        try:
            return message.SerializeToString()
        except EncodeError as exc:
            raise LocalProtocolError(f"cannot encode {_name(message)}: {exc}") from None
    if not message.IsInitialized():
        raise LocalProtocolError(f"cannot encode {_name(message)}: missing {_missing(message)}")
    # Imported here: the JSON path is the rare one, and these cost start-up time.
    import json

    from google.protobuf import json_format

    document = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return json.dumps(document, separators=(",", ":")).encode()


def decode_message(data: bytes, content_type: ContentType, message_type: type[M]) -> M:
    """Parse bytes into a message of ``message_type`` (Call or Event).

    Unknown fields are kept in protobuf and ignored in JSON (the agent's JSON
    never carries any we need); unknown enum names in JSON leave the field
    unset, so an unknown event type reads as ``UNKNOWN``.

    Raises:
        RemoteProtocolError: the bytes are not a valid message of that type.
    """
    message = message_type()
    if content_type is ContentType.PROTOBUF:
        try:
            message.ParseFromString(data)
        except DecodeError as exc:
            raise RemoteProtocolError(f"undecodable protobuf {_name(message)}: {exc}") from None
        _check_strings(message)
    else:
        import json

        from google.protobuf import json_format

        try:
            document = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise RemoteProtocolError(f"undecodable JSON {_name(message)}: {exc}") from None
        if not isinstance(document, dict):
            raise RemoteProtocolError(
                f"JSON {_name(message)} must be an object, not {type(document).__name__}"
            )
        try:
            _check_base64(document, message.DESCRIPTOR)
            json_format.ParseDict(document, message, ignore_unknown_fields=True)
        except Exception as exc:  # json_format raises a zoo: ParseError, OverflowError, ...
            raise RemoteProtocolError(f"invalid JSON {_name(message)}: {exc}") from None
    if not message.IsInitialized():
        raise RemoteProtocolError(
            f"{_name(message)} is missing required fields: {_missing(message)}"
        )
    return message


# How _check_strings treats a field, decided once per field descriptor (it runs
# on every event received: comparing types and reading options per field was
# most of the cost of parsing an ACKNOWLEDGED).
_SKIP: Final = 0
_STRING: Final = 1
_STRINGS: Final = 2
_MESSAGE: Final = 3
_MESSAGES: Final = 4
_MAP: Final = 5
_MAP_OF_MESSAGES: Final = 6
_FIELD_KINDS: dict[Any, int] = {}


def _field_kind(field: Any) -> int:
    kind = _FIELD_KINDS.get(field)
    if kind is None:
        repeated = is_repeated(field)
        if field.type == field.TYPE_STRING:
            kind = _STRINGS if repeated else _STRING
        elif field.type == field.TYPE_MESSAGE:
            entry = field.message_type
            assert entry is not None
            if entry.GetOptions().map_entry:
                value_field = entry.fields_by_name["value"]
                kind = _MAP_OF_MESSAGES if value_field.type == value_field.TYPE_MESSAGE else _MAP
            else:
                kind = _MESSAGES if repeated else _MESSAGE
        else:
            kind = _SKIP
        _FIELD_KINDS[field] = kind
    return kind


def _check_strings(message: _ProtoMessage) -> None:
    """Reject ``string`` fields that are not UTF-8 (upb hands them back as bytes in proto2)."""
    for field, value in message.ListFields():
        kind = _FIELD_KINDS.get(field)
        if kind is None:
            kind = _field_kind(field)
        if kind == _SKIP:
            continue
        if kind == _MESSAGE:
            _check_strings(value)
        elif kind in (_STRING, _STRINGS):
            for item in value if kind == _STRINGS else (value,):
                if not isinstance(item, str):
                    raise RemoteProtocolError(
                        f"invalid UTF-8 in string field '{field.full_name}': {item!r:.80}"
                    )
        elif kind == _MESSAGES:
            for item in value:
                _check_strings(item)
        else:
            for key, item in value.items():
                if not isinstance(key, str):
                    raise RemoteProtocolError(
                        f"invalid UTF-8 in a map key of '{field.full_name}'"
                    )
                if kind == _MAP_OF_MESSAGES:
                    _check_strings(item)


def _check_base64(document: object, descriptor: Any) -> None:
    """Reject ``bytes`` fields that are not strict standard base64, as the agent does.

    (json_format's decoding silently drops characters outside the alphabet.)
    """
    import base64
    import binascii

    if not isinstance(document, dict):
        return
    for field in descriptor.fields:
        value = document.get(field.name)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        if field.type == field.TYPE_BYTES:
            for item in values:
                if not isinstance(item, str):
                    raise ValueError(f"field '{field.name}' must be a base64 string")
                try:
                    base64.b64decode(item, validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise ValueError(f"failed to base64 decode bytes field '{field.name}': "
                                     f"{exc}") from None
        elif field.type == field.TYPE_MESSAGE:
            entry = field.message_type
            if entry.GetOptions().map_entry and isinstance(value, dict):
                value_field = entry.fields_by_name["value"]
                if value_field.type == value_field.TYPE_MESSAGE:
                    for item in value.values():
                        _check_base64(item, value_field.message_type)
                continue
            for item in values:
                _check_base64(item, entry)


def _name(message: _ProtoMessage) -> str:
    return message.DESCRIPTOR.full_name


def _missing(message: _ProtoMessage) -> str:
    # FindInitializationErrors exists at run time but not in the type stubs.
    find: Callable[[], list[str]] = getattr(message, "FindInitializationErrors")  # noqa: B009
    return ", ".join(find())


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


@record(eq=False)
class Subscribed:
    """SUBSCRIBED: the agent accepted our SUBSCRIBE."""

    executor_info: mesos_pb2.ExecutorInfo
    framework_info: mesos_pb2.FrameworkInfo
    agent_info: mesos_pb2.AgentInfo
    container_id: mesos_pb2.ContainerID | None


@record(eq=False)
class Launch:
    """LAUNCH: run one task."""

    task: mesos_pb2.TaskInfo


@record(eq=False)
class LaunchGroup:
    """LAUNCH_GROUP: run a task group atomically."""

    task_group: mesos_pb2.TaskGroupInfo


@record(eq=False)
class Kill:
    """KILL: kill one task; ``kill_policy`` overrides the task's own when set."""

    task_id: mesos_pb2.TaskID
    kill_policy: mesos_pb2.KillPolicy | None


@record
class Acknowledged:
    """ACKNOWLEDGED: the agent accepted (and checkpointed) the update with ``uuid``."""

    task_id: str
    uuid: bytes


@record
class Message:
    """MESSAGE: opaque data from the framework's scheduler."""

    data: bytes


@record
class Error:
    """ERROR: an error message (the real agent never sends one on the HTTP API)."""

    message: str


@record
class Shutdown:
    """SHUTDOWN: kill every task, send their terminal updates, exit within the grace."""


@record
class Heartbeat:
    """HEARTBEAT: the agent's periodic liveness event (every 30 minutes)."""


@record(eq=False)
class UnknownEvent:
    """An event whose type this library does not know: log it and go on.

    Attributes:
        type: the wire value of ``Event.type`` (0 when unset or not a number
            this schema knows; see ``raw`` for everything that was received).
        raw: the decoded Event, unknown fields included.
    """

    type: int
    raw: executor_pb2.Event


AgentEvent = (
    Subscribed
    | Launch
    | LaunchGroup
    | Kill
    | Acknowledged
    | Message
    | Error
    | Shutdown
    | Heartbeat
    | UnknownEvent
)

_PAYLOAD: Final = {
    Event.SUBSCRIBED: "subscribed",
    Event.LAUNCH: "launch",
    Event.LAUNCH_GROUP: "launch_group",
    Event.KILL: "kill",
    Event.ACKNOWLEDGED: "acknowledged",
    Event.MESSAGE: "message",
    Event.ERROR: "error",
}


def parse_event(data: bytes, content_type: ContentType) -> AgentEvent:
    """Parse one RecordIO record into a typed event.

    Raises:
        RemoteProtocolError: undecodable bytes, or a known event type whose
            payload is missing.
    """
    event = decode_message(data, content_type, Event)
    kind = event.type
    field = _PAYLOAD.get(kind)
    if field is not None and not event.HasField(field):  # type: ignore[arg-type]
        type_name = Event.Type.Name(kind)
        raise RemoteProtocolError(f"{type_name} event without its '{field}' payload")
    if kind == Event.SUBSCRIBED:
        s = event.subscribed
        container = s.container_id if s.HasField("container_id") else None
        return Subscribed(s.executor_info, s.framework_info, s.agent_info, container)
    if kind == Event.LAUNCH:
        return Launch(event.launch.task)
    if kind == Event.LAUNCH_GROUP:
        return LaunchGroup(event.launch_group.task_group)
    if kind == Event.KILL:
        k = event.kill
        return Kill(k.task_id, k.kill_policy if k.HasField("kill_policy") else None)
    if kind == Event.ACKNOWLEDGED:
        return Acknowledged(_text(event.acknowledged.task_id.value), event.acknowledged.uuid)
    if kind == Event.MESSAGE:
        return Message(event.message.data)
    if kind == Event.ERROR:
        return Error(_text(event.error.message))
    if kind == Event.SHUTDOWN:
        return Shutdown()
    if kind == Event.HEARTBEAT:
        return Heartbeat()
    return UnknownEvent(_wire_type(event), event)


def _text(value: object) -> str:
    # upb hands back a proto2 string with invalid UTF-8 as bytes.
    if not isinstance(value, str):
        raise RemoteProtocolError(f"invalid UTF-8 in a string field: {value!r:.80}")
    return value


def _wire_type(event: executor_pb2.Event) -> int:
    # A proto2 enum is closed: a number this schema does not know lands in the
    # unknown fields and ``type`` reads as UNKNOWN. Recover the number.
    if event.HasField("type"):
        return int(event.type)
    from google.protobuf import unknown_fields

    unknown: Any = unknown_fields.UnknownFieldSet(event)
    for f in unknown:
        if f.field_number == 1 and isinstance(f.data, int):
            return f.data
    return 0


# --------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------


def _call(framework_id: str, executor_id: str, kind: int) -> executor_pb2.Call:
    call = Call(type=kind)  # type: ignore[arg-type]
    call.framework_id.value = framework_id
    call.executor_id.value = executor_id
    return call


def subscribe_call(
    framework_id: str,
    executor_id: str,
    unacknowledged_tasks: Iterable[mesos_pb2.TaskInfo] = (),
    unacknowledged_updates: Iterable[mesos_pb2.TaskStatus] = (),
) -> executor_pb2.Call:
    """Build SUBSCRIBE with the ledger's lists (always sets ``subscribe``)."""
    call = _call(framework_id, executor_id, Call.SUBSCRIBE)
    call.subscribe.SetInParent()
    call.subscribe.unacknowledged_tasks.extend(unacknowledged_tasks)
    for status in unacknowledged_updates:
        call.subscribe.unacknowledged_updates.add().status.CopyFrom(status)
    return call


def update_call(
    framework_id: str, executor_id: str, status: mesos_pb2.TaskStatus
) -> executor_pb2.Call:
    """Build UPDATE for a status already prepared by :func:`prepare_status`."""
    call = _call(framework_id, executor_id, Call.UPDATE)
    call.update.status.CopyFrom(status)
    return call


def encode_update_call(
    framework_id: str, executor_id: str, status_data: bytes, content_type: ContentType
) -> bytes:
    """The encoded UPDATE call for a prepared status kept serialized (the ledger's form).

    Protobuf: exactly ``encode_message(update_call(..., status), PROTOBUF)``,
    without building the message: the call's other fields (1 to 3), then
    ``update`` (field 5, the highest one set) holding ``status`` (field 1),
    each length-delimited, as protobuf writes them (fields in number order).
    """
    if content_type is not ContentType.PROTOBUF:
        status = mesos_pb2.TaskStatus.FromString(status_data)
        return encode_message(update_call(framework_id, executor_id, status), content_type)
    update = b"\x0a" + _varint(len(status_data)) + status_data
    return _update_prefix(framework_id, executor_id) + b"\x2a" + _varint(len(update)) + update


@functools.lru_cache(maxsize=4)
def _update_prefix(framework_id: str, executor_id: str) -> bytes:
    return _call(framework_id, executor_id, Call.UPDATE).SerializeToString()


def _varint(n: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative int."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def message_call(framework_id: str, executor_id: str, data: bytes) -> executor_pb2.Call:
    """Build MESSAGE (executor to framework; best effort, no acknowledgement)."""
    call = _call(framework_id, executor_id, Call.MESSAGE)
    call.message.data = bytes(data)
    return call


def heartbeat_call(framework_id: str, executor_id: str) -> executor_pb2.Call:
    """Build HEARTBEAT (the agent answers 202 without looking at the ids)."""
    return _call(framework_id, executor_id, Call.HEARTBEAT)


_CHECK_FIELD: Final = {
    mesos_pb2.CheckInfo.COMMAND: "command",
    mesos_pb2.CheckInfo.HTTP: "http",
    mesos_pb2.CheckInfo.TCP: "tcp",
}


def prepare_status(
    status: mesos_pb2.TaskStatus,
    *,
    executor_id: str,
    agent_id: str | None,
    uuid: bytes,
    now: float,
) -> mesos_pb2.TaskStatus:
    """Validate a caller's TaskStatus and return a stamped copy ready to send.

    The copy gets the fresh ``uuid`` (any uuid the caller set is replaced, so
    re-using one status object never re-sends a uuid), ``source =
    SOURCE_EXECUTOR``, ``executor_id``, ``agent_id`` (when known and unset) and
    ``timestamp = now`` when the caller set none. The caller's object is never
    modified.

    Raises:
        LocalProtocolError: what the agent would refuse or mishandle: no
            ``task_id`` or ``state``, ``TASK_STAGING``, a foreign
            ``executor_id`` or ``agent_id``, a malformed ``check_status``, an
            invalid ``uuid`` argument.
    """
    if not isinstance(status, mesos_pb2.TaskStatus):
        raise TypeError(f"expected a mesos_pb2.TaskStatus, not {type(status).__name__}")
    if not status.HasField("task_id") or not status.task_id.value:
        raise LocalProtocolError("TaskStatus.task_id is required")
    if not status.HasField("state"):
        raise LocalProtocolError("TaskStatus.state is required")
    if status.state == mesos_pb2.TASK_STAGING:
        raise LocalProtocolError(
            "TASK_STAGING may not be sent by an executor (the agent shuts the executor down)"
        )
    if status.HasField("executor_id") and status.executor_id.value != executor_id:
        raise LocalProtocolError(
            f"TaskStatus.executor_id {status.executor_id.value!r} is not this executor's "
            f"{executor_id!r}"
        )
    if agent_id is not None and status.HasField("agent_id") and status.agent_id.value != agent_id:
        raise LocalProtocolError(
            f"TaskStatus.agent_id {status.agent_id.value!r} is not this agent's {agent_id!r} "
            "(the agent would silently ignore the update)"
        )
    if status.HasField("check_status"):
        check = status.check_status
        field = _CHECK_FIELD.get(check.type)
        if field is None:
            raise LocalProtocolError("TaskStatus.check_status.type must be COMMAND, HTTP or TCP")
        if not check.HasField(field):  # type: ignore[arg-type]
            raise LocalProtocolError(f"TaskStatus.check_status of type {field.upper()} needs "
                                     f"its '{field}' field")
    if not is_valid_uuid(uuid):
        raise LocalProtocolError(f"{uuid!r} is not a valid RFC 4122 UUID (16 bytes)")
    if not status.IsInitialized():
        raise LocalProtocolError(f"TaskStatus is missing required fields: {_missing(status)}")

    prepared = mesos_pb2.TaskStatus()
    prepared.CopyFrom(status)
    prepared.uuid = uuid
    prepared.source = mesos_pb2.TaskStatus.SOURCE_EXECUTOR
    prepared.executor_id.value = executor_id
    if agent_id is not None and not prepared.HasField("agent_id"):
        prepared.agent_id.value = agent_id
    if not prepared.HasField("timestamp"):
        prepared.timestamp = now
    return prepared
