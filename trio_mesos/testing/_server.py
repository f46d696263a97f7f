"""The FakeAgent's HTTP side: listeners, connections and event streams.

Every accepted connection (an in-memory stream pair from :meth:`AgentServer.connect`,
TCP on 127.0.0.1, or a Unix socket) gets one task in the agent's nursery,
which reads a request with h11 (:class:`~._http_server.ServerConnection`),
has the agent decide the answer synchronously (``AgentCore._respond``), and
writes it before reading the next request, so keep-alive and pipelining
behave as on libprocess.

A SUBSCRIBE turns its connection into an event stream. Events are put on the
stream's queue (:meth:`AgentServer.enqueue`, synchronous, so their order is
the order in which the agent decided to send them); the connection task
writes them one per HTTP chunk, each write bounded by ``write_timeout``.

TLS: ``listen_tcp(ssl_context=...)`` wraps every accepted TCP connection in a
server-side ``trio.SSLStream`` (the handshake runs on the connection's first
read, so a failed one just ends that connection), as an agent with
``LIBPROCESS_SSL_ENABLED=true``; a restart listens again with the same context.

Hostile behaviour: a :class:`Hijack` rule hands a request to an async
function that writes raw bytes on the connection (``_hostile`` builds them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import itertools
import logging
import os
import ssl
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio
import trio.testing

from .._messages import ContentType
from .._recordio import encode_record
from ..v1 import executor_pb2
from ._agent_json import write_json
from ._hostile import RawAnswer
from ._http_server import ServerConnection
from ._records import SentEvent
from ._request import Reply, Request
from ._rules import AgentState

if TYPE_CHECKING:
    from ._core import AgentCore

__all__ = ["AgentServer", "Connection", "EventStream", "Hijack", "Outgoing"]

logger = logging.getLogger("trio_mesos.testing.fake_agent")


class ItemKind(enum.Enum):
    CHUNK = "chunk"
    END = "end"


@dataclass(eq=False)
class Outgoing:
    kind: ItemKind
    chunk: bytes = b""
    event: executor_pb2.Event | None = None
    done: trio.Event = dataclasses.field(default_factory=trio.Event)
    delivered: bool = False


class StreamStatus(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"  # the last chunk is queued
    CLOSED = "closed"  # ended with the last chunk
    BROKEN = "broken"  # peer gone, write failed or timed out, dropped


@dataclass(eq=False)
class EventStream:
    serial: int
    content_type: ContentType
    connection: Connection
    queue: deque[Outgoing] = dataclasses.field(default_factory=deque)
    wakeup: trio.lowlevel.ParkingLot = dataclasses.field(default_factory=trio.lowlevel.ParkingLot)
    status: StreamStatus = StreamStatus.OPEN
    stalled: bool = False

    @property
    def is_open(self) -> bool:
        """Whether its connection is still usable for writing."""
        return self.status is StreamStatus.OPEN


@dataclass(eq=False)
class Connection:
    http: ServerConnection
    scope: trio.CancelScope = dataclasses.field(default_factory=trio.CancelScope)
    done: trio.Event = dataclasses.field(default_factory=trio.Event)


@dataclass(eq=False)
class Listener:
    transport: str
    address: Any
    ssl_context: ssl.SSLContext | None = None
    scope: trio.CancelScope = dataclasses.field(default_factory=trio.CancelScope)
    done: trio.Event = dataclasses.field(default_factory=trio.Event)


@dataclass(eq=False)
class Hijack:
    """Answer the next ``remaining`` matching requests with ``answer`` (``hijack_next``)."""

    remaining: int
    answer: RawAnswer
    calls: frozenset[int] | None
    process: bool


class AgentServer:
    """The listeners, connections and event streams of one FakeAgent."""

    def __init__(self, agent: AgentCore) -> None:
        self._agent = agent
        # Insertion-ordered, so that cancelling them is deterministic.
        self.connections: dict[Connection, None] = {}
        self.listeners: list[Listener] = []
        #: Every event stream whose connection is open.
        self.streams: list[EventStream] = []
        self.tcp_port: int | None = None
        self.tcp_ssl_context: ssl.SSLContext | None = None
        self.unix_path: str | None = None
        self._serials = itertools.count(1)

    def new_stream(self, connection: Connection, content_type: ContentType) -> EventStream:
        """An event stream on ``connection`` (its serial is set by the agent)."""
        stream = EventStream(0, content_type, connection)
        self.streams.append(stream)
        return stream

    def close_all(self) -> tuple[list[Listener], list[Connection]]:
        """Cancel every listener and connection and break every stream (a crash);
        return the listeners and connections, to wait for them and listen again."""
        listeners, self.listeners = self.listeners, []
        for listener in listeners:
            listener.scope.cancel()
        connections = list(self.connections)
        for connection in connections:
            connection.scope.cancel()
        for stream in self.streams:
            self.break_stream(stream)
        self.streams.clear()
        return listeners, connections

    async def connect(self) -> trio.abc.Stream:
        """See FakeAgent.connect."""
        nursery = self._agent._require_nursery()
        self._agent._refuse_if_down()
        await trio.lowlevel.checkpoint()
        self._agent._refuse_if_down()
        client, server = trio.testing.memory_stream_pair()
        nursery.start_soon(self._serve_connection, server, "memory")
        return client

    async def listen_tcp(self, *, ssl_context: ssl.SSLContext | None = None) -> int:
        """See FakeAgent.listen_tcp."""
        self._agent._require_nursery()
        if self.tcp_port is not None:
            if ssl_context is not self.tcp_ssl_context:
                raise RuntimeError("already listening on TCP with another ssl_context")
            await trio.lowlevel.checkpoint()
            return self.tcp_port
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        listener = listeners[0]
        for extra in listeners[1:]:
            await extra.aclose()
        assert isinstance(listener, trio.SocketListener)
        self.tcp_port = int(listener.socket.getsockname()[1])
        self.tcp_ssl_context = ssl_context
        transport = "tcp" if ssl_context is None else "tls"
        await self._start_listener(listener, transport, self.tcp_port, ssl_context)
        return self.tcp_port

    async def listen_unix(self, path: str | os.PathLike[str]) -> None:
        """See FakeAgent.listen_unix."""
        self._agent._require_nursery()
        if self.unix_path is not None:
            raise RuntimeError(f"already listening on {self.unix_path}")
        text = os.fspath(path)
        listener = await self._open_unix_listener(text)
        self.unix_path = text
        await self._start_listener(listener, "unix", text)

    @staticmethod
    async def _open_unix_listener(path: str) -> trio.SocketListener:
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        try:
            await sock.bind(path)
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        return trio.SocketListener(sock)

    async def _start_listener(
        self,
        listener: trio.SocketListener,
        transport: str,
        address: Any,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        nursery = self._agent._require_nursery()
        record = Listener(transport, address, ssl_context)
        self.listeners.append(record)
        await nursery.start(self._accept_loop, listener, record)

    async def _accept_loop(
        self,
        listener: trio.SocketListener,
        record: Listener,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            with record.scope:
                async with listener:
                    task_status.started()
                    while True:
                        try:
                            stream = await listener.accept()
                        except trio.ClosedResourceError:
                            return
                        nursery = self._agent._nursery
                        if nursery is None:  # pragma: no cover - shutting down
                            await trio.aclose_forcefully(stream)
                            return
                        served: trio.abc.Stream = stream
                        if record.ssl_context is not None:
                            # The handshake runs on the first read, in the
                            # connection's own task; a failed one reads as EOF.
                            served = trio.SSLStream(
                                stream,
                                record.ssl_context,
                                server_side=True,
                                https_compatible=True,
                            )
                        nursery.start_soon(self._serve_connection, served, record.transport)
        finally:
            # A Unix socket file stays behind, as after a crash: connecting to
            # it is refused until the agent listens again.
            record.done.set()

    async def reopen_listeners(self, records: list[Listener]) -> None:
        for old in records:
            try:
                if old.transport in ("tcp", "tls"):
                    listener = trio.SocketListener(await self._bind_tcp(int(old.address)))
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(old.address)
                    listener = await self._open_unix_listener(old.address)
            except OSError as exc:
                logger.error("FakeAgent could not listen again on %s: %s", old.address, exc)
                continue
            await self._start_listener(listener, old.transport, old.address, old.ssl_context)

    @staticmethod
    async def _bind_tcp(port: int) -> trio.socket.SocketType:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
        try:
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
            await sock.bind(("127.0.0.1", port))
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        return sock

    async def _serve_connection(self, stream: trio.abc.Stream, transport: str) -> None:
        connection = Connection(ServerConnection(stream, transport, next(self._serials)))
        self.connections[connection] = None
        try:
            with connection.scope:
                if self._agent._agent_state is AgentState.DOWN:
                    return
                await self._connection_loop(connection)
        finally:
            self.connections.pop(connection, None)
            for event_stream in [s for s in self.streams if s.connection is connection]:
                self.break_stream(event_stream)
                self.streams.remove(event_stream)
            await trio.aclose_forcefully(stream)
            connection.done.set()

    async def _connection_loop(self, connection: Connection) -> None:
        http = connection.http
        while True:
            request = await http.next_request()
            if request is None:
                return
            hijack = self._agent._take_hijack(request)
            if hijack is not None:
                if not await self.run_hijack(connection, request, hijack):
                    return
                if not http.start_next_cycle():
                    return
                continue
            outcome = self._agent._respond(connection, request)
            if isinstance(outcome, Reply):
                try:
                    await http.send_response(outcome.status, outcome.headers, outcome.body)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
            elif not await self._run_event_stream(connection, outcome):
                return
            if not http.start_next_cycle():
                return

    async def _run_event_stream(self, connection: Connection, stream: EventStream) -> bool:
        """Write ``stream``'s events on ``connection``; True if the connection may go on."""
        http = connection.http
        try:
            await http.send_stream_head(stream.content_type.value)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.break_stream(stream)
            return False
        keep_open = False
        async with trio.open_nursery() as nursery:

            async def watch_peer() -> None:
                await http.receive_while_streaming()
                logger.debug("subscription %d: the executor closed the stream", stream.serial)
                self.break_stream(stream)
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_peer)
            keep_open = await self._write_events(http, stream)
            nursery.cancel_scope.cancel()
        return keep_open and not http.peer_closed

    async def _write_events(self, http: ServerConnection, stream: EventStream) -> bool:
        while True:
            while not stream.queue:
                if stream.status is StreamStatus.BROKEN:
                    return False
                await stream.wakeup.park()
            item = stream.queue.popleft()
            if stream.status is StreamStatus.BROKEN:
                self._lose(stream, item)
                continue
            if item.kind is ItemKind.END:
                try:
                    await http.send_last_chunk()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self.break_stream(stream)
                    item.done.set()
                    return False
                except BaseException:
                    item.done.set()
                    raise
                stream.status = StreamStatus.CLOSED
                item.delivered = True
                item.done.set()
                self._agent._notify()
                return True
            with trio.move_on_after(self._agent.write_timeout) as timeout:
                try:
                    await http.send_chunk(item.chunk)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._lose(stream, item)
                    self.break_stream(stream)
                    return False
                except BaseException:
                    # Cancelled mid-write (the peer went away, or the agent is
                    # closing): the item is lost, and whoever awaits it must know.
                    self._lose(stream, item)
                    raise
            if timeout.cancelled_caught:
                logger.warning(
                    "subscription %d: event write blocked for %ss; giving the stream up",
                    stream.serial,
                    self._agent.write_timeout,
                )
                self._lose(stream, item)
                self.break_stream(stream)
                return False
            item.delivered = True
            item.done.set()
            self._agent._record(
                SentEvent(trio.current_time(), item.event, item.chunk, True, stream.serial)
            )

    def _lose(self, stream: EventStream, item: Outgoing) -> None:
        item.done.set()
        if item.kind is ItemKind.CHUNK:
            self._agent._record(
                SentEvent(trio.current_time(), item.event, item.chunk, False, stream.serial)
            )

    def break_stream(self, stream: EventStream) -> None:
        if stream.status in (StreamStatus.BROKEN, StreamStatus.CLOSED):
            return
        stream.status = StreamStatus.BROKEN
        while stream.queue:
            self._lose(stream, stream.queue.popleft())
        stream.wakeup.unpark_all()
        self._agent._notify()

    # -- events ---------------------------------------------------------------------------

    def _encode(self, event: executor_pb2.Event, content_type: ContentType) -> bytes:
        if content_type is ContentType.JSON:
            return write_json(event)
        return event.SerializeToString()

    def enqueue(self, stream: EventStream | None, item: Outgoing) -> Outgoing:
        """Queue ``item`` on ``stream`` (or lose it at once); never blocks."""
        if stream is None or stream.stalled or stream.status is not StreamStatus.OPEN:
            item.done.set()
            if item.kind is ItemKind.CHUNK:
                self._agent._record(
                    SentEvent(
                        trio.current_time(),
                        item.event,
                        item.chunk,
                        False,
                        0 if stream is None else stream.serial,
                    )
                )
            return item
        if item.kind is ItemKind.END:
            stream.status = StreamStatus.CLOSING
        stream.queue.append(item)
        stream.wakeup.unpark_all()
        return item

    def enqueue_event(self, stream: EventStream | None, event: executor_pb2.Event) -> Outgoing:
        chunk = b""
        if stream is not None:
            chunk = encode_record(self._encode(event, stream.content_type))
        return self.enqueue(stream, Outgoing(ItemKind.CHUNK, chunk, event))

    def end_stream(self, stream: EventStream) -> None:
        """Close ``stream`` with the last chunk (its connection stays open)."""
        if stream.stalled:
            # A stalled stream writes nothing, not even the last chunk.
            stream.status = StreamStatus.CLOSED
            return
        self.enqueue(stream, Outgoing(ItemKind.END))

    async def run_hijack(self, connection: Connection, request: Request, rule: Hijack) -> bool:
        """Run a hostile answer; True if the connection may serve another request."""
        http = connection.http
        reply = b""
        complete = False
        if rule.process:
            outcome = self._agent._respond(connection, request)
            if isinstance(outcome, Reply):
                reply = http.response_bytes(outcome.status, outcome.headers, outcome.body)
                complete = True
            else:
                reply = http.stream_head_bytes(outcome.content_type.value)
                while outcome.queue:
                    item = outcome.queue.popleft()
                    if item.kind is ItemKind.CHUNK:
                        reply += http.chunk_bytes(item.chunk)
                        item.delivered = True
                        self._agent._record(
                            SentEvent(
                                trio.current_time(), item.event, item.chunk, True, outcome.serial
                            )
                        )
                    item.done.set()
                outcome.stalled = True
        else:
            self._agent.hijacked.append(request)
            self._agent._notify()
        try:
            keep = await rule.answer(http.stream, reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return bool(keep) and complete
