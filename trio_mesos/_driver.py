"""The executor driver: a nursery-scoped client of the agent's executor API.

Theory of operation
-------------------
``open_executor_driver`` opens a nursery for the caller's block and starts the
driver in it with ``nursery.start``. The driver owns a cancel scope (never the
nursery's own: cancelling that would also cancel the caller's block) inside
which run:

* the **session** task: feeds inputs to the pure :class:`~trio_mesos._session.Session`
  machine and fires its timers (reconnect, recovery deadline, shutdown grace,
  stop drain);
* one **connection** task per attempt: opens a stream, sends SUBSCRIBE, reads
  the RecordIO event stream, records what the ledger must know at once
  (tasks received, acknowledgements) and queues callbacks. Each attempt has a
  generation number; reports from a stale attempt are ignored;
* the **call** task: sends UPDATE and MESSAGE (and HEARTBEAT) calls on a
  second, keep-alive connection, while subscribed, pipelined (up to
  ``MAX_CALLS_IN_FLIGHT`` unanswered; per task one UPDATE at a time, oldest
  first), each UPDATE until its 202;
* the **dispatcher**: awaits the executor's callbacks one at a time, in the
  order the agent sent the events, fed by a small bounded queue (a slow
  callback stops the reading of the stream instead of growing memory);
* the tasks' **work**, each in a per-task cancel scope (``start_task``).

Everything the session machine decides is carried out synchronously in
:meth:`ExecutorDriver._feed`, so the order of callbacks always matches the
order of events. Expected failures (agent gone, bad bytes, recovery timeout)
never escape a task: they become session inputs and end the driver with
``DRIVER_ABORTED`` and :attr:`ExecutorDriver.error` set. Only user code (the
block, callbacks, task work) and bugs raise out of the context manager.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn, final

import trio

from . import _session as s
from ._acks import AckLedger, AckResult, SubscribeLists
from ._backoff import Backoff
from ._config import ExecutorConfig
from ._errors import (
    AgentUnavailableError,
    DriverClosedError,
    LocalProtocolError,
    RemoteProtocolError,
    TrioMesosError,
    TrioMesosInternalError,
)
from ._executor import Executor
from ._http import AgentConnection, CallPipeline, Response, TransportError
from ._messages import (
    Acknowledged,
    AgentEvent,
    ContentType,
    Error,
    Heartbeat,
    Kill,
    Launch,
    LaunchGroup,
    Message,
    Shutdown,
    Subscribed,
    UnknownEvent,
    encode_message,
    heartbeat_call,
    message_call,
    parse_event,
    prepare_status,
    subscribe_call,
    update_call,
)
from ._proto import mesos_pb2
from ._recordio import DEFAULT_MAX_RECORD_SIZE, NEED_DATA, RecordIODecoder
from ._status import Status
from ._transport import OpenStream, default_open_stream, host_header

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

__all__ = [
    "DEFAULT_STOP_TIMEOUT",
    "CallRejectedError",
    "DriverStatistics",
    "ExecutorDriver",
    "JoinFromCallbackError",
    "open_executor_driver",
    "run_executor",
]

log = logging.getLogger(__name__)

#: Seconds that leaving the driver's block (or ``stop()``) waits for the agent
#: to acknowledge pending updates before the driver ends anyway.
DEFAULT_STOP_TIMEOUT: Final = 10.0
#: Interval of the HEARTBEAT call, as Mesos's C++ library (30 minutes).
DEFAULT_HEARTBEAT_INTERVAL: Final = 30 * 60.0
#: The driver ends this long before the SHUTDOWN grace period runs out, so the
#: agent never has to kill it (Mesos's command executor keeps a similar margin).
SHUTDOWN_MARGIN: Final = 1.0
#: Seconds the agent has to answer a call (SUBSCRIBE: its response head). The
#: agent answers at once (202 is sent before any processing), so this only
#: bounds a hung or hostile peer.
DEFAULT_CALL_TIMEOUT: Final = 30.0
#: Agent events buffered between the stream reader and the callbacks.
EVENT_QUEUE_SIZE: Final = 16
#: Framework messages waiting to be sent; beyond that the oldest are dropped
#: (MESSAGE is best effort in Mesos too).
MESSAGE_QUEUE_SIZE: Final = 1024
#: Calls written on the call connection whose answer has not been read yet
#: (HTTP/1.1 pipelining, as Mesos's C++ executor library does). Bounds the
#: memory and the work redone when the connection breaks; per task at most
#: one UPDATE is among them (the ledger's order rule).
MAX_CALLS_IN_FLIGHT: Final = 64

_UPDATE: Final = "UPDATE"
_MESSAGE: Final = "MESSAGE"
_HEARTBEAT: Final = "HEARTBEAT"
_QueuedMessage = tuple[bytes, "trio.Event | None", list[BaseException]]


@dataclass(slots=True)
class _Call:
    """A call written (or about to be) on the call connection."""

    what: str  # _UPDATE, _MESSAGE or _HEARTBEAT
    body: bytes
    ref: Any  # UPDATE: the uuid; MESSAGE: the queued message; HEARTBEAT: None


@dataclass(slots=True, eq=False)
class _PipelineState:
    """One pipeline on one call connection."""

    generation: int
    in_flight: deque[_Call] = field(default_factory=deque)
    sent: trio.Event = field(default_factory=trio.Event)
    resume_at: float = -math.inf
    heartbeat_in_flight: bool = False
    failed: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class CallRejectedError(TrioMesosError):
    """The agent refused a call for good (a 4xx answer).

    Attributes:
        status_code: the HTTP status.
        body: the agent's explanation.
    """

    def __init__(self, msg: str, status_code: int, body: str) -> None:
        self.msg = msg
        self.status_code = status_code
        self.body = body
        super().__init__(msg, status_code, body)

    def __str__(self) -> str:
        return self.msg


class JoinFromCallbackError(TrioMesosError, RuntimeError):
    """``join()`` was awaited inside an executor callback.

    The callback runs in the dispatcher, which must return before the driver
    can end: joining there would wait forever.
    """


@dataclass(frozen=True, slots=True)
class DriverStatistics:
    """A snapshot of the driver's state (``driver.statistics()``)."""

    #: Session state: "subscribed", "disconnected", "stopped", ...
    state: str
    status: Status
    unacknowledged_updates: int
    unacknowledged_tasks: int
    #: UPDATE calls the agent answered 202.
    updates_accepted: int
    acknowledgements: int
    duplicate_acknowledgements: int
    unknown_acknowledgements: int
    #: Successful SUBSCRIBEs, the first included.
    subscriptions: int
    #: Outages (connection lost after subscribing, or SUBSCRIBE retried).
    reconnects: int
    connection_attempts: int
    #: ``trio.current_time()`` of the last event read from the agent, or None.
    last_event_time: float | None
    #: Tasks with work running under ``start_task``.
    running_tasks: int


class _Waiter:
    __slots__ = ("accepted", "acknowledged", "error")

    def __init__(self) -> None:
        self.accepted = trio.Event()
        self.acknowledged = trio.Event()
        self.error: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.accepted.set()
        self.acknowledged.set()


class _DriverFailure(BaseExceptionGroup):  # type: ignore[misc]  # Any on 3.10 (backport)
    """What the driver's own tasks raised (callbacks, task work, bugs), as one group.

    Lets :func:`_raise_group` tell these apart from a group the caller's block
    raised itself, which is passed on as it is.
    """

    def derive(self, excs: Any) -> _DriverFailure:
        # trio splits groups (to drop Cancelled); keep the marker type.
        return _DriverFailure(self.message, excs)


class _End:
    """Dispatcher queue sentinel: the session finished."""


_END: Final = _End()
_Item = Callable[[], Awaitable[None]]


class _CallbackQueue:
    """Callbacks in event order. Agent events wait for room; notifications never do."""

    def __init__(self, limit: int) -> None:
        self._items: deque[_Item | _End] = deque()
        self._limit = limit
        self._not_empty = trio.lowlevel.ParkingLot()
        self._not_full = trio.lowlevel.ParkingLot()

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, item: _Item | _End) -> None:
        self._items.append(item)
        self._not_empty.unpark()

    async def put(self, item: _Item) -> None:
        while len(self._items) >= self._limit:
            await self._not_full.park()
        self.put_nowait(item)

    async def get(self) -> _Item | _End:
        while not self._items:
            await self._not_empty.park()
        item = self._items.popleft()
        self._not_full.unpark()
        return item


class _NoPublicConstructor(type):
    """Metaclass: calling the class raises; ``cls._create(...)`` constructs."""

    def __call__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{cls.__name__} has no public constructor; use open_executor_driver()")

    def _create(cls, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(*args, **kwargs)


@final
class ExecutorDriver(metaclass=_NoPublicConstructor):
    """The driver of one executor; obtained from :func:`open_executor_driver`.

    It has no public constructor. Methods keep the meaning of
    ``org.apache.mesos.ExecutorDriver``: the synchronous ones return a
    :class:`~trio_mesos.Status` and never raise because the driver has ended;
    the ``await``-able ones (:meth:`update`, :meth:`wait_acknowledged`,
    :meth:`message`) raise :class:`~trio_mesos.DriverClosedError` instead.

    Final status:

    ==============================================  ========================================
    how the driver ended                            ``join()`` returns
    ==============================================  ========================================
    ``stop()``, leaving the block, SHUTDOWN         ``DRIVER_STOPPED``
    ``abort()``, cancellation                       ``DRIVER_ABORTED``
    agent lost (recovery rules), SUBSCRIBE refused  ``DRIVER_ABORTED``, :attr:`error` set
    a callback or task work raised                  ``DRIVER_ABORTED`` (the exception leaves
                                                    ``open_executor_driver``)
    ==============================================  ========================================
    """

    def __init__(
        self,
        executor: Executor,
        config: ExecutorConfig,
        *,
        open_stream: OpenStream,
        content_type: ContentType,
        stop_timeout: float,
        heartbeat_interval: float,
        rng: random.Random,
        max_record_size: int,
        stream_idle_timeout: float | None,
        kill_process_group_after_grace: bool,
        call_timeout: float,
    ) -> None:
        self._executor = executor
        self._call_timeout = call_timeout
        self._stream_idle_timeout = stream_idle_timeout
        self._kill_process_group_after_grace = kill_process_group_after_grace
        self._last_resort: threading.Timer | None = None
        self.config = config
        self._open_stream = open_stream
        self._content_type = content_type
        self._heartbeat_interval = heartbeat_interval
        self._rng = rng
        self._max_record_size = max_record_size
        self._ledger = AckLedger()
        self._session = s.Session(
            checkpoint=config.checkpoint,
            recovery_timeout=config.recovery_timeout,
            backoff=Backoff(config.subscription_backoff_max, rng),
            shutdown_grace=max(0.0, config.shutdown_grace_period - SHUTDOWN_MARGIN),
            stop_drain_timeout=stop_timeout,
        )
        headers = [("Content-Type", content_type.value), ("Accept", content_type.value)]
        if config.authentication_token:
            headers.append(("Authorization", f"Bearer {config.authentication_token}"))
        self._request_headers = headers
        self._host = host_header(config)
        self._agent_id = config.agent_id
        self._queue = _CallbackQueue(EVENT_QUEUE_SIZE)
        self._scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self._timers: dict[s.Timer, float] = {}
        self._session_wakeup = trio.Event()
        self._calls_wakeup = trio.Event()
        self._established = trio.Event()
        self._done = trio.Event()
        self._started = False
        self._subscribed_once = False  # SUBSCRIBED (or a first SHUTDOWN) was read
        self._status = Status.DRIVER_NOT_STARTED
        self.error: BaseException | None = None
        # connection bookkeeping
        self._generation = 0
        self._connection_scope: trio.CancelScope | None = None
        self._subscribe_requested = False
        self._live = False  # subscribed on the current connection: calls may go out
        self._stream_up = False  # the event stream (where ACKs arrive) is open
        self._call_generation = 0
        self._next_heartbeat = math.inf
        self._shutdown_done = False
        self._aborting = False
        self._finish: s.Finish | None = None
        self._dispatcher_task: trio.lowlevel.Task | None = None
        # tasks' work, waiters, messages
        self._task_scopes: dict[str, set[trio.CancelScope]] = {}
        self._waiters: dict[bytes, _Waiter] = {}
        self._messages: deque[tuple[bytes, trio.Event | None, list[BaseException]]] = deque()
        # information from SUBSCRIBED
        self.executor_info: mesos_pb2.ExecutorInfo | None = None
        self.framework_info: mesos_pb2.FrameworkInfo | None = None
        self.agent_info: mesos_pb2.AgentInfo | None = None
        self.container_id: mesos_pb2.ContainerID | None = None
        # statistics
        self._subscriptions = 0
        self._updates_accepted = 0
        self._last_event_time: float | None = None

    # ------------------------------------------------------------------
    # The seed API (org.apache.mesos.ExecutorDriver)
    # ------------------------------------------------------------------

    def start(self) -> Status:
        """Does nothing: the driver started when the ``async with`` block was entered.

        Exists for the seed's shape. Returns ``DRIVER_RUNNING``, or the final
        status once the driver has ended. Not a checkpoint.
        """
        return self._status

    def stop(self) -> Status:
        """End gracefully: wait (bounded by ``stop_timeout``) for pending ACKs, then stop.

        Returns at once (not a checkpoint); :meth:`join` waits for the end.
        The connection stays up meanwhile, so updates and their ACKs still
        flow. While disconnected (an outage, a backoff) nothing can be
        acknowledged, so the driver stops at once; unacknowledged updates are
        logged. Returns ``DRIVER_STOPPED`` (``DRIVER_ABORTED`` if the driver had
        been aborted, as the seed does).
        """
        if self._done.is_set():
            return self._status
        self._feed(s.StopRequested())
        self._check_drained()
        return Status.DRIVER_STOPPED

    def abort(self) -> Status:
        """End now: cancel everything; no callback starts after this call.

        Synchronous and not a checkpoint: the driver's tasks (and task work)
        see the cancellation at their next checkpoint. Pending updates are not
        waited for: those the agent already accepted (202) it keeps and
        forwards; the others are not sent. Also ends a driver that is
        finishing (a stop's last callbacks still running). Returns
        ``DRIVER_ABORTED`` (``DRIVER_STOPPED`` if already stopped).
        """
        if self._done.is_set():
            return self._status
        self._aborting = True
        if self._session.state.final:
            # The session is over but queued callbacks still run before the
            # end: end now instead.
            self._finish = s.Finish(Status.DRIVER_ABORTED, None)
            self._end()
        else:
            self._feed(s.AbortRequested())
        return Status.DRIVER_ABORTED

    async def join(self) -> Status:
        """Wait until the driver has ended; return ``DRIVER_STOPPED`` or ``DRIVER_ABORTED``.

        A checkpoint. Cancelling it leaves the driver running.

        Raises:
            JoinFromCallbackError: awaited inside an executor callback (it
                would wait for itself).
        """
        if trio.lowlevel.current_task() is self._dispatcher_task:
            raise JoinFromCallbackError(
                "join() inside an executor callback would wait forever: the driver can only "
                "end after the callback returns (call stop() and return instead)"
            )
        await self._done.wait()
        return self._status

    async def run(self) -> Status:
        """``start()`` then ``join()``: the seed's ``run``."""
        return await self.join()

    def send_status_update(self, status: mesos_pb2.TaskStatus) -> Status:
        """Queue a status update; it is sent until the agent accepts it and kept until ACKed.

        Synchronous and never blocks. Validates and copies ``status`` (the
        caller's object is never changed): fresh uuid, ``SOURCE_EXECUTOR``,
        executor and agent ids, timestamp. Returns ``DRIVER_RUNNING``; after
        the end, the final status (nothing is sent).

        Raises:
            LocalProtocolError: ``TASK_STAGING``, a task this executor never
                received, or another update the agent would refuse.
        """
        if self._done.is_set():
            return self._status
        self._queue_update(status)
        return Status.DRIVER_RUNNING

    def send_framework_message(self, data: bytes) -> Status:
        """Queue a message to the framework (best effort, as in Mesos).

        Synchronous and never blocks. Messages made while disconnected, and
        those still queued when the connection is lost, are dropped (logged).
        Returns ``DRIVER_RUNNING``, or the final status after the end.
        """
        if self._done.is_set():
            return self._status
        self._queue_message(bytes(data), None, [])
        return Status.DRIVER_RUNNING

    # ------------------------------------------------------------------
    # Trio-native API
    # ------------------------------------------------------------------

    async def update(self, status: mesos_pb2.TaskStatus) -> bytes:
        """Send a status update and wait until the agent accepted it (its 202).

        Returns the update's uuid (for :meth:`wait_acknowledged`). Cancelling
        the wait does not withdraw the update: it stays queued.

        Raises:
            LocalProtocolError: as :meth:`send_status_update`.
            CallRejectedError: the agent refused the update (4xx).
            DriverClosedError: the driver has ended (before or while waiting).
        """
        self._check_open()
        uuid = self._queue_update(status)
        waiter = self._waiters.setdefault(uuid, _Waiter())
        await self._wait(waiter.accepted, waiter)
        return uuid

    async def wait_acknowledged(self, uuid: bytes) -> None:
        """Wait until the agent acknowledged the update ``uuid``.

        Returns at once if it is not pending any more (already acknowledged).

        Raises:
            CallRejectedError: the agent refused the update.
            DriverClosedError: the driver ended first.
        """
        self._check_open()
        if self._ledger.get(uuid) is None:
            await trio.lowlevel.checkpoint()
            return
        waiter = self._waiters.setdefault(uuid, _Waiter())
        await self._wait(waiter.acknowledged, waiter)

    async def message(self, data: bytes) -> None:
        """Send a message to the framework and wait for the agent's 202.

        Raises:
            AgentUnavailableError: the message was dropped (connection lost).
            CallRejectedError: the agent refused it.
            DriverClosedError: the driver has ended.
        """
        self._check_open()
        sent = trio.Event()
        outcome: list[BaseException] = []
        self._queue_message(bytes(data), sent, outcome)
        await self._wait(sent, None)
        if outcome:
            raise outcome[0]

    def start_task(
        self, task_id: str, async_fn: Callable[..., Awaitable[object]], *args: object
    ) -> None:
        """Run ``async_fn(*args)`` as work of task ``task_id``, in a scope the driver manages.

        KILL of that task (right after the ``kill_task`` callback returns),
        SHUTDOWN (before the ``shutdown`` callback runs) and abort cancel the
        work; so does the end of the driver. The work reports the task's
        states itself; a ``trio.Cancelled`` handler may still send
        ``TASK_KILLED``, since sending never blocks. If
        the work raises, the driver ends and the exception leaves
        :func:`open_executor_driver`. Synchronous; not a checkpoint.

        Raises:
            DriverClosedError: the driver has ended.
        """
        self._check_open()
        assert self._nursery is not None
        scope = trio.CancelScope()
        self._task_scopes.setdefault(task_id, set()).add(scope)
        self._nursery.start_soon(
            self._run_task_work, task_id, scope, async_fn, args, name=f"trio_mesos task {task_id}"
        )

    def cancel_task(self, task_id: str) -> bool:
        """Cancel the work started for ``task_id``; False if there was none."""
        scopes = self._task_scopes.get(task_id)
        for scope in scopes or ():
            scope.cancel()
        return bool(scopes)

    def statistics(self) -> DriverStatistics:
        """A frozen snapshot of the driver's counters and state."""
        ledger = self._ledger
        return DriverStatistics(
            state=self._session.state.value,
            status=self._status,
            unacknowledged_updates=len(ledger),
            unacknowledged_tasks=len(ledger.unacknowledged_tasks()),
            updates_accepted=self._updates_accepted,
            acknowledgements=ledger.acknowledged_count,
            duplicate_acknowledgements=ledger.duplicate_acks,
            unknown_acknowledgements=ledger.unknown_acks,
            subscriptions=self._subscriptions,
            reconnects=self._session.outages,
            connection_attempts=self._session.attempts,
            last_event_time=self._last_event_time,
            running_tasks=len(self._task_scopes),
        )

    def __repr__(self) -> str:
        return (
            f"<ExecutorDriver {self.config.executor_id!r} of framework "
            f"{self.config.framework_id!r}: {self._status.name}, {self._session.state.value}>"
        )

    # ------------------------------------------------------------------
    # Queuing work
    # ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._done.is_set():
            raise DriverClosedError(f"the executor driver has ended ({self._status.name})")

    async def _wait(self, event: trio.Event, waiter: _Waiter | None) -> None:
        # Wait for `event` or the end of the driver, whichever comes first.
        if not event.is_set():
            async with trio.open_nursery() as nursery:

                async def wait_for(e: trio.Event) -> None:
                    await e.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(wait_for, event)
                nursery.start_soon(wait_for, self._done)
        else:
            await trio.lowlevel.checkpoint()
        if waiter is not None and waiter.error is not None:
            raise waiter.error
        if not event.is_set():
            raise DriverClosedError(f"the executor driver has ended ({self._status.name})")

    def _queue_update(self, status: mesos_pb2.TaskStatus) -> bytes:
        prepared = prepare_status(
            status,
            executor_id=self.config.executor_id,
            agent_id=self._agent_id,
            uuid=_uuid4(),
            now=time.time(),
        )
        task_id = prepared.task_id.value
        if not self._ledger.knows_task(task_id):
            raise LocalProtocolError(
                f"task {task_id!r} was never launched on this executor (the agent must not "
                "get updates for tasks it has not delivered)"
            )
        entry = self._ledger.update_queued(prepared)
        log.debug(
            "update %s for task %s queued: %s",
            entry.uuid.hex(),
            task_id,
            mesos_pb2.TaskState.Name(prepared.state),
        )
        self._wake_calls()
        return entry.uuid

    def _queue_message(
        self, data: bytes, sent: trio.Event | None, outcome: list[BaseException]
    ) -> None:
        if not self._live:
            # As the C++ library: calls other than SUBSCRIBE are only sent while
            # subscribed; MESSAGE carries no delivery guarantee in Mesos.
            log.warning("framework message dropped: not subscribed to the agent")
            self._drop_message(sent, outcome, "not subscribed to the agent")
            return
        if len(self._messages) >= MESSAGE_QUEUE_SIZE:
            _, old_sent, old_outcome = self._messages.popleft()
            log.warning("framework message queue full: dropped the oldest message")
            self._drop_message(old_sent, old_outcome, "the message queue was full")
        self._messages.append((data, sent, outcome))
        self._wake_calls()

    @staticmethod
    def _drop_message(sent: trio.Event | None, outcome: list[BaseException], why: str) -> None:
        if sent is not None:
            outcome.append(AgentUnavailableError(f"framework message dropped: {why}"))
            sent.set()

    # ------------------------------------------------------------------
    # The session: inputs in, actions carried out
    # ------------------------------------------------------------------

    def _feed(self, event: s.Input) -> None:
        actions = self._session.handle(event, trio.current_time())
        for action in actions:
            self._carry_out(action)

    def _carry_out(self, action: s.Action) -> None:
        if isinstance(action, s.OpenConnection):
            self._generation += 1
            self._subscribe_requested = False
            assert self._nursery is not None
            self._nursery.start_soon(
                self._run_connection, self._generation, name="trio_mesos connection"
            )
        elif isinstance(action, s.SendSubscribe):
            self._subscribe_requested = True
        elif isinstance(action, s.CloseConnection):
            self._close_connection()
        elif isinstance(action, s.SetTimer):
            self._timers[action.timer] = action.at
            self._session_wakeup.set()
        elif isinstance(action, s.CancelTimer):
            self._timers.pop(action.timer, None)
        elif isinstance(action, s.NotifyRegistered):
            assert self.executor_info is not None
            assert self.framework_info is not None
            assert self.agent_info is not None
            self._notify(
                self._executor.registered,
                self.executor_info,
                self.framework_info,
                self.agent_info,
            )
        elif isinstance(action, s.NotifyReregistered):
            assert self.agent_info is not None
            self._notify(self._executor.reregistered, self.agent_info)
        elif isinstance(action, s.NotifyDisconnected):
            self._notify(self._executor.disconnected)
        elif isinstance(action, s.NotifyShutdown):
            self._arm_last_resort()
            for task_id in list(self._task_scopes):
                self.cancel_task(task_id)
            self._queue.put_nowait(self._run_shutdown_callback)
        elif isinstance(action, s.NotifyError):
            self._notify(self._executor.error, action.message)
        elif isinstance(action, s.Finish):
            self._finish = action
            if action.error is not None:
                self.error = AgentUnavailableError(action.error)
            if self._aborting:
                self._end()
            else:
                self._queue.put_nowait(_END)
        else:  # pragma: no cover
            raise TrioMesosInternalError(f"unknown session action {action!r}")

    def _redact(self, text: str) -> str:
        """``text`` from the agent without our token (a proxy may echo our headers)."""
        token = self.config.authentication_token
        return text.replace(token, "<redacted>") if token else text

    def _body(self, response: Response) -> str:
        return self._redact(_text(response))

    def _describe(self, response: Response) -> str:
        """Status line and body, redacted before it is shortened (no partial token)."""
        return f"'{response.status_line}' ({self._body(response)[:500]})"

    def _notify(self, callback: Callable[..., Awaitable[None]], *args: Any) -> None:
        self._queue.put_nowait(functools.partial(callback, self, *args))

    def _arm_last_resort(self) -> None:
        # Opt-in, as the C++ libraries do always: SIGKILL our own process group
        # once the grace period is over, from a thread, so that even a blocked
        # event loop or a process that lingers after the driver cannot outlive
        # the grace. Not under MESOS_LOCAL (the C++ libraries' test mode).
        if not self._kill_process_group_after_grace or self.config.local:
            return
        if self._last_resort is not None:
            return
        grace = self._grace_period()
        log.info("the process group will be killed in %g s (end of the shutdown grace)", grace)
        timer = threading.Timer(grace, os.killpg, args=(0, signal.SIGKILL))
        timer.daemon = True
        timer.start()
        self._last_resort = timer

    def _close_connection(self) -> None:
        self._generation += 1
        if self._connection_scope is not None:
            self._connection_scope.cancel()
            self._connection_scope = None
        self._stream_up = False
        if self._live:
            self._live = False
            self._call_generation += 1
        self._ledger.disconnected()
        for _, sent, outcome in self._messages:
            self._drop_message(sent, outcome, "the connection to the agent was lost")
        self._messages.clear()
        self._next_heartbeat = math.inf
        self._wake_calls()

    def _end(self) -> None:
        """The driver is over: final status, wake joiners, cancel everything."""
        if self._done.is_set():
            return
        finish = self._finish
        if finish is not None and self._status is not Status.DRIVER_ABORTED:
            self._status = finish.status
        log.info("executor driver ended: %s%s", self._status.name,
                 f" ({self.error})" if self.error else "")
        self._live = False
        for waiter in self._waiters.values():
            waiter.fail(DriverClosedError(f"the executor driver has ended ({self._status.name})"))
        self._waiters.clear()
        self._done.set()
        self._established.set()
        self._scope.cancel()

    def _fail(self, exc: BaseException) -> None:
        # User code raised: the driver ends ABORTED and the exception propagates.
        self._status = Status.DRIVER_ABORTED
        self.error = exc
        self._done.set()
        self._established.set()

    def _check_drained(self) -> None:
        state = self._session.state
        if state is s.State.STOPPING:
            if not len(self._ledger):
                self._feed(s.Drained())
            elif not self._stream_up:
                # Nothing can be acknowledged without the event stream; waiting
                # would only delay the stop (the agent keeps what it accepted).
                log.warning(
                    "stopping while disconnected from the agent: %d update(s) were not "
                    "acknowledged",
                    len(self._ledger),
                )
                self._feed(s.Drained())
        elif (
            state is s.State.SHUTTING_DOWN
            and self._shutdown_done
            and not len(self._ledger)
            and not self._task_scopes
            and not len(self._queue)
        ):
            self._feed(s.Drained())

    def _wake_calls(self) -> None:
        self._calls_wakeup.set()

    # ------------------------------------------------------------------
    # Tasks
    # ------------------------------------------------------------------

    async def _run(self, *, task_status: trio.TaskStatus[ExecutorDriver]) -> None:
        try:
            await self._run_tasks(task_status)
        except BaseExceptionGroup as group:
            failure = _DriverFailure("errors in the executor driver's tasks", group.exceptions)
            raise failure from None

    async def _run_tasks(self, task_status: trio.TaskStatus[ExecutorDriver]) -> None:
        with self._scope:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._status = Status.DRIVER_RUNNING
                nursery.start_soon(self._run_session, name="trio_mesos session")
                nursery.start_soon(self._run_calls, name="trio_mesos calls")
                nursery.start_soon(self._run_dispatcher, name="trio_mesos dispatcher")
                self._feed(s.Start())
                await self._established.wait()
                if self._subscribed_once:
                    self._started = True
                    task_status.started(self)
        if self._started:
            return
        if self._subscribed_once:
            # Subscribed, then ended before this task resumed (e.g. stop() in
            # `registered`): the block still runs, and join() says how it ended.
            task_status.started(self)
            return
        error = self.error
        if isinstance(error, AgentUnavailableError):
            raise AgentUnavailableError(error.msg, error.status_code)
        raise AgentUnavailableError(f"the executor driver could not start: {error}")

    async def _run_session(self) -> None:
        while True:
            deadline = min(self._timers.values(), default=math.inf)
            with trio.move_on_at(deadline):
                await self._session_wakeup.wait()
            self._session_wakeup = trio.Event()
            now = trio.current_time()
            for timer, at in sorted(self._timers.items(), key=lambda item: item[1]):
                if at <= now and self._timers.get(timer) == at:
                    del self._timers[timer]
                    self._feed(s.TimerFired(timer))

    async def _run_dispatcher(self) -> None:
        self._dispatcher_task = trio.lowlevel.current_task()
        while True:
            item = await self._queue.get()
            if isinstance(item, _End):
                self._end()
                return
            if self._done.is_set():
                return  # aborted: no callback starts after abort()
            try:
                await item()
            except trio.Cancelled:
                raise
            except BaseException as exc:
                self._fail(exc)
                raise
            self._check_drained()

    async def _run_shutdown_callback(self) -> None:
        try:
            await self._executor.shutdown(self)
        finally:
            self._shutdown_done = True

    async def _run_task_work(
        self,
        task_id: str,
        scope: trio.CancelScope,
        async_fn: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
    ) -> None:
        try:
            with scope:
                await async_fn(*args)
        except trio.Cancelled:
            raise
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            scopes = self._task_scopes.get(task_id)
            if scopes is not None:
                scopes.discard(scope)
                if not scopes:
                    del self._task_scopes[task_id]
            self._check_drained()

    def _connection(self, stream: trio.abc.Stream) -> AgentConnection:
        return AgentConnection(
            stream, host=self._host, path=self.config.agent_path, headers=self._request_headers
        )

    async def _run_connection(self, generation: int) -> None:
        scope = trio.CancelScope()
        self._connection_scope = scope
        with scope:
            try:
                stream = await self._open_stream()
            except (OSError, trio.BrokenResourceError, TransportError) as exc:
                if generation == self._generation:
                    self._feed(s.ConnectFailed(f"{exc}"))
                return
            conn = self._connection(stream)
            try:
                await self._subscribe(conn, generation)
            except (TransportError, RemoteProtocolError) as exc:
                if generation == self._generation:
                    log.warning("lost the event stream from the agent: %s", exc)
                    self._stream_up = False
                    self._feed(s.StreamLost(str(exc)))
                    self._check_drained()
            finally:
                with trio.CancelScope(shield=True):
                    await conn.aclose()

    async def _subscribe(self, conn: AgentConnection, generation: int) -> None:
        self._feed(s.Connected())
        if generation != self._generation or not self._subscribe_requested:
            return
        lists = self._ledger.subscribe_lists()
        call = subscribe_call(
            self.config.framework_id, self.config.executor_id, lists.tasks, lists.updates
        )
        log.debug(
            "SUBSCRIBE with %d unacknowledged tasks and %d unacknowledged updates",
            len(lists.tasks),
            len(lists.updates),
        )
        with trio.move_on_after(self._call_timeout) as waited:
            head = await conn.start(encode_message(call, self._content_type))
        if waited.cancelled_caught:
            raise TransportError(f"no answer to SUBSCRIBE within {self._call_timeout:g} s")
        if head.status_code != 200:
            body = await _read_bounded(conn)
            refused = Response(head.status_code, head.reason, head.headers, body)
            if generation == self._generation:
                self._feed(s.SubscribeRefused(head.status_code, self._describe(refused)))
            return
        content_type = _event_content_type(head)
        decoder = RecordIODecoder(self._max_record_size)
        idle = math.inf if self._stream_idle_timeout is None else self._stream_idle_timeout
        # The first event (SUBSCRIBED, or SHUTDOWN) is part of the answer to
        # SUBSCRIBE: it must arrive within call_timeout too.
        first_by: float | None = trio.current_time() + self._call_timeout
        # The agent writes each record at once: one that has started must be
        # complete within call_timeout (a trickle never trips the idle timeout).
        record_by: float | None = None
        while True:
            deadline = min(
                trio.current_time() + idle,
                math.inf if first_by is None else first_by,
                math.inf if record_by is None else record_by,
            )
            with trio.move_on_at(deadline) as waited:
                data = await conn.receive_body()
            if waited.cancelled_caught:
                now = trio.current_time()
                if first_by is not None and now >= first_by:
                    raise TransportError(
                        f"no SUBSCRIBED within {self._call_timeout:g} s of the SUBSCRIBE"
                    )
                if record_by is not None and now >= record_by:
                    raise TransportError(
                        f"an event did not arrive whole within {self._call_timeout:g} s"
                    )
                raise TransportError(f"nothing from the agent for {idle:g} s: the stream stalled")
            decoder.receive_data(data)
            while (record := decoder.next_record()) is not NEED_DATA:
                event = parse_event(record, content_type)
                if generation != self._generation:
                    return
                first_by = None
                record_by = None
                await self._on_event(event, lists)
            if decoder.mid_record and record_by is None:
                record_by = trio.current_time() + self._call_timeout
            if not data:
                raise TransportError("the agent ended the event stream")

    async def _on_event(self, event: AgentEvent, lists: SubscribeLists) -> None:
        self._last_event_time = trio.current_time()
        log.debug("event from the agent: %s", type(event).__name__)
        if isinstance(event, Subscribed):
            self._ledger.subscribed(lists)
            for update in lists.updates:  # delivered by this SUBSCRIBE: as good as a 202
                waiter = self._waiters.get(update.uuid)
                if waiter is not None:
                    waiter.accepted.set()
            self._live = True
            self._subscriptions += 1
            self.executor_info = event.executor_info
            self.framework_info = event.framework_info
            self.agent_info = event.agent_info
            self.container_id = event.container_id
            if self._agent_id is None and event.agent_info.HasField("id"):
                self._agent_id = event.agent_info.id.value
            self._session.shutdown_grace = max(0.0, self._grace_period() - SHUTDOWN_MARGIN)
            self._next_heartbeat = trio.current_time() + self._heartbeat_interval
            self._subscribed_once = True
            self._stream_up = True
            self._feed(s.SubscribedEvent())
            self._established.set()
            self._wake_calls()
        elif isinstance(event, Shutdown):
            log.info("SHUTDOWN from the agent")
            self._subscribed_once = True
            self._feed(s.ShutdownEvent())
            if not self._live and self._session.state is s.State.SHUTTING_DOWN:
                # SHUTDOWN instead of SUBSCRIBED: the agent did not process our
                # lists, but it accepts calls from a terminating executor, so
                # the tasks' last updates (TASK_KILLED) still go out as UPDATEs.
                self._live = True
                self._stream_up = True
                self._wake_calls()
            self._established.set()
        elif isinstance(event, Launch):
            self._ledger.task_received(event.task)
            await self._queue.put(functools.partial(self._executor.launch_task, self, event.task))
        elif isinstance(event, LaunchGroup):
            for task in event.task_group.tasks:
                self._ledger.task_received(task)
            await self._queue.put(
                functools.partial(self._executor.launch_task_group, self, event.task_group)
            )
        elif isinstance(event, Kill):
            await self._queue.put(functools.partial(self._on_kill, event))
        elif isinstance(event, Acknowledged):
            result = self._ledger.acknowledged(event.task_id, event.uuid)
            if result is AckResult.ACKNOWLEDGED:
                waiter = self._waiters.pop(event.uuid, None)
                if waiter is not None:
                    waiter.accepted.set()
                    waiter.acknowledged.set()
                await self._queue.put(
                    functools.partial(
                        self._executor.acknowledged, self, event.task_id, event.uuid
                    )
                )
                self._check_drained()
            else:
                log.debug("%s ACKNOWLEDGED for %s", result.value, event.uuid.hex())
        elif isinstance(event, Message):
            await self._queue.put(
                functools.partial(self._executor.framework_message, self, event.data)
            )
        elif isinstance(event, Error):
            await self._queue.put(functools.partial(self._executor.error, self, event.message))
        elif isinstance(event, Heartbeat):
            pass
        elif isinstance(event, UnknownEvent):
            log.warning("skipping an event of unknown type %d from the agent", event.type)

    async def _on_kill(self, event: Kill) -> None:
        # The callback first, so it can note the KILL's policy before the
        # task's work sees its cancellation and starts killing.
        try:
            await self._executor.kill_task(self, event.task_id, event.kill_policy)
        finally:
            self.cancel_task(event.task_id.value)

    def _grace_period(self) -> float:
        grace = self.config.shutdown_grace_period
        info = self.executor_info
        if info is not None and info.HasField("shutdown_grace_period"):
            grace = min(grace, info.shutdown_grace_period.nanoseconds / 1e9)
        return grace

    # ------------------------------------------------------------------
    # The call connection: UPDATE, MESSAGE, HEARTBEAT
    # ------------------------------------------------------------------

    async def _run_calls(self) -> None:
        """The call task: UPDATE, MESSAGE and HEARTBEAT calls, pipelined.

        Waits for work, opens the call connection and runs a pipeline on it
        (:meth:`_run_pipeline`) until it breaks, goes stale (the event stream
        was lost) or the agent closes it; then starts over, after a backoff
        if the connection failed. Calls in flight when a pipeline ends go
        back to their queues (:meth:`_pipeline_ended`).
        """
        backoff = Backoff(self.config.subscription_backoff_max, self._rng)
        while True:
            if not self._has_work():
                self._calls_wakeup = trio.Event()
                with trio.move_on_at(self._next_heartbeat if self._live else math.inf):
                    await self._calls_wakeup.wait()
                continue
            state = _PipelineState(self._call_generation)
            try:
                stream = await self._open_stream()
            except (OSError, trio.BrokenResourceError, TransportError) as exc:
                log.warning("cannot open the call connection to the agent: %s", exc)
                await trio.sleep(backoff.next_delay())
                continue
            pipe = CallPipeline(
                stream, host=self._host, path=self.config.agent_path, headers=self._request_headers
            )
            try:
                await self._run_pipeline(pipe, state, backoff)
            finally:
                self._pipeline_ended(state)
                with trio.CancelScope(shield=True):
                    await pipe.aclose()
            if state.failed:
                await trio.sleep(backoff.next_delay())

    def _has_work(self) -> bool:
        if not self._live:
            return False
        return bool(
            self._messages
            or trio.current_time() >= self._next_heartbeat
            or self._ledger.sendable()
        )

    def _next_calls(self, state: _PipelineState, room: int) -> list[_Call]:
        """Up to ``room`` calls to send now, in order; their updates become SENDING.

        Updates first, oldest first: per task only the oldest update not yet
        accepted, and none while one of the task's updates waits for its 202
        (``AckLedger.sendable``), so a task's updates reach the agent in
        order. Then framework messages, then a due HEARTBEAT.
        """
        if not self._live or room <= 0:
            return []
        calls: list[_Call] = []
        framework_id, executor_id = self.config.framework_id, self.config.executor_id
        for entry in self._ledger.sendable()[:room]:
            self._ledger.update_sending(entry.uuid)
            call = update_call(framework_id, executor_id, entry.status)
            calls.append(_Call(_UPDATE, encode_message(call, self._content_type), entry.uuid))
        while self._messages and len(calls) < room:
            item = self._messages.popleft()
            call = message_call(framework_id, executor_id, item[0])
            calls.append(_Call(_MESSAGE, encode_message(call, self._content_type), item))
        if (
            len(calls) < room
            and not state.heartbeat_in_flight
            and trio.current_time() >= self._next_heartbeat
        ):
            state.heartbeat_in_flight = True
            call = heartbeat_call(framework_id, executor_id)
            calls.append(_Call(_HEARTBEAT, encode_message(call, self._content_type), None))
        return calls

    async def _run_pipeline(
        self, pipe: CallPipeline, state: _PipelineState, backoff: Backoff
    ) -> None:
        async with trio.open_nursery() as nursery:
            state.scope = nursery.cancel_scope
            nursery.start_soon(self._pipeline_reader, pipe, state, backoff)
            await self._pipeline_writer(pipe, state)
            nursery.cancel_scope.cancel()

    async def _pipeline_writer(self, pipe: CallPipeline, state: _PipelineState) -> None:
        """Writes calls ahead while fewer than MAX_CALLS_IN_FLIGHT are unanswered."""
        while pipe.reusable and state.generation == self._call_generation:
            now = trio.current_time()
            calls = []
            if now >= state.resume_at:
                calls = self._next_calls(state, MAX_CALLS_IN_FLIGHT - len(state.in_flight))
            if not calls:
                if now < state.resume_at:
                    deadline = state.resume_at  # backoff after a retryable answer (e.g. 503)
                elif self._live and not state.heartbeat_in_flight:
                    deadline = self._next_heartbeat
                else:
                    deadline = math.inf
                self._calls_wakeup = trio.Event()
                with trio.move_on_at(deadline):
                    await self._calls_wakeup.wait()
                continue
            state.in_flight.extend(calls)
            state.sent.set()
            try:
                await pipe.send([c.body for c in calls])
            except TransportError as exc:
                log.warning("%s failed: %s", calls[0].what, exc)
                state.failed = True
                return

    async def _pipeline_reader(
        self, pipe: CallPipeline, state: _PipelineState, backoff: Backoff
    ) -> None:
        """Reads the answers in order and applies them; each call has call_timeout."""
        while True:
            while not state.in_flight:
                if not await self._wait_for_calls(pipe, state):
                    state.scope.cancel()
                    return
            call = state.in_flight[0]
            response: Response | None = None
            try:
                with trio.move_on_after(self._call_timeout):
                    response = await pipe.receive()
                if response is None:
                    raise TransportError(f"no complete answer within {self._call_timeout:g} s")
            except (TransportError, RemoteProtocolError) as exc:
                log.warning("%s failed: %s", call.what, exc)
                state.failed = True
                state.scope.cancel()
                return
            state.in_flight.popleft()
            if self._call_answered(call, response, state):
                backoff.reset()
            else:
                state.resume_at = trio.current_time() + backoff.next_delay()
            self._wake_calls()
            if not pipe.reusable:
                # The agent closes after this answer: what is still in flight
                # goes back to its queue and out on a new connection.
                state.scope.cancel()
                return

    async def _wait_for_calls(self, pipe: CallPipeline, state: _PipelineState) -> bool:
        """Wait until a call is in flight, watching the idle connection meanwhile.

        False when the connection ended (the agent may close an idle one) or
        sent an answer to a request never sent.
        """
        state.sent = trio.Event()
        ended: list[BaseException] = []
        async with trio.open_nursery() as nursery:

            async def until_sent() -> None:
                await state.sent.wait()
                nursery.cancel_scope.cancel()

            async def watch_idle() -> None:
                try:
                    await pipe.receive_while_idle()
                except (TransportError, RemoteProtocolError) as exc:
                    ended.append(exc)
                nursery.cancel_scope.cancel()

            nursery.start_soon(until_sent)
            nursery.start_soon(watch_idle)
        if ended:
            if isinstance(ended[0], RemoteProtocolError):
                log.warning("call connection: %s", ended[0])
                state.failed = True
            return False
        return True

    def _pipeline_ended(self, state: _PipelineState) -> None:
        """Unanswered calls go back: updates to QUEUED (the ledger keeps their
        order), messages to the front of their queue (dropped if the event
        stream was lost meanwhile, as queued ones are)."""
        messages = []
        for call in state.in_flight:
            if call.what is _UPDATE:
                self._ledger.update_failed(call.ref)
            elif call.what is _MESSAGE:
                messages.append(call.ref)
        state.in_flight.clear()
        if state.generation == self._call_generation and self._live:
            self._messages.extendleft(reversed(messages))
        else:
            for _, sent, outcome in messages:
                self._drop_message(sent, outcome, "the connection to the agent was lost")

    def _call_answered(self, call: _Call, response: Response, state: _PipelineState) -> bool:
        """Apply an answer; False if the call must be retried after a backoff."""
        if call.what is _UPDATE:
            return self._update_answered(call.ref, response)
        if call.what is _MESSAGE:
            return self._message_answered(call.ref, response, state)
        state.heartbeat_in_flight = False
        if response.status_code != 202:
            log.warning("HEARTBEAT answered %s", self._describe(response))
        self._next_heartbeat = trio.current_time() + self._heartbeat_interval
        return True

    def _update_answered(self, uuid: bytes, response: Response) -> bool:
        if _retryable(response):
            log.warning("UPDATE answered %s; will retry", self._describe(response))
            self._ledger.update_failed(uuid)
            return False
        if 200 <= response.status_code < 300:
            if response.status_code != 202:
                log.warning("UPDATE answered %s instead of 202 Accepted", self._describe(response))
            self._ledger.update_accepted(uuid)
            self._updates_accepted += 1
            waiter = self._waiters.get(uuid)
            if waiter is not None:
                waiter.accepted.set()
            return True
        entry = self._ledger.update_rejected(uuid)
        message = f"Received unexpected {self._describe(response)} for UPDATE"
        log.error(
            "%s; the update of task %s is dropped",
            message,
            entry.task_id if entry is not None else "?",
        )
        waiter = self._waiters.pop(uuid, None)
        if waiter is not None:
            waiter.fail(CallRejectedError(message, response.status_code, self._body(response)))
        self._notify(self._executor.error, message)
        self._check_drained()
        return True

    def _message_answered(
        self, item: _QueuedMessage, response: Response, state: _PipelineState
    ) -> bool:
        _, sent, outcome = item
        if _retryable(response):
            # retried while connected; dropped when the connection goes
            if state.generation == self._call_generation and self._live:
                self._messages.appendleft(item)
            else:
                self._drop_message(sent, outcome, "the connection to the agent was lost")
            return False
        if response.status_code >= 300:
            message = f"Received unexpected {self._describe(response)} for MESSAGE"
            outcome.append(CallRejectedError(message, response.status_code, self._body(response)))
            self._notify(self._executor.error, message)
        if sent is not None:
            sent.set()
        return True


def _uuid4() -> bytes:
    """16 random bytes with the RFC 4122 version 4 and variant bits (uuid.uuid4().bytes,
    without importing uuid on the start path)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return bytes(raw)


def _retryable(response: Response) -> bool:
    # 503: agent still recovering; other 5xx: transient; 404: routes not ready
    # (the C++ library treats 503 and 404 alike); 403 "not subscribed": the
    # agent restarted and we have not re-subscribed yet; 1xx/3xx: not an
    # answer an agent gives (redirects are not followed) -- keep the call and
    # try again rather than lose it.
    code = response.status_code
    return (
        code >= 500
        or code < 200
        or 300 <= code < 400
        or code == 404
        or (code == 403 and b"not subscribed" in response.body)
    )


def _text(response: Response) -> str:
    return response.body.decode("utf-8", "replace")


async def _read_bounded(conn: AgentConnection, limit: int = 64 * 1024) -> bytes:
    chunks = []
    size = 0
    with trio.move_on_after(5):
        while size < limit:
            data = await conn.receive_body()
            if not data:
                break
            chunks.append(data)
            size += len(data)
    return b"".join(chunks)[:limit]


def _event_content_type(head: Response) -> ContentType:
    value = (head.header("content-type") or "").split(";")[0].strip().lower()
    for content_type in ContentType:
        if value == content_type.value:
            return content_type
    raise RemoteProtocolError(f"the event stream has Content-Type {value!r}")


def _config_from_os_environ() -> ExecutorConfig:
    config = ExecutorConfig.from_environ(dict(os.environ))
    # As the C++ library: the token must not leak into the tasks' environment.
    os.environ.pop("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", None)
    return config


def _raise_group(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Turn the driver nursery's exception group into what callers should see.

    Policy (STYLE.md §3.3, after trio's raise_single_exception_from_group):
    KeyboardInterrupt or SystemExit anywhere in the group: re-raise that type
    from the group. Exactly one exception other than Cancelled -- what the
    block raised (a group it raised counts as one and is passed on as it is),
    or one exception of the driver's tasks -- re-raise it as itself, context
    preserved. Only Cancelled: re-raise one of them. Several at once:
    TrioMesosInternalError from the group.
    """

    def leaves(exc: BaseException) -> list[BaseException]:
        if isinstance(exc, BaseExceptionGroup):
            return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
        return [exc]

    for kind in (KeyboardInterrupt, SystemExit):
        for leaf in leaves(group):
            if isinstance(leaf, kind):
                raise kind(*leaf.args) from group
    candidates: list[BaseException] = []
    for child in group.exceptions:
        candidates += leaves(child) if isinstance(child, _DriverFailure) else [child]
    others = [exc for exc in candidates if not isinstance(exc, trio.Cancelled)]
    if len(others) == 1:
        _raise_saving_context(others[0])
    if not others and candidates:
        _raise_saving_context(candidates[0])
    raise TrioMesosInternalError(
        "several errors at once inside the executor driver; see __cause__"
    ) from group


def _raise_saving_context(exc: BaseException) -> NoReturn:
    __tracebackhide__ = True
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


@asynccontextmanager
async def open_executor_driver(
    executor: Executor,
    *,
    config: ExecutorConfig | None = None,
    open_stream: OpenStream | None = None,
    content_type: ContentType | str = ContentType.PROTOBUF,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    rng: random.Random | None = None,
    max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
    stream_idle_timeout: float | None = None,
    kill_process_group_after_grace: bool = False,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
) -> AsyncIterator[ExecutorDriver]:
    """Run an executor driver for the duration of an ``async with`` block.

    ::

        async with trio_mesos.open_executor_driver(MyExecutor()) as driver:
            status = await driver.join()

    Entering subscribes to the agent: the block starts once the agent
    answered SUBSCRIBE with SUBSCRIBED (or with SHUTDOWN as the first event).
    Inside, the driver's tasks (event stream, update sending, callback
    dispatch, task work) run beside the block. Leaving the block normally or
    by an exception stops the driver gracefully: it waits up to
    ``stop_timeout`` seconds for the agent to acknowledge pending updates,
    then ends ``DRIVER_STOPPED``. Leaving by cancellation or
    KeyboardInterrupt aborts at once.

    Args:
        executor: the callbacks.
        config: the executor's configuration. Default: read from
            ``os.environ`` (``ExecutorConfig.from_environ``), after which
            ``MESOS_EXECUTOR_AUTHENTICATION_TOKEN`` is removed from
            ``os.environ`` so tasks do not inherit it.
        open_stream: async callable returning a new stream to the agent.
            Default: TCP to the agent's endpoint, or its Unix socket.
        content_type: ``application/x-protobuf`` (default) or ``application/json``.
        stop_timeout: seconds to wait for pending ACKs when stopping.
        heartbeat_interval: seconds between HEARTBEAT calls (Mesos: 30 min).
        rng: random source of the reconnect backoff (tests pass a seeded one).
        max_record_size: largest event accepted from the agent, in bytes.
        stream_idle_timeout: seconds without any byte on the event stream after
            which it counts as lost (a stalled agent or middlebox). Off by
            default; the agent sends a HEARTBEAT event every 30 minutes, so a
            value above that (e.g. ``45 * 60``) only catches dead streams.
        call_timeout: seconds the agent has to answer a call completely (the
            head of SUBSCRIBE's response; the whole response of any other
            call). A call that takes longer counts as a failed connection:
            SUBSCRIBE follows the recovery rules, other calls are retried.
        kill_process_group_after_grace: after SHUTDOWN, SIGKILL this process's
            whole process group once the shutdown grace period is over, from a
            timer thread, as Mesos's C++ libraries always do (not under
            ``MESOS_LOCAL``). A last resort for executors whose tasks or
            event loop may not end in time; off by default, since it kills
            whatever shares the process group.

    Raises:
        AgentUnavailableError: the agent could not be reached at all, or
            refused SUBSCRIBE (raised on entry, as the C++ library ends the
            executor when its first connection fails).
        ConfigError: the environment is invalid (when ``config`` is None).
        Exception: whatever a callback, task work or the block raised, as itself.
    """
    if config is None:
        config = _config_from_os_environ()
    driver: ExecutorDriver = ExecutorDriver._create(
        executor,
        config,
        open_stream=open_stream or default_open_stream(config),
        content_type=ContentType(content_type),
        stop_timeout=stop_timeout,
        heartbeat_interval=heartbeat_interval,
        rng=rng or random.Random(),
        max_record_size=max_record_size,
        stream_idle_timeout=stream_idle_timeout,
        kill_process_group_after_grace=kill_process_group_after_grace,
        call_timeout=call_timeout,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(driver._run)
            try:
                yield driver
            except (trio.Cancelled, KeyboardInterrupt, SystemExit):
                driver.abort()
                raise
            except BaseException:
                driver.stop()
                await driver.join()
                raise
            driver.stop()
            await driver.join()
    except BaseExceptionGroup as group:
        _raise_group(group)


async def run_executor(executor: Executor, **kwargs: Any) -> Status:
    """Start a driver and wait for its end: the seed's ``run()``, for ``__main__``.

    ``trio.run(run_executor, MyExecutor())``. Takes the keyword arguments of
    :func:`open_executor_driver`; returns the final Status.
    """
    async with open_executor_driver(executor, **kwargs) as driver:
        return await driver.join()

