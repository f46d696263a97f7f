"""Raw HTTP bytes and behaviours for hostile-agent tests (``FakeAgent.hijack_next``).

A hostile answer is an async function ``answer(stream, reply) -> bool``: it gets
the raw server-side transport of the connection and the bytes the agent would
have answered with (``b""`` unless the rule processes the request), writes
whatever it likes -- nothing, garbage, a trickle, a never-ending head -- and
returns whether the agent should go on serving the connection (only honoured
when the agent's own complete answer was the starting point). It may sleep
for ever: the connection is closed when the agent exits or restarts.

The builders here return such functions or the bytes they write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import trio

from ._request import reason_phrase

__all__ = [
    "RawAnswer",
    "chunk",
    "endless_head",
    "hang",
    "raw_response",
    "raw_stream_head",
    "send",
    "trickle",
]

#: ``answer(stream, reply) -> keep serving the connection``.
RawAnswer = Callable[[trio.abc.Stream, bytes], Awaitable[bool]]


def raw_response(
    status: int,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    reason: str | None = None,
    content_length: bool = True,
) -> bytes:
    """A complete HTTP/1.1 response as bytes (``Content-Length`` added unless told not to)."""
    phrase = reason_phrase(status) if reason is None else reason
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def raw_stream_head(content_type: str = "application/x-protobuf", *extra: str) -> bytes:
    """A ``200 OK`` chunked head like the agent's SUBSCRIBE answer (``extra`` header lines)."""
    lines = ["HTTP/1.1 200 OK", "Transfer-Encoding: chunked", f"Content-Type: {content_type}"]
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One HTTP chunk carrying ``data``."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def send(data: bytes | Callable[[bytes], bytes], *, then_hang: bool = False) -> RawAnswer:
    """Write ``data`` (or ``data(reply)``) at once; then close, or hang with ``then_hang``.

    Returns True (keep serving) only when neither: the written bytes are then
    assumed to be a complete answer.
    """

    async def answer(stream: trio.abc.Stream, reply: bytes) -> bool:
        await stream.send_all(data(reply) if callable(data) else data)
        if then_hang:
            await trio.sleep_forever()
        return True

    return answer


def trickle(
    data: bytes | Callable[[bytes], bytes], *, interval: float = 1.0, then_hang: bool = True
) -> RawAnswer:
    """Write ``data`` (or ``data(reply)``) one byte every ``interval`` seconds."""

    async def answer(stream: trio.abc.Stream, reply: bytes) -> bool:
        payload = data(reply) if callable(data) else data
        for i in range(len(payload)):
            await stream.send_all(payload[i : i + 1])
            await trio.sleep(interval)
        if then_hang:
            await trio.sleep_forever()
        return False

    return answer


def endless_head(prefix: bytes = b"HTTP/1.1 200 OK\r\n", *, interval: float = 0.0) -> RawAnswer:
    """A response head that never ends: header lines for ever (every ``interval`` s)."""

    async def answer(stream: trio.abc.Stream, reply: bytes) -> bool:
        await stream.send_all(prefix)
        line = b"X-Padding: " + b"x" * 1000 + b"\r\n"
        while True:
            await stream.send_all(line)
            if interval:
                await trio.sleep(interval)
            else:
                await trio.lowlevel.checkpoint()

    return answer


def hang(prefix: bytes = b"") -> RawAnswer:
    """Write ``prefix`` (maybe nothing) and then say nothing more, for ever."""

    async def answer(stream: trio.abc.Stream, reply: bytes) -> bool:
        if prefix:
            await stream.send_all(prefix)
        await trio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    return answer
