"""The executor driver: a nursery-scoped client of the agent's executor API.

Theory of operation
-------------------
``open_executor_driver`` (:mod:`._open`) opens a nursery for the caller's block
and starts the driver in it with ``nursery.start``. The driver owns a cancel scope (never the
nursery's own: cancelling that would also cancel the caller's block) inside
which its sibling tasks run, each in a module of its own that never imports
this one:

* the **connection** task, one per attempt (:mod:`._subscription`): opens a
  stream, sends SUBSCRIBE, reads the RecordIO event stream and hands typed
  events to the driver;
* the **call** task (:mod:`._calls`): UPDATE, MESSAGE and HEARTBEAT calls on
  a second, keep-alive connection, pipelined, each retried by one table of
  answers (:mod:`._answers`);
* the **dispatcher** (:mod:`._dispatch`): awaits the executor's callbacks one
  at a time in event order; the tasks' **work** (``start_task``) runs beside
  it, each piece in a cancel scope of its own;
* the **timer** task: fires the session's reconnect and recovery timers;
* the **watcher**: parked for good inside the driver's scope, so that trio
  tells the driver *synchronously*, inside ``cancel()`` or at deadline
  expiry, that its scope was cancelled, whoever cancelled it.

Decisions are the pure session's (:mod:`._session`); this module carries out
its actions (:attr:`ExecutorDriver._ACTIONS`) and turns events into session
inputs (:attr:`ExecutorDriver._EVENTS`).

Every way the driver ends is a deadline on its cancel scope. The session's
end timers (stop drain, shutdown grace) *are* that deadline, so each end's
bound holds whatever user code does. When the end is decided (abort, an
error, a drain completed, a bound fired, the scope cancelled from outside),
:meth:`ExecutorDriver._end` does in one synchronous step: set the final
status, drop queued callbacks, fail every waiter, log the updates that never
went out, cancel the scope.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, NoReturn, final

import trio

from . import _session as s
from ._acks import AckLedger, Delivery
from ._backoff import Backoff
from ._calls import CallSender
from ._config import ExecutorConfig
from ._dispatch import Dispatcher, Item, Waiters
from ._errors import (
    AgentUnavailableError,
    DriverClosedError,
    JoinFromCallbackError,
    LocalProtocolError,
    TrioMesosInternalError,
)
from ._events import SHUTDOWN_MARGIN, AgentEvents
from ._executor import Executor
from ._exits import leaves as _leaves
from ._http import AgentConnection, CallPipeline
from ._messages import (
    ContentType,
    prepare_status,
)
from ._proto import mesos_pb2
from ._status import Status
from ._subscription import subscribe_once
from ._threads import HomeThread
from ._transport import OpenStream, host_header

if TYPE_CHECKING:
    from typing_extensions import TypeVarTuple, Unpack

    PosArgT = TypeVarTuple("PosArgT")

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

__all__ = ["DEFAULT_STOP_TIMEOUT", "DriverStatistics", "ExecutorDriver"]

log: Final = logging.getLogger("trio_mesos.driver")

#: Seconds that leaving the driver's block (or ``stop()``) waits for the agent
#: to acknowledge pending updates before the driver ends anyway.
DEFAULT_STOP_TIMEOUT: Final = 10.0
#: Interval of the HEARTBEAT call, as Mesos's C++ library (30 minutes).
DEFAULT_HEARTBEAT_INTERVAL: Final = 30 * 60.0
#: Seconds the agent has to answer a call (SUBSCRIBE: its head and first event).
DEFAULT_CALL_TIMEOUT: Final = 30.0
#: Agent events buffered between the stream reader and the callbacks.
EVENT_QUEUE_SIZE: Final = 16


@dataclass(frozen=True, slots=True)
class DriverStatistics:
    """A snapshot of the driver's state (``driver.statistics()``)."""

    #: Session state: "subscribed", "disconnected", "stopped", "aborted", ...
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


class _NoPublicConstructor(type):
    """Metaclass: calling the class raises; ``cls._create(...)`` constructs."""

    def __call__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{cls.__name__} has no public constructor; use open_executor_driver()")

    def _create(cls, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(*args, **kwargs)


@final
class ExecutorDriver(AgentEvents, metaclass=_NoPublicConstructor):
    """The driver of one executor; obtained from :func:`open_executor_driver`.

    It has no public constructor. Methods keep the meaning of
    ``org.apache.mesos.ExecutorDriver``: the synchronous ones return a
    :class:`~trio_mesos.Status` and never raise because the driver has ended;
    the ``await``-able ones (:meth:`update`, :meth:`wait_acknowledged`,
    :meth:`message`) raise :class:`~trio_mesos.DriverClosedError` instead.

    How the driver ends, and the bound on each end after its trigger. The
    bound is the deadline of the driver's cancel scope, so it holds whatever
    user code does: at the bound, whatever still runs in the driver is
    cancelled.

    =========================  =======================  ================  ==========================
    how it ends                what still runs          bound             final Status
    =========================  =======================  ================  ==========================
    ``abort()``, cancellation  nothing                  next checkpoint   ``DRIVER_ABORTED``
    callback or work raises    nothing                  next checkpoint   ``DRIVER_ABORTED``
    ``stop()``, leaving block  ACK drain; callbacks     ``stop_timeout``  ``DRIVER_STOPPED``
                               and task work go on
    SHUTDOWN                   ``shutdown``, task work  G - 1 s           ``DRIVER_STOPPED``
    agent lost for good        ``error``, ``shutdown``  G - 1 s           ``DRIVER_ABORTED``
                               and task work
    first connection fails     nothing (no block)       ``call_timeout``  ``AgentUnavailableError``
    =========================  =======================  ================  ==========================

    Cancellation means from outside (a scope around the ``async with``). What
    a callback or task work raised comes out of the ``async with`` as itself.
    The agent is lost for good at the loss without checkpointing, at the
    recovery deadline with it, or when a re-SUBSCRIBE is refused for good;
    :attr:`error` then holds an :class:`~trio_mesos.AgentUnavailableError`.
    The first connection (failed, silent, first event not SUBSCRIBED or
    SHUTDOWN, or SUBSCRIBE refused for good) has ``call_timeout`` to connect,
    then ``call_timeout`` from SUBSCRIBE to SUBSCRIBED; the error is raised
    on entry. G is the shutdown grace period: the smaller of
    ``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`` and
    ``ExecutorInfo.shutdown_grace_period``. When several ends are armed, the
    earliest bound wins. When the end is decided, queued callbacks never
    start and every waiter (``update``, ``wait_acknowledged``, ``message``,
    inside callbacks too) raises :class:`~trio_mesos.DriverClosedError`; when
    the agent is lost for good they fail at once with
    :class:`~trio_mesos.AgentUnavailableError`.
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
        self.config = config
        self._executor = executor
        self._open_stream = open_stream
        self._content_type = content_type
        self._call_timeout = call_timeout
        self._stream_idle_timeout = stream_idle_timeout
        self._max_record_size = max_record_size
        self._kill_process_group_after_grace = kill_process_group_after_grace
        self._last_resort: threading.Timer | None = None
        self._home = HomeThread()  # calls from other threads hop over to it
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
        self._headers = headers
        self._host = host_header(config)
        self._agent_id = config.agent_id
        self._waiters = Waiters()
        self._dispatcher = Dispatcher(EVENT_QUEUE_SIZE, self._user_code_failed, self._settle)
        self._calls = CallSender(
            ledger=self._ledger,
            waiters=self._waiters,
            open_stream=open_stream,
            make_pipeline=lambda stream: CallPipeline(
                stream, host=self._host, path=config.agent_path, headers=headers
            ),
            content_type=content_type,
            framework_id=config.framework_id,
            executor_id=config.executor_id,
            new_backoff=lambda: Backoff(config.subscription_backoff_max, rng),
            call_timeout=call_timeout,
            heartbeat_interval=heartbeat_interval,
            redact=self._redact,
            on_refused=lambda text: self._notify(self._executor.error, text),
            on_answer=self._settle,
        )
        self._scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self._timers: dict[s.Timer, float] = {}
        self._timers_changed = trio.Event()
        self._established = trio.Event()
        self._done = trio.Event()
        self._ended = False  # the end is decided (_done is set at the end of that step)
        self._status = Status.DRIVER_NOT_STARTED
        self._subscribed_once = False  # SUBSCRIBED (or a first SHUTDOWN) was read
        self._generation = 0  # of the connection attempt that counts
        self._connection_scope: trio.CancelScope | None = None
        self._stream_up = False  # the event stream (where ACKs arrive) is open
        self._shutdown_done = True  # no shutdown callback pending
        self._raised: list[BaseException] = []  # what the driver's tasks raised
        #: Why the driver ended ABORTED (an AgentUnavailableError, or what user code raised).
        self.error: BaseException | None = None
        # information from SUBSCRIBED
        self.executor_info: mesos_pb2.ExecutorInfo | None = None
        self.framework_info: mesos_pb2.FrameworkInfo | None = None
        self.agent_info: mesos_pb2.AgentInfo | None = None
        self.container_id: mesos_pb2.ContainerID | None = None
        self._subscriptions = 0
        self._last_event_time: float | None = None

    # ------------------------------------------------------------------
    # The seed API (org.apache.mesos.ExecutorDriver)
    # ------------------------------------------------------------------

    def start(self) -> Status:
        """Does nothing: the driver started when the ``async with`` block was entered.

        Returns ``DRIVER_RUNNING``, or the final status once the driver has
        ended. Not a checkpoint. Thread-safe.
        """
        if self._home.elsewhere():
            return self._home.call(self.start, lambda: self._status)
        return self._status

    def stop(self) -> Status:
        """End gracefully: pending ACKs drain, bounded by ``stop_timeout``; then the end.

        Returns ``DRIVER_STOPPED`` at once (the final status if the driver has
        already ended, as the seed does); :meth:`join` waits for the end. Not
        a checkpoint. Meanwhile the connection stays up and callbacks and
        task work go on; at the end, whatever still runs is cancelled. While
        disconnected nothing can be acknowledged, so the driver ends at once.
        Updates left unacknowledged are logged with their task ids.
        Thread-safe (see :meth:`send_status_update`).
        """
        if self._home.elsewhere():
            return self._home.call(self.stop, lambda: self._status)
        if self._ended:
            return self._status
        self._feed(s.StopRequested())
        self._settle()
        return self._status if self._ended else Status.DRIVER_STOPPED

    def abort(self) -> Status:
        """End now: cancel everything; no callback starts after this call.

        Synchronous and not a checkpoint: whatever runs in the driver (the
        callback that called it included) sees the cancellation at its next
        checkpoint. Pending updates are not waited for. Returns
        ``DRIVER_ABORTED`` (``DRIVER_STOPPED`` if already stopped).
        Thread-safe (see :meth:`send_status_update`).
        """
        if self._home.elsewhere():
            return self._home.call(self.abort, lambda: self._status)
        if not self._ended:
            self._end(Status.DRIVER_ABORTED)
        return self._status

    async def join(self) -> Status:
        """Wait until the driver has ended; return ``DRIVER_STOPPED`` or ``DRIVER_ABORTED``.

        A checkpoint. Cancelling it leaves the driver running.

        Raises:
            JoinFromCallbackError: awaited inside an executor callback: the
                driver's end cancels the callback, so this could never return.
        """
        if trio.lowlevel.current_task() is self._dispatcher.task:
            raise JoinFromCallbackError(
                "join() inside an executor callback cannot return: the driver's end cancels "
                "the callback (call stop() and return instead)"
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
        executor and agent ids, timestamp. Returns ``DRIVER_RUNNING``; once
        the end is decided, the final status (nothing is queued).

        Thread-safe, as are :meth:`start`, :meth:`stop`, :meth:`abort` and
        :meth:`send_framework_message` (the other methods belong to the
        driver's trio thread). From another thread (``threading.Thread``,
        ``trio.to_thread``, another trio run) the call is carried out on the
        driver's trio thread while the caller waits, briefly: same return
        value, same exceptions, and each thread's updates queued in the order
        it made them. Once the driver's ``trio.run`` has returned, the final
        status. (So the trio thread must not block waiting for such a thread.)

        Raises:
            LocalProtocolError: ``TASK_STAGING``, a task this executor never
                received, or another update the agent would refuse.
        """
        if self._home.elsewhere():
            return self._home.call(lambda: self.send_status_update(status), lambda: self._status)
        if self._ended:
            return self._status
        self._queue_update(status)
        return Status.DRIVER_RUNNING

    def send_framework_message(self, data: bytes) -> Status:
        """Queue a message to the framework (best effort, as in Mesos).

        Synchronous and never blocks. Dropped (logged) when made while
        disconnected, when the connection is lost before it was sent, or when
        1,024 messages already wait (``await message()`` gives back-pressure).
        Returns ``DRIVER_RUNNING``, or the final status after the end.
        Thread-safe (see :meth:`send_status_update`).
        """
        if self._home.elsewhere():
            return self._home.call(lambda: self.send_framework_message(data),
                                   lambda: self._status)
        if self._ended:
            return self._status
        self._calls.queue_message(bytes(data), None)
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
            AgentUnavailableError: the agent is lost for good.
            DriverClosedError: the driver's end was decided (before or while waiting).
        """
        self._check_open()
        uuid = self._queue_update(status)
        await self._waiters.accepted(uuid).wait()
        return uuid

    async def wait_acknowledged(self, uuid: bytes) -> None:
        """Wait until the agent acknowledged the update ``uuid``.

        Returns at once if it is not pending any more (already acknowledged).

        Raises:
            CallRejectedError, AgentUnavailableError, DriverClosedError: as :meth:`update`.
        """
        self._check_open()
        if self._ledger.get(uuid) is None:
            await trio.lowlevel.checkpoint()
            return
        await self._waiters.acknowledged(uuid).wait()

    async def message(self, data: bytes) -> None:
        """Send a message to the framework and wait for the agent's 202.

        Raises:
            MessageQueueFullError: 1,024 messages already wait to be sent.
            AgentUnavailableError: the message was dropped (connection lost).
            CallRejectedError: the agent refused it.
            DriverClosedError: the driver's end was decided.
        """
        self._check_open()
        waiter = self._waiters.message()
        self._calls.queue_message(bytes(data), waiter)
        await waiter.wait()

    def start_task(
        self,
        task_id: str,
        async_fn: Callable[[Unpack[PosArgT]], Awaitable[object]],
        *args: Unpack[PosArgT],
    ) -> None:
        """Run ``async_fn(*args)`` as work of task ``task_id``, in a scope the driver manages.

        KILL of that task (right after the ``kill_task`` callback returns),
        SHUTDOWN (before the ``shutdown`` callback runs) and abort cancel the
        work; so does the end of the driver, at its bound. The work reports
        the task's states itself: a ``trio.Cancelled`` handler may still send
        ``TASK_KILLED`` (it goes out unless the end is decided). If the work
        raises, the driver ends and the exception leaves
        :func:`open_executor_driver`. Synchronous; not a checkpoint.

        Raises:
            DriverClosedError: the driver has ended.
        """
        self._check_open()
        assert self._nursery is not None
        self._dispatcher.start_task(self._nursery, task_id, async_fn, args)

    def cancel_task(self, task_id: str) -> bool:
        """Cancel the work started for ``task_id``; False if there was none."""
        return self._dispatcher.cancel_task(task_id)

    def statistics(self) -> DriverStatistics:
        """A frozen snapshot of the driver's counters and state."""
        ledger = self._ledger
        return DriverStatistics(
            state=self._session.state.value,
            status=self._status,
            unacknowledged_updates=len(ledger),
            unacknowledged_tasks=len(ledger.unacknowledged_tasks()),
            updates_accepted=self._calls.updates_accepted,
            acknowledgements=ledger.acknowledged_count,
            duplicate_acknowledgements=ledger.duplicate_acks,
            unknown_acknowledgements=ledger.unknown_acks,
            subscriptions=self._subscriptions,
            reconnects=self._session.outages,
            connection_attempts=self._session.attempts,
            last_event_time=self._last_event_time,
            running_tasks=len(self._dispatcher.task_scopes),
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
        if self._ended:
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
        if log.isEnabledFor(logging.DEBUG):
            log.debug("update %s for task %s queued: %s", entry.uuid.hex(), task_id,
                      mesos_pb2.TaskState.Name(prepared.state))
        self._calls.wake()
        return entry.uuid

    def _callback(self, callback: Callable[..., Awaitable[None]], *args: Any) -> Item:
        return functools.partial(callback, self, *args)

    def _notify(self, callback: Callable[..., Awaitable[None]], *args: Any) -> None:
        self._dispatcher.put_nowait(self._callback(callback, *args))

    def _redact(self, text: str) -> str:
        """``text`` from the agent without our token (a proxy may echo our headers)."""
        token = self.config.authentication_token
        return text.replace(token, "<redacted>") if token else text

    # ------------------------------------------------------------------
    # The session: inputs in, actions carried out
    # ------------------------------------------------------------------

    def _feed(self, event: s.Input) -> None:
        for action in self._session.handle(event, trio.current_time()):
            self._ACTIONS[type(action)](self, action)

    def _settle(self) -> None:
        """Tell the session what is left to wait for (it decides whether that is drained)."""
        if self._session.state in (s.State.STOPPING, s.State.SHUTTING_DOWN, s.State.LOST):
            # Only read without the event stream; whether any is left is enough
            # (this runs after every answer: no full scan while draining).
            sending = 0
            if not self._stream_up and self._calls.live:
                sending = int(any(e.delivery is not Delivery.ACCEPTED for e in self._ledger))
            self._feed(s.Drained(
                unacknowledged=len(self._ledger),
                sending=sending,
                stream_up=self._stream_up,
                shutdown_done=self._shutdown_done,
                busy=self._dispatcher.busy,
            ))

    def _open_connection(self, action: s.OpenConnection) -> None:
        self._generation += 1
        generation = self._generation
        assert self._nursery is not None
        self._nursery.start_soon(self._run_connection, generation, name="trio_mesos connection")

    def _close_connection(self, action: s.CloseConnection) -> None:
        self._generation += 1
        if self._connection_scope is not None:
            self._connection_scope.cancel()
            self._connection_scope = None
        self._stream_up = False
        if self._session.state.final:
            # The end is being decided (Finish follows): the waiters of queued
            # messages learn that, not that the connection went.
            self._waiters.fail_all(self._closed_error(self._session.status))
        self._calls.go_down("the connection to the agent was lost")

    def _set_timer(self, action: s.SetTimer) -> None:
        self._timers[action.timer] = action.at
        self._timers_changed.set()
        self._bound_end()

    def _cancel_timer(self, action: s.CancelTimer) -> None:
        if self._timers.pop(action.timer, None) is not None:
            self._bound_end()

    def _bound_end(self) -> None:
        """The driver's scope ends at the earliest armed end timer (its bound)."""
        if not self._ended:
            ends = [at for timer, at in self._timers.items() if timer in s.END_TIMERS]
            self._scope.deadline = min(ends, default=math.inf)

    def _enable_calls(self, action: s.EnableCalls) -> None:
        self._stream_up = True
        self._calls.go_live(trio.current_time())

    def _notify_registered(self, action: s.NotifyRegistered) -> None:
        self._notify(self._executor.registered, self.executor_info, self.framework_info,
                     self.agent_info)

    def _notify_reregistered(self, action: s.NotifyReregistered) -> None:
        self._notify(self._executor.reregistered, self.agent_info)

    def _notify_disconnected(self, action: s.NotifyDisconnected) -> None:
        self._notify(self._executor.disconnected)

    def _notify_error(self, action: s.NotifyError) -> None:
        self._notify(self._executor.error, action.message)

    def _notify_shutdown(self, action: s.NotifyShutdown) -> None:
        if self._session.state is s.State.LOST:
            # Nothing can be accepted any more: awaiting callbacks must return.
            self._waiters.fail_all(AgentUnavailableError(self._session.lost_error or "lost"))
        self._arm_last_resort()
        self._dispatcher.cancel_all_tasks()
        self._shutdown_done = False
        self._dispatcher.put_nowait(self._run_shutdown_callback)

    def _finish(self, action: s.Finish) -> None:
        error = action.error
        failure = AgentUnavailableError(error, action.status_code) if error else None
        self._end(action.status, failure)

    _ACTIONS: ClassVar[dict[type[s.Action], Callable[[ExecutorDriver, Any], None]]] = {
        s.OpenConnection: _open_connection,
        s.SendSubscribe: lambda self, action: None,  # the attempt asks connected()
        s.CloseConnection: _close_connection,
        s.SetTimer: _set_timer,
        s.CancelTimer: _cancel_timer,
        s.EnableCalls: _enable_calls,
        s.NotifyRegistered: _notify_registered,
        s.NotifyReregistered: _notify_reregistered,
        s.NotifyDisconnected: _notify_disconnected,
        s.NotifyError: _notify_error,
        s.NotifyShutdown: _notify_shutdown,
        s.Finish: _finish,
    }


    async def _run_shutdown_callback(self) -> None:
        try:
            await self._executor.shutdown(self)
        finally:
            self._shutdown_done = True

    def _arm_last_resort(self) -> None:
        # Opt-in, as the C++ libraries do always: SIGKILL our own process group
        # once the grace period is over, from a thread, so that even a blocked
        # event loop or a process that lingers after the driver cannot outlive
        # the grace. Not under MESOS_LOCAL (the C++ libraries' test mode).
        if not self._kill_process_group_after_grace or self.config.local:
            return
        if self._last_resort is not None:
            return
        grace = self._session.shutdown_grace + SHUTDOWN_MARGIN
        log.info("the process group will be killed in %g s (end of the shutdown grace)", grace)
        timer = threading.Timer(grace, os.killpg, args=(0, signal.SIGKILL))
        timer.daemon = True
        timer.start()
        self._last_resort = timer

    # ------------------------------------------------------------------
    # The end
    # ------------------------------------------------------------------

    def _end(self, status: Status, error: BaseException | None = None) -> None:
        """The end is decided: everything in one synchronous step."""
        if self._ended:
            return
        self._ended = True
        self._status = status
        lost = self._session.lost_error
        if error is None and lost is not None:
            error = AgentUnavailableError(lost)  # abort() after the agent was lost
        if self.error is None:
            self.error = error
        try:
            if not self._session.state.final:
                self._feed(s.AbortRequested())  # the session's state says how it ended
            self._dispatcher.close()
            self._waiters.fail_all(self._closed_error(status))
            self._report_unacknowledged()
            log.info("executor driver ended: %s%s", status.name,
                     f" ({self.error})" if self.error else "")
        finally:
            # Whatever happened above, the end holds its bound.
            self._done.set()
            self._established.set()
            self._scope.cancel()

    @staticmethod
    def _closed_error(status: Status | None) -> DriverClosedError:
        name = status.name if status is not None else "ended"
        return DriverClosedError(f"the executor driver has ended ({name})")

    def _report_unacknowledged(self) -> None:
        entries = list(self._ledger)
        if not entries:
            return
        log.warning("%d update(s) not acknowledged at the end, of tasks %s", len(entries),
                    ", ".join(sorted({e.task_id for e in entries})))
        for entry in entries:
            if entry.delivery is not Delivery.ACCEPTED:
                log.warning("update %s of task %s (%s) was never accepted by the agent",
                            entry.uuid.hex(), entry.task_id,
                            mesos_pb2.TaskState.Name(entry.status.state))

    def _scope_cancelled(self) -> None:
        """Trio cancelled the driver's scope (abort, a bound, or from outside)."""
        if self._ended:
            return
        now = trio.current_time()
        due = sorted((at, timer.value, timer) for timer, at in self._timers.items()
                     if timer in s.END_TIMERS and at <= now)
        for _, _, timer in due[:1]:
            self._timers.pop(timer)
            self._feed(s.TimerFired(timer))  # a bound fired: the session says how it ended
        if not self._ended:
            self._end(Status.DRIVER_ABORTED)  # cancelled from outside

    def _user_code_failed(self, exc: BaseException) -> None:
        self._end(Status.DRIVER_ABORTED, exc)

    # ------------------------------------------------------------------
    # Tasks
    # ------------------------------------------------------------------

    async def _run(self, *, task_status: trio.TaskStatus[ExecutorDriver]) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    self._status = Status.DRIVER_RUNNING
                    nursery.start_soon(_internal(self._watch_scope), name="trio_mesos watcher")
                    nursery.start_soon(_internal(self._run_timers), name="trio_mesos timers")
                    nursery.start_soon(_internal(self._calls.run), name="trio_mesos calls")
                    nursery.start_soon(self._dispatcher.run, name="trio_mesos dispatcher")
                    self._feed(s.Start())
                    await self._established.wait()
                    if self._subscribed_once:
                        task_status.started(self)
        except BaseExceptionGroup as group:
            self._raised = _leaves(group)
            raise
        if self._subscribed_once:
            return  # ended after the block started (or before this task resumed)
        error = self.error
        if isinstance(error, AgentUnavailableError):
            raise AgentUnavailableError(error.msg, error.status_code)
        raise AgentUnavailableError(f"the executor driver could not start: {error}")

    async def _watch_scope(self) -> None:
        def abort(_: Any) -> trio.lowlevel.Abort:
            self._scope_cancelled()
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def _run_timers(self) -> None:
        """Fires the session's wake-up timers (reconnect, recovery); end timers are bounds."""
        while True:
            wakeups = [at for t, at in self._timers.items() if t not in s.END_TIMERS]
            self._timers_changed = trio.Event()
            with trio.move_on_at(min(wakeups, default=math.inf)):
                await self._timers_changed.wait()
            now = trio.current_time()
            for timer, at in sorted(self._timers.items(), key=lambda item: item[1]):
                if timer not in s.END_TIMERS and at <= now and self._timers.get(timer) == at:
                    del self._timers[timer]
                    self._feed(s.TimerFired(timer))

    # ------------------------------------------------------------------
    # The connection attempt's host (see _subscription.SubscriptionHost)
    # ------------------------------------------------------------------

    async def _run_connection(self, generation: int) -> None:
        scope = self._connection_scope = trio.CancelScope()
        with scope:
            await _internal(subscribe_once)(
                host=self,
                is_current=lambda: generation == self._generation,
                open_stream=self._open_stream,
                make_connection=lambda stream: AgentConnection(
                    stream, host=self._host, path=self.config.agent_path, headers=self._headers
                ),
                call_timeout=self._call_timeout,
                idle_timeout=self._stream_idle_timeout,
                max_record_size=self._max_record_size,
            )


_NOT_BUGS: Final = (trio.Cancelled, KeyboardInterrupt, SystemExit)


def _internal(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Wrap a driver-internal task: what it raises unexpectedly is our bug, and says so."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> None:
        try:
            await fn(*args, **kwargs)
        except BaseException as exc:
            if all(isinstance(leaf, _NOT_BUGS) for leaf in _leaves(exc)):
                raise
            raise TrioMesosInternalError(
                f"a bug in trio_mesos ({type(exc).__name__} in {fn.__name__}): please report it"
            ) from exc

    return run


def _uuid4() -> bytes:
    """16 random bytes with the RFC 4122 version 4 and variant bits (uuid.uuid4().bytes,
    without importing uuid on the start path)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return bytes(raw)
