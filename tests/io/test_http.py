"""trio_mesos._http.CallPipeline on its own: pipelined POSTs, answers in order.

The driver's retry rules built on top of it (503, 5xx, a dropped connection)
are tested where the driver is (test_recovery.py, test_pipelining.py,
test_hostile.py); here the pipeline itself, over memory streams, with the
agent's side written byte by byte.
"""

from __future__ import annotations

import h11
import pytest
import trio
import trio.testing

from trio_mesos import RemoteProtocolError
from trio_mesos._http import MAX_BODY, CallPipeline, TransportError

PATH = "/slave(1)/api/v1/executor"
ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


def answer(status: int = 202, body: bytes = b"", extra: bytes = b"") -> bytes:
    reason = {202: b"Accepted", 503: b"Service Unavailable", 400: b"Bad Request"}[status]
    head = b"HTTP/1.1 %d %s\r\n%sContent-Length: %d\r\n\r\n" % (status, reason, extra, len(body))
    return head + body


def pipeline() -> tuple[CallPipeline, trio.abc.Stream]:
    """A pipeline over memory streams, and the agent's end."""
    client, server = trio.testing.memory_stream_pair()
    return CallPipeline(client, host="agent:5051", path=PATH, headers=[("X-Test", "1")]), server


async def requests_received(server: trio.abc.Stream, count: int) -> list[tuple[h11.Request, bytes]]:
    """Read ``count`` pipelined requests as the agent does (one h11 parser)."""
    parser = h11.Connection(h11.SERVER)
    got: list[tuple[h11.Request, bytes]] = []
    request: h11.Request | None = None
    body = b""
    while len(got) < count:
        event = parser.next_event()
        if event is h11.NEED_DATA:
            parser.receive_data(await server.receive_some(65536))
        elif isinstance(event, h11.Request):
            request, body = event, b""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            got.append((request, body))
            parser.send(h11.Response(status_code=202, headers=[("Content-Length", "0")]))
            parser.send(h11.EndOfMessage())
            parser.start_next_cycle()
    return got


async def test_requests_go_out_in_one_write_in_order_with_their_headers() -> None:
    calls, server = pipeline()
    await calls.send([b"one", b"two!", b"three"])
    assert len(calls) == 3
    got = await requests_received(server, 3)
    assert [body for _, body in got] == [b"one", b"two!", b"three"]
    first, _ = got[0]
    assert (first.method, first.target) == (b"POST", PATH.encode())
    assert (b"host", b"agent:5051") in first.headers
    assert (b"x-test", b"1") in first.headers
    assert (b"content-length", b"4") in got[1][0].headers


@pytest.mark.parametrize("piece", [1, 7, 1000])
async def test_answers_come_back_in_order_however_they_are_cut(piece: int) -> None:
    calls, server = pipeline()
    await calls.send([b"a", b"b", b"c"])
    data = answer(202) + answer(503, b"Agent has not finished recovery") + answer(400, b"no")
    for start in range(0, len(data), piece):
        await server.send_all(data[start : start + piece])
    responses = [await calls.receive() for _ in range(3)]
    assert [r.status_code for r in responses] == [202, 503, 400]
    assert responses[1].body == b"Agent has not finished recovery"
    assert len(calls) == 0 and calls.reusable


async def test_an_informational_response_is_skipped() -> None:
    calls, server = pipeline()
    await calls.send([b"x"])
    await server.send_all(b"HTTP/1.1 100 Continue\r\n\r\n" + ACCEPTED)
    assert (await calls.receive()).status_code == 202


async def test_bytes_while_idle_are_kept_for_the_request_sent_meanwhile() -> None:
    calls, server = pipeline()
    await calls.send([b"x"])
    await server.send_all(ACCEPTED)
    await calls.receive_while_idle()
    assert (await calls.receive()).status_code == 202
    assert calls.reusable


async def test_an_answer_to_no_request_while_idle_is_a_protocol_error() -> None:
    calls, server = pipeline()
    await server.send_all(ACCEPTED)
    with pytest.raises(RemoteProtocolError, match="never sent"):
        await calls.receive_while_idle()
    assert not calls.reusable


async def test_one_answer_too_many_keeps_the_answer_but_not_the_connection() -> None:
    calls, server = pipeline()
    await calls.send([b"x"])
    await server.send_all(ACCEPTED + ACCEPTED)
    assert (await calls.receive()).status_code == 202
    assert not calls.reusable


async def test_the_agent_closing_an_idle_connection() -> None:
    calls, server = pipeline()
    await server.aclose()
    with pytest.raises(TransportError, match="closed the call connection"):
        await calls.receive_while_idle()
    assert not calls.reusable
    with pytest.raises(TransportError, match="closed"):
        await calls.send([b"x"])


async def test_connection_close_ends_reuse_after_the_answer() -> None:
    calls, server = pipeline()
    await calls.send([b"x"])
    await server.send_all(answer(202, extra=b"Connection: close\r\n"))
    assert (await calls.receive()).status_code == 202
    assert not calls.reusable


async def test_the_connection_ending_mid_answer_is_an_error() -> None:
    calls, server = pipeline()
    await calls.send([b"x"])
    await server.send_all(answer(400, b"half")[:-2])
    await server.aclose()
    with pytest.raises((TransportError, RemoteProtocolError)):
        await calls.receive()
    assert not calls.reusable


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 abc Bad\r\n\r\n",
        b"HTTP/1.1 202 Accepted\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
    ],
    ids=["not-http", "body-too-large"],
)
async def test_bad_answers_are_protocol_errors(reply: bytes) -> None:
    calls, server = pipeline()
    await calls.send([b"x"])

    async def agent() -> None:
        await server.send_all(reply)
        if b"Content-Length" in reply:
            await server.send_all(b"x" * (MAX_BODY + 1))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent)
        with pytest.raises(RemoteProtocolError):
            await calls.receive()
        nursery.cancel_scope.cancel()
    assert not calls.reusable


async def test_a_cancelled_send_leaves_the_connection_unusable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, _server = trio.testing.lockstep_stream_pair()  # send_all waits for a reader
    calls = CallPipeline(client, host="agent", path=PATH, headers=[])
    with trio.move_on_after(1) as scope:
        await calls.send([b"x" * 100])
    assert scope.cancelled_caught
    assert not calls.reusable
    with pytest.raises(TransportError):
        await calls.send([b"y"])


async def test_aclose_closes_the_stream() -> None:
    calls, server = pipeline()
    await calls.aclose()
    assert not calls.reusable
    assert await server.receive_some(10) == b""
