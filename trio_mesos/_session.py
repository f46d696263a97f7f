"""The subscription session: a state machine from inputs to actions.

Theory of operation
-------------------
The executor's side of the connection follows the C++ v1 library and the
agent's recovery rules (PROTOCOL.md §3.8, §4.3):

* The first connection must succeed: until the agent has answered once, any
  failure (no connection, a TLS refusal, a close or a first event other than
  SUBSCRIBED/SHUTDOWN) ends the session at once (the C++ library injects
  SHUTDOWN even with checkpointing; the executor's block never ran).
* SUBSCRIBE answered with 503 (agent recovering) or 404 (routes not ready) is
  tried again after a backoff; on a re-SUBSCRIBE other transient answers
  (other 5xx, 1xx, 3xx) are too; any other refusal ends the session with the
  agent's answer as the error (:mod:`._answers` has the table).
* When the stream is lost after subscribing: with ``MESOS_CHECKPOINT=1`` keep
  everything, reconnect at once, then after delays uniform in
  ``[0, MESOS_SUBSCRIPTION_BACKOFF_MAX]``, until ``MESOS_RECOVERY_TIMEOUT``
  after the loss -- one deadline per outage, not moved by failed attempts.
  Without checkpointing: give up at once.
* SHUTDOWN (from the agent) starts the shutdown grace, during ``stop()`` too
  (the earliest bound wins); a later end of stream is not an outage (the real
  agent keeps the stream open after SHUTDOWN).
* Giving up on the agent (recovery timeout, loss without checkpointing, a
  re-SUBSCRIBE refused for good) is the state *lost*: the ``shutdown`` and
  ``error`` callbacks get the shutdown grace, as after a SHUTDOWN, and the
  session then ends ``DRIVER_ABORTED``.

Ends and their bounds
---------------------
The session decides when the driver ends, and by when at the latest. The
timers :data:`END_TIMERS` (the shutdown grace, the stop drain) are *bounds*:
the shell carries them out as the deadline of the driver's cancel scope, not
as a wake-up, so they hold whatever user code does. Before a bound, the shell
reports what is left to wait for with :class:`Drained` (unacknowledged
updates, the event stream, the ``shutdown`` callback, callbacks and task
work still running); the session decides whether that is drained:

* *stopping*: no unacknowledged update, or the event stream (where
  acknowledgements arrive) is down and no update waits to be accepted that
  still can be;
* *shutting down*: as *stopping*, and the ``shutdown`` callback has returned
  and nothing else runs;
* *lost*: the ``shutdown`` callback has returned and nothing else runs.

The shutdown grace is session state: the environment's grace (minus the
driver's margin) at first, the shorter ``ExecutorInfo.shutdown_grace_period``
once SUBSCRIBED carries one (:class:`SubscribedEvent`).

The machine is pure: the shell feeds it :class:`Input` values with the
current time and carries out the returned :class:`Action` values (open a
connection, send SUBSCRIBE, arm a timer, run a callback, finish). Every
transition it can take is listed in :data:`TRANSITIONS`; the state diagram in
the documentation is generated from that table.
"""

from __future__ import annotations

import enum
from typing import ClassVar, Final

from ._answers import Verdict, classify
from ._backoff import Backoff, RecoveryTimer
from ._record import record
from ._status import Status

__all__ = [
    "END_TIMERS",
    "TRANSITIONS",
    "Action",
    "Input",
    "Session",
    "State",
    "Timer",
]


class State(enum.Enum):
    """Where the session stands."""

    IDLE = "idle"
    CONNECTING = "connecting"
    SUBSCRIBING = "subscribing"
    SUBSCRIBED = "subscribed"
    DISCONNECTED = "disconnected"
    SHUTTING_DOWN = "shutting down"
    STOPPING = "stopping"
    LOST = "lost"
    STOPPED = "stopped"
    ABORTED = "aborted"

    @property
    def final(self) -> bool:
        """Whether the session has ended."""
        return self in (State.STOPPED, State.ABORTED)


class Timer(enum.Enum):
    """The timers the shell keeps for the session (at most one of each)."""

    RECONNECT = "reconnect"
    RECOVERY = "recovery"
    SHUTDOWN_GRACE = "shutdown grace"
    STOP_DRAIN = "stop drain"


#: Timers that bound the end of the driver: the shell makes them the deadline
#: of the driver's cancel scope (the earliest one wins).
END_TIMERS: Final = frozenset({Timer.SHUTDOWN_GRACE, Timer.STOP_DRAIN})


# -- inputs -----------------------------------------------------------------


class InputKind(enum.Enum):
    START = "start"
    CONNECTED = "connected"
    CONNECT_FAILED = "connect failed"
    SUBSCRIBE_REFUSED = "subscribe refused"
    SUBSCRIBED = "subscribed"
    SHUTDOWN = "shutdown"
    STREAM_LOST = "stream lost"
    TIMER = "timer"
    STOP = "stop"
    ABORT = "abort"
    DRAINED = "drained"


@record
class Input:
    """Base of the session's inputs."""

    kind: ClassVar[InputKind]


@record
class Start(Input):
    """Begin: connect for the first time."""

    kind: ClassVar[InputKind] = InputKind.START


@record
class Connected(Input):
    """The connection for the SUBSCRIBE stream is open."""

    kind: ClassVar[InputKind] = InputKind.CONNECTED


@record
class ConnectFailed(Input):
    """The connection could not be opened."""

    reason: str
    kind: ClassVar[InputKind] = InputKind.CONNECT_FAILED


@record
class SubscribeRefused(Input):
    """SUBSCRIBE got an answer other than 200."""

    status_code: int
    reason: str
    kind: ClassVar[InputKind] = InputKind.SUBSCRIBE_REFUSED

    def retried(self, *, resubscribe: bool) -> bool:
        """Whether SUBSCRIBE is tried again (:func:`._answers.classify`)."""
        verdict = classify(self.status_code, subscribe=True, resubscribe=resubscribe)
        return verdict is Verdict.RETRY


@record
class SubscribedEvent(Input):
    """SUBSCRIBED arrived on the stream.

    ``shutdown_grace``: the seconds from SHUTDOWN to the end that
    ``ExecutorInfo.shutdown_grace_period`` allows (minus the driver's margin),
    or None; the session keeps the shorter of it and its own.
    """

    shutdown_grace: float | None = None
    kind: ClassVar[InputKind] = InputKind.SUBSCRIBED


@record
class ShutdownEvent(Input):
    """SHUTDOWN arrived on the stream."""

    kind: ClassVar[InputKind] = InputKind.SHUTDOWN


@record
class StreamLost(Input):
    """The stream ended, failed, stalled, or could not be decoded."""

    reason: str
    kind: ClassVar[InputKind] = InputKind.STREAM_LOST


@record
class TimerFired(Input):
    """A timer armed by :class:`SetTimer` expired."""

    timer: Timer
    kind: ClassVar[InputKind] = InputKind.TIMER


@record
class StopRequested(Input):
    """``stop()`` or leaving the driver's block: end gracefully."""

    kind: ClassVar[InputKind] = InputKind.STOP


@record
class AbortRequested(Input):
    """``abort()`` or cancellation: end now."""

    kind: ClassVar[InputKind] = InputKind.ABORT


@record
class Drained(Input):
    """What is left to wait for; the session decides whether the end has come.

    The defaults describe nothing left at all.

    Attributes:
        unacknowledged: updates the agent has not acknowledged.
        sending: of those, updates not accepted yet that may still be (calls
            can go out); only whether it is zero matters.
        stream_up: the event stream (where acknowledgements arrive) is open.
        shutdown_done: the ``shutdown`` callback has returned (or never ran).
        busy: a callback runs or is queued, or task work runs.
    """

    unacknowledged: int = 0
    sending: int = 0
    stream_up: bool = True
    shutdown_done: bool = True
    busy: bool = False
    kind: ClassVar[InputKind] = InputKind.DRAINED

    def drained(self, state: State) -> bool:
        """Whether nothing is left to wait for in ``state``."""
        # Without the event stream no ACK can come, but updates may still be accepted.
        acks_done = self.unacknowledged == 0 or (not self.stream_up and self.sending == 0)
        if state is State.STOPPING:
            return acks_done
        idle = self.shutdown_done and not self.busy
        if state is State.SHUTTING_DOWN:
            return idle and acks_done
        return idle  # State.LOST: nothing can be acknowledged any more


# -- actions ----------------------------------------------------------------


@record
class Action:
    """Base of what the session asks the shell to do."""


@record
class OpenConnection(Action):
    """Open a new connection to the agent for the SUBSCRIBE stream."""


@record
class SendSubscribe(Action):
    """Send SUBSCRIBE with the ledger's current lists."""


@record
class EnableCalls(Action):
    """SHUTDOWN came first on a stream: calls may go out without SUBSCRIBED.

    The agent did not process our lists, but it accepts calls from a
    terminating executor, so the tasks' last updates still go out as UPDATEs.
    """


@record
class CloseConnection(Action):
    """Close the stream connection (and the call connection)."""


@record
class SetTimer(Action):
    """Arm (or re-arm) ``timer`` to fire at the absolute time ``at``."""

    timer: Timer
    at: float


@record
class CancelTimer(Action):
    """Disarm ``timer`` if armed."""

    timer: Timer


@record
class NotifyRegistered(Action):
    """Run ``registered`` (first subscription)."""


@record
class NotifyReregistered(Action):
    """Run ``reregistered`` (subscribed again after an outage)."""


@record
class NotifyDisconnected(Action):
    """Run ``disconnected`` (once per outage)."""


@record
class NotifyShutdown(Action):
    """Cancel every task's work, then run ``shutdown``: kill every task and report them."""


@record
class NotifyError(Action):
    """Run ``error`` with ``message``."""

    message: str


@record
class Finish(Action):
    """The session is over: end the driver with ``status`` (and ``error``, if any)."""

    status: Status
    error: str | None = None
    #: The HTTP status of the refusal that ended the session, if one did.
    status_code: int | None = None


# -- the table --------------------------------------------------------------

_S = State
_I = InputKind

# Every (state, input) pair the session reacts to, with the states it may go
# to besides staying where it is (a timer that does not concern the state, for
# example). Pairs not listed are ignored (for example a stale connection's late
# report). docs/ generates the state diagram from this table.
TRANSITIONS: Final[dict[State, dict[InputKind, frozenset[State]]]] = {
    _S.IDLE: {
        _I.START: frozenset({_S.CONNECTING}),
    },
    _S.CONNECTING: {
        _I.CONNECTED: frozenset({_S.SUBSCRIBING}),
        _I.CONNECT_FAILED: frozenset({_S.DISCONNECTED, _S.CONNECTING, _S.LOST, _S.ABORTED}),
        _I.TIMER: frozenset({_S.LOST}),
    },
    _S.SUBSCRIBING: {
        _I.SUBSCRIBED: frozenset({_S.SUBSCRIBED}),
        _I.SHUTDOWN: frozenset({_S.SHUTTING_DOWN}),
        _I.SUBSCRIBE_REFUSED: frozenset({_S.DISCONNECTED, _S.CONNECTING, _S.LOST, _S.ABORTED}),
        _I.STREAM_LOST: frozenset({_S.DISCONNECTED, _S.CONNECTING, _S.LOST, _S.ABORTED}),
        _I.TIMER: frozenset({_S.LOST}),
    },
    _S.SUBSCRIBED: {
        _I.SHUTDOWN: frozenset({_S.SHUTTING_DOWN}),
        # the first attempt after a loss is immediate (the backoff was reset)
        _I.STREAM_LOST: frozenset({_S.CONNECTING, _S.LOST}),
    },
    _S.DISCONNECTED: {
        _I.TIMER: frozenset({_S.CONNECTING, _S.LOST}),
    },
    _S.SHUTTING_DOWN: {
        _I.TIMER: frozenset({_S.STOPPED}),
        _I.DRAINED: frozenset({_S.STOPPED}),
    },
    _S.STOPPING: {
        _I.SHUTDOWN: frozenset({_S.SHUTTING_DOWN}),
        _I.TIMER: frozenset({_S.STOPPED}),
        _I.DRAINED: frozenset({_S.STOPPED}),
    },
    _S.LOST: {
        _I.TIMER: frozenset({_S.ABORTED}),
        _I.DRAINED: frozenset({_S.ABORTED}),
    },
    _S.STOPPED: {},
    _S.ABORTED: {},
}
for _state in State:
    if not _state.final:
        TRANSITIONS[_state][_I.ABORT] = frozenset({_S.ABORTED})
        if _state is _S.LOST:
            TRANSITIONS[_state][_I.STOP] = frozenset({_S.ABORTED})
        elif _state is not _S.STOPPING:
            TRANSITIONS[_state][_I.STOP] = frozenset(
                {_S.STOPPED if _state is _S.IDLE else _S.STOPPING}
            )
del _state


class Session:
    """The subscription lifecycle, as a pure state machine.

    Args:
        checkpoint: ``MESOS_CHECKPOINT=1``: reconnect after a loss.
        recovery_timeout: seconds an outage may last (``MESOS_RECOVERY_TIMEOUT``).
        backoff: reconnect delays (``MESOS_SUBSCRIPTION_BACKOFF_MAX``).
        shutdown_grace: seconds from SHUTDOWN (or giving up on the agent) to
            the end at the latest (the driver passes the environment's grace
            period minus its safety margin; SUBSCRIBED may shorten it).
        stop_drain_timeout: seconds ``stop()`` waits for unacknowledged updates.
    """

    def __init__(
        self,
        *,
        checkpoint: bool,
        recovery_timeout: float,
        backoff: Backoff,
        shutdown_grace: float,
        stop_drain_timeout: float,
    ) -> None:
        self.checkpoint = checkpoint
        self.backoff = backoff
        self.shutdown_grace = shutdown_grace
        self.stop_drain_timeout = stop_drain_timeout
        self.state = State.IDLE
        #: The agent answered a SUBSCRIBE at least once (any answer): from
        #: then on, failures follow the recovery rules instead of ending at once.
        self.ever_connected = False
        self.ever_subscribed = False
        self.error: str | None = None
        self.status: Status | None = None
        #: Outages so far (each one gets one ``disconnected`` notification).
        self.outages = 0
        #: Connection attempts made, the first included.
        self.attempts = 0
        self._recovery = RecoveryTimer(recovery_timeout)
        self._in_outage = False
        #: SHUTDOWN came (its ``shutdown`` callback is part of any drain since).
        self.shutdown_seen = False
        #: The stop drain's deadline, fixed by the first ``stop()``.
        self._stop_by: float | None = None
        #: Why the agent is lost for good (state *lost*), or None.
        self.lost_error: str | None = None

    def handle(self, event: Input, now: float) -> list[Action]:
        """Feed one input; return the actions to carry out, in order."""
        targets = TRANSITIONS[self.state].get(event.kind)
        if targets is None:
            return []
        before = self.state
        actions = self._dispatch(event, now)
        if self.state is not before and self.state not in targets:  # pragma: no cover
            raise AssertionError(f"{before} --{event.kind}--> {self.state} is not in TRANSITIONS")
        return actions

    # -- handlers ------------------------------------------------------------

    def _dispatch(self, event: Input, now: float) -> list[Action]:
        state = self.state
        if isinstance(event, AbortRequested):
            return self._finish(Status.DRIVER_ABORTED, self.lost_error, close=True)
        if isinstance(event, StopRequested):
            if state is State.LOST:
                # Nothing can be acknowledged any more: stop ends at once.
                return self._finish(Status.DRIVER_ABORTED, self.lost_error, close=True)
            return self._stop(now)
        if isinstance(event, Start):
            return self._connect()
        if isinstance(event, Connected):
            self.state = State.SUBSCRIBING
            return [SendSubscribe()]
        if isinstance(event, (ConnectFailed, StreamLost)) and not self.ever_connected:
            # The first connection failed before the agent answered at all.
            return self._finish(
                Status.DRIVER_ABORTED, f"cannot connect to the agent: {event.reason}", close=True
            )
        if isinstance(event, ConnectFailed):
            if not self.checkpoint:
                # Only a SUBSCRIBE refused with 503/404 is retried without
                # checkpointing; a lost connection ends the executor (§4.3).
                return self._give_up_without_checkpoint(event.reason, now)
            return self._retry_later(now)
        if isinstance(event, SubscribeRefused):
            self.ever_connected = True
            if event.retried(resubscribe=self.ever_subscribed):
                return [CloseConnection(), *self._retry_later(now)]
            message = f"the agent refused SUBSCRIBE: {event.reason}"
            if not self.ever_subscribed:
                return self._finish(
                    Status.DRIVER_ABORTED, message, close=True, status_code=event.status_code
                )
            return [CloseConnection(), *self._give_up(message, now)]
        if isinstance(event, SubscribedEvent):
            return self._subscribed(event)
        if isinstance(event, ShutdownEvent):
            if self.shutdown_seen:
                return []  # a second SHUTDOWN (during stop()) changes nothing
            self.shutdown_seen = True
            self.ever_connected = True
            calls: list[Action] = [EnableCalls()] if state is State.SUBSCRIBING else []
            self.state = State.SHUTTING_DOWN
            return [
                *self._end_outage(),
                *calls,
                CancelTimer(Timer.RECONNECT),
                NotifyShutdown(),
                SetTimer(Timer.SHUTDOWN_GRACE, now + self.shutdown_grace),
            ]
        if isinstance(event, StreamLost):
            return self._lost(event.reason, now)
        if isinstance(event, TimerFired):
            if state in (State.SHUTTING_DOWN, State.STOPPING, State.LOST):
                # A stop() during the shutdown grace keeps the grace's deadline
                # (the agent destroys the container then anyway): the earliest
                # bound wins.
                if event.timer in END_TIMERS:
                    status = Status.DRIVER_ABORTED if state is State.LOST else Status.DRIVER_STOPPED
                    return self._finish(status, self.lost_error, close=True)
                return []
            if event.timer is Timer.RECOVERY and self._in_outage:
                again = "re-" if self.ever_subscribed else ""
                message = (
                    f"could not {again}subscribe to the agent within the recovery timeout "
                    f"({self._recovery.timeout:g} s)"
                )
                return [CloseConnection(), *self._give_up(message, now)]
            if event.timer is Timer.RECONNECT and state is State.DISCONNECTED:
                return self._connect()
            return []
        if isinstance(event, Drained):
            # A stop() after SHUTDOWN still waits for the shutdown callback.
            rule = State.SHUTTING_DOWN if self.shutdown_seen and state is State.STOPPING else state
            if not event.drained(rule):
                return []
            status = Status.DRIVER_ABORTED if state is State.LOST else Status.DRIVER_STOPPED
            return self._finish(status, self.lost_error, close=True)
        raise AssertionError(f"unhandled input {event!r}")  # pragma: no cover

    def _connect(self) -> list[Action]:
        self.state = State.CONNECTING
        self.attempts += 1
        return [OpenConnection()]

    def _retry_later(self, now: float) -> list[Action]:
        actions = self._begin_outage(now)
        delay = self.backoff.next_delay()
        if delay <= 0:
            return [*actions, *self._connect()]
        self.state = State.DISCONNECTED
        return [*actions, SetTimer(Timer.RECONNECT, now + delay)]

    def _lost(self, reason: str, now: float) -> list[Action]:
        if not self.checkpoint:
            return [CloseConnection(), *self._give_up_without_checkpoint(reason, now)]
        actions: list[Action] = [CloseConnection()]
        if self.ever_subscribed and not self._in_outage:
            actions.append(NotifyDisconnected())
        return actions + self._retry_later(now)

    def _give_up_without_checkpoint(self, reason: str, now: float) -> list[Action]:
        message = f"lost the connection to the agent and checkpointing is off: {reason}"
        return self._give_up(message, now)

    def _give_up(self, message: str, now: float) -> list[Action]:
        """The agent is lost for good: ``error`` and ``shutdown`` get the grace, then ABORTED."""
        self.state = State.LOST
        self.lost_error = message
        self._in_outage = False
        self._recovery.end()
        return [
            *[CancelTimer(t) for t in (Timer.RECONNECT, Timer.RECOVERY)],
            NotifyError(message),
            NotifyShutdown(),
            SetTimer(Timer.SHUTDOWN_GRACE, now + self.shutdown_grace),
        ]

    def _begin_outage(self, now: float) -> list[Action]:
        if self._in_outage:
            return []
        self._in_outage = True
        self.outages += 1
        self._recovery.start(now)
        deadline = self._recovery.deadline
        assert deadline is not None
        return [SetTimer(Timer.RECOVERY, deadline)]

    def _end_outage(self) -> list[Action]:
        if not self._in_outage:
            return []
        self._in_outage = False
        self._recovery.end()
        return [CancelTimer(Timer.RECOVERY)]

    def _subscribed(self, event: SubscribedEvent) -> list[Action]:
        self.state = State.SUBSCRIBED
        self.ever_connected = True
        if event.shutdown_grace is not None:
            self.shutdown_grace = max(0.0, min(self.shutdown_grace, event.shutdown_grace))
        self.backoff.reset()
        notify: Action = NotifyReregistered() if self.ever_subscribed else NotifyRegistered()
        self.ever_subscribed = True
        return [*self._end_outage(), notify]

    def _stop(self, now: float) -> list[Action]:
        if self.state is State.IDLE:
            return self._finish(Status.DRIVER_STOPPED, None)
        self.state = State.STOPPING
        if self._stop_by is None:  # a later stop() never moves the bound
            self._stop_by = now + self.stop_drain_timeout
        return [
            *self._end_outage(),
            CancelTimer(Timer.RECONNECT),
            SetTimer(Timer.STOP_DRAIN, self._stop_by),
        ]

    def _finish(
        self,
        status: Status,
        error: str | None,
        close: bool = False,
        status_code: int | None = None,
    ) -> list[Action]:
        self.state = State.ABORTED if status is Status.DRIVER_ABORTED else State.STOPPED
        self.status = status
        self.error = error
        self._in_outage = False
        cancels: list[Action] = [CancelTimer(t) for t in Timer]
        closing: list[Action] = [CloseConnection()] if close else []
        return [*cancels, *closing, Finish(status, error, status_code)]
