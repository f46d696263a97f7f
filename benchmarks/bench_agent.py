"""A minimal, fast Mesos agent for benchmarks (its own process; 127.0.0.1 only).

It speaks just enough of the v1 executor API for an executor library to run:

* ``SUBSCRIBE`` -> ``200`` with a chunked RecordIO event stream (protobuf or
  JSON, as the request's ``Accept`` asks), ``SUBSCRIBED`` first, then the
  scenario's ``LAUNCH`` events;
* ``UPDATE`` -> ``202`` at once, then (unless ``--no-ack``) an ``ACKNOWLEDGED``
  event on the stream;
* any other call -> ``202``. Pipelined requests are answered in order.

It reports on stdout, one JSON object per line:

* ``{"event": "listening", "port": P}``
* ``{"event": "subscribed", "t": <time.monotonic()>}`` for every SUBSCRIBE
* with ``--wait-go``, the LAUNCHes start only after a line arrives on stdin
  (the harness measures the subscribed, idle executor first);
* ``{"event": "done", ...}`` once ``--tasks`` x ``--updates`` UPDATEs were
  answered (and acknowledged), with the elapsed time and the dispatch
  latencies (the executor puts ``time.monotonic()`` at ``launch_task`` entry
  into the ``message`` of each task's first update; CLOCK_MONOTONIC is
  system-wide on Linux).

A raw client (``--tasks 0``) may POST UPDATEs without subscribing: they are
answered 202 and counted, and no ACK is sent (there is no stream).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import sys
import time

from trio_mesos._proto import executor_pb2, mesos_pb2

FRAMEWORK_ID = "bench-framework"
EXECUTOR_ID = "bench-executor"
AGENT_ID = "bench-agent-S0"

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
STREAM_HEAD = (
    "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nTransfer-Encoding: chunked\r\n"
    "Mesos-Stream-Id: 11111111-2222-3333-4444-555555555555\r\n\r\n"
)
T_SUBSCRIBE = executor_pb2.Call.SUBSCRIBE
T_UPDATE = executor_pb2.Call.UPDATE


def out(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def record(data: bytes) -> bytes:
    """One RecordIO record in one HTTP chunk."""
    rec = b"%d\n%s" % (len(data), data)
    return b"%x\r\n%s\r\n" % (len(rec), rec)


def encode(event: executor_pb2.Event, ct: str) -> bytes:
    if ct == PROTOBUF:
        return event.SerializeToString()
    from google.protobuf import json_format

    doc = json_format.MessageToDict(event, preserving_proto_field_name=True)
    return json.dumps(doc, separators=(",", ":")).encode()


def subscribed_event() -> executor_pb2.Event:
    ev = executor_pb2.Event(type=executor_pb2.Event.SUBSCRIBED)
    sub = ev.subscribed
    ei = sub.executor_info
    ei.type = mesos_pb2.ExecutorInfo.CUSTOM
    ei.executor_id.value = EXECUTOR_ID
    ei.framework_id.value = FRAMEWORK_ID
    ei.command.value = "bench-executor"
    fi = sub.framework_info
    fi.user = "bench"
    fi.name = "bench-framework"
    fi.id.value = FRAMEWORK_ID
    fi.hostname = "localhost"
    sub.agent_info.hostname = "localhost"
    sub.agent_info.id.value = AGENT_ID
    sub.container_id.value = "bench-container"
    return ev


def launch_event(task_id: str) -> executor_pb2.Event:
    ev = executor_pb2.Event(type=executor_pb2.Event.LAUNCH)
    task = ev.launch.task
    task.name = task_id
    task.task_id.value = task_id
    task.agent_id.value = AGENT_ID
    return ev


class Agent:
    def __init__(self, args: argparse.Namespace) -> None:
        self.tasks: int = args.tasks
        self.updates_per_task: int = args.updates
        self.expected = self.tasks * self.updates_per_task
        self.ack: bool = not args.no_ack
        self.launch_interval: float = args.launch_interval
        self.wait_go: bool = args.wait_go
        self.stream: Conn | None = None
        self.stream_ct = PROTOBUF
        self.count = 0
        self.first_launch: float | None = None
        self.launch_sent: dict[str, float] = {}
        self.dispatch: list[float] = []
        self.seen_first: set[str] = set()
        self.done = False
        self.raw_first: float | None = None

    # -- calls ---------------------------------------------------------------------

    def on_subscribe(self, conn: Conn, ct: str) -> None:
        out(event="subscribed", t=time.monotonic())
        self.stream = conn
        self.stream_ct = ct
        conn.transport.write(STREAM_HEAD.format(ct=ct).encode("ascii"))
        conn.transport.write(record(encode(subscribed_event(), ct)))
        if self.tasks:
            asyncio.get_running_loop().create_task(self.launch_all(conn, ct))

    async def launch_all(self, conn: Conn, ct: str) -> None:
        events = [(f"t{i}", record(encode(launch_event(f"t{i}"), ct))) for i in range(self.tasks)]
        if self.wait_go:
            # the harness samples the idle executor's CPU and RSS, then says "go"
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        self.first_launch = time.monotonic()
        for task_id, data in events:
            if self.launch_interval:
                await asyncio.sleep(self.launch_interval)
            self.launch_sent[task_id] = time.monotonic()
            conn.transport.write(data)

    def on_update(self, body: bytes, ct: str) -> None:
        now = time.monotonic()
        if ct == PROTOBUF:
            status = executor_pb2.Call.FromString(body).update.status
            task_id = status.task_id.value
            uuid_b64 = None
            uuid = status.uuid
            message = status.message
        else:
            doc = json.loads(body)
            st = doc["update"]["status"]
            task_id = st["task_id"]["value"]
            uuid_b64 = st["uuid"]
            uuid = b""
            message = st.get("message", "")
        if task_id not in self.seen_first and task_id in self.launch_sent:
            self.seen_first.add(task_id)
            with contextlib.suppress(ValueError):
                self.dispatch.append(float(message) - self.launch_sent[task_id])
        self.count += 1
        stream = self.stream
        if self.ack and stream is not None and not stream.transport.is_closing():
            if self.stream_ct == PROTOBUF:
                if not uuid:
                    uuid = base64.b64decode(uuid_b64 or "")
                ev = executor_pb2.Event(type=executor_pb2.Event.ACKNOWLEDGED)
                ev.acknowledged.task_id.value = task_id
                ev.acknowledged.uuid = uuid
                data = ev.SerializeToString()
            else:
                if uuid_b64 is None:
                    uuid_b64 = base64.b64encode(uuid).decode("ascii")
                data = (
                    '{"type":"ACKNOWLEDGED","acknowledged":{"task_id":{"value":'
                    f'{json.dumps(task_id)}}},"uuid":"{uuid_b64}"}}}}'
                ).encode()
            stream.transport.write(record(data))
        if self.raw_first is None:
            self.raw_first = now
        if self.expected and self.count == self.expected and not self.done:
            self.done = True
            end = time.monotonic()
            start = self.first_launch if self.first_launch is not None else self.raw_first
            out(
                event="done",
                updates=self.count,
                elapsed=end - (start or end),
                dispatch=self.dispatch,
            )


class Conn(asyncio.Protocol):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.buf = b""
        self.closed = False
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.agent.stream is self:
            self.agent.stream = None

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos = 0
        n = len(buf)
        replies = []
        while True:
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                break
            head = buf[pos:end].lower()
            i = head.find(b"content-length:")
            length = 0
            if i >= 0:
                j = head.find(b"\r\n", i)
                length = int(head[i + 15 : j if j >= 0 else len(head)])
            body_start = end + 4
            if n < body_start + length:
                break
            body = buf[body_start : body_start + length]
            pos = body_start + length
            ct = JSON if b"content-type: application/json" in head else PROTOBUF
            if ct == PROTOBUF:
                kind = executor_pb2.Call.FromString(body).type if body[:2] != b"{" else None
            else:
                kind = None
            if kind is None:
                try:
                    kind_name = json.loads(body).get("type")
                except ValueError:
                    kind_name = None
                kind = {"SUBSCRIBE": T_SUBSCRIBE, "UPDATE": T_UPDATE}.get(kind_name, -1)
            if kind == T_SUBSCRIBE:
                if replies:
                    self.transport.write(b"".join(replies))
                    replies = []
                accept = JSON if b"accept: application/json" in head else ct
                self.agent.on_subscribe(self, accept)
                continue
            replies.append(ACCEPTED)
            if kind == T_UPDATE:
                self.agent.on_update(body, ct)
        self.buf = buf[pos:]
        if replies:
            self.transport.write(b"".join(replies))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=0)
    parser.add_argument("--updates", type=int, default=10, help="updates per task")
    parser.add_argument("--expect", type=int, default=0, help="raw mode: report after N updates")
    parser.add_argument("--no-ack", action="store_true")
    parser.add_argument("--launch-interval", type=float, default=0.0)
    parser.add_argument("--lifetime", type=float, default=300.0)
    parser.add_argument(
        "--wait-go", action="store_true", help="launch only after a line on stdin"
    )
    args = parser.parse_args()
    # a killed executor makes asyncio warn "socket.send() raised exception": expected here
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    agent = Agent(args)
    if args.expect:
        agent.expected = args.expect
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Conn(agent), "127.0.0.1", 0)
    out(event="listening", port=server.sockets[0].getsockname()[1])
    await asyncio.sleep(args.lifetime)  # bounded: the harness kills us earlier


if __name__ == "__main__":
    asyncio.run(main())
