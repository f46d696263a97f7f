"""One HTTP/1.1 server connection: h11 over a trio stream, the way libprocess answers.

Theory of operation
-------------------
:class:`ServerConnection` owns one ``h11.Connection(our_role=SERVER)`` and one
``trio.abc.Stream``. It reads one request at a time (the whole body), and the
caller answers it before the next one is read, so pipelined requests are
answered in order (h11 pauses on the next request until
``start_next_cycle()``). Every write goes through :meth:`_send`, which calls
``h11.Connection.send_failed()`` when the write raises anything (cancellation
included), so the h11 state never believes in bytes that did not go out
(STYLE.md §1.2, pitfall 23).

Responses carry the headers a real agent sends, in its order:

* error responses: ``Date``, (``Allow``), ``Content-Type: text/plain;
  charset=utf-8``, ``Content-Length``; a status-only libprocess error gets
  the body ``"<code> <reason>."`` (captured: ``404 Not Found.``,
  ``501 Not Implemented.``);
* ``202 Accepted``: ``Date``, ``Content-Length: 0``;
* the SUBSCRIBE stream: ``Date``, ``Transfer-Encoding: chunked``,
  ``Content-Type``. h11 would move ``Transfer-Encoding`` last, so the head's
  bytes are re-ordered after h11 has accepted the event (same header set,
  same state transition); every record is one chunk (h11 ``Data``), the
  stream ends with the last chunk ``0\\r\\n\\r\\n``.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
from collections.abc import Sequence
from typing import Final

import h11
import trio

from ._request import PLAIN_TEXT, Request, default_error_body, reason_phrase

__all__ = [
    "ServerConnection",
    "http_date",
]

logger = logging.getLogger("trio_mesos.testing.fake_agent")

_MAX_RECV: Final = 65536
#: Largest request head h11 buffers (h11's own default).
_MAX_HEAD: Final = 16 * 1024


def http_date() -> str:
    """The ``Date`` header value for now, e.g. ``Fri, 27 Nov 2026 16:44:37 GMT``."""
    return email.utils.formatdate(usegmt=True)


class ServerConnection:
    """An h11 server connection over one trio stream (no policy; the agent decides).

    Args:
        stream: the transport; this object never closes it (the owner does).
        transport: ``"memory"``, ``"tcp"``, ``"tls"`` or ``"unix"``, for records and logs.
        serial: a number naming this connection in logs and records.
    """

    def __init__(self, stream: trio.abc.Stream, transport: str, serial: int) -> None:
        self.stream = stream
        self.transport = transport
        self.serial = serial
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        #: Set once the peer has closed its side (EOF or a reset).
        self.peer_closed = False

    # -- reading ------------------------------------------------------------------

    async def _receive_into_h11(self) -> None:
        try:
            data = await self.stream.receive_some(_MAX_RECV)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self.peer_closed = True
        self.h11.receive_data(bytes(data))

    async def next_request(self) -> Request | None:
        """Read the next complete request, or None when the connection is over.

        None means the peer closed the connection, sent something that is not
        HTTP/1.1 (answered with ``400 Bad Request.`` when possible), or the
        connection cannot carry another request.
        """
        head: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                logger.debug("connection %d: bad request: %s", self.serial, exc)
                await self._answer_protocol_error(exc.error_status_hint)
                return None
            if event is h11.NEED_DATA:
                if self.peer_closed:
                    return None
                await self._receive_into_h11()
                continue
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                return None
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                target = head.target.decode("latin-1")
                return Request(
                    method=head.method.decode("latin-1"),
                    target=target,
                    path=target.split("?", 1)[0],
                    headers=tuple(
                        (name.decode("latin-1"), value.decode("latin-1"))
                        for name, value in head.headers.raw_items()
                    ),
                    body=bytes(body),
                )

    async def _answer_protocol_error(self, status: int) -> None:
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = default_error_body(status)
        headers = [("Content-Type", PLAIN_TEXT), ("Content-Length", str(len(body)))]
        with contextlib.suppress(
            trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError
        ):
            await self.send_response(status, headers, body)

    async def receive_while_streaming(self) -> None:
        """Read (and buffer for later) whatever the peer sends while we stream.

        Returns when the peer has closed its side. Bytes of a request pipelined
        behind the SUBSCRIBE stay in h11's buffer and are served after the
        stream ends.
        """
        while not self.peer_closed:
            await self._receive_into_h11()

    # -- writing ------------------------------------------------------------------

    async def _send(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except BaseException:
            self.h11.send_failed()
            raise

    def response_bytes(self, status: int, headers: Sequence[tuple[str, str]], body: bytes) -> bytes:
        """The bytes of a complete response, h11's state moved on as if they were sent.

        For hostile answers that write (a variant of) them themselves.
        """
        response = h11.Response(
            status_code=status,
            headers=[("Date", http_date()), *headers],
            reason=reason_phrase(status).encode("latin-1"),
        )
        data = self.h11.send(response) or b""
        if body:
            data += self.h11.send(h11.Data(data=body)) or b""
        data += self.h11.send(h11.EndOfMessage()) or b""
        return data

    async def send_response(
        self, status: int, headers: Sequence[tuple[str, str]], body: bytes
    ) -> None:
        """Send a complete response: ``Date`` first, then ``headers``, then ``body``.

        Raises:
            trio.BrokenResourceError: the peer is gone (h11 is told via
                ``send_failed()``).
        """
        await self._send(self.response_bytes(status, headers, body))

    def stream_head_bytes(self, content_type: str) -> bytes:
        """The bytes of the streaming ``200 OK`` head (h11's state moved on)."""
        headers = [
            ("Date", http_date()),
            ("Transfer-Encoding", "chunked"),
            ("Content-Type", content_type),
        ]
        data = self.h11.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
        return _reorder_head(data or b"", [name for name, _ in headers])

    async def send_stream_head(self, content_type: str) -> None:
        """Send ``200 OK`` with the real agent's streaming headers, in its order."""
        await self._send(self.stream_head_bytes(content_type))

    def chunk_bytes(self, data: bytes) -> bytes:
        """The bytes of one chunk of the streaming body (h11's state moved on)."""
        return self.h11.send(h11.Data(data=data)) or b""

    async def send_chunk(self, data: bytes) -> None:
        """Send ``data`` as one chunk of the streaming body (nothing for ``b""``)."""
        out = self.chunk_bytes(data)
        if out:
            await self._send(out)

    async def send_last_chunk(self) -> None:
        """End the streaming body with ``0\\r\\n\\r\\n`` (the connection stays open)."""
        out = self.h11.send(h11.EndOfMessage())
        if out:
            await self._send(out)

    def start_next_cycle(self) -> bool:
        """Prepare for the next request; False when the connection must close."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            return True
        return False


def _reorder_head(data: bytes, order: list[str]) -> bytes:
    """Put the header lines of an h11-written head in ``order`` (others after)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    rank = {name.lower().encode("latin-1"): i for i, name in enumerate(order)}

    def key(line: bytes) -> int:
        return rank.get(line.split(b":", 1)[0].strip().lower(), len(order))

    return b"\r\n".join([status_line, *sorted(lines, key=key)]) + sep + rest
