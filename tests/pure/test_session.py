"""Tests of the Session state machine (PROTOCOL.md §3.8, §4.3; PEERS.md §2.1).

First example tests that drive each transition directly (h11 ``test_state.py``
style), then a Hypothesis state machine that feeds arbitrary inputs, the
inputs a real shell would produce, and the timers the session armed, at
increasing times, and checks the session's promises after every step.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from trio_mesos._backoff import Backoff
from trio_mesos._session import (
    TRANSITIONS,
    AbortRequested,
    Action,
    CancelTimer,
    CloseConnection,
    Connected,
    ConnectFailed,
    Drained,
    Finish,
    Input,
    InputKind,
    NotifyDisconnected,
    NotifyError,
    NotifyRegistered,
    NotifyReregistered,
    NotifyShutdown,
    OpenConnection,
    SendSubscribe,
    Session,
    SetTimer,
    ShutdownEvent,
    Start,
    State,
    StopRequested,
    StreamLost,
    SubscribedEvent,
    SubscribeRefused,
    Timer,
    TimerFired,
)
from trio_mesos._status import Status

RECOVERY_TIMEOUT = 900.0
BACKOFF_MAX = 2.0
GRACE = 5.0
DRAIN = 10.0

#: States in which the session only waits for a timer or the shell's Drained.
WAITING = (State.DISCONNECTED, State.SHUTTING_DOWN, State.STOPPING)
#: States in which the session must never open a connection.
NO_CONNECT = (State.SHUTTING_DOWN, State.STOPPING, State.STOPPED, State.ABORTED)


class RecordingRandom(random.Random):
    """A seeded random source that remembers every value it handed out."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.values: list[float] = []

    def random(self) -> float:
        value = super().random()
        self.values.append(value)
        return value


class FixedRandom(random.Random):
    """random() always returns ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def make_session(
    *,
    checkpoint: bool = True,
    recovery_timeout: float = RECOVERY_TIMEOUT,
    backoff_max: float = BACKOFF_MAX,
    rng: random.Random | None = None,
) -> Session:
    return Session(
        checkpoint=checkpoint,
        recovery_timeout=recovery_timeout,
        backoff=Backoff(backoff_max, rng if rng is not None else random.Random(0)),
        shutdown_grace=GRACE,
        stop_drain_timeout=DRAIN,
    )


def feed(session: Session, inputs: Sequence[Input], now: float = 0.0) -> list[Action]:
    actions: list[Action] = []
    for event in inputs:
        actions += session.handle(event, now)
    return actions


def of_type(actions: Sequence[Action], cls: type[Action]) -> list[Action]:
    return [a for a in actions if isinstance(a, cls)]


def timers_set(actions: Sequence[Action], timer: Timer) -> list[float]:
    return [a.at for a in actions if isinstance(a, SetTimer) and a.timer is timer]


def subscribed_session(**kwargs: Any) -> Session:
    session = make_session(**kwargs)
    feed(session, [Start(), Connected(), SubscribedEvent()])
    assert session.state is State.SUBSCRIBED
    return session


def in_outage(session: Session, now: float) -> list[Action]:
    """Lose the stream of a subscribed session at ``now``."""
    return session.handle(StreamLost("end of stream"), now)


#: Ways to reach each non-final state from a fresh session (at now = 0).
PATHS: dict[State, list[Input]] = {
    State.IDLE: [],
    State.CONNECTING: [Start()],
    State.SUBSCRIBING: [Start(), Connected()],
    State.SUBSCRIBED: [Start(), Connected(), SubscribedEvent()],
    # random.Random(0).random() > 0, so the second attempt waits.
    State.DISCONNECTED: [
        Start(),
        Connected(),
        SubscribedEvent(),
        StreamLost("eof"),
        ConnectFailed("refused"),
    ],
    State.SHUTTING_DOWN: [Start(), Connected(), ShutdownEvent()],
    State.STOPPING: [Start(), Connected(), SubscribedEvent(), StopRequested()],
}

ALL_INPUTS: list[Input] = [
    Start(),
    Connected(),
    ConnectFailed("connection refused"),
    SubscribeRefused(503, "Agent has not finished recovery"),
    SubscribeRefused(404, "Not Found"),
    SubscribeRefused(401, "Unauthorized"),
    SubscribedEvent(),
    ShutdownEvent(),
    StreamLost("end of stream"),
    *(TimerFired(timer) for timer in Timer),
    StopRequested(),
    AbortRequested(),
    Drained(),
]


def session_in(state: State) -> Session:
    session = make_session()
    feed(session, PATHS[state])
    assert session.state is state
    return session


# --- the table ------------------------------------------------------------------------


def test_transitions_cover_every_state() -> None:
    assert set(TRANSITIONS) == set(State)
    for state, row in TRANSITIONS.items():
        assert set(row) <= set(InputKind)
        for targets in row.values():
            assert targets
            assert targets <= set(State)
        if state.final:
            assert row == {}
        else:
            assert row[InputKind.ABORT] == {State.ABORTED}
            assert row.get(InputKind.STOP, frozenset()) <= {State.STOPPING, State.STOPPED}
    # Every state but IDLE can be entered.
    entered = {target for row in TRANSITIONS.values() for ts in row.values() for target in ts}
    assert entered == set(State) - {State.IDLE}
    assert {s for s in State if s.final} == {State.STOPPED, State.ABORTED}


# --- connecting and subscribing -------------------------------------------------------


def test_start_opens_a_connection() -> None:
    session = make_session()
    assert session.state is State.IDLE
    assert session.handle(Start(), 0.0) == [OpenConnection()]
    assert session.state is State.CONNECTING
    assert session.attempts == 1
    assert session.handle(Start(), 0.0) == []  # only once


def test_connected_sends_subscribe() -> None:
    session = session_in(State.CONNECTING)
    assert session.handle(Connected(), 1.0) == [SendSubscribe()]
    assert session.state is State.SUBSCRIBING
    assert session.ever_connected


@pytest.mark.parametrize("checkpoint", [True, False])
def test_first_connect_failure_aborts_with_a_clear_error(checkpoint: bool) -> None:
    # The C++ library shuts down when the very first connection fails, even
    # with checkpointing (PROTOCOL.md §4.3).
    session = make_session(checkpoint=checkpoint)
    session.handle(Start(), 0.0)
    actions = session.handle(ConnectFailed("connection refused"), 1.0)
    assert actions[-1] == Finish(Status.DRIVER_ABORTED, session.error)
    assert session.error is not None
    assert "cannot connect" in session.error
    assert "connection refused" in session.error
    assert of_type(actions, OpenConnection) == []
    assert of_type(actions, SetTimer) == []
    assert of_type(actions, NotifyDisconnected) == []
    assert session.state is State.ABORTED
    assert session.status is Status.DRIVER_ABORTED


def test_subscribed_notifies_registered() -> None:
    session = session_in(State.SUBSCRIBING)
    assert session.handle(SubscribedEvent(), 1.0) == [NotifyRegistered()]
    assert session.state is State.SUBSCRIBED
    assert session.ever_subscribed
    assert session.outages == 0
    assert session.handle(SubscribedEvent(), 2.0) == []  # a second one is ignored


def test_subscribed_again_after_an_outage_notifies_reregistered() -> None:
    session = subscribed_session()
    in_outage(session, 10.0)
    session.handle(Connected(), 10.5)
    actions = session.handle(SubscribedEvent(), 11.0)
    assert NotifyReregistered() in actions
    assert NotifyRegistered() not in actions
    assert CancelTimer(Timer.RECOVERY) in actions
    assert session.state is State.SUBSCRIBED


@pytest.mark.parametrize("status_code", [400, 401, 403, 415])
def test_non_retryable_subscribe_refusal_aborts_with_the_reason(status_code: int) -> None:
    reason = f"Received unexpected '{status_code} Whatever' () for SUBSCRIBE"
    session = session_in(State.SUBSCRIBING)
    actions = session.handle(SubscribeRefused(status_code, reason), 1.0)
    [error] = of_type(actions, NotifyError)
    assert isinstance(error, NotifyError)
    assert reason in error.message
    assert actions[-1] == Finish(Status.DRIVER_ABORTED, error.message)
    assert actions.index(error) < len(actions) - 1
    assert CloseConnection() in actions
    assert of_type(actions, OpenConnection) == []
    assert session.state is State.ABORTED
    assert session.error is not None
    assert reason in session.error


@pytest.mark.parametrize("status_code", [503, 404])
def test_retryable_refusal_of_the_first_subscribe_is_retried(status_code: int) -> None:
    # An agent still recovering answers the very first SUBSCRIBE with 503.
    session = session_in(State.SUBSCRIBING)
    actions = session.handle(SubscribeRefused(status_code, "not yet"), 1.0)
    assert of_type(actions, Finish) == []
    assert of_type(actions, NotifyError) == []
    assert of_type(actions, NotifyDisconnected) == []  # never subscribed: nothing to report
    assert CloseConnection() in actions
    # First retry: immediately (PROTOCOL.md §4.3).
    assert actions[-1] == OpenConnection()
    assert session.state is State.CONNECTING
    # The next refusal waits a random delay within [0, backoff_max].
    session.handle(Connected(), 1.0)
    actions = session.handle(SubscribeRefused(status_code, "not yet"), 2.0)
    assert of_type(actions, OpenConnection) == []
    [at] = timers_set(actions, Timer.RECONNECT)
    assert 2.0 <= at <= 2.0 + BACKOFF_MAX
    assert session.state is State.DISCONNECTED


@pytest.mark.parametrize("status_code", [503, 404])
def test_retryable_refusal_during_an_outage_is_retried(status_code: int) -> None:
    session = subscribed_session()
    in_outage(session, 10.0)
    session.handle(Connected(), 10.0)
    actions = session.handle(SubscribeRefused(status_code, "not yet"), 11.0)
    assert of_type(actions, Finish) == []
    assert of_type(actions, NotifyDisconnected) == []
    assert timers_set(actions, Timer.RECOVERY) == []  # same outage, same deadline
    assert CloseConnection() in actions
    assert session.state in (State.DISCONNECTED, State.CONNECTING)
    assert session.outages == 1


def test_shutdown_as_the_first_event() -> None:
    session = session_in(State.SUBSCRIBING)
    actions = session.handle(ShutdownEvent(), 3.0)
    assert NotifyShutdown() in actions
    assert timers_set(actions, Timer.SHUTDOWN_GRACE) == [3.0 + GRACE]
    assert of_type(actions, NotifyRegistered) == []
    assert of_type(actions, Finish) == []
    assert session.state is State.SHUTTING_DOWN
    # The agent closes the stream after it: not an outage.
    assert session.handle(StreamLost("eof"), 3.5) == []
    actions = session.handle(TimerFired(Timer.SHUTDOWN_GRACE), 3.0 + GRACE)
    assert actions[-1] == Finish(Status.DRIVER_STOPPED, None)
    assert session.state is State.STOPPED


def test_shutdown_after_subscription_ends_at_drained_or_grace() -> None:
    session = subscribed_session()
    actions = session.handle(ShutdownEvent(), 7.0)
    assert actions.count(NotifyShutdown()) == 1
    assert timers_set(actions, Timer.SHUTDOWN_GRACE) == [7.0 + GRACE]
    actions = session.handle(Drained(), 8.0)
    assert actions[-1] == Finish(Status.DRIVER_STOPPED, None)
    assert session.status is Status.DRIVER_STOPPED
    assert session.error is None


def test_shutdown_then_stream_lost_is_not_an_outage() -> None:
    session = subscribed_session()
    session.handle(ShutdownEvent(), 1.0)
    actions = session.handle(StreamLost("eof"), 2.0)
    assert actions == []
    assert session.state is State.SHUTTING_DOWN
    assert session.outages == 0
    assert session.attempts == 1


# --- outages --------------------------------------------------------------------------


def test_stream_lost_with_checkpoint_reconnects_at_once() -> None:
    session = subscribed_session()
    actions = in_outage(session, 100.0)
    assert actions.count(NotifyDisconnected()) == 1
    assert CloseConnection() in actions
    assert timers_set(actions, Timer.RECOVERY) == [100.0 + RECOVERY_TIMEOUT]
    assert actions[-1] == OpenConnection()  # immediately, no RECONNECT timer
    assert timers_set(actions, Timer.RECONNECT) == []
    assert session.state is State.CONNECTING
    assert session.outages == 1
    assert session.attempts == 2


def test_one_notification_and_one_deadline_per_outage() -> None:
    """pymesos defect 9: ``disconnected`` fired on every failed attempt."""
    session = subscribed_session(rng=random.Random(7))
    actions = in_outage(session, 100.0)
    now = 100.0
    for i in range(30):
        now += 0.25
        if i % 3 == 0:
            actions += session.handle(ConnectFailed("refused"), now)
        elif i % 3 == 1:
            actions += session.handle(Connected(), now)
            actions += session.handle(SubscribeRefused(503, "recovering"), now)
        else:
            actions += session.handle(Connected(), now)
            actions += session.handle(StreamLost("reset"), now)
        if session.state is State.DISCONNECTED:
            actions += session.handle(TimerFired(Timer.RECONNECT), now)
        assert session.state is State.CONNECTING
    assert actions.count(NotifyDisconnected()) == 1
    assert timers_set(actions, Timer.RECOVERY) == [100.0 + RECOVERY_TIMEOUT]
    assert session.outages == 1
    assert of_type(actions, Finish) == []


def test_next_outage_gets_its_own_notification_and_deadline() -> None:
    session = subscribed_session()
    first = in_outage(session, 100.0)
    session.handle(Connected(), 101.0)
    session.handle(SubscribedEvent(), 102.0)
    second = in_outage(session, 500.0)
    assert timers_set(first, Timer.RECOVERY) == [100.0 + RECOVERY_TIMEOUT]
    assert timers_set(second, Timer.RECOVERY) == [500.0 + RECOVERY_TIMEOUT]
    assert second.count(NotifyDisconnected()) == 1
    # A fresh outage starts over with an immediate attempt.
    assert second[-1] == OpenConnection()
    assert session.outages == 2


@pytest.mark.parametrize("backoff_max", [0.5, BACKOFF_MAX, 15.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_503_storm_is_paced_by_random_delays(backoff_max: float, seed: int) -> None:
    """pymesos defects 2 and 5: retries came at once (503) or too late (exponential)."""
    rng = RecordingRandom(seed)
    session = subscribed_session(backoff_max=backoff_max, rng=rng)
    actions = in_outage(session, 0.0)
    assert actions[-1] == OpenConnection()  # the first attempt is immediate
    assert rng.values == []
    now = 0.0
    delays: list[float] = []
    for _ in range(50):
        session.handle(Connected(), now)
        actions = session.handle(SubscribeRefused(503, "Agent has not finished recovery"), now)
        assert of_type(actions, OpenConnection) == []  # never an immediate retry again
        assert of_type(actions, NotifyDisconnected) == []
        [at] = timers_set(actions, Timer.RECONNECT)
        assert at == now + backoff_max * rng.values[-1]
        delays.append(at - now)
        now = at
        assert session.handle(TimerFired(Timer.RECONNECT), now) == [OpenConnection()]
    assert len(rng.values) == 50
    assert all(0.0 <= d <= backoff_max for d in delays)
    assert len(set(delays)) > 1  # random, not a fixed schedule
    assert session.attempts == 52


def test_zero_backoff_max_reconnects_at_once_every_time() -> None:
    session = subscribed_session(backoff_max=0.0)
    in_outage(session, 0.0)
    actions = session.handle(ConnectFailed("refused"), 1.0)
    assert actions[-1] == OpenConnection()
    assert timers_set(actions, Timer.RECONNECT) == []
    assert session.state is State.CONNECTING


def test_recovery_timeout_ends_the_session() -> None:
    session = subscribed_session(recovery_timeout=30.0, rng=FixedRandom(0.5))
    in_outage(session, 100.0)
    now = 100.0
    while now < 130.0:
        actions = session.handle(ConnectFailed("refused"), now)
        [now] = timers_set(actions, Timer.RECONNECT)
        if now >= 130.0:
            break
        session.handle(TimerFired(Timer.RECONNECT), now)
    actions = session.handle(TimerFired(Timer.RECOVERY), 130.0)
    assert NotifyShutdown() in actions
    assert actions.index(NotifyShutdown()) < len(actions) - 1
    finish = actions[-1]
    assert isinstance(finish, Finish)
    assert finish.status is Status.DRIVER_ABORTED
    assert finish.error is not None
    assert "recovery timeout" in finish.error
    assert "30" in finish.error
    assert CancelTimer(Timer.RECONNECT) in actions
    assert session.state is State.ABORTED
    assert session.handle(TimerFired(Timer.RECONNECT), now) == []


def test_without_checkpointing_a_lost_stream_shuts_down_at_once() -> None:
    """pymesos defect 1: MESOS_CHECKPOINT=0 behaved like 1 (reconnected)."""
    session = subscribed_session(checkpoint=False)
    actions = session.handle(StreamLost("end of stream"), 5.0)
    assert NotifyShutdown() in actions
    assert actions[-1] == Finish(Status.DRIVER_ABORTED, session.error)
    assert session.error is not None
    assert "checkpoint" in session.error
    assert of_type(actions, OpenConnection) == []
    assert of_type(actions, NotifyDisconnected) == []
    assert timers_set(actions, Timer.RECOVERY) == []
    assert session.state is State.ABORTED


@pytest.mark.parametrize("status_code", [500, 502, 307, 302])
def test_a_transient_refusal_is_retried_only_when_resubscribing(status_code: int) -> None:
    # The first SUBSCRIBE ends clearly (the agent is there and says no)...
    first = make_session()
    actions = feed(first, [Start(), Connected(), SubscribeRefused(status_code, "odd")])
    assert first.state is State.ABORTED
    assert of_type(actions, OpenConnection) == [OpenConnection()]
    # ...but after an outage, nothing may be dropped: retry until the deadline.
    session = subscribed_session()
    in_outage(session, 1.0)
    session.handle(Connected(), 1.0)
    actions = session.handle(SubscribeRefused(status_code, "odd"), 1.5)
    assert session.state in (State.CONNECTING, State.DISCONNECTED)
    assert of_type(actions, Finish) == []


def test_without_checkpointing_a_failed_reconnect_after_a_503_shuts_down() -> None:
    # A SUBSCRIBE refused with 503 is retried (the connection was fine), but
    # a connection that then fails is a disconnection: no retry without
    # checkpointing (PROTOCOL.md §4.3).
    session = make_session(checkpoint=False)
    actions = feed(session, [Start(), Connected(), SubscribeRefused(503, "recovering")])
    assert len(of_type(actions, OpenConnection)) == 2  # the first, then the retry
    assert session.state is State.CONNECTING
    actions = session.handle(ConnectFailed("connection refused"), 1.0)
    assert NotifyShutdown() in actions
    assert actions[-1] == Finish(Status.DRIVER_ABORTED, session.error)
    assert session.error is not None
    assert "checkpointing is off" in session.error
    assert session.state is State.ABORTED


# --- stop and abort -------------------------------------------------------------------


def test_stop_waits_for_the_drain_then_stops() -> None:
    session = subscribed_session()
    actions = session.handle(StopRequested(), 20.0)
    assert timers_set(actions, Timer.STOP_DRAIN) == [20.0 + DRAIN]
    assert of_type(actions, Finish) == []
    assert session.state is State.STOPPING
    assert session.handle(StopRequested(), 21.0) == []  # stop twice: no-op
    assert session.handle(StreamLost("eof"), 22.0) == []  # not an outage while stopping
    actions = session.handle(Drained(), 23.0)
    assert CloseConnection() in actions
    assert actions[-1] == Finish(Status.DRIVER_STOPPED, None)
    assert session.state is State.STOPPED


def test_stop_drain_timeout_stops() -> None:
    session = session_in(State.STOPPING)
    actions = session.handle(TimerFired(Timer.STOP_DRAIN), DRAIN)
    assert actions[-1] == Finish(Status.DRIVER_STOPPED, None)


def test_stop_during_backoff_cancels_the_reconnect() -> None:
    """pymesos defect 10: stop() waited for the backoff sleep to end."""
    session = session_in(State.DISCONNECTED)
    actions = session.handle(StopRequested(), 1.0)
    assert CancelTimer(Timer.RECONNECT) in actions
    assert CancelTimer(Timer.RECOVERY) in actions
    assert of_type(actions, OpenConnection) == []
    assert session.state is State.STOPPING
    assert session.handle(Drained(), 1.5)[-1] == Finish(Status.DRIVER_STOPPED, None)


def test_stop_before_start_stops() -> None:
    session = make_session()
    actions = session.handle(StopRequested(), 0.0)
    assert actions[-1] == Finish(Status.DRIVER_STOPPED, None)
    assert of_type(actions, OpenConnection) == []
    assert session.state is State.STOPPED


def test_stop_during_shutdown_still_ends_by_the_grace_deadline() -> None:
    # The shutdown callback calls driver.stop() (the usual executor does):
    # the agent destroys the container at the grace deadline anyway.
    session = subscribed_session()
    armed: dict[Timer, float] = {}
    finishes: list[Action] = []

    def apply(actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SetTimer):
                armed[action.timer] = action.at
            elif isinstance(action, CancelTimer):
                armed.pop(action.timer, None)
        finishes.extend(of_type(actions, Finish))

    apply(session.handle(ShutdownEvent(), 0.0))
    apply(session.handle(StopRequested(), 1.0))
    while armed and not finishes:
        timer, at = min(armed.items(), key=lambda item: item[1])
        if at > GRACE:
            break
        del armed[timer]
        apply(session.handle(TimerFired(timer), at))
    assert finishes == [Finish(Status.DRIVER_STOPPED, None)]


@pytest.mark.parametrize("state", [s for s in State if not s.final])
def test_abort_ends_the_session_once_from_anywhere(state: State) -> None:
    session = session_in(state)
    actions = session.handle(AbortRequested(), 50.0)
    assert of_type(actions, Finish) == [Finish(Status.DRIVER_ABORTED, None)]
    assert actions[-1] == Finish(Status.DRIVER_ABORTED, None)
    for timer in Timer:
        assert CancelTimer(timer) in actions
    assert of_type(actions, OpenConnection) == []
    assert session.state is State.ABORTED
    assert session.status is Status.DRIVER_ABORTED
    assert session.handle(AbortRequested(), 51.0) == []


@pytest.mark.parametrize(
    "path",
    [
        [Start(), AbortRequested()],
        [Start(), ConnectFailed("refused")],
        [Start(), Connected(), SubscribeRefused(401, "Unauthorized")],
        [Start(), Connected(), SubscribedEvent(), StopRequested(), Drained()],
        [Start(), Connected(), ShutdownEvent(), TimerFired(Timer.SHUTDOWN_GRACE)],
    ],
    ids=["aborted", "connect-failed", "refused", "stopped", "shutdown"],
)
def test_final_states_absorb_everything(path: list[Input]) -> None:
    session = make_session()
    feed(session, path)
    assert session.state.final
    final, status, error = session.state, session.status, session.error
    for now, event in enumerate(ALL_INPUTS * 2, start=100):
        assert session.handle(event, float(now)) == []
        assert (session.state, session.status, session.error) == (final, status, error)


# Timers that fire when they mean nothing (a late wake-up, or a timer the
# session armed earlier and no longer cares about) must be ignored.
STALE_TIMERS = [
    (State.CONNECTING, Timer.RECONNECT),
    (State.CONNECTING, Timer.RECOVERY),  # first connection: no outage
    (State.SUBSCRIBING, Timer.STOP_DRAIN),
    (State.SUBSCRIBED, Timer.RECOVERY),
    (State.DISCONNECTED, Timer.SHUTDOWN_GRACE),
    (State.SHUTTING_DOWN, Timer.RECONNECT),
    (State.SHUTTING_DOWN, Timer.RECOVERY),
    (State.STOPPING, Timer.RECOVERY),
    (State.STOPPING, Timer.RECONNECT),
]


@pytest.mark.parametrize(("state", "timer"), STALE_TIMERS)
def test_a_timer_that_means_nothing_is_ignored(state: State, timer: Timer) -> None:
    session = session_in(state)
    assert session.handle(TimerFired(timer), 1.0) == []
    assert session.state is state


# --- the state machine, fed at random ---------------------------------------------------

durations = st.one_of(
    st.sampled_from([0.0, 0.5, 2.0, 15.0]),
    st.floats(min_value=0.0, max_value=20.0, allow_nan=False, allow_infinity=False),
)
#: Inputs for the "anything" rule; those that usually end the session are rarer.
ROUGH: list[Input] = [
    ConnectFailed("connection refused"),
    TimerFired(Timer.RECOVERY),
    ShutdownEvent(),
    StopRequested(),
    AbortRequested(),
    SubscribeRefused(401, "Unauthorized"),
    SubscribeRefused(400, "Bad Request"),
]
NOISE: list[Input] = [e for e in ALL_INPUTS if e not in ROUGH] * 6 + ROUGH
short_steps = st.one_of(
    st.sampled_from([0.0, 0.001, 0.1, 1.0]),
    st.floats(min_value=0.0, max_value=5.0, allow_nan=False, allow_infinity=False),
)
#: Mostly short; now and then long enough to pass any deadline.
steps = st.one_of(
    short_steps,
    short_steps,
    short_steps,
    st.floats(min_value=0.0, max_value=2000.0, allow_nan=False, allow_infinity=False),
)


class SessionMachine(RuleBasedStateMachine):
    """Feeds the session and checks every step's actions.

    The machine keeps its own record (timers armed, outages seen, callbacks
    run) from the actions alone and compares it with what the session
    promises; it never reads the session's private fields.
    """

    @initialize(
        checkpoint=st.sampled_from([True, True, True, False]),
        recovery_timeout=st.one_of(
            st.sampled_from([900.0, 900.0, 60.0, 5.0, 0.0]),
            st.floats(min_value=0.0, max_value=1000.0, allow_nan=False, allow_infinity=False),
        ),
        backoff_max=durations,
        seed=st.integers(min_value=0, max_value=2**32),
        grace=durations,
        drain=durations,
        subscribe_first=st.sampled_from([False, True, True]),
    )
    def setup(
        self,
        checkpoint: bool,
        recovery_timeout: float,
        backoff_max: float,
        seed: int,
        grace: float,
        drain: float,
        subscribe_first: bool,
    ) -> None:
        self.rng = RecordingRandom(seed)
        self.checkpoint = checkpoint
        self.recovery_timeout = recovery_timeout
        self.backoff_max = backoff_max
        self.session = Session(
            checkpoint=checkpoint,
            recovery_timeout=recovery_timeout,
            backoff=Backoff(backoff_max, self.rng),
            shutdown_grace=grace,
            stop_drain_timeout=drain,
        )
        self.now = 0.0
        self.armed: dict[Timer, float] = {}
        self.finishes = 0
        self.in_outage = False
        self.outage_started = 0.0
        self.outages = 0
        self.outages_after_subscription = 0
        self.disconnected = 0
        self.registered = False
        self.shutdowns = 0
        self.connected_once = False
        self.retried_since_subscription = False
        if subscribe_first:  # most of the interesting behaviour comes after this
            for event in (Start(), Connected(), SubscribedEvent()):
                self.step(event)

    # -- feeding ---------------------------------------------------------------------

    def step(self, event: Input) -> list[Action]:
        session = self.session
        before = session.state
        was_in_outage = self.in_outage
        drawn = len(self.rng.values)
        actions = session.handle(event, self.now)  # never raises
        after = session.state
        if isinstance(event, Connected) and before is State.CONNECTING:
            self.connected_once = True

        # Every transition is in the table; unlisted inputs are ignored, and so
        # is a listed input that leaves the state as it is unless that is listed.
        targets = TRANSITIONS[before].get(event.kind)
        if targets is None:
            assert actions == []
            assert after is before
        elif after is not before:
            assert after in targets
        elif before not in targets:
            assert actions == []

        # Finish: exactly once, last, when (and only when) a final state is entered.
        if before.final:
            assert actions == []
        finishes = of_type(actions, Finish)
        if after.final and not before.final:
            assert len(finishes) == 1
            assert actions[-1] is finishes[0]
            finish = finishes[0]
            assert isinstance(finish, Finish)
            assert finish.status is session.status
            assert finish.error == session.error
            expected = State.ABORTED if finish.status is Status.DRIVER_ABORTED else State.STOPPED
            assert after is expected
            self.finishes += 1
        else:
            assert finishes == []

        # Timers, as the shell keeps them.
        if isinstance(event, TimerFired):
            self.armed.pop(event.timer, None)
        for action in actions:
            if isinstance(action, SetTimer):
                self.armed[action.timer] = action.at
                assert action.at >= self.now
            elif isinstance(action, CancelTimer):
                self.armed.pop(action.timer, None)
        if after.final:
            assert self.armed == {}

        # Connections are opened only when the session is going to use them.
        opens = of_type(actions, OpenConnection)
        assert len(opens) <= 1
        if opens:
            assert before not in NO_CONNECT
            assert after is State.CONNECTING
            assert actions[-1] is opens[0]

        # Reconnect delays: backoff_max * uniform(0, 1), one random draw per delay.
        new_values = self.rng.values[drawn:]
        assert len(new_values) <= 1
        reconnects = timers_set(actions, Timer.RECONNECT)
        assert len(reconnects) <= 1
        if reconnects:
            assert new_values
            assert reconnects[0] == self.now + self.backoff_max * new_values[0]
            assert 0.0 <= self.backoff_max * new_values[0] <= self.backoff_max
            assert after is State.DISCONNECTED
        # A retry (after a failure, not a RECONNECT timer) is immediate the first
        # time after a subscription (or ever), and waits a random delay later on.
        retried = reconnects or (opens and not isinstance(event, (Start, TimerFired)))
        if retried:
            if self.retried_since_subscription:
                assert len(new_values) == 1
                if opens:
                    assert self.backoff_max * new_values[0] == 0.0
            else:
                assert new_values == []
                assert opens
            self.retried_since_subscription = True
        else:
            assert new_values == []

        # Outages: one deadline each, set when it starts and never moved.
        recoveries = timers_set(actions, Timer.RECOVERY)
        assert len(recoveries) <= 1
        if recoveries:
            assert not was_in_outage
            assert recoveries[0] == self.now + self.recovery_timeout
            self.in_outage = True
            self.outage_started = self.now
            self.outages += 1
            if self.registered:
                self.outages_after_subscription += 1
        if CancelTimer(Timer.RECOVERY) in actions:
            self.in_outage = False
        if self.in_outage:
            assert self.armed[Timer.RECOVERY] == self.outage_started + self.recovery_timeout

        notified = actions.count(NotifyDisconnected())
        assert notified <= 1
        if notified:
            assert recoveries  # only when an outage begins ...
            assert self.registered  # ... after a subscription
            assert self.checkpoint
        self.disconnected += notified

        # Callbacks.
        if NotifyRegistered() in actions or NotifyReregistered() in actions:
            self.retried_since_subscription = False
        if NotifyRegistered() in actions:
            assert not self.registered
            self.registered = True
        if NotifyReregistered() in actions:
            assert self.registered
            assert was_in_outage
            assert not self.in_outage
        self.shutdowns += actions.count(NotifyShutdown())
        assert self.shutdowns <= 1

        # The recovery deadline, once passed, ends the session.
        if (
            isinstance(event, TimerFired)
            and event.timer is Timer.RECOVERY
            and was_in_outage
            and before in (State.CONNECTING, State.SUBSCRIBING, State.DISCONNECTED)
        ):
            assert after is State.ABORTED
            assert NotifyShutdown() in actions
            assert session.error is not None
            assert "recovery timeout" in session.error
        return actions

    @rule(event=st.sampled_from(NOISE), dt=steps)
    def anything(self, event: Input, dt: float) -> None:
        """Any input at all, including ones that make no sense now."""
        self.now += dt
        self.step(event)

    @precondition(lambda self: not self.session.state.final)
    @rule(data=st.data(), dt=short_steps)
    def progress(self, data: st.DataObject, dt: float) -> None:
        """What a real shell would report next in the current state (weighted).

        A timer due before the report fires first, as it would in the shell.
        """
        plausible: dict[State, list[Input | None]] = {
            State.IDLE: [Start()],
            # The first connection succeeds here; its failure has example tests.
            State.CONNECTING: [Connected(), Connected(), ConnectFailed("refused"), None]
            if self.connected_once
            else [Connected()],
            State.SUBSCRIBING: [
                SubscribedEvent(),
                SubscribedEvent(),
                SubscribedEvent(),
                SubscribeRefused(503, "Agent has not finished recovery"),
                SubscribeRefused(404, "Not Found"),
                StreamLost("eof"),
            ],
            State.SUBSCRIBED: [StreamLost("eof")] * 6 + [ShutdownEvent(), StopRequested()],
            State.DISCONNECTED: [None],  # None: the next timer fires
            State.SHUTTING_DOWN: [Drained(), None, StopRequested()],
            State.STOPPING: [Drained(), None, StreamLost("eof")],
        }
        event = data.draw(st.sampled_from(plausible[self.session.state]), label="event")
        if self.armed and (event is None or min(self.armed.values()) <= self.now + dt):
            self.fire_next_timer()
        elif event is not None:
            self.now += dt
            self.step(event)

    @precondition(lambda self: self.armed and self.session.state in WAITING)
    @rule()
    def fire_next_timer(self) -> None:
        """Nothing else happens: the earliest armed timer fires at its time."""
        timer, at = min(self.armed.items(), key=lambda item: item[1])
        self.now = max(self.now, at)
        self.step(TimerFired(timer))

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def finished_exactly_once_when_final(self) -> None:
        assert self.finishes == (1 if self.session.state.final else 0)

    @invariant()
    def one_disconnected_per_outage_after_subscription(self) -> None:
        assert self.disconnected == self.outages_after_subscription
        assert self.session.outages == self.outages

    @invariant()
    def outages_happen_only_while_reconnecting(self) -> None:
        if self.in_outage:
            assert self.session.state in (
                State.CONNECTING,
                State.SUBSCRIBING,
                State.DISCONNECTED,
            )
            assert Timer.RECOVERY in self.armed
            assert self.checkpoint or not self.registered

    @invariant()
    def never_stuck_without_a_timer(self) -> None:
        state = self.session.state
        if state is State.DISCONNECTED:
            assert Timer.RECONNECT in self.armed
        if state is State.SHUTTING_DOWN:
            assert Timer.SHUTDOWN_GRACE in self.armed
        if state is State.STOPPING:
            assert Timer.STOP_DRAIN in self.armed


TestSessionMachine = SessionMachine.TestCase
