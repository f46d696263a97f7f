"""Tests of the Session state machine (PROTOCOL.md §3.8, §4.3; PEERS.md §2.1).

First example tests that drive each transition directly (h11 ``test_state.py``
style), then a Hypothesis state machine that feeds arbitrary inputs, the
inputs a real shell would produce, and the timers the session armed, at
increasing times, and checks the session's promises after every step.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from trio_mesos._backoff import Backoff
from trio_mesos._session import (
    END_TIMERS,
    TRANSITIONS,
    AbortRequested,
    Action,
    CancelTimer,
    CloseConnection,
    Connected,
    ConnectFailed,
    Drained,
    EnableCalls,
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
WAITING = (State.DISCONNECTED, State.SHUTTING_DOWN, State.STOPPING, State.LOST)
#: States in which the session must never open a connection.
NO_CONNECT = (State.SHUTTING_DOWN, State.STOPPING, State.LOST, State.STOPPED, State.ABORTED)
#: States in which the session tries to (re)connect.
RECONNECTING = (State.CONNECTING, State.SUBSCRIBING, State.DISCONNECTED)
#: States that wait for a drain, and may end with one.
DRAINING = (State.STOPPING, State.SHUTTING_DOWN, State.LOST)


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
    grace: float = GRACE,
) -> Session:
    return Session(
        checkpoint=checkpoint,
        recovery_timeout=recovery_timeout,
        backoff=Backoff(backoff_max, rng if rng is not None else random.Random(0)),
        shutdown_grace=grace,
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


def error_of(actions: Sequence[Action]) -> str:
    """The message of the one NotifyError among ``actions``."""
    [error] = of_type(actions, NotifyError)
    assert isinstance(error, NotifyError)
    return error.message


def entering_lost(message: str, now: float, *, grace: float = GRACE) -> list[Action]:
    """What the session asks for when it gives up on the agent at ``now``
    (after a CloseConnection when a connection may be open)."""
    return [
        CancelTimer(Timer.RECONNECT),
        CancelTimer(Timer.RECOVERY),
        NotifyError(message),
        NotifyShutdown(),
        SetTimer(Timer.SHUTDOWN_GRACE, now + grace),
    ]


def finishing(
    status: Status, error: str | None, *, close: bool = True, status_code: int | None = None
) -> list[Action]:
    """What the session asks for when it ends: every timer off, the connection closed."""
    return [
        *(CancelTimer(timer) for timer in Timer),
        *([CloseConnection()] if close else []),
        Finish(status, error, status_code),
    ]


def subscribe_retried(code: int, *, resubscribe: bool) -> bool:
    """When SUBSCRIBE is tried again (PROTOCOL.md §4.5; test_answers.py has the table)."""
    not_an_agents_answer = code >= 500 or code < 200 or 300 <= code < 400
    return code in (503, 404) or (resubscribe and not_an_agents_answer)


def drained_spec(state: State, drained: Drained) -> bool:
    """When the end has come, as the session's docstring states it."""
    # Without the event stream no ACK can come; an update that can still be
    # accepted is worth waiting for all the same.
    acks_done = drained.unacknowledged == 0 or (not drained.stream_up and drained.sending == 0)
    callbacks_done = drained.shutdown_done and not drained.busy
    return {
        State.STOPPING: acks_done,
        State.SHUTTING_DOWN: acks_done and callbacks_done,
        State.LOST: callbacks_done,  # nothing can be acknowledged any more
    }[state]


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
    # A re-SUBSCRIBE refused for good.
    State.LOST: [
        Start(),
        Connected(),
        SubscribedEvent(),
        StreamLost("eof"),
        Connected(),
        SubscribeRefused(401, "Unauthorized"),
    ],
}

ALL_INPUTS: list[Input] = [
    Start(),
    Connected(),
    ConnectFailed("connection refused"),
    SubscribeRefused(503, "Agent has not finished recovery"),
    SubscribeRefused(404, "Not Found"),
    SubscribeRefused(500, "Internal Server Error"),
    SubscribeRefused(401, "Unauthorized"),
    SubscribedEvent(),
    SubscribedEvent(shutdown_grace=1.0),
    ShutdownEvent(),
    StreamLost("end of stream"),
    *(TimerFired(timer) for timer in Timer),
    StopRequested(),
    AbortRequested(),
    Drained(),
    Drained(unacknowledged=2),
    Drained(unacknowledged=2, stream_up=False),
    Drained(unacknowledged=2, sending=1, stream_up=False),
    Drained(shutdown_done=False),
    Drained(busy=True),
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
        if state is State.LOST:
            # Nothing can be acknowledged any more: stop() ends at once.
            assert row[InputKind.STOP] == {State.ABORTED}
        else:
            assert row.get(InputKind.STOP, frozenset()) <= {State.STOPPING, State.STOPPED}
    # Every state but IDLE can be entered.
    entered = {target for row in TRANSITIONS.values() for ts in row.values() for target in ts}
    assert entered == set(State) - {State.IDLE}
    assert {s for s in State if s.final} == {State.STOPPED, State.ABORTED}


def test_lost_is_entered_only_while_the_agent_is_wanted_and_left_only_by_aborting() -> None:
    entering = {
        state for state, row in TRANSITIONS.items() for ts in row.values() if State.LOST in ts
    }
    assert entering == {*RECONNECTING, State.SUBSCRIBED}
    assert TRANSITIONS[State.LOST] == {
        InputKind.TIMER: {State.ABORTED},
        InputKind.DRAINED: {State.ABORTED},
        InputKind.STOP: {State.ABORTED},
        InputKind.ABORT: {State.ABORTED},
    }


def test_the_end_timers_are_the_bounds() -> None:
    assert frozenset({Timer.SHUTDOWN_GRACE, Timer.STOP_DRAIN}) == END_TIMERS


#: Inputs to explore the session with (each listed kind at least once).
EXPLORE: list[Input] = [
    *(e for e in ALL_INPUTS if not isinstance(e, TimerFired)),
    SubscribeRefused(302, "Found"),
    Drained(unacknowledged=1, busy=True),
]


def armed_after(armed: frozenset[Timer], event: Input, actions: list[Action]) -> frozenset[Timer]:
    """The timers armed once ``event`` was handled with ``actions`` (as the shell keeps them)."""
    timers = set(armed) - ({event.timer} if isinstance(event, TimerFired) else set())
    for action in actions:
        if isinstance(action, SetTimer):
            timers.add(action.timer)
        elif isinstance(action, CancelTimer):
            timers.discard(action.timer)
    return frozenset(timers)


def explore(checkpoint: bool, backoff_max: float) -> set[tuple[State, InputKind, State]]:
    """Every ``(state, input, state)`` one configuration of the session takes,
    found by a breadth-first search over input sequences (timers fire only
    when armed).

    Sessions are told apart by what decides their next transitions: the
    state, whether the agent ever answered, whether it ever subscribed, the
    timers armed and whether the backoff's immediate first attempt is used up.
    """

    def replay(path: tuple[Input, ...]) -> Session:
        session = make_session(checkpoint=checkpoint, backoff_max=backoff_max, rng=FixedRandom(0.5))
        feed(session, path, 1.0)
        return session

    taken: set[tuple[State, InputKind, State]] = set()
    queue: deque[tuple[tuple[Input, ...], frozenset[Timer]]] = deque([((), frozenset())])
    seen: set[tuple[Any, ...]] = set()
    while queue:
        path, armed = queue.popleft()
        session = replay(path)
        key = (
            session.state,
            session.ever_connected,
            session.ever_subscribed,
            armed,
            min(session.backoff.attempts, 1),
        )
        if key in seen:
            continue
        seen.add(key)
        for event in [*EXPLORE, *(TimerFired(timer) for timer in armed)]:
            after = replay(path)
            actions = after.handle(event, 1.0)
            targets = TRANSITIONS[session.state].get(event.kind, frozenset())
            if after.state is not session.state or (actions and session.state in targets):
                taken.add((session.state, event.kind, after.state))
            queue.append(((*path, event), armed_after(armed, event, actions)))
    return taken


def reachable_transitions() -> set[tuple[State, InputKind, State]]:
    """What the session does in every configuration that changes a decision: with
    and without checkpointing, with a zero and a non-zero backoff."""
    return {
        transition
        for checkpoint in (True, False)
        for backoff_max in (0.0, BACKOFF_MAX)
        for transition in explore(checkpoint, backoff_max)
    }


def table_transitions() -> set[tuple[State, InputKind, State]]:
    return {
        (state, kind, target)
        for state, row in TRANSITIONS.items()
        for kind, targets in row.items()
        for target in targets
    }


def test_every_transition_the_session_takes_is_in_the_table() -> None:
    taken = reachable_transitions()
    assert taken <= table_transitions()
    # the search does reach the new state's ways in and out
    assert {(s, k) for s, k, t in taken if t is State.LOST} == {
        (State.CONNECTING, InputKind.CONNECT_FAILED),  # without checkpointing, after a 503
        (State.SUBSCRIBING, InputKind.STREAM_LOST),  # without checkpointing, after a 503
        (State.SUBSCRIBING, InputKind.SUBSCRIBE_REFUSED),  # a re-SUBSCRIBE refused for good
        (State.SUBSCRIBED, InputKind.STREAM_LOST),  # without checkpointing
        *((s, InputKind.TIMER) for s in RECONNECTING),  # the recovery deadline
    }


def test_every_transition_in_the_table_can_happen() -> None:
    # The documentation draws the table: no arrow there that never happens.
    assert table_transitions() - reachable_transitions() == set()


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
    # An open connection is not an answer: a TLS refusal or a close may follow.
    assert not session.ever_connected


@pytest.mark.parametrize(
    "answer",
    [SubscribeRefused(503, "recovering"), SubscribedEvent(), ShutdownEvent()],
    ids=["refused-503", "subscribed", "shutdown"],
)
def test_any_answer_of_the_agent_counts_as_connected(answer: Input) -> None:
    session = session_in(State.SUBSCRIBING)
    session.handle(answer, 1.0)
    assert session.ever_connected


@pytest.mark.parametrize("checkpoint", [True, False])
@pytest.mark.parametrize(
    "path",
    [
        [Start(), ConnectFailed("connection refused")],
        [Start(), Connected(), StreamLost("connection refused")],
    ],
    ids=["connect-failed", "closed-before-the-answer"],
)
def test_first_connection_failure_ends_at_once(checkpoint: bool, path: list[Input]) -> None:
    # The C++ library shuts down when the very first connection fails, even
    # with checkpointing (PROTOCOL.md §4.3); the executor's block never ran,
    # so no callback runs either.
    session = make_session(checkpoint=checkpoint)
    feed(session, path[:-1])
    actions = session.handle(path[-1], 1.0)
    assert session.error is not None
    assert "cannot connect to the agent" in session.error
    assert "connection refused" in session.error
    assert actions == finishing(Status.DRIVER_ABORTED, session.error)
    assert session.state is State.ABORTED
    assert session.status is Status.DRIVER_ABORTED
    assert session.outages == 0


def test_after_a_503_a_failed_connection_follows_the_recovery_rules() -> None:
    # The agent answered (it is recovering): from then on a failure is an outage.
    session = make_session(rng=FixedRandom(0.5))
    actions = feed(session, [Start(), Connected(), SubscribeRefused(503, "recovering")])
    assert timers_set(actions, Timer.RECOVERY) == [RECOVERY_TIMEOUT]
    assert session.state is State.CONNECTING
    actions = session.handle(ConnectFailed("connection refused"), 1.0)
    assert actions == [SetTimer(Timer.RECONNECT, 1.0 + 0.5 * BACKOFF_MAX)]
    assert session.state is State.DISCONNECTED
    session.handle(TimerFired(Timer.RECONNECT), 2.0)
    session.handle(Connected(), 2.0)
    actions = session.handle(StreamLost("reset"), 3.0)
    assert actions == [CloseConnection(), SetTimer(Timer.RECONNECT, 3.0 + 0.5 * BACKOFF_MAX)]
    assert session.state is State.DISCONNECTED
    assert session.outages == 1  # one outage, one deadline, no `disconnected`
    assert session.status is None


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


#: Answers that end a first SUBSCRIBE: refusals, and what no agent answers.
FIRST_REFUSALS = [400, 401, 403, 405, 415, 202, 500, 502, 302, 307, 101]


@pytest.mark.parametrize("status_code", FIRST_REFUSALS)
def test_a_first_subscribe_refused_for_good_ends_at_once(status_code: int) -> None:
    # The executor's block never ran: no `error` callback, the error comes out
    # of the driver's entry.
    reason = f"Received unexpected '{status_code} Whatever' () for SUBSCRIBE"
    session = session_in(State.SUBSCRIBING)
    actions = session.handle(SubscribeRefused(status_code, reason), 1.0)
    assert session.error is not None
    assert reason in session.error
    assert actions == finishing(Status.DRIVER_ABORTED, session.error, status_code=status_code)
    assert session.state is State.ABORTED
    assert session.status is Status.DRIVER_ABORTED


@pytest.mark.parametrize("status_code", [401, 500])
def test_a_first_subscribe_refused_for_good_after_503s_ends_at_once(status_code: int) -> None:
    # An agent that was recovering, then says no: still never subscribed.
    session = make_session()
    feed(session, [Start(), Connected(), SubscribeRefused(503, "recovering"), Connected()])
    actions = session.handle(SubscribeRefused(status_code, "no"), 2.0)
    assert session.error is not None
    assert actions == finishing(Status.DRIVER_ABORTED, session.error, status_code=status_code)


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


@pytest.mark.parametrize("status_code", [500, 502, 307, 302])
def test_a_transient_refusal_is_retried_only_when_resubscribing(status_code: int) -> None:
    # The first SUBSCRIBE ends clearly (the agent is there and says no)...
    first = make_session()
    actions = feed(first, [Start(), Connected(), SubscribeRefused(status_code, "odd")])
    assert first.state is State.ABORTED
    assert of_type(actions, OpenConnection) == [OpenConnection()]
    assert actions[-1] == Finish(Status.DRIVER_ABORTED, first.error, status_code)
    # ...but after an outage, nothing may be dropped: retry until the deadline.
    session = subscribed_session()
    in_outage(session, 1.0)
    session.handle(Connected(), 1.0)
    actions = session.handle(SubscribeRefused(status_code, "odd"), 1.5)
    assert session.state in (State.CONNECTING, State.DISCONNECTED)
    assert of_type(actions, Finish) == []
    assert of_type(actions, NotifyError) == []


# --- SHUTDOWN -------------------------------------------------------------------------


def test_shutdown_as_the_first_event() -> None:
    session = session_in(State.SUBSCRIBING)
    actions = session.handle(ShutdownEvent(), 3.0)
    # No SUBSCRIBED will come: the tasks' last updates go out as calls anyway.
    assert actions == [
        EnableCalls(),
        CancelTimer(Timer.RECONNECT),
        NotifyShutdown(),
        SetTimer(Timer.SHUTDOWN_GRACE, 3.0 + GRACE),
    ]
    assert session.state is State.SHUTTING_DOWN
    # The agent closes the stream after it: not an outage.
    assert session.handle(StreamLost("eof"), 3.5) == []
    actions = session.handle(TimerFired(Timer.SHUTDOWN_GRACE), 3.0 + GRACE)
    assert actions == finishing(Status.DRIVER_STOPPED, None)
    assert session.state is State.STOPPED


def test_shutdown_as_the_first_event_of_a_resubscribe_ends_the_outage() -> None:
    session = subscribed_session()
    in_outage(session, 10.0)
    session.handle(Connected(), 10.5)
    actions = session.handle(ShutdownEvent(), 11.0)
    assert actions == [
        CancelTimer(Timer.RECOVERY),
        EnableCalls(),
        CancelTimer(Timer.RECONNECT),
        NotifyShutdown(),
        SetTimer(Timer.SHUTDOWN_GRACE, 11.0 + GRACE),
    ]
    assert session.state is State.SHUTTING_DOWN


def test_shutdown_after_subscription_ends_at_drained_or_grace() -> None:
    session = subscribed_session()
    actions = session.handle(ShutdownEvent(), 7.0)
    # Calls are live already: no EnableCalls.
    assert actions == [
        CancelTimer(Timer.RECONNECT),
        NotifyShutdown(),
        SetTimer(Timer.SHUTDOWN_GRACE, 7.0 + GRACE),
    ]
    # The shutdown callback still runs: not drained.
    assert session.handle(Drained(shutdown_done=False), 7.5) == []
    actions = session.handle(Drained(), 8.0)
    assert actions == finishing(Status.DRIVER_STOPPED, None)
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


@pytest.mark.parametrize(
    ("grace", "expected"),
    [(None, GRACE), (2.0, 2.0), (GRACE, GRACE), (10.0, GRACE), (0.0, 0.0), (-0.5, 0.0)],
)
def test_subscribed_may_shorten_the_shutdown_grace(grace: float | None, expected: float) -> None:
    # ExecutorInfo.shutdown_grace_period (minus the driver's margin) can only
    # shorten the environment's grace, and never below zero.
    session = make_session()
    feed(session, [Start(), Connected(), SubscribedEvent(shutdown_grace=grace)])
    assert session.shutdown_grace == expected
    actions = session.handle(ShutdownEvent(), 7.0)
    assert timers_set(actions, Timer.SHUTDOWN_GRACE) == [7.0 + expected]


def test_the_lost_grace_is_the_shortened_one() -> None:
    session = make_session(checkpoint=False)
    feed(session, [Start(), Connected(), SubscribedEvent(shutdown_grace=2.0)])
    actions = session.handle(StreamLost("eof"), 5.0)
    assert timers_set(actions, Timer.SHUTDOWN_GRACE) == [7.0]


@given(
    start=st.floats(min_value=0.0, max_value=1e4, allow_nan=False),
    graces=st.lists(
        st.one_of(st.none(), st.floats(min_value=-10.0, max_value=1e4, allow_nan=False)),
        min_size=1,
        max_size=5,
    ),
)
def test_the_shutdown_grace_never_grows(start: float, graces: list[float | None]) -> None:
    session = make_session(grace=start)
    feed(session, [Start(), Connected()])
    seen = [start]
    for now, grace in enumerate(graces, start=1):
        session.handle(SubscribedEvent(shutdown_grace=grace), float(now))
        assert session.state is State.SUBSCRIBED
        assert session.shutdown_grace <= seen[-1]
        seen.append(session.shutdown_grace)
        feed(session, [StreamLost("eof"), Connected()], float(now))  # re-subscribe
    given_graces = [g for g in graces if g is not None]
    assert session.shutdown_grace == max(0.0, min([start, *given_graces]))


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


# --- giving up on the agent: the state LOST -------------------------------------------


def in_outage_at_the_deadline(state: State) -> Session:
    """A session whose 30 s outage began at 100, in ``state`` (after one failed attempt)."""
    session = subscribed_session(recovery_timeout=30.0, rng=FixedRandom(0.5))
    in_outage(session, 100.0)  # an immediate attempt ...
    session.handle(ConnectFailed("refused"), 101.0)  # ... then a wait
    if state is not State.DISCONNECTED:
        session.handle(TimerFired(Timer.RECONNECT), 102.0)
    if state is State.SUBSCRIBING:
        session.handle(Connected(), 102.5)
    assert session.state is state
    return session


@pytest.mark.parametrize("state", RECONNECTING)
def test_the_recovery_deadline_gives_up_on_the_agent(state: State) -> None:
    session = in_outage_at_the_deadline(state)
    deadline = 130.0
    actions = session.handle(TimerFired(Timer.RECOVERY), deadline)
    message = error_of(actions)
    assert "recovery timeout" in message
    assert "30 s" in message
    assert actions == [CloseConnection(), *entering_lost(message, deadline)]
    assert session.state is State.LOST
    assert session.status is None  # not over yet: `shutdown` and `error` get the grace
    assert session.lost_error == message
    # A late reconnect timer means nothing now.
    assert session.handle(TimerFired(Timer.RECONNECT), deadline + 0.1) == []
    assert session.handle(Connected(), deadline + 0.1) == []
    assert session.state is State.LOST


def test_without_checkpointing_a_lost_stream_gives_up_at_once() -> None:
    """pymesos defect 1: MESOS_CHECKPOINT=0 behaved like 1 (reconnected)."""
    session = subscribed_session(checkpoint=False)
    actions = session.handle(StreamLost("end of stream"), 5.0)
    message = error_of(actions)
    assert "checkpointing is off" in message
    assert "end of stream" in message
    # No `disconnected`, no reconnection, no recovery deadline.
    assert actions == [CloseConnection(), *entering_lost(message, 5.0)]
    assert session.state is State.LOST
    assert session.outages == 0
    assert session.attempts == 1


def test_without_checkpointing_a_failed_reconnect_after_a_503_gives_up() -> None:
    # A SUBSCRIBE refused with 503 is retried (the connection was fine), but
    # a connection that then fails is a disconnection: no retry without
    # checkpointing (PROTOCOL.md §4.3).
    session = make_session(checkpoint=False)
    actions = feed(session, [Start(), Connected(), SubscribeRefused(503, "recovering")])
    assert len(of_type(actions, OpenConnection)) == 2  # the first, then the retry
    assert session.state is State.CONNECTING
    actions = session.handle(ConnectFailed("connection refused"), 1.0)
    message = error_of(actions)
    assert "checkpointing is off" in message
    assert "connection refused" in message
    # No connection is open: the refused attempt was the only one.
    assert actions == entering_lost(message, 1.0)
    assert session.state is State.LOST


def test_without_checkpointing_a_stream_lost_after_a_503_gives_up() -> None:
    session = make_session(checkpoint=False)
    feed(session, [Start(), Connected(), SubscribeRefused(503, "recovering"), Connected()])
    actions = session.handle(StreamLost("reset"), 1.0)
    message = error_of(actions)
    assert "checkpointing is off" in message
    assert actions == [CloseConnection(), *entering_lost(message, 1.0)]
    assert session.state is State.LOST


@pytest.mark.parametrize("status_code", [400, 401, 403, 405, 415, 202])
def test_a_resubscribe_refused_for_good_gives_up_on_the_agent(status_code: int) -> None:
    reason = f"Received unexpected '{status_code} Whatever' () for SUBSCRIBE"
    session = subscribed_session()
    in_outage(session, 10.0)
    session.handle(Connected(), 10.5)
    actions = session.handle(SubscribeRefused(status_code, reason), 11.0)
    message = error_of(actions)
    assert reason in message
    assert actions == [CloseConnection(), *entering_lost(message, 11.0)]
    assert session.state is State.LOST


def lost_session(now: float = 5.0) -> tuple[Session, str]:
    """A subscribed session without checkpointing whose stream was lost at ``now``."""
    session = subscribed_session(checkpoint=False)
    message = error_of(session.handle(StreamLost("eof"), now))
    assert session.state is State.LOST
    return session, message


@pytest.mark.parametrize(
    "end",
    [
        TimerFired(Timer.SHUTDOWN_GRACE),
        TimerFired(Timer.STOP_DRAIN),
        Drained(),
        Drained(unacknowledged=3),  # nothing can be acknowledged any more
        Drained(unacknowledged=3, stream_up=False),
        Drained(unacknowledged=3, sending=3, stream_up=False),
        StopRequested(),  # at once: there is nothing to drain
        AbortRequested(),
    ],
    ids=repr,
)
def test_lost_ends_aborted_with_the_reason(end: Input) -> None:
    session, message = lost_session()
    actions = session.handle(end, 5.0 + GRACE)
    assert actions == finishing(Status.DRIVER_ABORTED, message)
    assert session.state is State.ABORTED
    assert session.status is Status.DRIVER_ABORTED
    assert session.error == message


@pytest.mark.parametrize(
    "event",
    [
        Drained(shutdown_done=False),
        Drained(busy=True),
        Drained(unacknowledged=0, shutdown_done=False, busy=True),
        TimerFired(Timer.RECONNECT),
        TimerFired(Timer.RECOVERY),
        Start(),
        Connected(),
        ConnectFailed("refused"),
        StreamLost("eof"),
        SubscribedEvent(),
        ShutdownEvent(),
        SubscribeRefused(503, "recovering"),
    ],
    ids=repr,
)
def test_lost_waits_for_its_callbacks_and_ignores_the_agent(event: Input) -> None:
    session, _ = lost_session()
    assert session.handle(event, 6.0) == []
    assert session.state is State.LOST
    assert session.status is None


# --- drained --------------------------------------------------------------------------

#: (state, Drained, drained?)
DRAINED_ROWS = [
    (State.STOPPING, Drained(), True),
    (State.STOPPING, Drained(unacknowledged=1), False),
    (State.STOPPING, Drained(unacknowledged=1, stream_up=False), True),
    # an update not accepted yet may still be: calls can go out without the stream
    (State.STOPPING, Drained(unacknowledged=2, sending=1, stream_up=False), False),
    (State.STOPPING, Drained(unacknowledged=2, sending=1), False),
    (State.STOPPING, Drained(shutdown_done=False, busy=True), True),  # callbacks go on
    (State.SHUTTING_DOWN, Drained(), True),
    (State.SHUTTING_DOWN, Drained(unacknowledged=1), False),
    (State.SHUTTING_DOWN, Drained(unacknowledged=1, stream_up=False), True),
    (State.SHUTTING_DOWN, Drained(unacknowledged=1, sending=1, stream_up=False), False),
    (State.SHUTTING_DOWN, Drained(shutdown_done=False), False),
    (State.SHUTTING_DOWN, Drained(busy=True), False),
    (State.LOST, Drained(), True),
    (State.LOST, Drained(unacknowledged=1), True),
    (State.LOST, Drained(unacknowledged=1, sending=1, stream_up=False), True),
    (State.LOST, Drained(shutdown_done=False), False),
    (State.LOST, Drained(busy=True), False),
]


@pytest.mark.parametrize(("state", "drained", "expected"), DRAINED_ROWS)
def test_drained_examples(state: State, drained: Drained, expected: bool) -> None:
    assert drained.drained(state) is expected


drained_inputs = st.integers(min_value=0, max_value=5).flatmap(
    lambda unacknowledged: st.builds(
        Drained,
        unacknowledged=st.just(unacknowledged),
        sending=st.integers(min_value=0, max_value=unacknowledged),  # "of those"
        stream_up=st.booleans(),
        shutdown_done=st.booleans(),
        busy=st.booleans(),
    )
)


@given(state=st.sampled_from(DRAINING), drained=drained_inputs)
def test_drained_decides_the_end_per_state(state: State, drained: Drained) -> None:
    expected = drained_spec(state, drained)
    assert drained.drained(state) is expected
    session = make_session()
    entering = feed(session, PATHS[state])
    lost_error = error_of(entering) if state is State.LOST else None
    actions = session.handle(drained, 20.0)
    if not expected:
        assert actions == []
        assert session.state is state
    elif state is State.LOST:
        assert actions == finishing(Status.DRIVER_ABORTED, lost_error)
    else:
        assert actions == finishing(Status.DRIVER_STOPPED, None)


@given(
    state=st.sampled_from([s for s in State if s not in DRAINING and not s.final]),
    drained=drained_inputs,
)
def test_drained_means_nothing_before_an_end_is_decided(state: State, drained: Drained) -> None:
    session = session_in(state)
    assert session.handle(drained, 20.0) == []
    assert session.state is state


# --- stop and abort -------------------------------------------------------------------


def test_stop_waits_for_the_drain_then_stops() -> None:
    session = subscribed_session()
    actions = session.handle(StopRequested(), 20.0)
    assert timers_set(actions, Timer.STOP_DRAIN) == [20.0 + DRAIN]
    assert of_type(actions, Finish) == []
    assert session.state is State.STOPPING
    assert session.handle(StopRequested(), 21.0) == []  # stop twice: no-op
    assert session.handle(StreamLost("eof"), 22.0) == []  # not an outage while stopping
    assert session.handle(Drained(unacknowledged=1), 22.5) == []  # an ACK is awaited
    actions = session.handle(Drained(), 23.0)
    assert actions == finishing(Status.DRIVER_STOPPED, None)
    assert session.state is State.STOPPED


def test_stop_drain_timeout_stops() -> None:
    session = session_in(State.STOPPING)
    actions = session.handle(TimerFired(Timer.STOP_DRAIN), DRAIN)
    assert actions == finishing(Status.DRIVER_STOPPED, None)


def test_stop_during_backoff_cancels_the_reconnect() -> None:
    """pymesos defect 10: stop() waited for the backoff sleep to end."""
    session = session_in(State.DISCONNECTED)
    actions = session.handle(StopRequested(), 1.0)
    assert CancelTimer(Timer.RECONNECT) in actions
    assert CancelTimer(Timer.RECOVERY) in actions
    assert of_type(actions, OpenConnection) == []
    assert session.state is State.STOPPING
    assert session.handle(Drained(), 1.5) == finishing(Status.DRIVER_STOPPED, None)


def test_stop_before_start_stops() -> None:
    session = make_session()
    actions = session.handle(StopRequested(), 0.0)
    assert actions == finishing(Status.DRIVER_STOPPED, None, close=False)
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


@pytest.mark.parametrize(
    ("drain", "grace", "ends_by"), [(10.0, 5.0, "grace"), (3.0, 50.0, "drain")]
)
def test_shutdown_during_stop_arms_the_grace_and_the_earliest_bound_wins(
    drain: float, grace: float, ends_by: str
) -> None:
    session = make_session(grace=grace)
    session.stop_drain_timeout = drain
    feed(session, [Start(), Connected(), SubscribedEvent()])
    session.handle(StopRequested(), 0.0)
    actions = session.handle(ShutdownEvent(), 1.0)
    # The `shutdown` callback runs, and the grace bounds the end too.
    assert actions == [
        CancelTimer(Timer.RECONNECT),
        NotifyShutdown(),
        SetTimer(Timer.SHUTDOWN_GRACE, 1.0 + grace),
    ]
    assert session.state is State.SHUTTING_DOWN
    # From now on the end waits for the `shutdown` callback as well.
    assert session.handle(Drained(shutdown_done=False), 1.5) == []
    first = Timer.SHUTDOWN_GRACE if ends_by == "grace" else Timer.STOP_DRAIN
    actions = session.handle(TimerFired(first), min(drain, 1.0 + grace))
    assert actions == finishing(Status.DRIVER_STOPPED, None)


def test_a_second_shutdown_after_stop_changes_nothing() -> None:
    session = subscribed_session()
    session.handle(ShutdownEvent(), 0.0)  # grace until 5
    session.handle(StopRequested(), 1.0)
    assert session.handle(ShutdownEvent(), 4.0) == []


def test_a_second_stop_does_not_move_the_stop_bound() -> None:
    session = make_session(grace=50.0)
    session.stop_drain_timeout = 3.0
    feed(session, [Start(), Connected(), SubscribedEvent()])
    session.handle(StopRequested(), 0.0)  # drain until 3
    session.handle(ShutdownEvent(), 1.0)
    actions = session.handle(StopRequested(), 2.0)
    assert timers_set(actions, Timer.STOP_DRAIN) in ([], [3.0])


def test_a_stop_after_shutdown_still_waits_for_the_shutdown_callback() -> None:
    session = subscribed_session()
    session.handle(ShutdownEvent(), 0.0)
    session.handle(StopRequested(), 1.0)
    assert session.state is State.STOPPING
    # no update pending, but the shutdown callback still runs: not drained
    assert session.handle(Drained(shutdown_done=False, busy=True), 2.0) == []
    actions = session.handle(Drained(), 3.0)
    assert actions[-1] == Finish(Status.DRIVER_STOPPED, None)


@pytest.mark.parametrize("state", [s for s in State if not s.final])
def test_abort_ends_the_session_once_from_anywhere(state: State) -> None:
    session = make_session()
    entering = feed(session, PATHS[state])
    # Aborting a session that gave up on the agent keeps the reason.
    error = error_of(entering) if state is State.LOST else None
    actions = session.handle(AbortRequested(), 50.0)
    assert actions == finishing(Status.DRIVER_ABORTED, error)
    assert session.state is State.ABORTED
    assert session.status is Status.DRIVER_ABORTED
    assert session.error == error
    assert session.handle(AbortRequested(), 51.0) == []


@pytest.mark.parametrize(
    "path",
    [
        [Start(), AbortRequested()],
        [Start(), ConnectFailed("refused")],
        [Start(), Connected(), StreamLost("closed")],
        [Start(), Connected(), SubscribeRefused(401, "Unauthorized")],
        [Start(), Connected(), SubscribedEvent(), StopRequested(), Drained()],
        [Start(), Connected(), ShutdownEvent(), TimerFired(Timer.SHUTDOWN_GRACE)],
        [*PATHS[State.LOST], TimerFired(Timer.SHUTDOWN_GRACE)],
        [*PATHS[State.LOST], StopRequested()],
    ],
    ids=[
        "aborted",
        "connect-failed",
        "closed-first",
        "refused",
        "stopped",
        "shutdown",
        "lost",
        "lost-stop",
    ],
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
    (State.SUBSCRIBING, Timer.SHUTDOWN_GRACE),
    (State.SUBSCRIBED, Timer.RECOVERY),
    (State.SUBSCRIBED, Timer.SHUTDOWN_GRACE),
    (State.DISCONNECTED, Timer.SHUTDOWN_GRACE),
    (State.SHUTTING_DOWN, Timer.RECONNECT),
    (State.SHUTTING_DOWN, Timer.RECOVERY),
    (State.STOPPING, Timer.RECOVERY),
    (State.STOPPING, Timer.RECONNECT),
    (State.LOST, Timer.RECOVERY),
    (State.LOST, Timer.RECONNECT),
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
#: What SUBSCRIBED may say of ExecutorInfo.shutdown_grace_period (minus the margin).
subscribed_graces = st.one_of(
    st.sampled_from([None, None, -1.0, 0.0, 0.5, 3.0, 30.0]),
    st.floats(min_value=-2.0, max_value=25.0, allow_nan=False, allow_infinity=False),
)
#: What the shell may report as left to wait for: the telling cases, and any.
drained_reports = st.one_of(
    st.sampled_from([e for e in ALL_INPUTS if isinstance(e, Drained)]),
    drained_inputs,
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
    SubscribeRefused(500, "Internal Server Error"),
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


#: How the machine's sessions are made, and how they begin.
MACHINE_SETUP: dict[str, st.SearchStrategy[Any]] = {
    "checkpoint": st.sampled_from([True, True, False]),
    "recovery_timeout": st.one_of(
        st.sampled_from([900.0, 900.0, 60.0, 5.0, 0.0]),
        st.floats(min_value=0.0, max_value=1000.0, allow_nan=False, allow_infinity=False),
    ),
    "backoff_max": durations,
    "seed": st.integers(min_value=0, max_value=2**32),
    "grace": durations,
    "drain": durations,
    "opening": st.sampled_from(
        [
            (),
            (Start(), Connected(), SubscribedEvent()),
            (Start(), Connected(), SubscribedEvent()),
            (Start(), Connected(), SubscribedEvent(shutdown_grace=0.5)),
            # An agent still recovering: its 503 is the first answer.
            (Start(), Connected(), SubscribeRefused(503, "Agent has not finished recovery")),
        ]
    ),
}


class SessionMachine(RuleBasedStateMachine):
    """Feeds the session and checks every step's actions.

    The machine keeps its own record (timers armed, outages seen, callbacks
    run, whether the agent ever answered, the shutdown grace, why the agent
    was given up) from the inputs and actions alone and compares it with what
    the session promises; it never reads the session's private fields.
    """

    @initialize(**MACHINE_SETUP)
    def setup(self, **kwargs: Any) -> None:
        self.begin(**kwargs)

    @precondition(lambda self: self.session.state.final)
    @rule(**MACHINE_SETUP)
    def begin_again(self, **kwargs: Any) -> None:
        """The session is over: go on with a fresh one (more steps for the living)."""
        self.begin(**kwargs)

    def begin(
        self,
        checkpoint: bool,
        recovery_timeout: float,
        backoff_max: float,
        seed: int,
        grace: float,
        drain: float,
        opening: tuple[Input, ...],
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
        self.grace = grace
        self.drain = drain
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
        self.shutdown_event = False  # an agent's SHUTDOWN was taken
        self.stop_by: float | None = None  # the first stop()'s drain deadline
        self.errors = 0
        self.lost_error: str | None = None
        self.answered = False
        self.retried_since_subscription = False
        for event in opening:  # most of the interesting behaviour comes after this
            self.step(event)

    # -- feeding ---------------------------------------------------------------------

    def expect_lost(self, before: State, event: Input, was_in_outage: bool) -> bool:
        """Whether ``event`` makes the session give up on the agent (enter LOST)."""
        if isinstance(event, TimerFired):
            return event.timer is Timer.RECOVERY and was_in_outage and before in RECONNECTING
        if isinstance(event, StreamLost):  # listed in SUBSCRIBING and SUBSCRIBED only
            return before in (State.SUBSCRIBING, State.SUBSCRIBED) and (
                self.answered and not self.checkpoint
            )
        if isinstance(event, ConnectFailed):
            return before is State.CONNECTING and self.answered and not self.checkpoint
        if isinstance(event, SubscribeRefused):
            return (
                before is State.SUBSCRIBING
                and self.registered
                and not subscribe_retried(event.status_code, resubscribe=True)
            )
        return False

    def expect_ended_at_once(self, before: State, event: Input) -> bool:
        """Whether ``event`` ends the session before the executor's block could run:
        the first connection failed, or the first SUBSCRIBE was refused for good."""
        if isinstance(event, (ConnectFailed, StreamLost)):
            return event.kind in TRANSITIONS[before] and not self.answered
        if isinstance(event, SubscribeRefused):
            return (
                before is State.SUBSCRIBING
                and not self.registered
                and not subscribe_retried(event.status_code, resubscribe=False)
            )
        return False

    def step(self, event: Input) -> list[Action]:
        session = self.session
        before = session.state
        was_in_outage = self.in_outage
        drawn = len(self.rng.values)
        expect_lost = self.expect_lost(before, event, was_in_outage)
        ended_at_once = self.expect_ended_at_once(before, event)
        actions = session.handle(event, self.now)  # never raises
        after = session.state
        answer = isinstance(event, (SubscribeRefused, SubscribedEvent, ShutdownEvent))
        if answer and event.kind in TRANSITIONS[before]:  # the agent answered
            self.answered = True
        assert session.ever_connected is self.answered

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
        if isinstance(event, Drained) and before in DRAINING:
            # a stop() after SHUTDOWN still waits for the shutdown callback
            after_shutdown = self.shutdown_event and before is State.STOPPING
            rule = State.SHUTTING_DOWN if after_shutdown else before
            assert after.final is drained_spec(rule, event)
        if isinstance(event, ShutdownEvent) and after is State.SHUTTING_DOWN:
            self.shutdown_event = True
        if after.final and not before.final:
            assert len(finishes) == 1
            assert actions[-1] is finishes[0]
            finish = finishes[0]
            assert isinstance(finish, Finish)
            assert finish.status is session.status
            assert finish.error == session.error
            expected = State.ABORTED if finish.status is Status.DRIVER_ABORTED else State.STOPPED
            assert after is expected
            self.check_finish(before, event, finish, ended_at_once)
            self.finishes += 1
        else:
            assert finishes == []
        if ended_at_once:
            assert after is State.ABORTED

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
            assert self.answered  # the first connection never starts an outage
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

        # The shutdown grace: SUBSCRIBED may shorten it, never lengthen it.
        if (
            isinstance(event, SubscribedEvent)
            and before is State.SUBSCRIBING
            and event.shutdown_grace is not None
        ):
            self.grace = max(0.0, min(self.grace, event.shutdown_grace))
        assert session.shutdown_grace == self.grace
        graces = timers_set(actions, Timer.SHUTDOWN_GRACE)
        assert graces in ([], [self.now + self.grace])
        drains = timers_set(actions, Timer.STOP_DRAIN)
        if drains and self.stop_by is None:
            self.stop_by = self.now + self.drain  # a later stop() keeps this bound
        assert drains in ([], [self.stop_by])

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
        entered = after is not before
        assert (NotifyShutdown() in actions) is (
            entered and after in (State.SHUTTING_DOWN, State.LOST)
        )
        assert (EnableCalls() in actions) is (
            before is State.SUBSCRIBING and isinstance(event, ShutdownEvent)
        )
        if after is State.SHUTTING_DOWN and entered:
            assert actions[-3:] == [
                CancelTimer(Timer.RECONNECT),
                NotifyShutdown(),
                SetTimer(Timer.SHUTDOWN_GRACE, self.now + self.grace),
            ]

        # Giving up on the agent: exactly when the rules say, with exact actions.
        errors = of_type(actions, NotifyError)
        self.errors += len(errors)
        assert self.errors <= 1
        assert (after is State.LOST and entered) is expect_lost
        if expect_lost:
            [error] = errors
            assert isinstance(error, NotifyError)
            self.lost_error = error.message
            # A refused connection leaves nothing open; otherwise one may be.
            close = [] if isinstance(event, ConnectFailed) else [CloseConnection()]
            assert actions == [*close, *entering_lost(error.message, self.now, grace=self.grace)]
            if isinstance(event, TimerFired):
                assert "recovery timeout" in error.message
            elif isinstance(event, SubscribeRefused):
                assert event.reason in error.message
            else:
                assert "checkpointing is off" in error.message
            assert session.status is None
        else:
            assert errors == []
        return actions

    def check_finish(self, before: State, event: Input, finish: Finish, at_once: bool) -> None:
        """The status, error and refusal of an end, by how it came."""
        # Only a refused SUBSCRIBE hands its status code on (for the driver's error).
        refused = event.status_code if isinstance(event, SubscribeRefused) and at_once else None
        assert finish.status_code == refused
        if before is State.LOST:
            # stop(), abort(), the drain or the grace: the agent is gone.
            assert finish.status is Status.DRIVER_ABORTED
            assert finish.error == self.lost_error
            assert finish.error is not None
        elif at_once:
            assert finish.status is Status.DRIVER_ABORTED
            assert finish.error is not None
            if isinstance(event, SubscribeRefused):
                assert event.reason in finish.error
            else:
                assert isinstance(event, (ConnectFailed, StreamLost))
                assert "cannot connect to the agent" in finish.error
                assert event.reason in finish.error
        elif isinstance(event, AbortRequested):
            assert finish == Finish(Status.DRIVER_ABORTED, None)
        else:
            assert finish == Finish(Status.DRIVER_STOPPED, None)
            if isinstance(event, Drained):
                assert drained_spec(before, event)
            elif isinstance(event, TimerFired):
                assert before in (State.SHUTTING_DOWN, State.STOPPING)
                assert event.timer in END_TIMERS
            else:
                assert before is State.IDLE
                assert isinstance(event, StopRequested)

    @rule(event=st.sampled_from(NOISE), dt=steps)
    def anything(self, event: Input, dt: float) -> None:
        """Any input at all, including ones that make no sense now.

        The agent sends SHUTDOWN once: a second one after a stop() is
        test_a_second_shutdown_after_stop_changes_nothing's case.
        """
        if isinstance(event, ShutdownEvent) and self.shutdowns:
            return
        self.now += dt
        self.step(event)

    @precondition(lambda self: not self.session.state.final)
    @rule(data=st.data(), dt=short_steps)
    def progress(self, data: st.DataObject, dt: float) -> None:
        """What a real shell would report next in the current state (weighted).

        A timer due before the report fires first, as it would in the shell.
        """
        subscribed = st.builds(SubscribedEvent, shutdown_grace=subscribed_graces)
        ending = st.sampled_from([StopRequested(), AbortRequested()])
        plausible: dict[State, list[st.SearchStrategy[Input | None]]] = {
            State.IDLE: [st.just(Start())],
            State.CONNECTING: [
                *[st.just(Connected())] * 3,
                *[st.just(ConnectFailed("refused"))] * 2,
                st.none(),
            ]
            if self.answered
            # The first connection usually succeeds; its failure ends everything.
            else [*[st.just(Connected())] * 9, st.just(ConnectFailed("refused"))],
            State.SUBSCRIBING: [
                subscribed,
                subscribed,
                subscribed,
                st.just(SubscribeRefused(503, "Agent has not finished recovery")),
                st.just(SubscribeRefused(404, "Not Found")),
                st.just(StreamLost("eof")),
                st.sampled_from(
                    [
                        SubscribeRefused(500, "Internal Server Error"),
                        SubscribeRefused(307, "Temporary Redirect"),
                    ]
                ),
                st.just(ShutdownEvent()),
                st.sampled_from(
                    [SubscribeRefused(401, "Unauthorized"), SubscribeRefused(403, "Forbidden")]
                ),
            ],
            State.SUBSCRIBED: [
                *[st.just(StreamLost("eof"))] * 6,
                st.just(ShutdownEvent()),
                st.just(StopRequested()),
            ],
            State.DISCONNECTED: [st.none()] * 3,  # None: the next timer fires
            State.SHUTTING_DOWN: [drained_reports, st.none(), st.just(StopRequested())],
            State.STOPPING: [
                drained_reports,
                st.none(),
                st.just(StreamLost("eof")),
                # SHUTDOWN on the stream subscribed before stop()
                st.just(
                    ShutdownEvent() if self.registered and not self.shutdowns else StreamLost("eof")
                ),
            ],
            State.LOST: [drained_reports, drained_reports, st.none(), st.just(StopRequested())],
        }
        # stop() or abort() (or a cancellation) can come at any time.
        choices = [*plausible[self.session.state], ending]
        event = data.draw(st.one_of(*choices), label="event")
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
            assert self.session.state in RECONNECTING
            assert Timer.RECOVERY in self.armed
            assert self.checkpoint or not self.registered

    @invariant()
    def never_stuck_without_a_timer(self) -> None:
        state = self.session.state
        if state is State.DISCONNECTED:
            assert Timer.RECONNECT in self.armed
        if state in (State.SHUTTING_DOWN, State.LOST):
            assert Timer.SHUTDOWN_GRACE in self.armed
        if state is State.STOPPING:
            assert Timer.STOP_DRAIN in self.armed

    @invariant()
    def lost_only_waits_for_its_grace(self) -> None:
        if self.session.state is State.LOST:
            assert set(self.armed) == {Timer.SHUTDOWN_GRACE}
            assert self.lost_error is not None
            assert self.session.lost_error == self.lost_error
            assert self.shutdowns == self.errors == 1


TestSessionMachine = SessionMachine.TestCase
