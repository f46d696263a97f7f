"""HTTP/1.1 to the agent: one h11 client connection over one trio stream.

The I/O shell's lowest layer. :class:`AgentConnection` carries SUBSCRIBE: it
sends the request, reads the response head and then hands out the body as it
arrives, so the RecordIO decoder can consume an endless stream.

:class:`CallPipeline` pipelines requests on one keep-alive connection (the
driver's call connection): h11's client cannot send request N+1 before
response N is complete, so every request gets its own ``h11.Connection``,
which serializes it and then parses its response; responses are parsed in
order and the bytes past the end of response N (``trailing_data``) move on
to the parser of response N+1.

Errors are mapped here and nowhere else (STYLE.md §3.4): transport failures
(``trio.BrokenResourceError``, ``trio.ClosedResourceError``, ``OSError``, end
of stream) become :class:`TransportError`; a peer that violates HTTP/1.1
(h11's ``RemoteProtocolError``) becomes our :class:`~trio_mesos.RemoteProtocolError`.
On any failure the connection is unusable and must be closed.

Every write follows h11's ``send_failed()`` discipline: if sending raises
anything (``trio.Cancelled`` included), h11 is told the bytes never went out.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final

import h11
import trio

from ._errors import RemoteProtocolError, TrioMesosError
from ._record import record

__all__ = ["AgentConnection", "CallPipeline", "Response", "TransportError"]

log = logging.getLogger("trio_mesos.connection")

#: Bytes asked of the stream per receive.
RECEIVE_SIZE: Final = 64 * 1024
#: Largest non-streaming response body we read (202s are empty; error texts are short).
MAX_BODY: Final = 1024 * 1024
#: Largest response head h11 buffers before giving up (h11's own default).
MAX_HEAD: Final = 64 * 1024


class TransportError(TrioMesosError):
    """The connection to the agent failed or ended (retryable; the connection is dead)."""


@record
class Response:
    """A response head, plus the whole body for non-streaming responses."""

    status_code: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def status_line(self) -> str:
        """``"503 Service Unavailable"``, as the C++ library quotes it."""
        return f"{self.status_code} {self.reason}".rstrip()

    def describe(self) -> str:
        """Status line and (truncated) body, for error messages."""
        text = self.body[:500].decode("utf-8", "replace")
        return f"'{self.status_line}' ({text})"


class AgentConnection:
    """One HTTP/1.1 connection to the agent's executor endpoint, for SUBSCRIBE.

    Not safe for concurrent use: one task sends and reads.

    Args:
        stream: an open trio stream (TCP, Unix socket, TLS, or in memory).
        host: the ``Host`` header value.
        path: the endpoint path (``/slave(1)/api/v1/executor``).
        headers: extra headers on every request (Content-Type, Accept,
            Authorization). Their values are never logged.
    """

    def __init__(
        self, stream: trio.abc.Stream, *, host: str, path: str, headers: Iterable[tuple[str, str]]
    ) -> None:
        self._stream = stream
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self._host = host
        self._path = path
        self._headers = [("Host", host), *headers]

    # -- requests ------------------------------------------------------------

    async def start(self, body: bytes) -> Response:
        """POST ``body`` and return the response head; read the body with :meth:`receive_body`.

        A checkpoint. If cancelled, the connection is left in an undefined
        state: close it.

        Raises:
            TransportError: the connection failed.
            RemoteProtocolError: the agent's answer is not valid HTTP/1.1.
        """
        headers = [*self._headers, ("Content-Length", str(len(body)))]
        await self._send(h11.Request(method="POST", target=self._path, headers=headers))
        await self._send(h11.Data(data=body))
        await self._send(h11.EndOfMessage())
        event = await _next_event(self._stream, self._conn)
        # h11 folds informational 1xx responses into InformationalResponse events.
        while isinstance(event, h11.InformationalResponse):
            event = await _next_event(self._stream, self._conn)
        if not isinstance(event, h11.Response):
            raise RemoteProtocolError(f"expected a response head, got {type(event).__name__}")
        return Response(
            event.status_code,
            event.reason.decode("latin-1"),
            tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers),
        )

    async def receive_body(self) -> bytes:
        """The next piece of the response body; ``b""`` once the body is complete.

        Blocks until data arrives. A checkpoint.

        Raises:
            TransportError: the connection failed or ended mid-body.
            RemoteProtocolError: the body framing is invalid.
        """
        event = await _next_event(self._stream, self._conn)
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            return b""
        raise RemoteProtocolError(f"unexpected {type(event).__name__} in a response body")

    # -- plumbing ------------------------------------------------------------

    async def _send(self, event: h11.Event) -> None:
        try:
            data = self._conn.send(event)
        except h11.LocalProtocolError as exc:  # pragma: no cover - our own bug
            raise RuntimeError(f"h11 refused our {type(event).__name__}: {exc}") from exc
        if not data:
            return
        try:
            await self._stream.send_all(data)
        except BaseException as exc:
            self._conn.send_failed()
            if isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError, OSError)):
                raise TransportError(f"sending to the agent failed: {exc!r}") from exc
            raise

    async def aclose(self) -> None:
        """Close the connection. A checkpoint; never raises transport errors."""
        await trio.aclose_forcefully(self._stream)


#: Request heads kept per CallPipeline, by body length (see CallPipeline._request).
_REQUEST_CACHE_SIZE: Final = 64


class CallPipeline:
    """Pipelined POSTs on one keep-alive HTTP/1.1 connection; responses in order.

    One task may :meth:`send` while another :meth:`receive` (each method
    used by one task at a time). Any failure leaves the connection unusable
    (:attr:`reusable` is False): close it; requests whose response was not
    received must be assumed lost.

    Args:
        stream, host, path, headers: as :class:`AgentConnection`.
    """

    def __init__(
        self, stream: trio.abc.Stream, *, host: str, path: str, headers: Iterable[tuple[str, str]]
    ) -> None:
        self._stream = stream
        self._path = path
        self._headers = [("Host", host), *headers]
        # One parser per request whose response is not complete, in order.
        self._pending: deque[h11.Connection] = deque()
        self._requests: dict[int, h11.Request] = {}  # by Content-Length
        self._buffer = b""  # received bytes not yet given to a parser
        self._eof = False
        self._closed = False

    @property
    def reusable(self) -> bool:
        """Whether more requests may be sent on this connection."""
        return not self._closed

    def _request(self, length: int) -> h11.Request:
        # h11 validates and normalizes headers when a Request is built (a
        # tenth of the call path in the profile); requests differ only by
        # Content-Length and UPDATE bodies mostly share one, so keep a few.
        request = self._requests.get(length)
        if request is None:
            if len(self._requests) >= _REQUEST_CACHE_SIZE:
                self._requests.clear()
            headers = [*self._headers, ("Content-Length", str(length))]
            request = h11.Request(method="POST", target=self._path, headers=headers)
            self._requests[length] = request
        return request

    def __len__(self) -> int:
        """Requests sent whose response is not complete yet."""
        return len(self._pending)

    async def send(self, bodies: Sequence[bytes]) -> None:
        """POST each body, in order, in one write. A checkpoint.

        The requests count as sent (their responses are awaited by
        :meth:`receive`) as soon as this is called; if it raises (cancellation
        included), the connection is unusable.

        Raises:
            TransportError: the connection failed.
        """
        if self._closed:
            raise TransportError("the call connection is closed")
        chunks = []
        for body in bodies:
            parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
            try:
                chunks.append(parser.send(self._request(len(body))))
                chunks.append(parser.send(h11.Data(data=body)))
                chunks.append(parser.send(h11.EndOfMessage()))
            except h11.LocalProtocolError as exc:  # pragma: no cover - our own bug
                raise RuntimeError(f"h11 refused our request: {exc}") from exc
            self._pending.append(parser)
        try:
            await self._stream.send_all(b"".join(chunks))
        except BaseException as exc:
            # send_failed() discipline: the bytes may be partly out; nothing
            # more can be sent on this connection.
            self._closed = True
            for parser in self._pending:
                if parser.our_state is not h11.ERROR:
                    parser.send_failed()
            if isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError, OSError)):
                raise TransportError(f"sending to the agent failed: {exc!r}") from exc
            raise

    async def receive_while_idle(self) -> None:
        """Wait for bytes while no request is pending. A checkpoint; cancel it freely.

        Returns once bytes arrived for a request sent meanwhile (they are kept
        for :meth:`receive`).

        Raises:
            RemoteProtocolError: bytes arrived with no request pending: an
                answer to a request never sent (the connection is unusable).
            TransportError: the agent closed the (idle) connection.
        """
        try:
            data = await self._stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._closed = True
            raise TransportError(f"receiving from the agent failed: {exc!r}") from exc
        if not data:
            self._closed = True
            self._eof = True
            raise TransportError("the agent closed the call connection")
        if not self._pending:
            self._closed = True
            raise RemoteProtocolError("the agent sent a response to a request never sent")
        self._buffer += bytes(data)

    async def receive(self) -> Response:
        """The complete response to the oldest request sent and not answered yet.

        A checkpoint. If cancelled, the connection is unusable: close it.

        Raises:
            TransportError: the connection failed or ended.
            RemoteProtocolError: the agent's answer is not valid HTTP/1.1.
        """
        if not self._pending:  # pragma: no cover - caller's bug
            raise RuntimeError("no request is waiting for a response")
        parser = self._pending[0]
        if self._buffer:
            parser.receive_data(self._buffer)
            self._buffer = b""
        if self._eof:
            parser.receive_data(b"")
        try:
            event = await _next_event(self._stream, parser)
            # h11 folds informational 1xx responses into InformationalResponse events.
            while isinstance(event, h11.InformationalResponse):
                event = await _next_event(self._stream, parser)
            if not isinstance(event, h11.Response):
                raise RemoteProtocolError(f"expected a response head, got {type(event).__name__}")
            chunks = []
            size = 0
            while True:
                part = await _next_event(self._stream, parser)
                if isinstance(part, h11.EndOfMessage):
                    break
                if not isinstance(part, h11.Data):
                    raise RemoteProtocolError(
                        f"unexpected {type(part).__name__} in a response body"
                    )
                size += len(part.data)
                if size > MAX_BODY:
                    raise RemoteProtocolError(f"response body larger than {MAX_BODY} bytes")
                chunks.append(bytes(part.data))
        except BaseException:
            self._closed = True
            raise
        self._pending.popleft()
        # An end of stream seen by this parser is reported here, for the next one.
        trailing, closed = parser.trailing_data
        self._buffer = bytes(trailing)
        self._eof = self._eof or closed
        if self._buffer and not self._pending:
            # More bytes than answers: a response to a request never sent. The
            # answer just read stands; nothing more is trusted on this connection.
            log.warning("the agent sent a response to a request never sent; reconnecting")
            self._closed = True
        if parser.their_state is not h11.DONE:
            self._closed = True  # the agent closes after this response
        return Response(
            event.status_code,
            event.reason.decode("latin-1"),
            tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers),
            b"".join(chunks),
        )

    async def aclose(self) -> None:
        """Close the connection. A checkpoint; never raises transport errors."""
        self._closed = True
        await trio.aclose_forcefully(self._stream)


async def _next_event(stream: trio.abc.Stream, parser: h11.Connection) -> h11.Event:
    """The next event of ``parser``, receiving from ``stream`` as needed; errors mapped."""
    while True:
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError as exc:
            pending, closed = parser.trailing_data
            if closed:
                # h11 reports an end of stream where a response (or its rest)
                # was due as a protocol error: the agent closed the connection.
                where = "mid-answer" if pending else "before answering"
                raise TransportError(f"the agent closed the connection {where}") from None
            raise RemoteProtocolError(f"invalid HTTP from the agent: {exc}") from None
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise TransportError(f"receiving from the agent failed: {exc!r}") from exc
            parser.receive_data(bytes(data))
            continue
        if isinstance(event, h11.ConnectionClosed):
            raise TransportError("the agent closed the connection")
        assert not isinstance(event, type(h11.PAUSED)), "one response per parser"
        return event  # type: ignore[return-value]
