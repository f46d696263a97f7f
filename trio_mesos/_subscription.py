"""The connection task: one attempt to subscribe and read the agent's events.

Part of the driver's shell (see :mod:`._driver`). One attempt opens a stream,
sends SUBSCRIBE, reads the RecordIO event stream under its deadlines and
hands typed events to its :class:`SubscriptionHost` (the driver). It reports
how the attempt ended (could not connect, refused, lost) and never decides
what follows: the session does.

Deadlines (each a failure of the attempt, reported as a lost stream):

* opening the stream, the head of SUBSCRIBE's answer and its first event:
  all within ``call_timeout`` of the attempt's start. The first event must be
  SUBSCRIBED or SHUTDOWN (PROTOCOL.md §0.11); other events do not move that
  deadline, and any other event first ends the attempt without being
  dispatched;
* an event that has started must arrive whole within ``call_timeout`` (a
  trickle never passes for a live stream);
* with ``idle_timeout``, some byte at least that often.

A refusal (an answer other than 200) is a refusal whatever its body: the
status line decides, and a body cut short only shortens the error text.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

import trio

from ._acks import SubscribeLists
from ._errors import RemoteProtocolError
from ._http import AgentConnection, Response, TransportError
from ._messages import AgentEvent, ContentType, Shutdown, Subscribed, parse_event
from ._recordio import NEED_DATA, RecordIODecoder
from ._transport import OpenStream

__all__ = ["SubscriptionHost", "subscribe_once"]

log: Final = logging.getLogger("trio_mesos.connection")

#: Bytes of a refusal's body kept for the error message.
_REFUSAL_BODY_LIMIT: Final = 64 * 1024
#: Seconds spent reading a refusal's body.
_REFUSAL_BODY_TIMEOUT: Final = 5.0


class SubscriptionHost(Protocol):
    """What an attempt reports to. Called only while the attempt is current."""

    def connected(self) -> bool:
        """The stream is open; return whether to send SUBSCRIBE."""

    def subscribe_request(self) -> tuple[bytes, SubscribeLists]:
        """The encoded SUBSCRIBE call, and the lists it carries."""

    def connect_failed(self, reason: str) -> None:
        """No stream could be opened."""

    def refused(self, response: Response) -> None:
        """SUBSCRIBE got an answer other than 200 (body read, maybe cut short)."""

    def lost(self, reason: str) -> None:
        """The stream failed, ended, stalled or broke a rule."""

    def event(self, event: AgentEvent, lists: SubscribeLists) -> Awaitable[None]:
        """An event from the agent, in order (may wait for room)."""


async def subscribe_once(
    *,
    host: SubscriptionHost,
    is_current: Callable[[], bool],
    open_stream: OpenStream,
    make_connection: Callable[[trio.abc.Stream], AgentConnection],
    call_timeout: float,
    idle_timeout: float | None,
    max_record_size: int,
) -> None:
    """One attempt, from opening the stream to its end. Never raises expected failures."""
    # One deadline for the whole start of the attempt: connected, answered and
    # SUBSCRIBED (or SHUTDOWN) within call_timeout.
    first_by = trio.current_time() + call_timeout
    try:
        with trio.move_on_at(first_by) as opening:
            stream = await open_stream()
        if opening.cancelled_caught:
            raise TransportError(f"connecting to the agent took more than {call_timeout:g} s")
    except (OSError, trio.BrokenResourceError, TransportError) as exc:
        if is_current():
            host.connect_failed(str(exc))
        return
    conn = make_connection(stream)
    try:
        if not (is_current() and host.connected()):
            return
        await _subscribe(
            conn, host, is_current, first_by, call_timeout, idle_timeout, max_record_size
        )
    except (TransportError, RemoteProtocolError) as exc:
        if is_current():
            log.warning("lost the event stream from the agent: %s", exc)
            host.lost(str(exc))
    finally:
        with trio.CancelScope(shield=True):
            await conn.aclose()


async def _subscribe(
    conn: AgentConnection,
    host: SubscriptionHost,
    is_current: Callable[[], bool],
    first_by: float,
    call_timeout: float,
    idle_timeout: float | None,
    max_record_size: int,
) -> None:
    body, lists = host.subscribe_request()
    log.debug(
        "SUBSCRIBE with %d unacknowledged tasks and %d unacknowledged updates",
        len(lists.tasks),
        len(lists.updates),
    )
    with trio.move_on_at(first_by) as waited:
        head = await conn.start(body)
    if waited.cancelled_caught:
        raise TransportError(f"no answer to SUBSCRIBE within {call_timeout:g} s of connecting")
    if head.status_code != 200:
        refusal = Response(head.status_code, head.reason, head.headers, await _refusal_body(conn))
        if is_current():
            host.refused(refusal)
        return
    content_type = _event_content_type(head)
    decoder = RecordIODecoder(max_record_size)
    idle = math.inf if idle_timeout is None else idle_timeout
    subscribed = False
    record_by = math.inf
    while True:
        deadline = min(trio.current_time() + idle, record_by, math.inf if subscribed else first_by)
        with trio.move_on_at(deadline) as waited:
            data = await conn.receive_body()
        if waited.cancelled_caught:
            now = trio.current_time()
            if not subscribed and now >= first_by:
                raise TransportError(f"no SUBSCRIBED within {call_timeout:g} s of connecting")
            if now >= record_by:
                raise TransportError(f"an event did not arrive whole within {call_timeout:g} s")
            raise TransportError(f"nothing from the agent for {idle:g} s: the stream stalled")
        decoder.receive_data(data)
        while (record := decoder.next_record()) is not NEED_DATA:
            event = parse_event(record, content_type)
            if not subscribed and not isinstance(event, (Subscribed, Shutdown)):
                raise RemoteProtocolError(
                    f"the agent's first event was {type(event).__name__}, not SUBSCRIBED"
                )
            if not is_current():
                return
            subscribed = True
            record_by = math.inf
            await host.event(event, lists)
        if decoder.mid_record and record_by == math.inf:
            record_by = trio.current_time() + call_timeout
        if not data:
            raise TransportError("the agent ended the event stream")


async def _refusal_body(conn: AgentConnection) -> bytes:
    """What arrives of a refusal's body, within limits; a body cut short is kept as it is."""
    chunks = []
    size = 0
    with trio.move_on_after(_REFUSAL_BODY_TIMEOUT):
        try:
            while size < _REFUSAL_BODY_LIMIT:
                data = await conn.receive_body()
                if not data:
                    break
                chunks.append(data)
                size += len(data)
        except (TransportError, RemoteProtocolError) as exc:
            log.debug("the refusal's body was cut short: %s", exc)
    return b"".join(chunks)[:_REFUSAL_BODY_LIMIT]


def _event_content_type(head: Response) -> ContentType:
    value = (head.header("content-type") or "").split(";")[0].strip().lower()
    for content_type in ContentType:
        if value == content_type.value:
            return content_type
    raise RemoteProtocolError(f"the event stream has Content-Type {value!r}")
