"""The FakeAgent against the captures of a real Mesos 1.11.0 agent (tests/data/vectors).

* every request in ``errors/`` and ``errors/protobuf/`` is replayed (over TCP,
  ``Host`` rewritten) and the whole response must equal the captured bytes,
  ``Date`` value aside: status line, header names, order and values,
  Content-Type, Content-Length, body;
* every call of every scenario folder is replayed in order (tasks launched as
  the real agent launched them, the agent restarted where the real one was)
  and answered byte for byte as captured, with the same acknowledgements;
* SUBSCRIBE heads and chunk framing match the captured streams, and the agent's
  JSON writer reproduces every captured JSON event byte for byte.

The last section names each place where the fake deliberately differs from the
real agent, and why.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from google.protobuf import json_format

from tests.conftest import VECTORS
from trio_mesos._messages import ContentType, decode_message
from trio_mesos.testing import FakeAgent
from trio_mesos.testing._agent_json import parse_json_call, parse_protobuf_call, write_json
from trio_mesos.v1 import executor_pb2, mesos_pb2

from .test_fake_agent import RawClient, make_call, subscribe

Call = executor_pb2.Call
Event = executor_pb2.Event
ERRORS = VECTORS / "errors"
SCENARIOS = ["command-kill", "command-message", "custom", "group", "probe-executor", "recovery"]


# ------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------


def parse_request(path: pathlib.Path) -> tuple[str, str, list[tuple[str, str]], bytes]:
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ")
    headers = [(k, v.lstrip()) for k, _, v in (line.partition(":") for line in lines)]
    return method, target, headers, body


def mask_date(raw: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r\n]*", b"\r\nDate: <masked>", raw)


def content_type_of(headers: list[tuple[str, str]]) -> str | None:
    return next((v for k, v in headers if k.lower() == "content-type"), None)


def decode_call(path: pathlib.Path) -> executor_pb2.Call:
    _, _, headers, body = parse_request(path)
    if content_type_of(headers) == ContentType.PROTOBUF.value:
        return parse_protobuf_call(body)
    return parse_json_call(body)


def split_chunks(body: bytes) -> Iterator[bytes]:
    """The chunks of a chunked body (stops at the last chunk or at the data's end)."""
    while body:
        size_text, sep, rest = body.partition(b"\r\n")
        if not sep:
            return
        size = int(size_text, 16)
        if size == 0:
            return
        if len(rest) < size + 2:
            return  # the capture stopped mid-chunk
        yield rest[:size]
        body = rest[size + 2 :]


def assert_one_record(chunk: bytes) -> bytes:
    length, sep, record = chunk.partition(b"\n")
    assert sep and int(length) == len(record), chunk[:80]
    return record


async def replay(
    port: int, path: pathlib.Path, *, client: RawClient | None = None
) -> tuple[RawClient, bytes]:
    """Send the captured request (Host rewritten); return the client and the raw response."""
    method, target, headers, body = parse_request(path)
    headers = [(k, f"127.0.0.1:{port}" if k.lower() == "host" else v) for k, v in headers]
    if client is None:
        client = RawClient(await trio.open_tcp_stream("127.0.0.1", port))
    await client.send(method, target, body, headers=headers)
    reply = await client.response()
    return client, reply.raw


async def replay_subscribe(port: int, path: pathlib.Path) -> tuple[RawClient, bytes]:
    """Send a captured SUBSCRIBE; return the client and the raw response head."""
    method, target, headers, body = parse_request(path)
    headers = [(k, f"127.0.0.1:{port}" if k.lower() == "host" else v) for k, v in headers]
    client = RawClient(await trio.open_tcp_stream("127.0.0.1", port))
    await client.send(method, target, body, headers=headers)
    await client.head()
    raw = bytes(client.raw)
    return client, raw[: raw.index(b"\r\n\r\n") + 4]


def error_cases() -> list[Any]:
    cases = []
    for directory, label in ((ERRORS, "json"), (ERRORS / "protobuf", "protobuf")):
        for request in sorted(directory.glob("*.request.http")):
            name = request.name.removesuffix(".request.http")
            if name.startswith("200-subscribe-second"):
                continue
            cases.append(pytest.param(directory, name, id=f"{label}/{name}"))
    return cases


# ------------------------------------------------------------------------------------
# errors/: byte-exact answers
# ------------------------------------------------------------------------------------


def test_every_capture_is_covered() -> None:
    # 39 JSON cases and 32 protobuf ones (no JSON-only cases there); the
    # second-SUBSCRIBE case is tested on its own below.
    cases = error_cases()
    assert len(cases) == 39 + 32
    for directory, name in (c.values for c in cases):
        assert (directory / f"{name}.http").is_file(), name
    for directory in (ERRORS, ERRORS / "protobuf"):
        names = {c.values[1] for c in cases if c.values[0] == directory}
        summary = json.loads((directory / "summary.json").read_text())
        for case in summary:
            if "request" in case:
                status = case["status_line"].split()[1]
                assert f"{status}-{case['case']}" in names, case["case"]


@pytest.mark.parametrize(("directory", "name"), error_cases())
async def test_error_capture_replayed_byte_for_byte(directory: pathlib.Path, name: str) -> None:
    request = directory / f"{name}.request.http"
    expected = (directory / f"{name}.http").read_bytes()
    recovering = "while-agent-recovers" in name
    # The probed executor's ids (the captured ids differ per run): the agent
    # is configured with them, so the captured requests need no rewriting.
    ids_from = request if recovering else directory / "200-subscribe-second.request.http"
    known = decode_call(ids_from)
    async with FakeAgent(
        framework_id=known.framework_id.value,
        executor_id=known.executor_id.value,
        checkpoint=recovering,
        reregistration_timeout=10.0,
    ) as agent:
        port = await agent.listen_tcp()
        # As when the captures were made: the executor is subscribed and runs task-0.
        subscriber = RawClient(await trio.open_tcp_stream("127.0.0.1", port))
        body = make_call(agent, Call.SUBSCRIBE).SerializeToString()
        await subscriber.send(
            "POST", "/slave(1)/api/v1/executor", body, content_type=ContentType.PROTOBUF.value
        )
        assert (await subscriber.head()).status == 200
        async with subscriber.stream:
            task = mesos_pb2.TaskInfo(name="task-0")
            task.task_id.value = "task-0"
            task.agent_id.value = agent.agent_id
            await agent.launch(task)
            if recovering:
                # Restarted, containers recovered, executor not yet re-subscribed.
                await agent.restart(down=0, recovering=0)
                await agent.wait_state("recovering")
            client, raw = await replay(port, request)
            async with client.stream:
                assert mask_date(raw) == mask_date(expected)


# ------------------------------------------------------------------------------------
# A second SUBSCRIBE
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("directory", [ERRORS, ERRORS / "protobuf"], ids=["json", "protobuf"])
async def test_second_subscribe_as_captured(directory: pathlib.Path) -> None:
    request = directory / "200-subscribe-second.request.http"
    captured = (directory / "200-subscribe-second.response-raw.bin").read_bytes()
    captured_head = captured[: captured.index(b"\r\n\r\n") + 4]
    known = decode_call(request)
    async with FakeAgent(
        framework_id=known.framework_id.value, executor_id=known.executor_id.value
    ) as agent:
        port = await agent.listen_tcp()
        first, first_head = await replay_subscribe(port, request)
        second, second_head = await replay_subscribe(port, request)
        async with first.stream, second.stream:
            assert mask_date(first_head) == mask_date(captured_head)
            assert mask_date(second_head) == mask_date(captured_head)
            # The new stream starts with SUBSCRIBED, one record per chunk.
            content_type = ContentType(known_content_type(request))
            event = await second.next_event(content_type.value)
            assert event.type == Event.SUBSCRIBED
            # The first stream ends exactly like the captured one: with the last chunk.
            await first.next_event(content_type.value)  # its SUBSCRIBED
            assert await first.next_chunk() is None
            ending = (ERRORS / "subscribe-second.first-stream-raw.bin").read_bytes()
            assert ending.endswith(b"\r\n0\r\n\r\n")
            assert bytes(first.raw).endswith(b"0\r\n\r\n")
            # ... and its connection stays open and usable.
            first.h11.start_next_cycle()
            body = make_call(agent, Call.HEARTBEAT).SerializeToString()
            reply = await first.call(
                "POST",
                "/slave(1)/api/v1/executor",
                body,
                content_type=ContentType.PROTOBUF.value,
            )
            assert reply.status == 202


def known_content_type(request: pathlib.Path) -> str:
    _, _, headers, _ = parse_request(request)
    accept = next(v for k, v in headers if k.lower() == "accept")
    return accept


# ------------------------------------------------------------------------------------
# Scenario folders: every call answered as captured, same acknowledgements
# ------------------------------------------------------------------------------------


def event_files(folder: pathlib.Path, k: int) -> list[pathlib.Path]:
    return sorted(p for p in folder.glob(f"subscribe-{k}-event-*") if p.suffix in (".json", ".bin"))


def decode_event(path: pathlib.Path) -> executor_pb2.Event:
    content_type = ContentType.JSON if path.suffix == ".json" else ContentType.PROTOBUF
    return decode_message(path.read_bytes(), content_type, Event)


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_scenario_calls_replayed(encoding: str, scenario: str) -> None:
    folder = VECTORS / encoding / scenario
    env = json.loads((folder / "executor-env.json").read_text())
    checkpoint = env["MESOS_CHECKPOINT"] == "1"
    calls = sorted(folder.glob("call-*.request.http"))
    second = folder / "subscribe-2-request.http"
    captured_acks = {
        decode_event(p).acknowledged.uuid
        for k in (1, 2)
        for p in event_files(folder, k)
        if p.stem.endswith("ACKNOWLEDGED")
    }
    async with FakeAgent(
        framework_id=env["MESOS_FRAMEWORK_ID"],
        executor_id=env["MESOS_EXECUTOR_ID"],
        agent_id=env["MESOS_SLAVE_ID"],
        checkpoint=checkpoint,
        reregistration_timeout=10.0,
    ) as agent:
        port = await agent.listen_tcp()
        stream, head = await replay_subscribe(port, folder / "subscribe-1-request.http")
        streams = [stream]
        assert mask_date(head) == mask_date(
            (folder / "subscribe-1-response-head.http").read_bytes()
        )
        # The tasks the real agent launched, as it launched them.
        for path in event_files(folder, 1):
            event = decode_event(path)
            if event.type == Event.LAUNCH:
                await agent.launch(event.launch.task)
            elif event.type == Event.LAUNCH_GROUP:
                await agent.launch_group(event.launch_group.task_group)
        restarted = False
        for request in calls:
            if "-recovery-" in request.name and not restarted:
                await agent.restart(down=0, recovering=0)
                await agent.wait_state("recovering")
                restarted = True
            if second.exists() and request == calls[-1]:
                new_stream, head = await replay_subscribe(port, second)
                streams.append(new_stream)
                expected_head = (folder / "subscribe-2-response-head.http").read_bytes()
                assert mask_date(head) == mask_date(expected_head)
            client, raw = await replay(port, request)
            await client.stream.aclose()
            expected = request.with_name(request.name.replace(".request.", ".response."))
            assert mask_date(raw) == mask_date(expected.read_bytes()), request.name
        with trio.fail_after(5):
            await agent.wait_event(Event.ACKNOWLEDGED, count=len(captured_acks))
        ours = {
            e.event.acknowledged.uuid
            for e in agent.events
            if e.delivered and e.event is not None and e.type == Event.ACKNOWLEDGED
        }
        assert ours == captured_acks
        for s in streams:
            await s.stream.aclose()


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
async def test_stream_framing_matches_the_captures(encoding: str) -> None:
    """One RecordIO record per chunk, in the captures and in the fake's stream."""
    for scenario in SCENARIOS:
        raw = (VECTORS / encoding / scenario / "subscribe-1-response-raw.bin").read_bytes()
        body = raw[raw.index(b"\r\n\r\n") + 4 :]
        for chunk in split_chunks(body):
            assert_one_record(chunk)
        assert re.match(rb"[0-9a-f]+\r\n", body)  # lower-case hex sizes
    content_type = ContentType.JSON.value if encoding == "json" else ContentType.PROTOBUF.value
    async with FakeAgent() as agent:
        port = await agent.listen_tcp()
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            client = RawClient(stream)
            call = make_call(agent, Call.SUBSCRIBE)
            body = call.SerializeToString()
            await client.send(
                "POST",
                "/slave(1)/api/v1/executor",
                body,
                content_type=ContentType.PROTOBUF.value,
                accept=content_type,
            )
            await client.head()
            await client.next_event(content_type)
            await agent.message(b"x")
            await agent.heartbeat()
            for _ in range(2):
                await client.next_event(content_type)
            raw = bytes(client.raw)
            ours = list(split_chunks(raw[raw.index(b"\r\n\r\n") + 4 :]))
            assert len(ours) == 3
            for chunk in ours:
                assert_one_record(chunk)


def test_agent_json_writer_reproduces_every_captured_event() -> None:
    files = sorted((VECTORS / "json").rglob("*event-*.json"))
    assert len(files) > 40
    for path in files:
        raw = path.read_bytes()
        event = json_format.Parse(raw, Event())
        assert write_json(event) == raw, path


async def test_subscribed_has_the_captured_shape() -> None:
    captured = json.loads(
        (VECTORS / "json/custom/subscribe-1-event-001-SUBSCRIBED.json").read_text()
    )
    async with FakeAgent() as agent:
        await agent.listen_tcp()
        _client, event = await subscribe(agent)
        ours = json.loads(write_json(event))
    assert list(ours) == list(captured) == ["type", "subscribed"]
    for key in ("framework_info", "agent_info"):
        assert list(ours["subscribed"][key]) == list(captured["subscribed"][key]), key
    assert list(ours["subscribed"]) == list(captured["subscribed"])


# ------------------------------------------------------------------------------------
# Where the fake deliberately differs from the real agent
# ------------------------------------------------------------------------------------


async def test_difference_json_syntax_error_detail() -> None:
    """picojson reports the position after the characters it consumed; we report
    Python's error position. The text matches up to ``near: ``; what follows can
    differ (the captured cases, errors at the end of the body, match exactly).
    Python's parser is also stricter than picojson about numbers (picojson takes
    ``01``): such bodies get 400 here and would be accepted by the agent."""
    async with FakeAgent() as agent:
        client = RawClient(await agent.connect())
        reply = await client.call("POST", "/api/v1/executor", b'{"type": tru}')
        assert reply.status == 400
        assert reply.body.startswith(
            b"Failed to parse body into JSON: syntax error at line 1 near: "
        )
        heartbeat = (
            b'{"type": "HEARTBEAT", "framework_id": {"value": "f"}, '
            b'"executor_id": {"value": "e"}, "n": 01}'
        )
        reply = await client.call("POST", "/api/v1/executor", heartbeat)
        assert reply.status == 400  # a real agent: 202


async def test_difference_operator_api_is_not_implemented() -> None:
    """``/api/v1`` is the agent's operator API. The fake only gives the answers a
    real agent gives to an executor Call sent there by mistake (both captured);
    a genuine operator call gets the same 400 instead of being served."""
    async with FakeAgent() as agent:
        client = RawClient(await agent.connect())
        reply = await client.call("POST", "/api/v1", b'{"type": "GET_HEALTH"}')
        assert (reply.status, reply.body) == (
            400,
            b"Failed to validate agent::Call: Expecting 'type' to be present",
        )


async def test_difference_no_shutdown_for_an_executor_without_tasks() -> None:
    """A real agent answers the first SUBSCRIBE of an executor that has no queued
    task with SHUTDOWN (MESOS-8411); the fake launches tasks only after the
    executor subscribed (``launch`` needs a stream), so it always sends SUBSCRIBED."""
    async with FakeAgent() as agent:
        _client, event = await subscribe(agent)
        assert event.type == Event.SUBSCRIBED


async def test_difference_unknown_agent_info_field_position() -> None:
    """The real agent sends AgentInfo field 7 in field-number order; the fake
    appends it as an unknown field after the known ones (the bytes of the
    protobuf SUBSCRIBED differ; decoders see the same fields)."""
    async with FakeAgent() as agent:
        _client, event = await subscribe(
            agent, accept=ContentType.PROTOBUF.value, content_type=ContentType.PROTOBUF.value
        )
        data = event.subscribed.agent_info.SerializeToString()
        assert data.endswith(b"\x38\x01")
