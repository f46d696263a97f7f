"""What the FakeAgent records and how tests wait for it.

:class:`Recorder` keeps every request answered (:class:`RecordedCall`) and
every event written or lost (:class:`SentEvent`) in order, calls observers
synchronously, and wakes the ``wait_*`` methods through one
``trio.lowlevel.ParkingLot`` that every state change unparks, so nothing polls.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

import trio

from .._messages import is_terminal
from ..v1 import executor_pb2, mesos_pb2
from ._request import first_header
from ._tasks import TaskBook

__all__ = [
    "AckPolicy",
    "FakeAgentError",
    "NotSubscribedError",
    "RecordedCall",
    "Recorder",
    "SentEvent",
]

logger = logging.getLogger("trio_mesos.testing.fake_agent")

_Predicate: TypeAlias = Callable[[], bool]
_Item = TypeVar("_Item", "RecordedCall", "SentEvent", mesos_pb2.TaskStatus)


class AckPolicy(enum.Enum):
    """When the agent sends ACKNOWLEDGED for an update it accepted.

    Attributes:
        IMMEDIATE: right away (queued before the ``202`` is written).
        DELAYED: after ``ack_delay`` seconds (trio time), like a real agent
            that acknowledges only once the update is checkpointed. A restart
            in between loses the acknowledgement.
        WITHHELD: never on its own; :meth:`FakeAgent.ack` still sends one.
        MANUAL: only when the test calls :meth:`FakeAgent.ack`.
    """

    IMMEDIATE = "immediate"
    DELAYED = "delayed"
    WITHHELD = "withheld"
    MANUAL = "manual"


class FakeAgentError(Exception):
    """A FakeAgent control method was used in a way the agent cannot honour."""


class NotSubscribedError(FakeAgentError):
    """No executor is subscribed: there is no event stream to write to."""


@dataclass(frozen=True, slots=True, eq=False)
class RecordedCall:
    """One request the agent answered, as it arrived.

    Attributes:
        time: ``trio.current_time()`` when the answer was decided.
        method: the HTTP method.
        path: the request path (query string removed).
        headers: request headers, ``(name, value)`` with the sender's spelling.
        content_type: the request's ``Content-Type``, or None.
        call: the decoded ``Call``, or None when the body did not decode (or
            was never read, e.g. 404 / 405 / 401).
        status_code: the HTTP status answered (200 for an accepted SUBSCRIBE).
        response_body: the response body (empty for 200 and 202).
        request_body: the raw request body.
        transport: ``"memory"``, ``"tcp"``, ``"tls"`` (TCP with TLS) or ``"unix"``.
        connection: serial number of the connection it came on.
    """

    time: float
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    content_type: str | None
    call: executor_pb2.Call | None
    status_code: int
    response_body: bytes
    request_body: bytes
    transport: str
    connection: int

    @property
    def type(self) -> int | None:
        """The ``Call.Type`` of the decoded call, or None (undecodable or unset)."""
        if self.call is None or not self.call.HasField("type"):
            return None
        return int(self.call.type)

    def header(self, name: str) -> str | None:
        """The first value of request header ``name`` (case-insensitive)."""
        return first_header(self.headers, name)


@dataclass(frozen=True, slots=True, eq=False)
class SentEvent:
    """One event the agent wrote (or tried to write) on a SUBSCRIBE stream.

    Attributes:
        time: ``trio.current_time()`` when it was written or given up.
        event: the Event, or None for bytes written by :meth:`FakeAgent.inject`.
        chunk: the bytes of the HTTP chunk's payload (RecordIO-framed record,
            or the injected bytes as given).
        delivered: True when the bytes were handed to the transport; False
            when the event was lost (stream stalled, peer gone, write timed out).
        subscription: which subscription stream (1 = the first SUBSCRIBE).
    """

    time: float
    event: executor_pb2.Event | None
    chunk: bytes
    delivered: bool
    subscription: int

    @property
    def type(self) -> int | None:
        """The ``Event.Type``, or None for injected bytes."""
        return None if self.event is None else int(self.event.type)


class Recorder:
    """The record of calls, events and updates, observers, and waiting on them."""

    def __init__(self, agent_id: str, executor_id: str) -> None:
        #: Every request answered, in order.
        self.calls: list[RecordedCall] = []
        #: Every event written or lost, in order.
        self.events: list[SentEvent] = []
        #: Data of every MESSAGE call accepted (executor to framework).
        self.messages: list[bytes] = []
        #: Number of accepted SUBSCRIBE calls (streams that started with SUBSCRIBED).
        self.subscriptions = 0
        #: The last accepted SUBSCRIBE call, or None.
        self.last_subscribe: executor_pb2.Call | None = None
        self._tasks = TaskBook(agent_id, executor_id)
        self._observers: list[Callable[[RecordedCall | SentEvent], None]] = []
        self._changed = trio.lowlevel.ParkingLot()

    def _notify(self) -> None:
        self._changed.unpark_all()

    async def _wait_until(self, predicate: _Predicate) -> None:
        if predicate():
            await trio.lowlevel.checkpoint()
            return
        while not predicate():
            await self._changed.park()

    def add_observer(
        self, callback: Callable[[RecordedCall | SentEvent], None]
    ) -> Callable[[], None]:
        """Call ``callback`` synchronously with every new RecordedCall and SentEvent.

        Returns:
            A function that removes the observer.
        """
        self._observers.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._observers.remove(callback)

        return remove

    def _record(self, item: RecordedCall | SentEvent) -> None:
        if isinstance(item, RecordedCall):
            self.calls.append(item)
        else:
            self.events.append(item)
        for observer in list(self._observers):
            try:
                observer(item)
            except Exception:
                logger.exception("FakeAgent observer %r failed", observer)
        self._notify()

    async def _wait_nth(
        self, items: list[_Item], matches: Callable[[_Item], bool], count: int
    ) -> _Item:
        """Wait until ``count`` items of ``items`` match; return the ``count``-th."""
        found: list[_Item] = []

        def arrived() -> bool:
            hits = [item for item in items if matches(item)]
            if len(hits) >= count:
                found.append(hits[count - 1])
                return True
            return False

        await self._wait_until(arrived)
        return found[0]

    async def wait_call(self, call_type: int, count: int = 1) -> RecordedCall:
        """Wait until ``count`` requests whose Call has ``call_type`` were answered.

        Returns the ``count``-th such :class:`RecordedCall` (1 = the first one,
        also when it arrived before the wait started).
        """
        return await self._wait_nth(self.calls, lambda c: c.type == call_type, count)

    async def wait_event(self, event_type: int, count: int = 1) -> SentEvent:
        """Wait until ``count`` events of ``event_type`` were written (delivered).

        Returns the ``count``-th such :class:`SentEvent`.
        """
        return await self._wait_nth(
            self.events, lambda e: e.delivered and e.type == event_type, count
        )

    @property
    def unacknowledged_tasks_seen(self) -> list[mesos_pb2.TaskInfo]:
        """``unacknowledged_tasks`` of the last accepted SUBSCRIBE ([] before any)."""
        if self.last_subscribe is None:
            return []
        return list(self.last_subscribe.subscribe.unacknowledged_tasks)

    @property
    def unacknowledged_updates_seen(self) -> list[mesos_pb2.TaskStatus]:
        """The statuses in ``unacknowledged_updates`` of the last accepted SUBSCRIBE."""
        if self.last_subscribe is None:
            return []
        return [u.status for u in self.last_subscribe.subscribe.unacknowledged_updates]

    @property
    def pending_acks(self) -> list[tuple[str, bytes]]:
        """``(task_id, uuid)`` of accepted updates whose ACKNOWLEDGED is not sent yet."""
        return [(task_id, key) for key, task_id in self._tasks.pending_acks.items()]

    def updates(self, task_id: str | None = None) -> list[mesos_pb2.TaskStatus]:
        """Status history of ``task_id`` (every task when None), in arrival order.

        Holds every status that reached the agent's update path: each UPDATE
        answered 202 (also for unknown tasks, and updates the agent then
        dropped), each status re-sent in a SUBSCRIBE's
        ``unacknowledged_updates`` (duplicates appear once per arrival), and
        the updates the agent generates itself (``source = SOURCE_AGENT``:
        TASK_LOST after a restart, TASK_FAILED when the executor is gone).
        """
        if task_id is None:
            return list(self._tasks.all_updates)
        return self._tasks.history(task_id)

    def task_state(self, task_id: str) -> int | None:
        """The latest ``TaskState`` the agent holds for a launched task.

        ``TASK_STAGING`` from :meth:`launch` until the first update; never
        changed by updates after a terminal one. None for tasks never launched.
        """
        return self._tasks.state(task_id)

    async def wait_for_update(self, task_id: str, state: int) -> mesos_pb2.TaskStatus:
        """Wait until a status with ``state`` for ``task_id`` is in :meth:`updates`.

        Returns the first such status (at once when it already arrived).
        Cancelling the wait has no other effect.
        """
        return await self._wait_nth(
            self._tasks.all_updates,
            lambda s: s.task_id.value == task_id and s.state == state,
            1,
        )

    async def wait_terminal(self, *task_ids: str) -> None:
        """Wait until every one of ``task_ids`` is in a terminal state (:meth:`task_state`).

        Returns at once when they all are. Cancelling the wait has no other effect.
        """

        def done() -> bool:
            states = [self.task_state(task_id) for task_id in task_ids]
            return all(state is not None and is_terminal(state) for state in states)

        await self._wait_until(done)

    async def wait_subscribed(self, count: int = 1) -> None:
        """Wait until the executor has subscribed ``count`` times in total.

        Returns at once when it already has. Cancelling the wait has no other
        effect.
        """
        await self._wait_until(lambda: self.subscriptions >= count)
