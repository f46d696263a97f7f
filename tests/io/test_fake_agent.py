"""FakeAgent with a raw h11 client: every response code, the RecordIO stream, the
acknowledgement rules, restart and recovery, stall / inject / drop, auth, keep-alive.

Everything runs over ``agent.connect()`` memory streams, so timing is asserted
in virtual time (``autojump_clock``); only the TCP and Unix-socket tests use
real sockets.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import h11
import pytest
import trio
import trio.testing

from trio_mesos import ExecutorConfig
from trio_mesos._messages import ContentType, decode_message, encode_message
from trio_mesos._recordio import NEED_DATA, RecordIODecoder, encode_record
from trio_mesos.testing import (
    AckPolicy,
    FakeAgent,
    NotSubscribedError,
    RecordedCall,
)
from trio_mesos.v1 import executor_pb2, mesos_pb2

Call = executor_pb2.Call
Event = executor_pb2.Event
JSON = ContentType.JSON.value
PROTOBUF = ContentType.PROTOBUF.value
PLAIN = "text/plain; charset=utf-8"
PATH = "/slave(1)/api/v1/executor"


# ------------------------------------------------------------------------------------
# A raw h11 client (also used by test_fake_agent_fidelity.py)
# ------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def header_names(self) -> list[str]:
        return [name for name, _ in self.headers]


class RawClient:
    """An HTTP/1.1 client made of h11 and one trio stream, nothing else."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.raw = bytearray()

    async def _event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = bytes(await self.stream.receive_some(65536))
                self.raw += data
                self.h11.receive_data(data)
                continue
            return event

    def request_bytes(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] | None = None,
        *,
        content_type: str | None = JSON,
        accept: str | None = JSON,
    ) -> bytes:
        if headers is None:
            headers = [("Host", "127.0.0.1:5051")]
            if content_type is not None:
                headers.append(("Content-Type", content_type))
            if accept is not None:
                headers.append(("Accept", accept))
            if method == "POST" or body:
                headers.append(("Content-Length", str(len(body))))
        data = self.h11.send(h11.Request(method=method, target=path, headers=list(headers)))
        if body:
            data += self.h11.send(h11.Data(data=body))
        data += self.h11.send(h11.EndOfMessage())
        return data

    async def send(self, method: str, path: str, body: bytes = b"", **kw: Any) -> None:
        await self.stream.send_all(self.request_bytes(method, path, body, **kw))

    async def head(self) -> Reply:
        self.raw.clear()
        event = await self._event()
        assert isinstance(event, h11.Response), event
        return Reply(
            event.status_code,
            event.reason.decode(),
            [(k.decode(), v.decode()) for k, v in event.headers.raw_items()],
            b"",
            b"",
        )

    async def response(self) -> Reply:
        reply = await self.head()
        body = bytearray()
        while True:
            event = await self._event()
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        reply.body = bytes(body)
        reply.raw = bytes(self.raw)
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        return reply

    async def call(self, method: str, path: str, body: bytes = b"", **kw: Any) -> Reply:
        await self.send(method, path, body, **kw)
        return await self.response()

    async def next_chunk(self) -> bytes | None:
        """The next HTTP chunk of a streaming body (one whole chunk), None at its end."""
        event = await self._event()
        if isinstance(event, h11.EndOfMessage):
            return None
        assert isinstance(event, h11.Data), event
        assert event.chunk_start and event.chunk_end, "a chunk arrived in pieces"
        return bytes(event.data)

    async def next_event(self, content_type: str = JSON) -> executor_pb2.Event:
        """The next chunk, which must be exactly one RecordIO record, decoded."""
        chunk = await self.next_chunk()
        assert chunk is not None, "the stream ended"
        decoder = RecordIODecoder()
        decoder.receive_data(chunk)
        record = decoder.next_record()
        assert record is not NEED_DATA and decoder.buffered == 0, chunk
        assert isinstance(record, bytes)
        return decode_message(record, ContentType(content_type), Event)


def body_of(call: executor_pb2.Call, content_type: str = JSON) -> bytes:
    return encode_message(call, ContentType(content_type))


def make_call(agent: FakeAgent, kind: int, **ids: str) -> executor_pb2.Call:
    call = Call(type=kind)  # type: ignore[arg-type]
    call.framework_id.value = ids.get("framework_id", agent.framework_id)
    call.executor_id.value = ids.get("executor_id", agent.executor_id)
    if kind == Call.SUBSCRIBE:
        call.subscribe.SetInParent()
    elif kind == Call.MESSAGE:
        call.message.data = b"hello"
    return call


def make_status(
    task_id: str, state: int = mesos_pb2.TASK_RUNNING, uuid_: bytes | None = None
) -> mesos_pb2.TaskStatus:
    status = mesos_pb2.TaskStatus(state=state)  # type: ignore[arg-type]
    status.task_id.value = task_id
    status.source = mesos_pb2.TaskStatus.SOURCE_EXECUTOR
    status.uuid = uuid.uuid4().bytes if uuid_ is None else uuid_
    status.timestamp = 1795797877.25
    return status


def update_call(agent: FakeAgent, status: mesos_pb2.TaskStatus) -> executor_pb2.Call:
    call = make_call(agent, Call.UPDATE)
    call.update.status.CopyFrom(status)
    return call


def task(task_id: str) -> mesos_pb2.TaskInfo:
    info = mesos_pb2.TaskInfo(name=f"task {task_id}")
    info.task_id.value = task_id
    info.agent_id.value = "fake-agent-S0"
    info.command.value = "sleep 1"
    return info


async def subscribe(
    agent: FakeAgent,
    *,
    accept: str | None = JSON,
    tasks: Sequence[mesos_pb2.TaskInfo] = (),
    updates: Sequence[mesos_pb2.TaskStatus] = (),
    content_type: str = JSON,
) -> tuple[RawClient, executor_pb2.Event]:
    """SUBSCRIBE on a new connection; return the client and the first event."""
    client = RawClient(await agent.connect())
    call = make_call(agent, Call.SUBSCRIBE)
    call.subscribe.unacknowledged_tasks.extend(tasks)
    for status in updates:
        call.subscribe.unacknowledged_updates.add().status.CopyFrom(status)
    await client.send(
        "POST", PATH, body_of(call, content_type), content_type=content_type, accept=accept
    )
    head = await client.head()
    assert head.status == 200, head
    first = await client.next_event(head.header("Content-Type") or JSON)
    return client, first


async def post(
    agent_or_client: FakeAgent | RawClient,
    call: executor_pb2.Call,
    path: str = PATH,
    content_type: str = JSON,
    **kw: Any,
) -> Reply:
    if isinstance(agent_or_client, FakeAgent):
        client = RawClient(await agent_or_client.connect())
    else:
        client = agent_or_client
    return await client.call(
        "POST", path, body_of(call, content_type), content_type=content_type, **kw
    )


def assert_error(reply: Reply, status: int, body: str) -> None:
    assert (reply.status, reply.body.decode()) == (status, body)
    assert reply.header("Content-Type") == PLAIN
    assert reply.header("Content-Length") == str(len(reply.body))
    assert reply.header_names[0] == "Date"


def assert_accepted(reply: Reply) -> None:
    assert reply.status == 202, reply
    assert reply.header_names == ["Date", "Content-Length"]
    assert reply.header("Content-Length") == "0" and reply.body == b""


async def assert_silent(client: RawClient, seconds: float) -> None:
    """No byte arrives on the client's stream for ``seconds`` (virtual time)."""
    with trio.move_on_after(seconds) as scope:
        data = await client.stream.receive_some(65536)
        pytest.fail(f"unexpected bytes: {bytes(data)!r}")
    assert scope.cancelled_caught


# ------------------------------------------------------------------------------------
# SUBSCRIBE: head, framing, media type
# ------------------------------------------------------------------------------------


async def test_subscribe_head_and_one_record_per_chunk(autojump_clock: Any) -> None:
    async with FakeAgent(checkpoint=True) as agent:
        stream = await agent.connect()
        client = RawClient(stream)
        await client.send("POST", PATH, body_of(make_call(agent, Call.SUBSCRIBE)))
        raw = bytearray()
        while b"\r\n\r\n" not in raw:
            raw += await stream.receive_some(65536)
        head, _, body = bytes(raw).partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 200 OK"
        assert [line.split(b":")[0] for line in lines[1:]] == [
            b"Date",
            b"Transfer-Encoding",
            b"Content-Type",
        ]
        assert lines[2:] == [b"Transfer-Encoding: chunked", b"Content-Type: application/json"]
        assert re.fullmatch(rb"Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", lines[1])

        await agent.launch(task("t1"))
        await agent.message(b"m")
        body += bytes(await stream.receive_some(65536))
        # Three chunks, each "<hex size>\r\n<one RecordIO record>\r\n".
        records = []
        while body:
            size_text, _, rest = body.partition(b"\r\n")
            assert re.fullmatch(rb"[0-9a-f]+", size_text), size_text
            size = int(size_text, 16)
            chunk, body = rest[:size], rest[size:]
            assert body.startswith(b"\r\n")
            body = body[2:]
            length, _, record = chunk.partition(b"\n")
            assert int(length) == len(record)
            records.append(json.loads(record))
        assert [r["type"] for r in records] == ["SUBSCRIBED", "LAUNCH", "MESSAGE"]
        subscribed = records[0]["subscribed"]
        assert subscribed["framework_info"]["id"]["value"] == agent.framework_id
        assert subscribed["framework_info"]["checkpoint"] is True
        assert subscribed["executor_info"]["executor_id"]["value"] == agent.executor_id
        assert subscribed["agent_info"]["id"]["value"] == agent.agent_id
        assert subscribed["container_id"]["value"] == agent.container_id
        assert agent.subscribed and agent.subscriptions == 1
        assert [c.status_code for c in agent.calls] == [200]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("application/json", JSON),
        ("application/x-protobuf", PROTOBUF),
        ("application/x-protobuf, application/json", JSON),
        ("application/json;q=0, application/x-protobuf", PROTOBUF),
        ("application/json;q=bogus", JSON),
        ("APPLICATION/X-PROTOBUF;q=0.5", PROTOBUF),
        ("text/html", None),
        ("application/json;q=0", None),
    ],
)
async def test_subscribe_media_type_from_accept(accept: str | None, expected: str | None) -> None:
    async with FakeAgent() as agent:
        client = RawClient(await agent.connect())
        call = make_call(agent, Call.SUBSCRIBE)
        await client.send("POST", PATH, body_of(call), accept=accept)
        if expected is None:
            reply = await client.response()
            assert_error(
                reply,
                406,
                "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'",
            )
            assert not agent.subscribed
            return
        head = await client.head()
        assert head.status == 200 and head.header("Content-Type") == expected
        event = await client.next_event(expected)
        assert event.type == Event.SUBSCRIBED


async def test_protobuf_stream_keeps_the_agents_unknown_agent_info_field() -> None:
    from google.protobuf import unknown_fields

    async with FakeAgent() as agent:
        _client, event = await subscribe(agent, accept=PROTOBUF, content_type=PROTOBUF)
        unknown: Any = unknown_fields.UnknownFieldSet(event.subscribed.agent_info)
        numbers = [f.field_number for f in unknown]
        assert numbers == [7]
        assert event.subscribed.agent_info.id.value == agent.agent_id


async def test_subscribe_ids_come_from_given_infos() -> None:
    executor_info = mesos_pb2.ExecutorInfo(name="mine")
    executor_info.executor_id.value = "fake-executor"
    framework_info = mesos_pb2.FrameworkInfo(user="u", name="fw")
    async with FakeAgent(executor_info=executor_info, framework_info=framework_info) as agent:
        _client, event = await subscribe(agent)
        assert event.subscribed.executor_info.name == "mine"
        assert event.subscribed.framework_info.name == "fw"
        assert event.subscribed.framework_info.id.value == agent.framework_id


# ------------------------------------------------------------------------------------
# Every response code
# ------------------------------------------------------------------------------------


def _bad_update(agent: FakeAgent, change: str) -> executor_pb2.Call:
    status = make_status("t1")
    if change == "uuid-missing":
        status.ClearField("uuid")
    elif change == "uuid-short":
        status.uuid = b"abcd"
    elif change == "uuid-no-version":
        status.uuid = bytes(16)
    elif change == "executor-mismatch":
        status.executor_id.value = "other"
    elif change == "source-unset":
        status.ClearField("source")
    elif change == "source-agent":
        status.source = mesos_pb2.TaskStatus.SOURCE_AGENT
    elif change == "staging":
        status.state = mesos_pb2.TASK_STAGING
    elif change == "check-no-type":
        status.check_status.SetInParent()
    elif change == "check-no-command":
        status.check_status.type = mesos_pb2.CheckInfo.COMMAND
    return update_call(agent, status)


VALIDATION_CASES = [
    ("uuid-missing", "Expecting 'uuid' to be present"),
    ("uuid-short", "Not a valid UUID"),
    ("uuid-no-version", "Not a valid UUID"),
    (
        "executor-mismatch",
        "ExecutorID in Call: fake-executor does not match ExecutorID in TaskStatus: other",
    ),
    (
        "source-unset",
        "Received Call from executor fake-executor of framework "
        "fake-framework-0000 with invalid source, expecting 'SOURCE_EXECUTOR'",
    ),
    (
        "source-agent",
        "Received Call from executor fake-executor of framework "
        "fake-framework-0000 with invalid source, expecting 'SOURCE_EXECUTOR'",
    ),
    (
        "staging",
        "Received TASK_STAGING from executor fake-executor of framework "
        "fake-framework-0000 which is not allowed",
    ),
    ("check-no-type", "CheckStatusInfo must specify 'type'"),
    ("check-no-command", "Expecting 'command' to be set for COMMAND check's status"),
]


@pytest.mark.parametrize("content_type", [JSON, PROTOBUF])
@pytest.mark.parametrize(("change", "reason"), VALIDATION_CASES)
async def test_update_validation(content_type: str, change: str, reason: str) -> None:
    async with FakeAgent() as agent:
        await subscribe(agent)
        reply = await post(agent, _bad_update(agent, change), content_type=content_type)
        assert_error(reply, 400, "Failed to validate Executor::Call: " + reason)
        assert agent.updates() == []


@pytest.mark.parametrize(
    ("kind", "clear", "reason"),
    [
        (Call.UPDATE, "update", "Expecting 'update' to be present"),
        (Call.MESSAGE, "message", "Expecting 'message' to be present"),
        (Call.SUBSCRIBE, "subscribe", "Expecting 'subscribe' to be present"),
        (Call.HEARTBEAT, "type", "Expecting 'type' to be present"),
    ],
)
async def test_call_validation(kind: int, clear: str, reason: str) -> None:
    async with FakeAgent() as agent:
        call = make_call(agent, kind)
        call.ClearField(clear)  # type: ignore[arg-type]
        reply = await post(agent, call, content_type=PROTOBUF)
        assert_error(reply, 400, "Failed to validate Executor::Call: " + reason)


async def test_request_level_errors() -> None:
    async with FakeAgent() as agent:
        client = RawClient(await agent.connect())
        heartbeat = body_of(make_call(agent, Call.HEARTBEAT))

        reply = await client.call("POST", "/slave(2)/api/v1/executor", heartbeat)
        assert_error(reply, 404, "404 Not Found.")
        reply = await client.call("POST", "/nowhere", heartbeat)
        assert_error(reply, 404, "404 Not Found.")
        for path in ("/api/v1/executor", PATH):
            reply = await client.call("GET", path, content_type=None)
            assert_error(
                reply,
                405,
                "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'GET'.",
            )
            assert reply.header_names == ["Date", "Allow", "Content-Type", "Content-Length"]
            assert reply.header("Allow") == "POST"
        reply = await client.call("POST", PATH, heartbeat, content_type=None)
        assert_error(reply, 400, "Expecting 'Content-Type' to be present")
        for bad in ("application/json; charset=utf-8", "text/plain", "APPLICATION/JSON"):
            reply = await client.call("POST", PATH, heartbeat, content_type=bad)
            assert_error(
                reply, 415, "Expecting 'Content-Type' of application/json or application/x-protobuf"
            )
        reply = await client.call("POST", PATH, b"\xff\xff\xffgarbage", content_type=PROTOBUF)
        assert_error(reply, 400, "Failed to parse body into Call protobuf")
        reply = await client.call("POST", PATH, b"", content_type=PROTOBUF)
        assert_error(reply, 400, "Failed to parse body into Call protobuf")
        reply = await client.call("POST", PATH, b'{"type": "HEARTBEAT", ')
        assert_error(reply, 400, "Failed to parse body into JSON: syntax error at line 1 near: ")
        reply = await client.call("POST", PATH, b"[1]")
        assert_error(
            reply, 400, "Failed to convert JSON into Call protobuf: Expecting a JSON object"
        )
        reply = await client.call("POST", PATH, b'{"type": "SUBSCRIBE"}')
        assert_error(
            reply,
            400,
            "Failed to convert JSON into Call protobuf: Missing required fields: executor_id, "
            "framework_id",
        )
        reply = await client.call(
            "POST",
            PATH,
            b'{"type": 4, "framework_id": {"value": "f"}, "executor_id": {"value": "e"}}',
        )
        assert_error(
            reply,
            400,
            "Failed to convert JSON into Call protobuf: Not expecting a JSON number "
            "for field 'type'",
        )
        # Everything on one keep-alive connection, every answer recorded.
        assert len({c.connection for c in agent.calls}) == 1
        assert [c.status_code for c in agent.calls][:2] == [404, 404]
        assert all(c.call is None for c in agent.calls)


async def test_lookup_and_state_errors() -> None:
    async with FakeAgent() as agent:
        # Before any SUBSCRIBE the executor is REGISTERING.
        assert_error(
            await post(agent, make_call(agent, Call.MESSAGE)), 403, "Executor is not subscribed"
        )
        assert_error(
            await post(agent, update_call(agent, make_status("t1"))),
            403,
            "Executor is not subscribed",
        )
        unknown_type = make_call(agent, Call.UNKNOWN)
        assert_error(await post(agent, unknown_type), 403, "Executor is not subscribed")
        # HEARTBEAT is answered before any lookup.
        assert_accepted(
            await post(agent, make_call(agent, Call.HEARTBEAT, framework_id="x", executor_id="y"))
        )
        for kind in (Call.SUBSCRIBE, Call.UPDATE, Call.MESSAGE):
            call = make_call(agent, kind, framework_id="nope")
            if kind == Call.UPDATE:
                call.update.status.CopyFrom(make_status("t1"))
            assert_error(await post(agent, call), 400, "Framework cannot be found")
            call.framework_id.value = agent.framework_id
            call.executor_id.value = "nope"
            assert_error(await post(agent, call), 400, "Executor cannot be found")

        await subscribe(agent)
        assert_error(await post(agent, unknown_type), 501, "501 Not Implemented.")
        assert_accepted(await post(agent, make_call(agent, Call.MESSAGE), accept="text/html"))
        assert agent.messages == [b"hello"]


async def test_paths_over_memory_and_trailing_slash() -> None:
    async with FakeAgent() as agent:
        client = RawClient(await agent.connect())
        heartbeat = make_call(agent, Call.HEARTBEAT)
        for path in ("/api/v1/executor", "/api/v1/executor/", PATH, PATH + "/", PATH + "?x=1"):
            assert_accepted(await post(client, heartbeat, path=path))
        reply = await post(client, heartbeat, path="/api/v1")
        assert_error(reply, 400, "Failed to validate agent::Call: Expecting 'type' to be present")


async def test_keep_alive_and_pipelining() -> None:
    async with FakeAgent() as agent:
        await subscribe(agent)
        await agent.launch(task("t1"))
        client = RawClient(await agent.connect())
        # Several calls one after the other on one connection.
        for _ in range(3):
            assert_accepted(await post(client, make_call(agent, Call.HEARTBEAT)))
        # Pipelined: three requests in one write, answers in order. (An h11
        # client will not pipeline; one h11 connection per request makes the bytes.)
        raw = b"".join(
            RawClient(client.stream).request_bytes("POST", PATH, body)
            for body in (
                body_of(make_call(agent, Call.MESSAGE)),
                b"not json",
                body_of(update_call(agent, make_status("t1"))),
            )
        )
        pipelined = RawClient(await agent.connect())
        await pipelined.stream.send_all(raw)
        statuses: list[bytes] = []
        buffer = bytearray()
        while len(statuses) < 3:
            buffer += await pipelined.stream.receive_some(65536)
            statuses = re.findall(rb"HTTP/1.1 (\d{3})", bytes(buffer))
        assert statuses == [b"202", b"400", b"202"]
        recorded = [c for c in agent.calls if c.connection == agent.calls[-1].connection]
        assert [c.status_code for c in recorded] == [202, 400, 202]


# ------------------------------------------------------------------------------------
# Events sent by the control methods
# ------------------------------------------------------------------------------------


async def test_control_methods_write_each_event(autojump_clock: Any) -> None:
    async with FakeAgent(shutdown_grace_period=5.0) as agent:
        for method in (agent.launch(task("t0")), agent.heartbeat(), agent.kill("t1")):
            with pytest.raises(NotSubscribedError):
                await method
        assert agent.task_state("t0") is None  # (a real agent would queue the task)
        client, first = await subscribe(agent)
        assert first.type == Event.SUBSCRIBED

        assert await agent.launch(task("t1")) is True
        event = await client.next_event()
        assert event.type == Event.LAUNCH and event.launch.task.task_id.value == "t1"
        assert event.launch.task.agent_id.value == agent.agent_id
        assert agent.task_state("t1") == mesos_pb2.TASK_STAGING

        group = mesos_pb2.TaskGroupInfo()
        group.tasks.extend([task("g1"), task("g2")])
        await agent.launch_group(group)
        event = await client.next_event()
        assert event.type == Event.LAUNCH_GROUP
        assert [t.task_id.value for t in event.launch_group.task_group.tasks] == ["g1", "g2"]
        assert agent.task_state("g2") == mesos_pb2.TASK_STAGING

        await agent.kill("t1")
        event = await client.next_event()
        assert event.type == Event.KILL and not event.kill.HasField("kill_policy")
        policy = mesos_pb2.KillPolicy()
        policy.grace_period.nanoseconds = 2_000_000_000
        await agent.kill("g1", kill_policy=policy)
        event = await client.next_event()
        assert event.kill.task_id.value == "g1"
        assert event.kill.kill_policy.grace_period.nanoseconds == 2_000_000_000

        await agent.message(b"\x00data")
        event = await client.next_event()
        assert event.type == Event.MESSAGE and event.message.data == b"\x00data"
        await agent.heartbeat()
        assert (await client.next_event()).type == Event.HEARTBEAT

        start = trio.current_time()
        await agent.shutdown()
        assert (await client.next_event()).type == Event.SHUTDOWN
        assert agent.executor_state == "terminating"
        # The stream stays open after SHUTDOWN (the real agent waited its grace).
        await assert_silent(client, 4.9)
        # A SUBSCRIBE now gets a stream with SHUTDOWN only, then the last chunk.
        late, event = await subscribe(agent)
        assert event.type == Event.SHUTDOWN
        assert await late.next_chunk() is None
        assert agent.subscriptions == 1
        # After the grace period the agent destroys the executor: the stream ends,
        # tasks not terminal fail, the framework is forgotten.
        assert await client.next_chunk() is None
        assert trio.current_time() - start == pytest.approx(5.0)
        assert agent.executor_state == "terminated"
        lost = agent.updates("t1")[-1]
        assert lost.state == mesos_pb2.TASK_FAILED
        assert lost.reason == mesos_pb2.TaskStatus.REASON_EXECUTOR_TERMINATED
        assert lost.source == mesos_pb2.TaskStatus.SOURCE_AGENT
        assert_error(
            await post(agent, make_call(agent, Call.MESSAGE)), 400, "Framework cannot be found"
        )
        kinds = [e.type for e in agent.events if e.delivered and e.subscription == 1]
        assert kinds == [
            Event.SUBSCRIBED,
            Event.LAUNCH,
            Event.LAUNCH_GROUP,
            Event.KILL,
            Event.KILL,
            Event.MESSAGE,
            Event.HEARTBEAT,
            Event.SHUTDOWN,
        ]


async def test_periodic_heartbeats(autojump_clock: Any) -> None:
    async with FakeAgent() as agent:
        client, _ = await subscribe(agent)
        start = trio.current_time()
        assert (await client.next_event()).type == Event.HEARTBEAT
        assert trio.current_time() - start == pytest.approx(1800)
        assert (await client.next_event()).type == Event.HEARTBEAT
        assert trio.current_time() - start == pytest.approx(3600)
    async with FakeAgent(heartbeat_interval=None) as agent:
        client, _ = await subscribe(agent)
        await assert_silent(client, 10 * 3600)


# ------------------------------------------------------------------------------------
# Updates and acknowledgements
# ------------------------------------------------------------------------------------


async def test_immediate_ack_duplicates_and_terminal_rules() -> None:
    async with FakeAgent() as agent:
        client, _ = await subscribe(agent)
        await agent.launch(task("t1"))
        await client.next_event()
        calls = RawClient(await agent.connect())

        running = make_status("t1")
        assert_accepted(await post(calls, update_call(agent, running)))
        ack = await client.next_event()
        assert ack.type == Event.ACKNOWLEDGED
        assert (ack.acknowledged.task_id.value, ack.acknowledged.uuid) == ("t1", running.uuid)
        assert agent.task_state("t1") == mesos_pb2.TASK_RUNNING
        # The agent fills in agent_id.
        assert agent.updates("t1")[0].agent_id.value == agent.agent_id

        # A duplicate (same uuid) is acknowledged again.
        assert_accepted(await post(calls, update_call(agent, running)))
        assert (await client.next_event()).acknowledged.uuid == running.uuid

        finished = make_status("t1", mesos_pb2.TASK_FINISHED)
        assert_accepted(await post(calls, update_call(agent, finished)))
        assert (await client.next_event()).acknowledged.uuid == finished.uuid
        # Anything after the terminal update is dropped, but acknowledged.
        late = make_status("t1", mesos_pb2.TASK_RUNNING)
        assert_accepted(await post(calls, update_call(agent, late)))
        assert (await client.next_event()).acknowledged.uuid == late.uuid
        assert agent.task_state("t1") == mesos_pb2.TASK_FINISHED
        assert [s.state for s in agent.updates("t1")] == [
            mesos_pb2.TASK_RUNNING,
            mesos_pb2.TASK_RUNNING,
            mesos_pb2.TASK_FINISHED,
            mesos_pb2.TASK_RUNNING,
        ]

        # An unknown task: 202, but never acknowledged.
        assert_accepted(await post(calls, update_call(agent, make_status("nope"))))
        await agent.heartbeat()
        assert (await client.next_event()).type == Event.HEARTBEAT
        assert agent.task_state("nope") is None
        assert [s.task_id.value for s in agent.updates("nope")] == ["nope"]


async def test_delayed_ack_in_virtual_time(autojump_clock: Any) -> None:
    async with FakeAgent(ack_policy=AckPolicy.DELAYED, ack_delay=0.75) as agent:
        client, _ = await subscribe(agent)
        await agent.launch(task("t1"))
        await client.next_event()
        status = make_status("t1")
        start = trio.current_time()
        assert_accepted(await post(agent, update_call(agent, status)))
        assert trio.current_time() == start
        assert agent.pending_acks == [("t1", status.uuid)]
        ack = await client.next_event()
        assert ack.acknowledged.uuid == status.uuid
        assert trio.current_time() - start == pytest.approx(0.75)
        assert agent.pending_acks == []


async def test_withheld_and_manual_acks(autojump_clock: Any) -> None:
    for policy in (AckPolicy.WITHHELD, AckPolicy.MANUAL):
        async with FakeAgent(ack_policy=policy) as agent:
            client, _ = await subscribe(agent)
            await agent.launch(task("t1"))
            await client.next_event()
            first, second = make_status("t1"), make_status("t1")
            for status in (first, second):
                assert_accepted(await post(agent, update_call(agent, status)))
            await assert_silent(client, 1000)  # (the first HEARTBEAT comes at 1800 s)
            assert agent.pending_acks == [("t1", first.uuid), ("t1", second.uuid)]
            # Manual release, in any order.
            assert await agent.ack(uuid.UUID(bytes=second.uuid)) is True
            assert (await client.next_event()).acknowledged.uuid == second.uuid
            assert await agent.ack_all() == 1
            assert (await client.next_event()).acknowledged.uuid == first.uuid
            with pytest.raises(KeyError):
                await agent.ack(first.uuid)


async def test_wait_helpers() -> None:
    async with FakeAgent() as agent:
        results: dict[str, Any] = {}

        async def waiter() -> None:
            await agent.wait_subscribed()
            results["call"] = await agent.wait_call(Call.UPDATE)
            results["status"] = await agent.wait_for_update("t1", mesos_pb2.TASK_FINISHED)
            results["ack"] = await agent.wait_event(Event.ACKNOWLEDGED, count=2)
            await agent.wait_subscribed(count=2)
            results["resubscribed"] = True

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert results == {}
            client, _ = await subscribe(agent)
            await agent.launch(task("t1"))
            await post(agent, update_call(agent, make_status("t1")))
            finished = make_status("t1", mesos_pb2.TASK_FINISHED)
            await post(agent, update_call(agent, finished))
            await trio.testing.wait_all_tasks_blocked()
            assert "resubscribed" not in results
            await subscribe(agent)
        recorded = results["call"]
        assert isinstance(recorded, RecordedCall) and recorded.call is not None
        assert recorded.call.update.status.state == mesos_pb2.TASK_RUNNING
        assert results["status"].uuid == finished.uuid
        assert results["ack"].event.acknowledged.uuid == finished.uuid
        # Already-arrived updates return at once.
        with trio.fail_after(1):
            assert (await agent.wait_for_update("t1", mesos_pb2.TASK_RUNNING)).state == (
                mesos_pb2.TASK_RUNNING
            )
        del client


# ------------------------------------------------------------------------------------
# Re-subscription
# ------------------------------------------------------------------------------------


async def test_second_subscribe_ends_the_first_stream_but_not_its_connection() -> None:
    async with FakeAgent() as agent:
        first, _ = await subscribe(agent)
        await agent.launch(task("t1"))
        await first.next_event()
        second, event = await subscribe(agent, tasks=[task("t1")])
        assert event.type == Event.SUBSCRIBED
        # The first stream ends with the last chunk ...
        assert await first.next_chunk() is None
        # ... and its connection stays usable.
        assert first.h11.our_state is h11.DONE and first.h11.their_state is h11.DONE
        first.h11.start_next_cycle()
        assert_accepted(await post(first, make_call(agent, Call.HEARTBEAT)))
        # No LAUNCH again on the new stream; events go there now.
        await agent.message(b"x")
        assert (await second.next_event()).type == Event.MESSAGE
        assert agent.subscriptions == 2
        assert [t.task_id.value for t in agent.unacknowledged_tasks_seen] == ["t1"]
        assert agent.task_state("t1") == mesos_pb2.TASK_STAGING


async def test_unacknowledged_updates_are_reprocessed() -> None:
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD) as agent:
        await subscribe(agent)
        await agent.launch(task("t1"))
        running = make_status("t1")
        assert_accepted(await post(agent, update_call(agent, running)))
        agent.ack_policy = AckPolicy.IMMEDIATE
        # The executor re-sends the unacknowledged update in SUBSCRIBE: it is a
        # duplicate for the agent, which acknowledges it after SUBSCRIBED.
        extra = make_status("t1", mesos_pb2.TASK_FINISHED)
        client, event = await subscribe(agent, tasks=[task("t1")], updates=[running, extra])
        assert event.type == Event.SUBSCRIBED
        acks = [await client.next_event() for _ in range(2)]
        assert [a.acknowledged.uuid for a in acks] == [running.uuid, extra.uuid]
        assert [s.uuid for s in agent.updates("t1")] == [running.uuid, running.uuid, extra.uuid]
        assert agent.task_state("t1") == mesos_pb2.TASK_FINISHED
        assert [s.uuid for s in agent.unacknowledged_updates_seen] == [running.uuid, extra.uuid]


async def test_staging_task_missing_from_resubscribe_becomes_lost() -> None:
    async with FakeAgent() as agent:
        await subscribe(agent)
        await agent.launch(task("listed"))
        await agent.launch(task("forgotten"))
        await agent.launch(task("running"))
        await post(agent, update_call(agent, make_status("running")))
        await subscribe(agent, tasks=[task("listed")])
        lost = await agent.wait_for_update("forgotten", mesos_pb2.TASK_LOST)
        assert lost.source == mesos_pb2.TaskStatus.SOURCE_AGENT
        assert lost.reason == mesos_pb2.TaskStatus.REASON_AGENT_RESTARTED
        assert lost.message == "Task launched during agent restart"
        assert agent.task_state("listed") == mesos_pb2.TASK_STAGING
        assert agent.task_state("running") == mesos_pb2.TASK_RUNNING


# ------------------------------------------------------------------------------------
# Restart and recovery
# ------------------------------------------------------------------------------------


async def test_restart_phases_checkpointing(autojump_clock: Any) -> None:
    async with FakeAgent(checkpoint=True, reregistration_timeout=2.0) as agent:
        client, _ = await subscribe(agent)
        await agent.launch(task("t1"))
        await agent.launch(task("staged"))
        await client.next_event()
        await client.next_event()
        await post(agent, update_call(agent, make_status("t1")))
        await client.next_event()

        start = trio.current_time()
        await agent.restart(down=1.0, recovering=1.5)
        assert agent.state == "down" and not agent.subscribed
        # The stream was cut: EOF without the last chunk.
        with pytest.raises(h11.RemoteProtocolError):
            await client.next_chunk()
        with pytest.raises(ConnectionRefusedError):
            await agent.connect()
        with pytest.raises(NotSubscribedError):
            await agent.message(b"x")

        # Phase 2 (from 1.0 s): every request 503, whatever it is.
        await trio.sleep(1.2)
        assert agent.state == "recovering containers"
        calls = RawClient(await agent.connect())
        for call in (make_call(agent, Call.HEARTBEAT), make_call(agent, Call.SUBSCRIBE)):
            assert_error(await post(calls, call), 503, "Agent has not finished recovery")
        assert_error(await calls.call("GET", PATH), 503, "Agent has not finished recovery")

        # Phase 3 (from 2.5 s): SUBSCRIBE and HEARTBEAT work, UPDATE and MESSAGE do not.
        await trio.sleep(1.5)
        assert agent.state == "recovering"
        assert_accepted(await post(calls, make_call(agent, Call.HEARTBEAT)))
        assert_error(
            await post(calls, update_call(agent, make_status("t1"))),
            503,
            "Agent has not finished recovery",
        )
        assert_error(
            await post(calls, make_call(agent, Call.MESSAGE)),
            503,
            "Agent has not finished recovery",
        )
        new, event = await subscribe(agent, tasks=[task("t1")])
        assert event.type == Event.SUBSCRIBED
        await agent.wait_recovered()
        assert trio.current_time() - start == pytest.approx(2.7)
        assert agent.state == "running"
        # The task still STAGING and not listed is lost; the other survives.
        assert agent.task_state("staged") == mesos_pb2.TASK_LOST
        assert agent.task_state("t1") == mesos_pb2.TASK_RUNNING
        status = make_status("t1", mesos_pb2.TASK_FINISHED)
        assert_accepted(await post(calls, update_call(agent, status)))
        assert (await new.next_event()).acknowledged.uuid == status.uuid


async def test_restart_reregistration_timeout(autojump_clock: Any) -> None:
    async with FakeAgent(checkpoint=True, reregistration_timeout=2.0) as agent:
        await subscribe(agent)
        await agent.launch(task("t1"))
        start = trio.current_time()
        await agent.restart(down=0.5, recovering=0.5)
        await agent.wait_recovered()
        assert trio.current_time() - start == pytest.approx(3.0)
        lost = agent.updates("t1")[-1]
        assert lost.state == mesos_pb2.TASK_LOST
        assert lost.reason == mesos_pb2.TaskStatus.REASON_EXECUTOR_REREGISTRATION_TIMEOUT
        assert lost.message == "Executor did not reregister within 2secs"
        assert agent.executor_state == "terminated"
        reply = await post(agent, make_call(agent, Call.SUBSCRIBE))
        assert_error(reply, 400, "Framework cannot be found")


async def test_restart_without_checkpoint_forgets_the_framework(autojump_clock: Any) -> None:
    async with FakeAgent(checkpoint=False) as agent:
        await subscribe(agent)
        start = trio.current_time()
        await agent.restart(down=1.0, recovering=1.0)
        await agent.wait_recovered()
        # No executor to wait for: recovery ends right after the containers.
        assert trio.current_time() - start == pytest.approx(2.0)
        for kind in (Call.SUBSCRIBE, Call.MESSAGE):
            assert_error(
                await post(agent, make_call(agent, kind)), 400, "Framework cannot be found"
            )
        assert_accepted(await post(agent, make_call(agent, Call.HEARTBEAT)))


async def test_restart_loses_delayed_acks(autojump_clock: Any) -> None:
    async with FakeAgent(checkpoint=True, ack_policy=AckPolicy.DELAYED, ack_delay=5) as agent:
        client, _ = await subscribe(agent)
        await agent.launch(task("t1"))
        await client.next_event()
        status = make_status("t1")
        await post(agent, update_call(agent, status))
        await trio.sleep(1)
        await agent.restart(down=0.1, recovering=0.1)
        await trio.sleep(0.3)
        new, _ = await subscribe(agent, tasks=[task("t1")], updates=[status])
        # Acknowledged after re-sending, 5 s after the re-SUBSCRIBE.
        start = trio.current_time()
        assert (await new.next_event()).acknowledged.uuid == status.uuid
        assert trio.current_time() - start == pytest.approx(5.0)
        assert not [e for e in agent.events if e.type == Event.ACKNOWLEDGED and e.subscription == 1]


# ------------------------------------------------------------------------------------
# Fault injection
# ------------------------------------------------------------------------------------


async def test_stall_writes_nothing(autojump_clock: Any) -> None:
    async with FakeAgent() as agent:
        client, _ = await subscribe(agent)
        await agent.stall()
        assert await agent.launch(task("t1")) is False
        assert_accepted(await post(agent, update_call(agent, make_status("t1"))))
        await assert_silent(client, 24 * 3600)
        assert agent.subscribed
        lost = [e for e in agent.events if not e.delivered]
        assert [e.type for e in lost][:2] == [Event.LAUNCH, Event.ACKNOWLEDGED]
        assert all(e.type in (Event.LAUNCH, Event.ACKNOWLEDGED, Event.HEARTBEAT) for e in lost)
        # A re-SUBSCRIBE gets a working stream; the stalled one gets no last chunk.
        new, _ = await subscribe(agent, tasks=[task("t1")])
        await agent.message(b"m")
        assert (await new.next_event()).type == Event.MESSAGE
        await assert_silent(client, 60)


async def test_inject_writes_raw_bytes_as_one_chunk() -> None:
    async with FakeAgent() as agent:
        client, _ = await subscribe(agent)
        unknown = encode_record(b'{"type":"SOMETHING_NEW"}')
        for raw in (b"12\nnot-enough", b"xyz\n", unknown):
            assert await agent.inject(raw) is True
            assert await client.next_chunk() == raw
        assert [e.chunk for e in agent.events if e.event is None] == [
            b"12\nnot-enough",
            b"xyz\n",
            unknown,
        ]


async def test_fail_next() -> None:
    async with FakeAgent() as agent:
        await subscribe(agent)
        await agent.launch(task("t1"))
        agent.fail_next(2, 503, "try later", calls=[Call.UPDATE])
        client = RawClient(await agent.connect())
        assert_accepted(await post(client, make_call(agent, Call.HEARTBEAT)))
        for _ in range(2):
            assert_error(
                await post(client, update_call(agent, make_status("t1"))), 503, "try later"
            )
        assert agent.task_state("t1") == mesos_pb2.TASK_STAGING
        assert_accepted(await post(client, update_call(agent, make_status("t1"))))
        agent.fail_next(1, 500)
        assert_error(
            await post(client, make_call(agent, Call.HEARTBEAT)), 500, "500 Internal Server Error."
        )
        # SUBSCRIBE is never failed by fail_next.
        agent.fail_next(1, 503)
        _client, event = await subscribe(agent, tasks=[task("t1")])
        assert event.type == Event.SUBSCRIBED
        assert_error(
            await post(client, make_call(agent, Call.MESSAGE)), 503, "503 Service Unavailable."
        )
        with pytest.raises(ValueError, match="SUBSCRIBE"):
            agent.fail_next(1, 503, calls=[Call.SUBSCRIBE])


async def test_drop_stream_is_eof_without_last_chunk() -> None:
    async with FakeAgent() as agent:
        client, _ = await subscribe(agent)
        await agent.drop_stream()
        assert not agent.subscribed
        with pytest.raises(h11.RemoteProtocolError):
            await client.next_chunk()
        with pytest.raises(NotSubscribedError):
            await agent.heartbeat()
        # The executor is still known and running: calls work, ACKs are lost.
        await agent.wait_executor_state("running")
        assert_accepted(await post(agent, make_call(agent, Call.MESSAGE)))
        new, event = await subscribe(agent)
        assert event.type == Event.SUBSCRIBED and agent.subscriptions == 2
        del new


async def test_peer_closing_the_stream_loses_later_events() -> None:
    async with FakeAgent() as agent:
        client, _ = await subscribe(agent)
        await client.stream.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert agent.subscribed and not agent.stream_connected
        assert await agent.message(b"lost") is False
        assert agent.events[-1].delivered is False


async def test_an_executor_that_stops_reading_cannot_block_the_agent() -> None:
    # Real TCP (a memory stream never blocks), real time, wide bounds.
    async with FakeAgent(write_timeout=0.5) as agent:
        port = await agent.listen_tcp()
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            client = RawClient(stream)
            await client.send("POST", PATH, body_of(make_call(agent, Call.SUBSCRIBE)))
            await client.head()
            await client.next_event()
            # The client reads nothing more; 64 MiB cannot fit in socket buffers.
            with trio.fail_after(20):
                assert await agent.inject(b"x" * (64 << 20)) is False
                assert await agent.heartbeat() is False
            assert agent.subscribed and not agent.stream_connected
            assert [e.delivered for e in agent.events[-2:]] == [False, False]


# ------------------------------------------------------------------------------------
# Authentication
# ------------------------------------------------------------------------------------


async def test_executor_authentication() -> None:
    async with FakeAgent(token="s3cret") as agent:
        heartbeat = make_call(agent, Call.HEARTBEAT)
        client = RawClient(await agent.connect())
        reply = await post(client, heartbeat)
        assert_error(reply, 401, "401 Unauthorized.")
        assert reply.header("WWW-Authenticate") == 'Bearer realm="mesos-agent-executor"'
        for header, description in (
            ("Bearer", "Malformed 'Authorization' header"),
            ("Basic dXNlcjpwYXNz", "Scheme 'Basic' unsupported"),
            ("Bearer a.b.c", "Invalid JWT: "),
        ):
            headers = [
                ("Host", "x"),
                ("Content-Type", JSON),
                ("Authorization", header),
                ("Content-Length", str(len(body_of(heartbeat)))),
            ]
            reply = await client.call("POST", PATH, body_of(heartbeat), headers=headers)
            assert reply.status == 401
            challenge = reply.header("WWW-Authenticate") or ""
            assert challenge.startswith(
                'Bearer realm="mesos-agent-executor",error="invalid_token",'
                f'error_description="{description}'
            )

        def with_token(token: str, call: executor_pb2.Call) -> dict[str, Any]:
            body = body_of(call)
            return {
                "headers": [
                    ("Host", "x"),
                    ("Content-Type", JSON),
                    ("Accept", JSON),
                    ("Authorization", f"Bearer {token}"),
                    ("Content-Length", str(len(body))),
                ]
            }

        subscribe_call = make_call(agent, Call.SUBSCRIBE)
        for token, expected in (
            (
                agent.make_token(framework_id="other"),
                "does not contain an 'fid' claim with the framework ID fake-framework-0000, "
                "which is set in the call",
            ),
            (
                agent.make_token(executor_id="other"),
                "does not contain an 'eid' claim with the executor ID fake-executor, which is "
                "set in the call",
            ),
            (
                agent.make_token(container_id="other"),
                "does not contain a 'cid' claim with the correct active ContainerID",
            ),
        ):
            reply = await client.call(
                "POST", PATH, body_of(subscribe_call), **with_token(token, subscribe_call)
            )
            assert reply.status == 403 and reply.body.decode().startswith(
                "Authenticated principal '"
            )
            assert reply.body.decode().endswith(expected)
        # The configured token and issued tokens work.
        for token in ("s3cret", agent.make_token()):
            reply = await client.call(
                "POST", PATH, body_of(heartbeat), **with_token(token, heartbeat)
            )
            assert_accepted(reply)
        assert agent.executor_config().authentication_token == "s3cret"


# ------------------------------------------------------------------------------------
# Real sockets, configuration, lifetime
# ------------------------------------------------------------------------------------


async def test_tcp_listener_serves_both_paths() -> None:
    async with FakeAgent() as agent:
        port = await agent.listen_tcp()
        assert await agent.listen_tcp() == port
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            client = RawClient(stream)
            for path in ("/api/v1/executor", PATH):
                assert_accepted(await post(client, make_call(agent, Call.HEARTBEAT), path=path))
        assert agent.calls[-1].transport == "tcp"
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            stream_client = RawClient(stream)
            await stream_client.send("POST", PATH, body_of(make_call(agent, Call.SUBSCRIBE)))
            assert (await stream_client.head()).status == 200
            assert (await stream_client.next_event()).subscribed.agent_info.port == port


async def test_tcp_restart_refuses_then_serves_the_same_port() -> None:
    async with FakeAgent(checkpoint=True, reregistration_timeout=0.2) as agent:
        port = await agent.listen_tcp()
        await agent.restart(down=0.2, recovering=0.0)
        with pytest.raises(OSError, match="all attempts to connect"):
            await trio.open_tcp_stream("127.0.0.1", port)
        await agent.wait_recovered()
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            assert_accepted(await post(RawClient(stream), make_call(agent, Call.HEARTBEAT)))


async def test_unix_socket_serves_only_the_process_path(tmp_path: Any) -> None:
    path = str(tmp_path / "agent.sock")
    async with FakeAgent() as agent:
        await agent.listen_unix(path)
        heartbeat = make_call(agent, Call.HEARTBEAT)

        async def connect() -> RawClient:
            sock = trio.socket.socket(trio.socket.AF_UNIX)
            await sock.connect(path)
            return RawClient(trio.SocketStream(sock))

        client = await connect()
        async with client.stream:
            assert_accepted(await post(client, heartbeat, path=PATH))
            for wrong in ("/api/v1/executor", PATH + "/", "/slave(2)/api/v1/executor"):
                assert_error(await post(client, heartbeat, path=wrong), 403, "403 Forbidden.")
            reply = await post(client, heartbeat, path="/slave(1)/api/v1")
            assert reply.status == 400
        assert agent.calls[0].transport == "unix"
        config = agent.executor_config()
        assert (config.domain_socket, config.agent_path) == (path, PATH)
    assert not os.path.exists(path)


async def test_executor_config_matches_the_environment() -> None:
    async with FakeAgent(
        checkpoint=True,
        token="tok",
        shutdown_grace_period=3,
        reregistration_timeout=7,
        recovery_timeout=600,
    ) as agent:
        memory_only = agent.executor_config()
        assert memory_only.agent_host is None and memory_only.checkpoint
        port = await agent.listen_tcp()
        env = agent.executor_environment("/sandbox")
        from_env = ExecutorConfig.from_environ(env)
        config = agent.executor_config(directory="/sandbox", sandbox="/sandbox")
        assert config == from_env
        assert (config.agent_host, config.agent_port) == ("127.0.0.1", port)
        assert config.subscription_backoff_max == 7 and config.recovery_timeout == 600
        assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "3secs"
        assert env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] == "7secs"
        assert env["MESOS_RECOVERY_TIMEOUT"] == "10mins"
        assert agent.executor_config(checkpoint=False).checkpoint is False
        no_checkpoint = agent.executor_environment("/s", checkpoint=False)
        assert no_checkpoint["MESOS_CHECKPOINT"] == "0"
        assert "MESOS_RECOVERY_TIMEOUT" not in no_checkpoint


async def test_executor_environment_needs_tcp() -> None:
    async with FakeAgent() as agent:
        with pytest.raises(RuntimeError, match="listen_tcp"):
            agent.executor_environment("/sandbox")


async def test_body_exception_is_not_wrapped_and_agent_stops() -> None:
    agent = FakeAgent()
    with pytest.raises(ZeroDivisionError):
        async with agent:
            await subscribe(agent)
            1 / 0  # noqa: B018
    with pytest.raises(RuntimeError):
        await agent.connect()
    with pytest.raises(RuntimeError, match="once"):
        async with agent:
            pass


async def test_constructor_checks() -> None:
    with pytest.raises(TypeError):
        FakeAgent(ack_policy="immediate")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ack_delay"):
        FakeAgent(ack_delay=-1)
    with pytest.raises(ValueError, match="heartbeat_interval"):
        FakeAgent(heartbeat_interval=0)


def test_public_names() -> None:
    import trio_mesos.testing as testing

    for name in testing.__all__:
        obj = getattr(testing, name)
        if isinstance(obj, type):
            assert obj.__module__ == "trio_mesos.testing", name
