"""Calls and events as bytes: encode/decode, parse_event, prepare_status, call builders.

The agent side is modelled by :func:`agent_validate`, a transcription of
``validateExecutorCall`` (PROTOCOL.md §1.6, ``apache/mesos:src/common/validation.cpp``)
that returns the same error strings the agent puts in its 400 bodies (checked
against the real agent's answers in test_vectors.py).
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from google.protobuf import unknown_fields
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as ProtoMessage
from hypothesis import given
from hypothesis import strategies as st

from tests.event_checks import check_parsed_event
from tests.strategies import (
    EVENTS_BY_TYPE,
    NON_STAGING_STATES,
    events,
    fresh_uuid,
    ids,
    task_infos,
    task_statuses,
    uuid_bytes,
)
from trio_mesos._errors import LocalProtocolError, RemoteProtocolError
from trio_mesos._messages import (
    TERMINAL_STATES,
    Acknowledged,
    ContentType,
    Error,
    Heartbeat,
    Kill,
    Launch,
    LaunchGroup,
    Message,
    Shutdown,
    Subscribed,
    UnknownEvent,
    decode_message,
    encode_message,
    encode_update_call,
    heartbeat_call,
    is_terminal,
    is_valid_uuid,
    message_call,
    parse_event,
    prepare_status,
    subscribe_call,
    update_call,
)
from trio_mesos._protobuf_compat import is_repeated
from trio_mesos._record import record_fields
from trio_mesos.v1 import executor_pb2, mesos_pb2

Call = executor_pb2.Call
Event = executor_pb2.Event
TaskStatus = mesos_pb2.TaskStatus

BOTH = pytest.mark.parametrize("content_type", list(ContentType), ids=["protobuf", "json"])
content_types = st.sampled_from(list(ContentType))

FID = "7f1e0c4a-2b9d-4c55-9e0a-1a2b3c4d5e6f-0000"
EID = "my-executor"
AID = "7f1e0c4a-2b9d-4c55-9e0a-1a2b3c4d5e6f-S0"
NOW = 1_795_797_790.968


# ----------------------------------------------------------------------------
# The agent's validation (validateExecutorCall, PROTOCOL.md §1.6)
# ----------------------------------------------------------------------------


def _agent_uuid_ok(value: bytes) -> bool:
    # stout UUID::fromBytes: exactly 16 bytes, and Boost's uuid.version() (the
    # high nibble of octet 6) must not be version_unknown: 1..5 in Boost 1.65.
    return len(value) == 16 and (value[6] & 0xF0) in (0x10, 0x20, 0x30, 0x40, 0x50)


def _check_status_error(check: mesos_pb2.CheckStatusInfo) -> str | None:
    # validateCheckStatusInfo
    if not check.HasField("type"):
        return "CheckStatusInfo must specify 'type'"
    kind = check.type
    if kind == mesos_pb2.CheckInfo.UNKNOWN:
        return "'UNKNOWN' is not a valid check's status type"
    field = {
        mesos_pb2.CheckInfo.COMMAND: "command",
        mesos_pb2.CheckInfo.HTTP: "http",
        mesos_pb2.CheckInfo.TCP: "tcp",
    }[kind]
    if not check.HasField(field):
        name = mesos_pb2.CheckInfo.Type.Name(kind)
        return f"Expecting '{field}' to be set for {name} check's status"
    return None


def agent_validate(call: executor_pb2.Call) -> str | None:
    """The agent's verdict on a parsed Call: None (accepted) or its error message.

    The message is what follows ``Failed to validate Executor::Call: `` in the
    agent's 400 body.
    """
    if not call.IsInitialized():
        return "Not initialized: " + ", ".join(call.FindInitializationErrors())
    if not call.HasField("type"):
        return "Expecting 'type' to be present"
    if not call.HasField("executor_id"):
        return "Expecting 'executor_id' to be present"
    if not call.HasField("framework_id"):
        return "Expecting 'framework_id' to be present"
    eid, fid = call.executor_id.value, call.framework_id.value
    if call.type == Call.SUBSCRIBE:
        return None if call.HasField("subscribe") else "Expecting 'subscribe' to be present"
    if call.type == Call.UPDATE:
        if not call.HasField("update"):
            return "Expecting 'update' to be present"
        status = call.update.status
        if not status.HasField("uuid"):
            return "Expecting 'uuid' to be present"
        if not _agent_uuid_ok(status.uuid):
            return "Not a valid UUID"
        if status.HasField("executor_id") and status.executor_id.value != eid:
            return (
                f"ExecutorID in Call: {eid} does not match ExecutorID in TaskStatus: "
                f"{status.executor_id.value}"
            )
        # An unset source reads as its default, SOURCE_MASTER.
        if status.source != TaskStatus.SOURCE_EXECUTOR:
            return (
                f"Received Call from executor {eid} of framework {fid} with invalid source, "
                "expecting 'SOURCE_EXECUTOR'"
            )
        if status.state == mesos_pb2.TASK_STAGING:
            return (
                f"Received TASK_STAGING from executor {eid} of framework {fid} which is not allowed"
            )
        if status.HasField("check_status"):
            return _check_status_error(status.check_status)
        return None
    if call.type == Call.MESSAGE:
        return None if call.HasField("message") else "Expecting 'message' to be present"
    return None  # HEARTBEAT, UNKNOWN


def agent_receive(body: bytes, content_type: ContentType) -> executor_pb2.Call:
    """Decode a request body with the agent's schema and assert the agent accepts it."""
    call = decode_message(body, content_type, Call)
    assert agent_validate(call) is None
    return call


def _good_update() -> executor_pb2.Call:
    status = TaskStatus(state=mesos_pb2.TASK_RUNNING, source=TaskStatus.SOURCE_EXECUTOR)
    status.task_id.value = "t"
    status.uuid = uuid.uuid4().bytes
    return update_call(FID, EID, status)


def _bad_calls() -> list[tuple[str, executor_pb2.Call, str]]:
    cases = []

    def add(name: str, call: executor_pb2.Call, expected: str) -> None:
        cases.append((name, call, expected))

    no_type = heartbeat_call(FID, EID)
    no_type.ClearField("type")
    add("no-type", no_type, "Expecting 'type' to be present")
    no_ids = Call(type=Call.HEARTBEAT)
    add("no-ids", no_ids, "Not initialized: executor_id, framework_id")
    no_subscribe = subscribe_call(FID, EID)
    no_subscribe.ClearField("subscribe")
    add("no-subscribe", no_subscribe, "Expecting 'subscribe' to be present")
    no_message = message_call(FID, EID, b"x")
    no_message.ClearField("message")
    add("no-message", no_message, "Expecting 'message' to be present")
    no_update = _good_update()
    no_update.ClearField("update")
    add("no-update", no_update, "Expecting 'update' to be present")
    no_uuid = _good_update()
    no_uuid.update.status.ClearField("uuid")
    add("no-uuid", no_uuid, "Expecting 'uuid' to be present")
    for name, value in [
        ("uuid-4-bytes", b"abcd"),
        ("uuid-zero", bytes(16)),
        ("uuid-version-6", bytes(6) + b"\x60" + bytes(9)),
        ("uuid-17-bytes", uuid.uuid4().bytes + b"x"),
    ]:
        call = _good_update()
        call.update.status.uuid = value
        add(name, call, "Not a valid UUID")
    foreign = _good_update()
    foreign.update.status.executor_id.value = "other"
    add(
        "foreign-executor",
        foreign,
        f"ExecutorID in Call: {EID} does not match ExecutorID in TaskStatus: other",
    )
    for name, source in [("source-unset", None), ("source-agent", TaskStatus.SOURCE_AGENT)]:
        call = _good_update()
        if source is None:
            call.update.status.ClearField("source")
        else:
            call.update.status.source = source
        add(
            name,
            call,
            f"Received Call from executor {EID} of framework {FID} with invalid "
            "source, expecting 'SOURCE_EXECUTOR'",
        )
    staging = _good_update()
    staging.update.status.state = mesos_pb2.TASK_STAGING
    add(
        "staging",
        staging,
        f"Received TASK_STAGING from executor {EID} of framework {FID} which is not allowed",
    )
    check = _good_update()
    check.update.status.check_status.SetInParent()
    add("check-no-type", check, "CheckStatusInfo must specify 'type'")
    check = _good_update()
    check.update.status.check_status.type = mesos_pb2.CheckInfo.UNKNOWN
    add("check-unknown", check, "'UNKNOWN' is not a valid check's status type")
    check = _good_update()
    check.update.status.check_status.type = mesos_pb2.CheckInfo.HTTP
    check.update.status.check_status.tcp.succeeded = True
    add("check-http-without-http", check, "Expecting 'http' to be set for HTTP check's status")
    return cases


@pytest.mark.parametrize(
    ("call", "expected"), [pytest.param(call, msg, id=name) for name, call, msg in _bad_calls()]
)
def test_the_validator_rejects_hand_made_bad_calls(call, expected):
    assert agent_validate(call) == expected


@BOTH
def test_our_calls_pass_the_agents_schema_and_validation(content_type):
    task = mesos_pb2.TaskInfo(name="t")
    task.task_id.value = "t"
    task.agent_id.value = AID
    status = prepare_status(
        TaskStatus(task_id=task.task_id, state=mesos_pb2.TASK_RUNNING),
        executor_id=EID,
        agent_id=AID,
        uuid=fresh_uuid(),
        now=NOW,
    )
    calls = {
        Call.SUBSCRIBE: subscribe_call(FID, EID),
        Call.UPDATE: update_call(FID, EID, status),
        Call.MESSAGE: message_call(FID, EID, b"\x00hello\xff"),
        Call.HEARTBEAT: heartbeat_call(FID, EID),
    }
    calls_with_lists = subscribe_call(FID, EID, [task], [status])
    for kind, call in [*calls.items(), (Call.SUBSCRIBE, calls_with_lists)]:
        received = agent_receive(encode_message(call, content_type), content_type)
        assert received.type == kind
        assert received.framework_id.value == FID
        assert received.executor_id.value == EID
        assert received == call


# ----------------------------------------------------------------------------
# Call builders
# ----------------------------------------------------------------------------


@BOTH
def test_subscribe_call_always_has_subscribe(content_type):
    call = agent_receive(encode_message(subscribe_call(FID, EID), content_type), content_type)
    assert call.type == Call.SUBSCRIBE
    assert call.HasField("subscribe")
    assert list(call.subscribe.unacknowledged_tasks) == []
    assert list(call.subscribe.unacknowledged_updates) == []


@given(
    st.lists(task_infos(), max_size=2),
    st.lists(task_statuses(states=NON_STAGING_STATES, stamped=True), max_size=2),
    content_types,
)
def test_subscribe_call_carries_the_unacknowledged_lists(tasks, statuses, content_type):
    for status in statuses:
        status.executor_id.value = EID
    call = subscribe_call(FID, EID, tasks, statuses)
    received = agent_receive(encode_message(call, content_type), content_type)
    assert list(received.subscribe.unacknowledged_tasks) == tasks
    assert [u.status for u in received.subscribe.unacknowledged_updates] == statuses


@given(ids, ids, st.binary(max_size=100), content_types)
def test_message_call(framework_id, executor_id, data, content_type):
    call = message_call(framework_id, executor_id, data)
    received = agent_receive(encode_message(call, content_type), content_type)
    assert received.type == Call.MESSAGE
    assert received.message.data == data
    assert (received.framework_id.value, received.executor_id.value) == (
        framework_id,
        executor_id,
    )


@BOTH
def test_heartbeat_call(content_type):
    received = agent_receive(encode_message(heartbeat_call(FID, EID), content_type), content_type)
    assert received.type == Call.HEARTBEAT
    assert not received.HasField("update")
    assert not received.HasField("subscribe")
    assert not received.HasField("message")


@given(task_statuses(states=NON_STAGING_STATES, stamped=False), uuid_bytes(), content_types)
def test_update_call_of_a_prepared_status_is_accepted(status, fresh, content_type):
    prepared = prepare_status(status, executor_id=EID, agent_id=AID, uuid=fresh, now=NOW)
    call = update_call(FID, EID, prepared)
    received = agent_receive(encode_message(call, content_type), content_type)
    assert received.type == Call.UPDATE
    assert received.update.status == prepared


# ----------------------------------------------------------------------------
# encode_message / decode_message
# ----------------------------------------------------------------------------


def assert_proto_json(document: object, message: ProtoMessage) -> None:
    """Walk agent-style JSON against the message it encodes.

    Every key is a proto field name (never lowerCamelCase), enums are names,
    bytes are standard base64, and every value matches the message.
    """
    assert isinstance(document, dict)
    descriptor = message.DESCRIPTOR
    for key, value in document.items():
        field = descriptor.fields_by_name.get(key)
        assert field is not None, f"{key!r} is not a field of {descriptor.full_name}"
        actual = getattr(message, key)
        if is_repeated(field):
            assert isinstance(value, list)
            assert len(value) == len(actual)
            pairs = list(zip(value, actual, strict=True))
        else:
            assert message.HasField(key)
            pairs = [(value, actual)]
        for json_value, proto_value in pairs:
            _assert_json_value(field, json_value, proto_value)


def _assert_json_value(field: FieldDescriptor, value: object, actual: object) -> None:
    if field.message_type is not None:
        assert isinstance(actual, ProtoMessage)
        assert_proto_json(value, actual)
    elif field.enum_type is not None:
        assert value == field.enum_type.values_by_number[actual].name  # type: ignore[index]
    elif field.type == FieldDescriptor.TYPE_BYTES:
        assert isinstance(value, str)
        assert base64.b64decode(value, validate=True) == actual
    elif field.type == FieldDescriptor.TYPE_STRING:
        assert value == actual
    elif field.type == FieldDescriptor.TYPE_BOOL:
        assert value is actual
    elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        assert isinstance(value, float | int)
        assert value == actual
    else:  # integers: numbers, or strings for 64-bit ones (the agent takes both)
        assert isinstance(value, int | str)
        assert int(value) == actual


def assert_compact(body: bytes) -> None:
    assert body == json.dumps(json.loads(body), separators=(",", ":")).encode()


@given(task_statuses(), content_types)
def test_update_calls_round_trip(status, content_type):
    call = Call(type=Call.UPDATE)
    call.framework_id.value = FID
    call.executor_id.value = EID
    call.update.status.CopyFrom(status)
    body = encode_message(call, content_type)
    assert decode_message(body, content_type, Call) == call


@given(st.lists(task_infos(), max_size=2), content_types)
def test_task_infos_round_trip(tasks, content_type):
    call = subscribe_call(FID, EID, tasks)
    assert decode_message(encode_message(call, content_type), content_type, Call) == call


@given(events(), content_types)
def test_events_round_trip(event, content_type):
    body = encode_message(event, content_type)
    assert decode_message(body, content_type, Event) == event


@given(
    st.one_of(
        events(),
        st.lists(task_infos(), max_size=2).map(lambda t: subscribe_call(FID, EID, t)),
        task_statuses().map(lambda s: update_call(FID, EID, s)),
    )
)
def test_json_is_agent_style(message):
    body = encode_message(message, ContentType.JSON)
    assert_compact(body)
    assert_proto_json(json.loads(body), message)


@given(task_statuses(), ids, ids, content_types)
def test_encoded_update_call_is_the_update_call_encoded(status, framework_id, executor_id, ct):
    # The ledger keeps statuses serialized; the UPDATE built from those bytes is
    # byte for byte the one built from the message (protobuf), or the same call (JSON).
    data = status.SerializePartialToString()
    body = encode_update_call(framework_id, executor_id, data, ct)
    expected = update_call(framework_id, executor_id, status)
    if ct is ContentType.PROTOBUF:
        assert body == expected.SerializePartialToString()
    else:
        assert decode_message(body, ct, Call) == decode_message(
            encode_message(expected, ct), ct, Call
        )


def test_encoded_update_call_with_a_long_status_uses_multibyte_lengths():
    status = TaskStatus(state=mesos_pb2.TASK_RUNNING, data=b"x" * 70000)
    status.task_id.value = "t"
    body = encode_update_call(FID, EID, status.SerializeToString(), ContentType.PROTOBUF)
    assert body == update_call(FID, EID, status).SerializeToString()
    assert Call.FromString(body).update.status == status


def test_json_example_uses_proto_names_enum_names_and_base64():
    status = TaskStatus(state=mesos_pb2.TASK_RUNNING, source=TaskStatus.SOURCE_EXECUTOR)
    status.task_id.value = "task-0"
    status.executor_id.value = EID
    status.uuid = bytes(range(16))
    status.data = b"\xff\xfe\x00"
    body = encode_message(update_call(FID, EID, status), ContentType.JSON)
    assert b'"executor_id":{"value":"my-executor"}' in body
    assert b"executorId" not in body
    assert b"frameworkId" not in body
    assert b"taskId" not in body
    assert b'"state":"TASK_RUNNING"' in body
    assert b'"source":"SOURCE_EXECUTOR"' in body
    assert b'"type":"UPDATE"' in body
    assert b'"uuid":"' + base64.b64encode(bytes(range(16))) + b'"' in body
    assert b'"data":"//4A"' in body
    assert b" " not in body


@BOTH
def test_encoding_a_call_without_required_fields_is_a_local_error(content_type):
    with pytest.raises(LocalProtocolError):
        encode_message(Call(type=Call.HEARTBEAT), content_type)
    call = update_call(FID, EID, TaskStatus())  # TaskStatus lacks task_id and state
    with pytest.raises(LocalProtocolError):
        encode_message(call, content_type)


@BOTH
def test_decoding_a_call_without_required_fields_is_a_remote_error(content_type):
    body = {ContentType.PROTOBUF: b"\x18\x04", ContentType.JSON: b'{"type":"HEARTBEAT"}'}
    with pytest.raises(RemoteProtocolError, match="executor_id"):
        decode_message(body[content_type], content_type, Call)


def test_content_type_values():
    assert str(ContentType.PROTOBUF) == "application/x-protobuf"
    assert str(ContentType.JSON) == "application/json"


# ----------------------------------------------------------------------------
# parse_event
# ----------------------------------------------------------------------------


def expected_view(event: executor_pb2.Event):
    """What parse_event must return for a well-formed event of a known type."""
    kind = event.type
    if kind == Event.SUBSCRIBED:
        s = event.subscribed
        return Subscribed, {
            "executor_info": s.executor_info,
            "framework_info": s.framework_info,
            "agent_info": s.agent_info,
            "container_id": s.container_id if s.HasField("container_id") else None,
        }
    if kind == Event.LAUNCH:
        return Launch, {"task": event.launch.task}
    if kind == Event.LAUNCH_GROUP:
        return LaunchGroup, {"task_group": event.launch_group.task_group}
    if kind == Event.KILL:
        k = event.kill
        policy = k.kill_policy if k.HasField("kill_policy") else None
        return Kill, {"task_id": k.task_id, "kill_policy": policy}
    if kind == Event.ACKNOWLEDGED:
        a = event.acknowledged
        return Acknowledged, {"task_id": a.task_id.value, "uuid": a.uuid}
    if kind == Event.MESSAGE:
        return Message, {"data": event.message.data}
    if kind == Event.ERROR:
        return Error, {"message": event.error.message}
    if kind == Event.SHUTDOWN:
        return Shutdown, {}
    if kind == Event.HEARTBEAT:
        return Heartbeat, {}
    raise AssertionError(kind)


def assert_parsed(parsed, event: executor_pb2.Event) -> None:
    cls, fields = expected_view(event)
    assert type(parsed) is cls
    for name, value in fields.items():
        assert getattr(parsed, name) == value, name


def _example_events() -> dict[str, executor_pb2.Event]:
    """One hand-made event of every known type, payload fields filled."""
    examples = {}
    subscribed = Event(type=Event.SUBSCRIBED)
    subscribed.subscribed.executor_info.executor_id.value = EID
    subscribed.subscribed.executor_info.framework_id.value = FID
    subscribed.subscribed.framework_info.user = "root"
    subscribed.subscribed.framework_info.name = "fw"
    subscribed.subscribed.framework_info.id.value = FID
    subscribed.subscribed.agent_info.hostname = "localhost"
    subscribed.subscribed.agent_info.id.value = AID
    subscribed.subscribed.container_id.value = "c-1"
    examples["SUBSCRIBED"] = subscribed
    task = mesos_pb2.TaskInfo(name="sleep", data=b"\x00\x01")
    task.task_id.value = "task-0"
    task.agent_id.value = AID
    task.command.value = "sleep 1"
    task.kill_policy.grace_period.nanoseconds = 2_000_000_000
    launch = Event(type=Event.LAUNCH)
    launch.launch.task.CopyFrom(task)
    examples["LAUNCH"] = launch
    group = Event(type=Event.LAUNCH_GROUP)
    for i in range(3):
        member = group.launch_group.task_group.tasks.add()
        member.CopyFrom(task)
        member.task_id.value = f"task-{i}"
    examples["LAUNCH_GROUP"] = group
    kill = Event(type=Event.KILL)
    kill.kill.task_id.value = "task-1"
    kill.kill.kill_policy.grace_period.nanoseconds = 5
    examples["KILL"] = kill
    ack = Event(type=Event.ACKNOWLEDGED)
    ack.acknowledged.task_id.value = "task-0"
    ack.acknowledged.uuid = uuid.UUID(int=0x1234_5678_9ABC_4DEF_8123_4567_89AB_CDEF).bytes
    examples["ACKNOWLEDGED"] = ack
    message = Event(type=Event.MESSAGE)
    message.message.data = b"hello \xff"
    examples["MESSAGE"] = message
    error = Event(type=Event.ERROR)
    error.error.message = "something broke"
    examples["ERROR"] = error
    examples["SHUTDOWN"] = Event(type=Event.SHUTDOWN)
    examples["HEARTBEAT"] = Event(type=Event.HEARTBEAT)
    return examples


EXAMPLE_EVENTS = _example_events()


def test_example_events_cover_every_type():
    known = {v.name for v in Event.Type.DESCRIPTOR.values} - {"UNKNOWN"}
    assert set(EXAMPLE_EVENTS) == known == set(EVENTS_BY_TYPE)


@pytest.mark.parametrize("event", EXAMPLE_EVENTS.values(), ids=EXAMPLE_EVENTS.keys())
@BOTH
def test_parse_event_for_every_type(event, content_type):
    assert_parsed(parse_event(encode_message(event, content_type), content_type), event)


@given(events(), content_types)
def test_parse_event_for_any_event(event, content_type):
    assert_parsed(parse_event(encode_message(event, content_type), content_type), event)


@BOTH
def test_parse_event_examples(content_type):
    def parse(event: executor_pb2.Event):
        return parse_event(encode_message(event, content_type), content_type)

    ack = Event(type=Event.ACKNOWLEDGED)
    ack.acknowledged.task_id.value = "task-0"
    ack.acknowledged.uuid = bytes(range(16))
    assert parse(ack) == Acknowledged("task-0", bytes(range(16)))
    message = Event(type=Event.MESSAGE)
    message.message.data = b"\x00\xffhi"
    assert parse(message) == Message(b"\x00\xffhi")
    error = Event(type=Event.ERROR)
    error.error.message = "broken ✗"
    assert parse(error) == Error("broken ✗")
    assert parse(Event(type=Event.SHUTDOWN)) == Shutdown()
    assert parse(Event(type=Event.HEARTBEAT)) == Heartbeat()
    kill = Event(type=Event.KILL)
    kill.kill.task_id.value = "t"
    parsed = parse(kill)
    assert isinstance(parsed, Kill)
    assert parsed.kill_policy is None
    kill.kill.kill_policy.grace_period.nanoseconds = 2_000_000_000
    parsed = parse(kill)
    assert isinstance(parsed, Kill)
    assert parsed.kill_policy is not None
    assert parsed.kill_policy.grace_period.nanoseconds == 2_000_000_000


def test_unknown_event_type_number_in_protobuf():
    parsed = parse_event(b"\x08\x2a", ContentType.PROTOBUF)
    assert isinstance(parsed, UnknownEvent)
    assert parsed.type == 42
    # The number survives in the raw event's unknown fields.
    assert parsed.raw.SerializeToString() == b"\x08\x2a"


def test_unknown_event_type_name_in_json():
    parsed = parse_event(b'{"type":"NO_SUCH"}', ContentType.JSON)
    assert isinstance(parsed, UnknownEvent)
    assert parsed.type == 0


@BOTH
def test_explicit_unknown_and_absent_type_are_unknown_events(content_type):
    for event in [Event(type=Event.UNKNOWN), Event()]:
        parsed = parse_event(encode_message(event, content_type), content_type)
        assert isinstance(parsed, UnknownEvent)
        assert parsed.type == 0


def test_unknown_event_with_a_payload_field_of_its_own():
    # A newer agent's event: type 42 plus a field 20 we have never heard of.
    raw = b"\x08\x2a\xa2\x01\x03abc"
    parsed = parse_event(raw, ContentType.PROTOBUF)
    assert isinstance(parsed, UnknownEvent)
    assert parsed.type == 42
    assert parsed.raw.SerializeToString() == raw


def test_known_event_with_unknown_fields_is_still_known():
    parsed = parse_event(b"\x08\x09\xa2\x01\x03abc", ContentType.PROTOBUF)
    assert parsed == Heartbeat()
    parsed = parse_event(b'{"type":"HEARTBEAT","new_field":{"x":1}}', ContentType.JSON)
    assert parsed == Heartbeat()


PAYLOADS = {
    "SUBSCRIBED": "subscribed",
    "LAUNCH": "launch",
    "LAUNCH_GROUP": "launch_group",
    "KILL": "kill",
    "ACKNOWLEDGED": "acknowledged",
    "MESSAGE": "message",
    "ERROR": "error",
}


@pytest.mark.parametrize(("type_name", "payload"), PAYLOADS.items())
@BOTH
def test_known_type_without_its_payload_is_a_remote_error(type_name, payload, content_type):
    event = Event(type=Event.Type.Value(type_name))
    with pytest.raises(RemoteProtocolError, match=payload):
        parse_event(encode_message(event, content_type), content_type)


def test_missing_payload_literal_json():
    with pytest.raises(RemoteProtocolError):
        parse_event(b'{"type":"LAUNCH"}', ContentType.JSON)


@BOTH
def test_payload_without_its_required_fields_is_a_remote_error(content_type):
    body = {
        ContentType.PROTOBUF: b"\x08\x03\x2a\x00",  # KILL, kill {} (task_id missing)
        ContentType.JSON: b'{"type":"KILL","kill":{}}',
    }[content_type]
    with pytest.raises(RemoteProtocolError, match="task_id"):
        parse_event(body, content_type)


GARBAGE = {
    ContentType.PROTOBUF: [
        b"\xff\xff\xff\xffgarbage",  # errors/protobuf/400-protobuf-garbage body
        b"\x08",  # truncated varint
        b"\x12\x05",  # length beyond the end
        b"\x0a\xff",
        b'{"type":"HEARTBEAT"}',
    ],
    ContentType.JSON: [
        b"",
        b" ",
        b"{",
        b'{"type":"HEARTBEAT"',
        b"[]",
        b'[{"type":"HEARTBEAT"}]',
        b"null",
        b"42",
        b'"HEARTBEAT"',
        b"\xff\xfe\xfd",
        b"\x08\x09",  # protobuf bytes sent as JSON
        b'{"type":"MESSAGE","message":{"data":"Y"}}',  # impossible base64 length
        b'{"type":"MESSAGE","message":"aGk="}',
        b'{"type":42}',  # an unknown enum *number* is not valid JSON for the schema
        b'{"type":"ERROR","error":{"message":"\\ud800"}}',  # lone surrogate
        b'{"type":"KILL","kill":{"task_id":"t"}}',  # ids are objects
        b'{"type":"KILL","kill":{"task_id":{"value":"t"},'
        b'"kill_policy":{"grace_period":{"nanoseconds":1e400}}}}',
    ],
}


@pytest.mark.parametrize(
    ("content_type", "data"),
    [(ct, data) for ct, cases in GARBAGE.items() for data in cases],
)
def test_garbage_is_a_remote_error(content_type, data):
    with pytest.raises(RemoteProtocolError):
        parse_event(data, content_type)


# Regressions: each of these used to escape or be accepted (see the report).


@pytest.mark.parametrize("data", ["***", "YW Jj", "YWJ*jZA==", "-_-_"])
def test_bad_base64_characters_are_a_remote_error(data):
    # json_format's own decoding silently drops characters outside the
    # alphabet ("***" read as b""); the agent refuses them ("Invalid character").
    body = b'{"type":"MESSAGE","message":{"data":"%s"}}' % data.encode()
    with pytest.raises(RemoteProtocolError):
        parse_event(body, ContentType.JSON)


def test_bad_base64_in_a_nested_repeated_field_is_a_remote_error():
    call = subscribe_call(FID, EID, [mesos_pb2.TaskInfo(name="t", data=b"abc")])
    call.subscribe.unacknowledged_tasks[0].task_id.value = "t"
    call.subscribe.unacknowledged_tasks[0].agent_id.value = AID
    document = json.loads(encode_message(call, ContentType.JSON))
    assert decode_message(json.dumps(document).encode(), ContentType.JSON, Call) == call
    document["subscribe"]["unacknowledged_tasks"][0]["data"] = "Y*Jj"
    with pytest.raises(RemoteProtocolError):
        decode_message(json.dumps(document).encode(), ContentType.JSON, Call)


@pytest.mark.parametrize(
    "data", [b"[" * 100_000, b'{"a":' * 100_000, b'{"type":"ERROR","error":' + b"[" * 100_000]
)
def test_deeply_nested_json_is_a_remote_error(data):
    # json.loads raises RecursionError, which is no ValueError.
    with pytest.raises(RemoteProtocolError):
        parse_event(data, ContentType.JSON)


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"Infinity"])
def test_infinite_enum_number_is_a_remote_error(number):
    # json_format raises OverflowError for int(inf), which is no ValueError.
    # (NaN is different: json_format drops it like an unknown enum name.)
    with pytest.raises(RemoteProtocolError):
        parse_event(b'{"type":%s}' % number, ContentType.JSON)


def _strings(value: object) -> list[object]:
    """Every value of a ``string`` field reachable from a parsed event."""
    if isinstance(value, ProtoMessage):
        found: list[object] = []
        for field, field_value in value.ListFields():
            items = field_value if is_repeated(field) else [field_value]
            for item in items:
                if field.type == FieldDescriptor.TYPE_STRING:
                    found.append(item)
                else:
                    found += _strings(item)
        return found
    if isinstance(value, Acknowledged):
        return [value.task_id]
    if isinstance(value, Error):
        return [value.message]
    fields = record_fields(value)
    return [s for name in fields if name != "raw" for s in _strings(getattr(value, name))]


@pytest.mark.parametrize(
    "raw",
    [
        # ACKNOWLEDGED {task_id {value: b"\xff"} uuid: b""}
        b"\x08\x04\x1a\x07\x0a\x03\x0a\x01\xff\x12\x00",
        # ERROR {message: b"\xc3("}
        b"\x08\x06\x3a\x04\x0a\x02\xc3\x28",
        # KILL {task_id {value: b"\xff"}}
        b"\x08\x03\x2a\x05\x0a\x03\x0a\x01\xff",
    ],
    ids=["acknowledged-task-id", "error-message", "kill-task-id"],
)
def test_invalid_utf8_in_protobuf_strings_never_yields_bytes_for_str(raw):
    # upb reads a proto2 string with invalid UTF-8 as bytes; a string field
    # must hold a str or the record must be refused.
    try:
        parsed = parse_event(raw, ContentType.PROTOBUF)
    except RemoteProtocolError:
        return
    strings = _strings(parsed)
    assert strings
    assert all(isinstance(s, str) for s in strings), strings


@given(st.binary(max_size=200), content_types)
def test_arbitrary_bytes_give_an_event_or_a_remote_error(data, content_type):
    try:
        parsed = parse_event(data, content_type)
    except RemoteProtocolError:
        return
    check_parsed_event(parsed, data, content_type)


# Shallow JSON documents built from the schema's own words, to get past
# json.loads and into json_format.
_words = st.sampled_from(
    [
        *EVENTS_BY_TYPE,
        "UNKNOWN",
        *PAYLOADS.values(),
        "task_id",
        "value",
        "uuid",
        "data",
        "task",
        "kill_policy",
        "grace_period",
        "nanoseconds",
        "task_group",
        "tasks",
        "name",
        "agent_id",
        "executor_info",
        "framework_info",
        "agent_info",
        "hostname",
        "user",
        "executor_id",
        "container_id",
        "message",
        "YWJj",
    ]
)
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | _words
    | st.text(max_size=4),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(_words | st.text(max_size=3), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(_words, _json_values, max_size=4))
def test_arbitrary_json_objects_give_an_event_or_a_remote_error(document):
    try:
        record = json.dumps(document).encode()
        parsed = parse_event(record, ContentType.JSON)
    except RemoteProtocolError:
        return
    check_parsed_event(parsed, record, ContentType.JSON)


# ----------------------------------------------------------------------------
# Unknown fields survive in protobuf
# ----------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_unknown_field_in_agent_info_round_trips():
    # What a real 1.11 agent sends: AgentInfo with field 7 (varint 1), the v0
    # SlaveInfo.checkpoint that the v1 schema does not have.
    subscribed = Event.Subscribed()
    subscribed.executor_info.executor_id.value = EID
    subscribed.framework_info.user = "root"
    subscribed.framework_info.name = "fw"
    agent = mesos_pb2.AgentInfo(hostname="localhost", port=5051)
    agent.id.value = AID
    agent_bytes = agent.SerializeToString() + b"\x38\x01"  # field 7, varint, 1
    subscribed_bytes = subscribed.SerializePartialToString() + _field(3, agent_bytes)
    raw = b"\x08\x01" + _field(2, subscribed_bytes)

    parsed = parse_event(raw, ContentType.PROTOBUF)
    assert isinstance(parsed, Subscribed)
    assert parsed.agent_info.hostname == "localhost"
    assert parsed.agent_info.id.value == AID
    fields = [(f.field_number, f.data) for f in unknown_fields.UnknownFieldSet(parsed.agent_info)]
    assert fields == [(7, 1)]
    assert b"\x38\x01" in parsed.agent_info.SerializeToString()

    event = decode_message(raw, ContentType.PROTOBUF, Event)
    reencoded = encode_message(event, ContentType.PROTOBUF)
    assert b"\x38\x01" in reencoded
    assert reencoded == raw


# ----------------------------------------------------------------------------
# prepare_status
# ----------------------------------------------------------------------------


def _status(state: int = mesos_pb2.TASK_RUNNING, task_id: str = "task-0") -> mesos_pb2.TaskStatus:
    status = TaskStatus(state=state)  # type: ignore[arg-type]
    status.task_id.value = task_id
    return status


def test_prepare_status_stamps_a_copy():
    status = _status()
    before = status.SerializePartialToString()
    fresh = fresh_uuid()
    prepared = prepare_status(status, executor_id=EID, agent_id=AID, uuid=fresh, now=NOW)
    assert prepared is not status
    assert status.SerializePartialToString() == before
    assert prepared.uuid == fresh
    assert prepared.source == TaskStatus.SOURCE_EXECUTOR
    assert prepared.HasField("source")
    assert prepared.executor_id.value == EID
    assert prepared.agent_id.value == AID
    assert prepared.timestamp == NOW
    assert prepared.task_id.value == "task-0"
    assert prepared.state == mesos_pb2.TASK_RUNNING
    assert agent_validate(update_call(FID, EID, prepared)) is None


def test_prepare_status_keeps_a_callers_timestamp_and_fields():
    status = _status(mesos_pb2.TASK_FAILED)
    status.timestamp = 12.5
    status.message = "exit 3"
    status.reason = TaskStatus.REASON_COMMAND_EXECUTOR_FAILED
    status.data = b"\x01"
    status.executor_id.value = EID
    status.agent_id.value = AID
    prepared = prepare_status(status, executor_id=EID, agent_id=AID, uuid=fresh_uuid(), now=NOW)
    assert prepared.timestamp == 12.5
    assert prepared.message == "exit 3"
    assert prepared.reason == TaskStatus.REASON_COMMAND_EXECUTOR_FAILED
    assert prepared.data == b"\x01"


def test_prepare_status_without_agent_id_leaves_it_unset():
    prepared = prepare_status(_status(), executor_id=EID, agent_id=None, uuid=fresh_uuid(), now=NOW)
    assert not prepared.HasField("agent_id")
    status = _status()
    status.agent_id.value = "whatever"
    prepared = prepare_status(status, executor_id=EID, agent_id=None, uuid=fresh_uuid(), now=NOW)
    assert prepared.agent_id.value == "whatever"


def test_prepare_status_replaces_a_stale_uuid_and_a_wrong_source():
    status = _status()
    status.uuid = b"stale"
    status.source = TaskStatus.SOURCE_MASTER
    fresh = fresh_uuid()
    prepared = prepare_status(status, executor_id=EID, agent_id=AID, uuid=fresh, now=NOW)
    assert prepared.uuid == fresh
    assert prepared.source == TaskStatus.SOURCE_EXECUTOR
    assert status.uuid == b"stale"
    assert status.source == TaskStatus.SOURCE_MASTER


def test_reusing_one_status_object_gives_two_uuids():
    # pymesos defect 4: re-sending one TaskStatus object re-used its uuid, so the
    # agent took the second update for a duplicate of the first.
    status = _status()
    first = prepare_status(status, executor_id=EID, agent_id=AID, uuid=fresh_uuid(), now=NOW)
    second = prepare_status(status, executor_id=EID, agent_id=AID, uuid=fresh_uuid(), now=NOW)
    assert first.uuid != second.uuid
    assert not status.HasField("uuid")
    # And feeding a prepared status back in does not keep its uuid either.
    third = prepare_status(first, executor_id=EID, agent_id=AID, uuid=fresh_uuid(), now=NOW)
    assert third.uuid not in (first.uuid, second.uuid)


@given(task_statuses(states=NON_STAGING_STATES, stamped=False), uuid_bytes(), st.floats(0, 2e9))
def test_prepare_status_properties(status, fresh, now):
    before = status.SerializePartialToString()
    had_timestamp = status.HasField("timestamp")
    prepared = prepare_status(status, executor_id=EID, agent_id=AID, uuid=fresh, now=now)
    assert status.SerializePartialToString() == before
    assert prepared.uuid == fresh
    assert prepared.source == TaskStatus.SOURCE_EXECUTOR
    assert prepared.executor_id.value == EID
    assert prepared.agent_id.value == AID
    assert prepared.timestamp == (status.timestamp if had_timestamp else now)
    for name in (
        "task_id",
        "state",
        "message",
        "data",
        "reason",
        "healthy",
        "labels",
        "check_status",
    ):
        assert prepared.HasField(name) == status.HasField(name)
        assert getattr(prepared, name) == getattr(status, name)
    assert agent_validate(update_call(FID, EID, prepared)) is None


@given(
    task_statuses(stamped=False),
    st.binary(max_size=20) | uuid_bytes(),
    st.sampled_from([None, EID, "other"]),
    st.sampled_from([None, AID, "other"]),
)
def test_prepare_status_never_mutates_even_when_refusing(status, fresh, status_eid, status_aid):
    if status_eid is not None:
        status.executor_id.value = status_eid
    if status_aid is not None:
        status.agent_id.value = status_aid
    executor_id = EID
    before = status.SerializePartialToString()
    try:
        prepared = prepare_status(
            status, executor_id=executor_id, agent_id=AID, uuid=fresh, now=NOW
        )
    except LocalProtocolError:
        pass
    else:
        # Whatever it accepts, the agent accepts.
        assert agent_validate(update_call(FID, executor_id, prepared)) is None
    assert status.SerializePartialToString() == before


def _foreign(field: str) -> mesos_pb2.TaskStatus:
    status = _status()
    getattr(status, field).value = "someone-else"
    return status


def _check(kind: int | None, field: str | None) -> mesos_pb2.TaskStatus:
    status = _status()
    status.check_status.SetInParent()
    if kind is not None:
        status.check_status.type = kind  # type: ignore[assignment]
    if field is not None:
        getattr(status.check_status, field).SetInParent()
    return status


def _no_task_id() -> mesos_pb2.TaskStatus:
    return TaskStatus(state=mesos_pb2.TASK_RUNNING)


def _empty_task_id() -> mesos_pb2.TaskStatus:
    status = TaskStatus(state=mesos_pb2.TASK_RUNNING)
    status.task_id.SetInParent()
    return status


def _no_state() -> mesos_pb2.TaskStatus:
    status = TaskStatus()
    status.task_id.value = "t"
    return status


REFUSED = {
    "staging": _status(mesos_pb2.TASK_STAGING),
    "foreign-executor": _foreign("executor_id"),
    "foreign-agent": _foreign("agent_id"),
    "check-without-type": _check(None, None),
    "check-unknown-type": _check(mesos_pb2.CheckInfo.UNKNOWN, "command"),
    "check-command-without-command": _check(mesos_pb2.CheckInfo.COMMAND, "http"),
    "check-http-without-http": _check(mesos_pb2.CheckInfo.HTTP, None),
    "check-tcp-without-tcp": _check(mesos_pb2.CheckInfo.TCP, "command"),
    "no-task-id": _no_task_id(),
    "empty-task-id": _empty_task_id(),
    "no-state": _no_state(),
}


@pytest.mark.parametrize("status", REFUSED.values(), ids=REFUSED.keys())
def test_prepare_status_refuses(status):
    before = status.SerializePartialToString()
    with pytest.raises(LocalProtocolError):
        prepare_status(status, executor_id=EID, agent_id=AID, uuid=fresh_uuid(), now=NOW)
    assert status.SerializePartialToString() == before


@pytest.mark.parametrize(
    "bad_uuid",
    [
        b"",
        b"abcd",
        bytes(16),
        bytes(6) + b"\x60" + bytes(9),
        uuid.uuid4().bytes + b"\x00",
        uuid.uuid4().bytes[:15],
    ],
    ids=["empty", "4-bytes", "zero", "version-6", "17-bytes", "15-bytes"],
)
def test_prepare_status_refuses_an_invalid_uuid(bad_uuid):
    with pytest.raises(LocalProtocolError):
        prepare_status(_status(), executor_id=EID, agent_id=AID, uuid=bad_uuid, now=NOW)


def test_what_prepare_status_refuses_the_agent_refuses_too():
    # Each refused case (but foreign-agent, which the agent silently drops and
    # missing task_id/state, which it cannot parse) fails the agent's validation.
    for name in (
        "staging",
        "foreign-executor",
        "check-without-type",
        "check-unknown-type",
        "check-command-without-command",
        "check-http-without-http",
        "check-tcp-without-tcp",
    ):
        status = mesos_pb2.TaskStatus()
        status.CopyFrom(REFUSED[name])
        status.uuid = fresh_uuid()
        status.source = TaskStatus.SOURCE_EXECUTOR
        assert agent_validate(update_call(FID, EID, status)) is not None, name


def test_prepare_status_rejects_non_task_status():
    with pytest.raises(TypeError):
        prepare_status("task-0", executor_id=EID, agent_id=AID, uuid=fresh_uuid(), now=NOW)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------
# is_valid_uuid, terminal states
# ----------------------------------------------------------------------------


def _with_version(nibble: int) -> bytes:
    raw = bytearray(uuid.uuid4().bytes)
    raw[6] = (nibble << 4) | (raw[6] & 0x0F)
    return bytes(raw)


def test_is_valid_uuid_examples():
    assert is_valid_uuid(uuid.uuid4().bytes)
    assert is_valid_uuid(uuid.uuid1().bytes)
    assert not is_valid_uuid(bytes(16))
    assert not is_valid_uuid(b"abcd")
    assert not is_valid_uuid(b"")
    assert not is_valid_uuid(uuid.uuid4().bytes * 2)


@pytest.mark.parametrize("nibble", range(16))
def test_is_valid_uuid_version_nibble(nibble):
    assert is_valid_uuid(_with_version(nibble)) == (1 <= nibble <= 5)


@given(st.binary(max_size=40))
def test_is_valid_uuid_agrees_with_the_agent(value):
    assert is_valid_uuid(value) == _agent_uuid_ok(value)


@given(st.sampled_from([1, 3, 4, 5]).flatmap(lambda v: uuid_bytes(v)))
def test_is_valid_uuid_accepts_standard_versions(value):
    assert is_valid_uuid(value)


def test_terminal_states():
    terminal = {
        mesos_pb2.TASK_FINISHED,
        mesos_pb2.TASK_FAILED,
        mesos_pb2.TASK_KILLED,
        mesos_pb2.TASK_LOST,
        mesos_pb2.TASK_ERROR,
        mesos_pb2.TASK_DROPPED,
        mesos_pb2.TASK_GONE,
        mesos_pb2.TASK_GONE_BY_OPERATOR,
    }
    assert terminal == TERMINAL_STATES
    for value in mesos_pb2.TaskState.DESCRIPTOR.values:
        assert is_terminal(value.number) == (value.number in terminal)


@given(task_statuses(states=NON_STAGING_STATES, stamped=True), uuid_bytes())
def test_prepare_status_of_an_already_stamped_status(status, fresh):
    # Whatever uuid and timestamp were there before, the given uuid wins and
    # the caller's timestamp stays.
    status.executor_id.value = EID
    prepared = prepare_status(status, executor_id=EID, agent_id=None, uuid=fresh, now=NOW)
    assert prepared.uuid == fresh
    assert prepared.timestamp == status.timestamp
    assert agent_validate(update_call(FID, EID, prepared)) is None
