"""The real agent's bytes: captures from an unmodified Mesos 1.11.0 agent.

See tests/data/vectors/README.md. Every event record decodes to its recorded
type and content, every stream de-frames to its records, every raw HTTP
response de-chunks (through h11) to its stream, every request the agent
accepted decodes as a Call that passes the agent's validation, and our call
builders produce the same Calls as the captured requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pathlib
import re

import h11
import pytest
from google.protobuf import json_format, unknown_fields
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import VECTORS
from tests.pure.test_messages import agent_receive, agent_validate
from tests.strategies import byte_splits, fresh_uuid, split
from trio_mesos._errors import RemoteProtocolError
from trio_mesos._messages import (
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
    decode_message,
    encode_message,
    heartbeat_call,
    is_valid_uuid,
    message_call,
    parse_event,
    prepare_status,
    subscribe_call,
    update_call,
)
from trio_mesos._recordio import NEED_DATA, RecordIODecoder, encode_record
from trio_mesos.v1 import executor_pb2, mesos_pb2

Call = executor_pb2.Call
Event = executor_pb2.Event

INDEX: dict[str, dict] = {
    entry["file"]: entry for entry in json.loads((VECTORS / "index.json").read_text())["files"]
}
CONTENT_TYPES = {"json": ContentType.JSON, "protobuf": ContentType.PROTOBUF}
EVENT_CLASSES = {
    "SUBSCRIBED": Subscribed,
    "LAUNCH": Launch,
    "LAUNCH_GROUP": LaunchGroup,
    "KILL": Kill,
    "ACKNOWLEDGED": Acknowledged,
    "MESSAGE": Message,
    "ERROR": Error,
    "SHUTDOWN": Shutdown,
    "HEARTBEAT": Heartbeat,
}
NOW = 1_800_000_000.25


def rel(path: pathlib.Path) -> str:
    return path.relative_to(VECTORS).as_posix()


def params(paths: list[pathlib.Path]) -> list:
    return [pytest.param(p, id=rel(p)) for p in paths]


def content_type_of(path: pathlib.Path) -> ContentType:
    return CONTENT_TYPES[rel(path).split("/")[0]]


SCENARIOS = sorted(p for enc in CONTENT_TYPES for p in (VECTORS / enc).iterdir() if p.is_dir())
EVENT_NAME = re.compile(r"(?:^event-|^subscribe-\d+-event-\d{3}-)([A-Z_]+)\.(?:json|bin)$")
EVENT_FILES = sorted(
    [p for enc in CONTENT_TYPES for p in (VECTORS / enc).glob("event-*")]
    + [p for d in SCENARIOS for p in d.glob("subscribe-*-event-*")]
)
STREAMS = sorted(p for d in SCENARIOS for p in d.glob("subscribe-*-stream.recordio"))
RAW_RESPONSES = sorted(p for d in SCENARIOS for p in d.glob("subscribe-*-response-raw.bin"))
CALL_REQUESTS = sorted(
    p
    for d in SCENARIOS
    for p in [*d.glob("call-*.request.http"), *d.glob("subscribe-*-request.http")]
)


def stream_events(stream: pathlib.Path) -> list[pathlib.Path]:
    """The ``subscribe-K-event-NNN-*`` files of a ``subscribe-K-stream.recordio``, in order."""
    k = stream.name.split("-")[1]
    return sorted(stream.parent.glob(f"subscribe-{k}-event-*"))


def test_the_capture_set_is_complete():
    # Guards against a glob silently matching nothing.
    assert len(SCENARIOS) == 12
    assert len(EVENT_FILES) == len([e for e in INDEX.values() if "event_type" in e]) == 102
    assert len(STREAMS) == len(RAW_RESPONSES) == 16
    assert len(CALL_REQUESTS) >= 60
    for path in EVENT_FILES + STREAMS + RAW_RESPONSES + CALL_REQUESTS:
        assert rel(path) in INDEX


@pytest.mark.parametrize(
    "name", [n for n in INDEX if not n.startswith("errors/") or n.endswith((".bin", ".http"))]
)
def test_files_match_the_index(name):
    data = (VECTORS / name).read_bytes()
    assert len(data) == INDEX[name]["size"]
    assert hashlib.sha256(data).hexdigest() == INDEX[name]["sha256"]


# ----------------------------------------------------------------------------
# Event records
# ----------------------------------------------------------------------------


def _strip_unknown(value):
    if isinstance(value, dict):
        return {k: _strip_unknown(v) for k, v in value.items() if not k.startswith("_unknown_")}
    if isinstance(value, list):
        return [_strip_unknown(v) for v in value]
    return value


def _unknown_entries(value, path=()):
    """``(path, field number, values)`` of every ``_unknown_N`` key in ``decoded``."""
    if isinstance(value, dict):
        for key, child in value.items():
            if key.startswith("_unknown_"):
                yield path, int(key.removeprefix("_unknown_")), child
            else:
                yield from _unknown_entries(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _unknown_entries(child, (*path, i))


def same_json(ours, theirs) -> bool:
    """JSON equality where a 64-bit integer may be a string on one side (``"31000"`` == 31000)."""
    if isinstance(ours, dict):
        return (
            isinstance(theirs, dict)
            and ours.keys() == theirs.keys()
            and all(same_json(ours[k], theirs[k]) for k in ours)
        )
    if isinstance(ours, list):
        return (
            isinstance(theirs, list)
            and len(ours) == len(theirs)
            and all(same_json(a, b) for a, b in zip(ours, theirs, strict=True))
        )
    if isinstance(ours, str) and type(theirs) is int:
        return ours == str(theirs)
    if type(ours) is int and isinstance(theirs, str):
        return str(ours) == theirs
    return type(ours) is type(theirs) and ours == theirs


@pytest.mark.parametrize("path", params(EVENT_FILES))
def test_event_record_parses_to_its_type(path):
    entry = INDEX[rel(path)]
    match = EVENT_NAME.match(path.name)
    assert match is not None
    type_name = match.group(1)
    assert entry["event_type"] == type_name
    parsed = parse_event(path.read_bytes(), content_type_of(path))
    assert type(parsed) is EVENT_CLASSES[type_name]


@pytest.mark.parametrize("path", params(EVENT_FILES))
def test_event_record_content(path):
    raw = path.read_bytes()
    content_type = content_type_of(path)
    event = decode_message(raw, content_type, Event)
    ours = json_format.MessageToDict(event, preserving_proto_field_name=True)
    entry = INDEX[rel(path)]
    if content_type is ContentType.PROTOBUF:
        # index.json renders the record (bytes as base64, enums by name,
        # unknown fields as _unknown_<n>).
        theirs = entry["decoded"]
        assert same_json(ours, _strip_unknown(theirs))
        # Unknown fields (AgentInfo field 7 in SUBSCRIBED) are kept...
        for where, number, values in _unknown_entries(theirs):
            message = event
            for step in where:
                message = message[step] if isinstance(step, int) else getattr(message, step)
            kept = [
                f.data for f in unknown_fields.UnknownFieldSet(message) if f.field_number == number
            ]
            assert kept == values
        # ... and re-encoding gives back the agent's exact bytes.
        assert encode_message(event, ContentType.PROTOBUF) == raw
    else:
        # The record is the agent's JSON itself; what we read is what it wrote.
        assert "decoded" not in entry
        assert same_json(ours, json.loads(raw))


def test_protobuf_subscribed_carries_agent_info_field_7():
    raw = (VECTORS / "protobuf" / "event-SUBSCRIBED.bin").read_bytes()
    parsed = parse_event(raw, ContentType.PROTOBUF)
    assert isinstance(parsed, Subscribed)
    fields = unknown_fields.UnknownFieldSet(parsed.agent_info)
    assert [(f.field_number, f.data) for f in fields] == [(7, 1)]
    event = decode_message(raw, ContentType.PROTOBUF, Event)
    assert event.SerializeToString() == raw


def test_recorded_event_payloads_read_back():
    # A few field-level spot checks, values taken from the decoded renderings.
    for enc, ext in (("json", "json"), ("protobuf", "bin")):
        ct = CONTENT_TYPES[enc]
        ack = parse_event((VECTORS / enc / f"event-ACKNOWLEDGED.{ext}").read_bytes(), ct)
        assert isinstance(ack, Acknowledged)
        assert ack.task_id.startswith("task-")
        assert len(ack.uuid) == 16
        kill = parse_event((VECTORS / enc / f"event-KILL.{ext}").read_bytes(), ct)
        assert isinstance(kill, Kill)
        assert kill.kill_policy is None  # a v0 scheduler: no kill_policy in KILL
        launch = parse_event((VECTORS / enc / f"event-LAUNCH.{ext}").read_bytes(), ct)
        assert isinstance(launch, Launch)
        assert launch.task.kill_policy.grace_period.nanoseconds == 2_000_000_000
        group = parse_event((VECTORS / enc / f"event-LAUNCH_GROUP.{ext}").read_bytes(), ct)
        assert isinstance(group, LaunchGroup)
        assert len(group.task_group.tasks) == 3
        sub = parse_event((VECTORS / enc / f"event-SUBSCRIBED.{ext}").read_bytes(), ct)
        assert isinstance(sub, Subscribed)
        assert sub.container_id is not None
        assert sub.executor_info.type == mesos_pb2.ExecutorInfo.DEFAULT


# ----------------------------------------------------------------------------
# RecordIO streams
# ----------------------------------------------------------------------------


def decode_stream(chunks) -> list[bytes]:
    decoder = RecordIODecoder()
    records = []
    for chunk in chunks:
        decoder.receive_data(chunk)
        while (record := decoder.next_record()) is not NEED_DATA:
            records.append(record)
    decoder.receive_data(b"")
    # Every capture stops at a record boundary: a clean end of stream.
    assert decoder.next_record() is NEED_DATA
    assert decoder.buffered == 0
    return records


@pytest.mark.parametrize("stream", params(STREAMS))
@pytest.mark.parametrize("feed", ["whole", "bytewise", "halves"])
def test_stream_decodes_to_its_event_files(stream, feed):
    data = stream.read_bytes()
    chunks = {
        "whole": [data],
        "bytewise": split(data, range(len(data))),
        "halves": split(data, [len(data) // 2]),
    }[feed]
    expected = [p.read_bytes() for p in stream_events(stream)]
    assert expected
    assert decode_stream(chunks) == expected


@pytest.mark.parametrize("stream", params(STREAMS))
def test_stream_is_our_framing_of_its_events(stream):
    records = [p.read_bytes() for p in stream_events(stream)]
    assert b"".join(encode_record(r) for r in records) == stream.read_bytes()
    ct = content_type_of(stream)
    types = [type(parse_event(r, ct)).__name__ for r in records]
    assert types[0] in ("Subscribed", "Shutdown")  # PROTOCOL.md §0 fact 11


@given(st.sampled_from(STREAMS), st.data())
def test_stream_decodes_in_any_split(stream, data):
    raw = stream.read_bytes()
    chunks = data.draw(byte_splits(raw))
    assert decode_stream(chunks) == [p.read_bytes() for p in stream_events(stream)]


# ----------------------------------------------------------------------------
# Raw HTTP responses through h11
# ----------------------------------------------------------------------------


def read_request(path: pathlib.Path) -> tuple[h11.Request, bytes]:
    """Parse a captured request with an h11 server: the request and its body."""
    server = h11.Connection(our_role=h11.SERVER)
    server.receive_data(path.read_bytes())
    request = server.next_event()
    assert isinstance(request, h11.Request)
    body = b""
    while True:
        event = server.next_event()
        if isinstance(event, h11.EndOfMessage):
            return request, body
        assert isinstance(event, h11.Data)
        body += event.data


def header(request: h11.Request, name: bytes) -> str | None:
    for key, value in request.headers:
        if key == name:
            return value.decode()
    return None


def client_after(request_path: pathlib.Path) -> h11.Connection:
    """An h11 client that has sent the captured request."""
    request, body = read_request(request_path)
    client = h11.Connection(our_role=h11.CLIENT)
    client.send(
        h11.Request(
            method=request.method, target=request.target, headers=list(request.headers.raw_items())
        )
    )
    if body:
        client.send(h11.Data(data=body))
    client.send(h11.EndOfMessage())
    return client


def read_response(client: h11.Connection, chunks) -> tuple[h11.Response, bytes, bool]:
    """Feed the response in ``chunks``: the head, the de-chunked body, and whether it ended."""
    response = None
    body = bytearray()
    ended = False
    for chunk in chunks:
        client.receive_data(chunk)
        while (event := client.next_event()) is not h11.NEED_DATA:
            if isinstance(event, h11.Response):
                assert response is None
                response = event
            elif isinstance(event, h11.Data):
                assert response is not None
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                ended = True
                assert client.their_state is h11.DONE
            else:
                raise AssertionError(event)
    assert response is not None
    return response, bytes(body), ended


def segments_of(raw_path: pathlib.Path, data: bytes) -> list[bytes]:
    """The response split as the executor's recv() calls returned it."""
    segments_path = raw_path.with_name(raw_path.name.replace("-raw.bin", "-segments.json"))
    sizes = [size for size, _seconds in json.loads(segments_path.read_text())]
    assert sum(sizes) == len(data)
    chunks, at = [], 0
    for size in sizes:
        chunks.append(data[at : at + size])
        at += size
    return chunks


@pytest.mark.parametrize("raw_path", params(RAW_RESPONSES))
@pytest.mark.parametrize("feed", ["segments", "bytewise"])
def test_raw_response_dechunks_to_the_stream(raw_path, feed):
    entry = INDEX[rel(raw_path)]
    k = raw_path.name.split("-")[1]
    data = raw_path.read_bytes()
    chunks = segments_of(raw_path, data) if feed == "segments" else split(data, range(len(data)))
    client = client_after(raw_path.with_name(f"subscribe-{k}-request.http"))
    response, body, ended = read_response(client, chunks)

    assert response.status_code == 200
    assert response.http_version == b"1.1"
    captured = [line.split(": ", 1) for line in entry["headers"]]
    assert [[n.decode(), v.decode()] for n, v in response.headers.raw_items()] == captured
    headers = dict(response.headers)
    assert headers[b"transfer-encoding"] == b"chunked"
    assert headers[b"content-type"].decode() == str(content_type_of(raw_path))
    assert b"content-length" not in headers
    head = raw_path.with_name(f"subscribe-{k}-response-head.http").read_bytes()
    assert data.startswith(head)

    stream = raw_path.with_name(f"subscribe-{k}-stream.recordio")
    assert body == stream.read_bytes()
    # Only probe-executor/subscribe-1 was ended by the agent (second SUBSCRIBE).
    assert ended == entry["ends_with_last_chunk"]
    assert ended == (raw_path.parent.name == "probe-executor" and k == "1")


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_second_subscribe_response_from_the_errors_probe(encoding):
    folder = VECTORS / "errors" / ("" if encoding == "json" else "protobuf")
    raw_path = folder / "200-subscribe-second.response-raw.bin"
    data = raw_path.read_bytes()
    client = client_after(folder / "200-subscribe-second.request.http")
    response, body, ended = read_response(client, split(data, range(0, len(data), 7)))
    assert response.status_code == 200
    assert not ended
    ct = CONTENT_TYPES[encoding]
    records = decode_stream([body])
    assert [type(parse_event(r, ct)).__name__.upper() for r in records] == INDEX[rel(raw_path)][
        "event_types"
    ]
    # The first subscriber's stream got the last chunk.
    first = (folder / "subscribe-second.first-stream-raw.bin").read_bytes()
    assert first.endswith(b"\r\n0\r\n\r\n")


# ----------------------------------------------------------------------------
# Captured requests: the agent accepted these Calls
# ----------------------------------------------------------------------------

CALL_NAME = re.compile(r"^call-\d{3}-(?:recovery-)?([A-Z]+)")


def captured_call(path: pathlib.Path) -> executor_pb2.Call:
    request, body = read_request(path)
    content_type = content_type_of(path)
    assert header(request, b"content-type") == str(content_type)
    assert header(request, b"accept") == str(content_type)
    assert request.method == b"POST"
    return decode_message(body, content_type, Call)


@pytest.mark.parametrize("path", params(CALL_REQUESTS))
def test_captured_request_is_a_valid_call(path):
    call = captured_call(path)
    assert agent_validate(call) is None
    match = CALL_NAME.match(path.name)
    expected_type = match.group(1) if match else "SUBSCRIBE"
    assert Call.Type.Name(call.type) == expected_type
    # The agent's answer: 200 (SUBSCRIBE), 202, or 503 while it recovered.
    if match:
        response = path.with_name(path.name.replace(".request.http", ".response.http"))
        status_line = response.read_bytes().split(b"\r\n", 1)[0]
        expected = b"503" if "recovery-UPDATE" in path.name else b"202"
        assert status_line.split(b" ")[1] == expected


@pytest.mark.parametrize("path", params(CALL_REQUESTS))
def test_our_builders_reproduce_the_captured_call(path):
    captured = captured_call(path)
    content_type = content_type_of(path)
    fid, eid = captured.framework_id.value, captured.executor_id.value
    if captured.type == Call.SUBSCRIBE:
        ours = subscribe_call(
            fid,
            eid,
            captured.subscribe.unacknowledged_tasks,
            [u.status for u in captured.subscribe.unacknowledged_updates],
        )
    elif captured.type == Call.UPDATE:
        # What a caller would hand us: no uuid, source, executor_id or timestamp.
        caller = mesos_pb2.TaskStatus()
        caller.CopyFrom(captured.update.status)
        for name in ("uuid", "source", "executor_id", "timestamp"):
            caller.ClearField(name)
        fresh = fresh_uuid()
        prepared = prepare_status(caller, executor_id=eid, agent_id=None, uuid=fresh, now=NOW)
        ours = update_call(fid, eid, prepared)
    elif captured.type == Call.MESSAGE:
        ours = message_call(fid, eid, captured.message.data)
    else:
        assert captured.type == Call.HEARTBEAT
        ours = heartbeat_call(fid, eid)

    received = agent_receive(encode_message(ours, content_type), content_type)
    if captured.type == Call.UPDATE:
        assert received.update.status.uuid == fresh
        assert received.update.status.timestamp == NOW
        assert received.update.status.uuid != captured.update.status.uuid
        for call in (received, captured):
            call.update.status.ClearField("uuid")
            call.update.status.ClearField("timestamp")
        assert received.update.status.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR
        assert received.update.status.executor_id.value == eid
        assert received.update.status.task_id == captured.update.status.task_id
        assert received.update.status.state == captured.update.status.state
    assert received == captured


# ----------------------------------------------------------------------------
# errors/: what the real agent said about bad (and edge-case good) requests
# ----------------------------------------------------------------------------

VALIDATION_PREFIX = "Failed to validate Executor::Call: "
PARSE_FAILURES = (
    "Failed to parse body into Call protobuf",
    "Failed to parse body into JSON",
    "Failed to convert JSON into Call protobuf",
)
LATER_REFUSALS = ("Framework cannot be found", "Executor cannot be found")
# Refused before the body was parsed as an executor Call (method, path,
# media types) - nothing to check against our decoder and validator.
NOT_PARSED = {
    "get-plain-path",
    "get-slave1-path",
    "missing-content-type",
    "content-type-json-charset",
    "content-type-unsupported",
    "subscribe-accept-neither",
    "path-slave2",
    "path-api-v1",
}


def _error_cases() -> list:
    cases = []
    for folder in (VECTORS / "errors", VECTORS / "errors" / "protobuf"):
        encoding = "json" if folder.name == "errors" else "protobuf"
        for entry in json.loads((folder / "summary.json").read_text()):
            case = entry["case"]
            if case in NOT_PARSED:
                continue
            request = next(folder.glob(f"*-{case}.request.http"))
            cases.append(
                pytest.param(request, CONTENT_TYPES[encoding], entry, id=f"{encoding}-{case}")
            )
    return cases


@pytest.mark.parametrize(("request_path", "content_type", "entry"), _error_cases())
def test_agent_verdicts_agree_with_our_decoder_and_validator(request_path, content_type, entry):
    _request, body = read_request(request_path)
    status = int(entry["status_line"].split()[1])
    answer = entry.get("body") or ""
    if answer.startswith(VALIDATION_PREFIX):
        call = decode_message(body, content_type, Call)
        assert agent_validate(call) == answer.removeprefix(VALIDATION_PREFIX)
    elif answer.startswith(PARSE_FAILURES):
        with pytest.raises(RemoteProtocolError):
            decode_message(body, content_type, Call)
    else:
        # Accepted (200/202), not implemented (UNKNOWN, 501) or refused later
        # for unknown ids: a valid Call either way.
        assert status in (200, 202, 501) or answer in LATER_REFUSALS, entry
        assert agent_validate(decode_message(body, content_type, Call)) is None


def test_errors_cases_are_all_classified():
    for folder in (VECTORS / "errors", VECTORS / "errors" / "protobuf"):
        for entry in json.loads((folder / "summary.json").read_text()):
            answer = entry.get("body") or ""
            status = int(entry["status_line"].split()[1])
            assert (
                entry["case"] in NOT_PARSED
                or answer.startswith((VALIDATION_PREFIX, *PARSE_FAILURES))
                or status in (200, 202, 501)
                or answer in LATER_REFUSALS
            ), entry["case"]


def test_the_uuid_the_agent_refused_is_refused_by_us_too():
    # errors/400-update-uuid-16-zero-bytes and -4-bytes, cross-checked on is_valid_uuid.
    for case in ("400-update-uuid-16-zero-bytes", "400-update-uuid-4-bytes"):
        call = decode_message(
            read_request(VECTORS / "errors" / f"{case}.request.http")[1], ContentType.JSON, Call
        )
        assert not is_valid_uuid(call.update.status.uuid)
    for path in CALL_REQUESTS:
        call = captured_call(path)
        if call.type == Call.UPDATE:
            assert is_valid_uuid(call.update.status.uuid)
            assert base64.b64encode(call.update.status.uuid)  # 16 raw bytes, not text
