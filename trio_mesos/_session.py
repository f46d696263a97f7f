"""The subscription session: a state machine from inputs to actions.

Theory of operation
-------------------
The executor's side of the connection follows the C++ v1 library and the
agent's recovery rules (PROTOCOL.md §3.8, §4.3):

* The first connection must succeed: a failure to reach the agent at all ends
  the executor (the C++ library injects SHUTDOWN even with checkpointing).
* SUBSCRIBE answered with 503 (agent recovering) or 404 (routes not ready) is
  tried again after a backoff; any other refusal (400, 401, 403, ...) ends the
  session with the agent's answer as the error.
* When the stream is lost after subscribing: with ``MESOS_CHECKPOINT=1`` keep
  everything, reconnect at once, then after delays uniform in
  ``[0, MESOS_SUBSCRIPTION_BACKOFF_MAX]``, until ``MESOS_RECOVERY_TIMEOUT``
  after the loss -- one deadline per outage, not moved by failed attempts.
  Without checkpointing: shut down at once.
* SHUTDOWN (from the agent) starts the shutdown grace; a later end of stream
  is not an outage (the real agent keeps the stream open after SHUTDOWN).

The machine is pure: the shell feeds it :class:`Input` values with the
current time and carries out the returned :class:`Action` values (open a
connection, send SUBSCRIBE, arm a timer, run a callback, finish). Every
transition it can take is listed in :data:`TRANSITIONS`; the state diagram in
the documentation is generated from that table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Final

from ._backoff import Backoff, RecoveryTimer
from ._status import Status

__all__ = [
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


@dataclass(frozen=True, slots=True)
class Input:
    """Base of the session's inputs."""

    kind: ClassVar[InputKind]


@dataclass(frozen=True, slots=True)
class Start(Input):
    """Begin: connect for the first time."""

    kind: ClassVar[InputKind] = InputKind.START


@dataclass(frozen=True, slots=True)
class Connected(Input):
    """The connection for the SUBSCRIBE stream is open."""

    kind: ClassVar[InputKind] = InputKind.CONNECTED


@dataclass(frozen=True, slots=True)
class ConnectFailed(Input):
    """The connection could not be opened."""

    reason: str
    kind: ClassVar[InputKind] = InputKind.CONNECT_FAILED


@dataclass(frozen=True, slots=True)
class SubscribeRefused(Input):
    """SUBSCRIBE got an answer other than 200."""

    status_code: int
    reason: str
    kind: ClassVar[InputKind] = InputKind.SUBSCRIBE_REFUSED

    @property
    def retryable(self) -> bool:
        """503 (agent recovering) and 404 (routes not installed yet) are retried."""
        return self.status_code in (503, 404)

    @property
    def transient(self) -> bool:
        """Other 5xx, 3xx (redirects are not followed) and 1xx: not the agent's
        answer to an executor it knows. Retried when re-subscribing after an
        outage (nothing may be dropped then); the first SUBSCRIBE ends clearly."""
        code = self.status_code
        return code >= 500 or code < 200 or 300 <= code < 400


@dataclass(frozen=True, slots=True)
class SubscribedEvent(Input):
    """SUBSCRIBED arrived on the stream."""

    kind: ClassVar[InputKind] = InputKind.SUBSCRIBED


@dataclass(frozen=True, slots=True)
class ShutdownEvent(Input):
    """SHUTDOWN arrived on the stream."""

    kind: ClassVar[InputKind] = InputKind.SHUTDOWN


@dataclass(frozen=True, slots=True)
class StreamLost(Input):
    """The stream ended, failed, stalled, or could not be decoded."""

    reason: str
    kind: ClassVar[InputKind] = InputKind.STREAM_LOST


@dataclass(frozen=True, slots=True)
class TimerFired(Input):
    """A timer armed by :class:`SetTimer` expired."""

    timer: Timer
    kind: ClassVar[InputKind] = InputKind.TIMER


@dataclass(frozen=True, slots=True)
class StopRequested(Input):
    """``stop()`` or leaving the driver's block: end gracefully."""

    kind: ClassVar[InputKind] = InputKind.STOP


@dataclass(frozen=True, slots=True)
class AbortRequested(Input):
    """``abort()`` or cancellation: end now."""

    kind: ClassVar[InputKind] = InputKind.ABORT


@dataclass(frozen=True, slots=True)
class Drained(Input):
    """Nothing is left to wait for (no unacknowledged update; callbacks done)."""

    kind: ClassVar[InputKind] = InputKind.DRAINED


# -- actions ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    """Base of what the session asks the shell to do."""


@dataclass(frozen=True, slots=True)
class OpenConnection(Action):
    """Open a new connection to the agent for the SUBSCRIBE stream."""


@dataclass(frozen=True, slots=True)
class SendSubscribe(Action):
    """Send SUBSCRIBE with the ledger's current lists."""


@dataclass(frozen=True, slots=True)
class CloseConnection(Action):
    """Close the stream connection (and the call connection)."""


@dataclass(frozen=True, slots=True)
class SetTimer(Action):
    """Arm (or re-arm) ``timer`` to fire at the absolute time ``at``."""

    timer: Timer
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer(Action):
    """Disarm ``timer`` if armed."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class NotifyRegistered(Action):
    """Run ``registered`` (first subscription)."""


@dataclass(frozen=True, slots=True)
class NotifyReregistered(Action):
    """Run ``reregistered`` (subscribed again after an outage)."""


@dataclass(frozen=True, slots=True)
class NotifyDisconnected(Action):
    """Run ``disconnected`` (once per outage)."""


@dataclass(frozen=True, slots=True)
class NotifyShutdown(Action):
    """Run ``shutdown``: kill every task and report them."""


@dataclass(frozen=True, slots=True)
class NotifyError(Action):
    """Run ``error`` with ``message``."""

    message: str


@dataclass(frozen=True, slots=True)
class Finish(Action):
    """The session is over: end the driver with ``status`` (and ``error``, if any)."""

    status: Status
    error: str | None = None


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
        _I.CONNECT_FAILED: frozenset({_S.DISCONNECTED, _S.CONNECTING, _S.ABORTED}),
        _I.TIMER: frozenset({_S.ABORTED}),
    },
    _S.SUBSCRIBING: {
        _I.SUBSCRIBED: frozenset({_S.SUBSCRIBED}),
        _I.SHUTDOWN: frozenset({_S.SHUTTING_DOWN}),
        _I.SUBSCRIBE_REFUSED: frozenset({_S.DISCONNECTED, _S.CONNECTING, _S.ABORTED}),
        _I.STREAM_LOST: frozenset({_S.DISCONNECTED, _S.CONNECTING, _S.ABORTED}),
        _I.TIMER: frozenset({_S.ABORTED}),
    },
    _S.SUBSCRIBED: {
        _I.SHUTDOWN: frozenset({_S.SHUTTING_DOWN}),
        _I.STREAM_LOST: frozenset({_S.CONNECTING, _S.ABORTED}),
    },
    _S.DISCONNECTED: {
        _I.TIMER: frozenset({_S.CONNECTING, _S.ABORTED}),
    },
    _S.SHUTTING_DOWN: {
        _I.TIMER: frozenset({_S.STOPPED}),
        _I.DRAINED: frozenset({_S.STOPPED}),
    },
    _S.STOPPING: {
        _I.TIMER: frozenset({_S.STOPPED}),
        _I.DRAINED: frozenset({_S.STOPPED}),
    },
    _S.STOPPED: {},
    _S.ABORTED: {},
}
for _state in State:
    if not _state.final:
        TRANSITIONS[_state][_I.ABORT] = frozenset({_S.ABORTED})
        if _state is not _S.STOPPING:
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
        shutdown_grace: seconds from SHUTDOWN to the end of the session (the
            driver passes the grace period minus its safety margin).
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
        if isinstance(event, AbortRequested):
            return self._finish(Status.DRIVER_ABORTED, None, close=True)
        if isinstance(event, StopRequested):
            return self._stop(now)
        state = self.state
        if isinstance(event, Start):
            return self._connect()
        if isinstance(event, Connected):
            self.ever_connected = True
            self.state = State.SUBSCRIBING
            return [SendSubscribe()]
        if isinstance(event, ConnectFailed):
            if not self.ever_connected:
                return self._finish(
                    Status.DRIVER_ABORTED, f"cannot connect to the agent: {event.reason}"
                )
            if not self.checkpoint:
                # Only a SUBSCRIBE refused with 503/404 is retried without
                # checkpointing; a lost connection ends the executor (§4.3).
                return self._give_up_without_checkpoint(event.reason)
            return self._retry_later(now)
        if isinstance(event, SubscribeRefused):
            if event.retryable or (self.ever_subscribed and event.transient):
                return [CloseConnection(), *self._retry_later(now)]
            message = f"the agent refused SUBSCRIBE: {event.reason}"
            return [NotifyError(message), *self._finish(Status.DRIVER_ABORTED, message, True)]
        if isinstance(event, SubscribedEvent):
            return self._subscribed()
        if isinstance(event, ShutdownEvent):
            self.state = State.SHUTTING_DOWN
            return [
                *self._end_outage(),
                CancelTimer(Timer.RECONNECT),
                NotifyShutdown(),
                SetTimer(Timer.SHUTDOWN_GRACE, now + self.shutdown_grace),
            ]
        if isinstance(event, StreamLost):
            return self._lost(event.reason, now)
        if isinstance(event, TimerFired):
            if state in (State.SHUTTING_DOWN, State.STOPPING):
                # A stop() during the shutdown grace keeps the grace's deadline:
                # the agent destroys the container then anyway.
                if event.timer in (Timer.SHUTDOWN_GRACE, Timer.STOP_DRAIN):
                    return self._finish(Status.DRIVER_STOPPED, None, close=True)
                return []
            if event.timer is Timer.RECOVERY and self._in_outage:
                message = (
                    f"could not re-subscribe to the agent within the recovery timeout "
                    f"({self._recovery.timeout:g} s)"
                )
                return [NotifyShutdown(), *self._finish(Status.DRIVER_ABORTED, message, True)]
            if event.timer is Timer.RECONNECT and state is State.DISCONNECTED:
                return self._connect()
            return []
        if isinstance(event, Drained):
            return self._finish(Status.DRIVER_STOPPED, None, close=True)
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
            return [CloseConnection(), *self._give_up_without_checkpoint(reason)]
        actions: list[Action] = [CloseConnection()]
        if self.ever_subscribed and not self._in_outage:
            actions.append(NotifyDisconnected())
        return actions + self._retry_later(now)

    def _give_up_without_checkpoint(self, reason: str) -> list[Action]:
        message = f"lost the connection to the agent and checkpointing is off: {reason}"
        return [NotifyShutdown(), *self._finish(Status.DRIVER_ABORTED, message)]

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

    def _subscribed(self) -> list[Action]:
        self.state = State.SUBSCRIBED
        self.backoff.reset()
        notify: Action = NotifyReregistered() if self.ever_subscribed else NotifyRegistered()
        self.ever_subscribed = True
        return [*self._end_outage(), notify]

    def _stop(self, now: float) -> list[Action]:
        if self.state is State.IDLE:
            return self._finish(Status.DRIVER_STOPPED, None)
        self.state = State.STOPPING
        return [
            *self._end_outage(),
            CancelTimer(Timer.RECONNECT),
            SetTimer(Timer.STOP_DRAIN, now + self.stop_drain_timeout),
        ]

    def _finish(self, status: Status, error: str | None, close: bool = False) -> list[Action]:
        self.state = State.ABORTED if status is Status.DRIVER_ABORTED else State.STOPPED
        self.status = status
        self.error = error
        self._in_outage = False
        cancels: list[Action] = [CancelTimer(t) for t in Timer]
        return [*cancels, *([CloseConnection()] if close else []), Finish(status, error)]
