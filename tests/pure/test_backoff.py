"""Tests for trio_mesos._backoff: the C++ library's reconnect timing (PROTOCOL.md §4.3)."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_mesos._backoff import Backoff, RecoveryTimer

backoff_maxima = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
seeds = st.integers(min_value=0, max_value=2**64)
times = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
timeouts = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


class FixedRandom(random.Random):
    """A random source whose random() always returns one value."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value
        self.calls = 0

    def random(self) -> float:
        self.calls += 1
        return self.value


def delays(backoff: Backoff, count: int) -> list[float]:
    return [backoff.next_delay() for _ in range(count)]


# --- Backoff ---------------------------------------------------------------------------


def test_first_delay_is_zero_and_does_not_consume_randomness() -> None:
    rng = FixedRandom(0.5)
    backoff = Backoff(2.0, rng)
    assert backoff.next_delay() == 0.0
    assert rng.calls == 0
    assert backoff.attempts == 1


@given(backoff_max=backoff_maxima, seed=seeds, count=st.integers(min_value=1, max_value=50))
def test_later_delays_lie_within_zero_and_max(backoff_max: float, seed: int, count: int) -> None:
    backoff = Backoff(backoff_max, random.Random(seed))
    got = delays(backoff, count)
    assert got[0] == 0.0
    assert all(0.0 <= delay <= backoff_max for delay in got[1:])
    assert backoff.attempts == count


@pytest.mark.parametrize("value", [0.0, 0.25, 0.5, 0.999999])
@pytest.mark.parametrize("backoff_max", [0.25, 2.0, 10.0, 15.0])
def test_delay_is_random_value_times_max(value: float, backoff_max: float) -> None:
    rng = FixedRandom(value)
    backoff = Backoff(backoff_max, rng)
    backoff.next_delay()
    assert delays(backoff, 3) == [value * backoff_max] * 3
    assert rng.calls == 3


def test_the_rng_is_really_used() -> None:
    one = delays(Backoff(10.0, random.Random(1)), 10)
    two = delays(Backoff(10.0, random.Random(2)), 10)
    assert one != two
    # ... and deterministically so.
    assert one == delays(Backoff(10.0, random.Random(1)), 10)
    # The delays vary within one sequence too.
    assert len(set(one[1:])) > 1


def test_reset_makes_the_next_attempt_immediate_again() -> None:
    backoff = Backoff(5.0, FixedRandom(0.5))
    assert delays(backoff, 3) == [0.0, 2.5, 2.5]
    backoff.reset()
    assert backoff.attempts == 0
    assert delays(backoff, 2) == [0.0, 2.5]
    assert backoff.attempts == 2


def test_zero_max_means_every_attempt_is_immediate() -> None:
    assert delays(Backoff(0.0, random.Random(3)), 5) == [0.0] * 5


@pytest.mark.parametrize("bad", [-1.0, -1e-9, math.inf, math.nan])
def test_backoff_rejects_bad_maximum(bad: float) -> None:
    with pytest.raises(ValueError, match="backoff_max"):
        Backoff(bad, random.Random(0))


def test_backoff_exposes_its_bound_and_repr() -> None:
    backoff = Backoff(3.0, random.Random(0))
    backoff.next_delay()
    assert backoff.backoff_max == 3.0
    assert repr(backoff) == "Backoff(backoff_max=3.0, attempts=1)"


@given(backoff_max=backoff_maxima, seed=seeds, count=st.integers(min_value=2, max_value=40))
def test_attempt_schedule_never_leaves_a_gap_above_max(
    backoff_max: float, seed: int, count: int
) -> None:
    # The agent's re-registration window equals backoff_max: every gap between
    # consecutive attempts must fit in it.
    backoff = Backoff(backoff_max, random.Random(seed))
    now = 100.0
    attempt_times = []
    for _ in range(count):
        now += backoff.next_delay()
        attempt_times.append(now)
    assert attempt_times[0] == 100.0
    gaps = [b - a for a, b in itertools.pairwise(attempt_times)]
    assert all(0.0 <= gap <= backoff_max * (1 + 1e-9) + 1e-6 for gap in gaps)


# --- RecoveryTimer ---------------------------------------------------------------------


def test_timer_has_no_deadline_before_an_outage() -> None:
    timer = RecoveryTimer(900.0)
    assert timer.deadline is None
    assert not timer.running
    assert not timer.expired(1e12)
    assert timer.remaining(0.0) == math.inf
    assert timer.timeout == 900.0


def test_deadline_is_set_once_per_outage() -> None:
    timer = RecoveryTimer(900.0)
    timer.start(10.0)
    assert timer.deadline == 910.0
    assert timer.running
    timer.start(20.0)
    timer.start(905.0)
    assert timer.deadline == 910.0


def test_expired_exactly_at_and_after_the_deadline() -> None:
    timer = RecoveryTimer(15.0)
    timer.start(100.0)
    assert not timer.expired(114.999)
    assert timer.expired(115.0)
    assert timer.expired(116.0)
    assert timer.remaining(105.0) == 10.0
    assert timer.remaining(115.0) == 0.0
    assert timer.remaining(200.0) == 0.0


def test_new_outage_after_end_gets_a_new_deadline() -> None:
    timer = RecoveryTimer(60.0)
    timer.start(0.0)
    assert timer.expired(60.0)
    timer.end()
    assert timer.deadline is None
    assert not timer.expired(61.0)
    timer.start(500.0)
    assert timer.deadline == 560.0
    assert not timer.expired(559.0)


def test_end_without_an_outage_is_harmless() -> None:
    timer = RecoveryTimer(1.0)
    timer.end()
    timer.start(3.0)
    assert timer.deadline == 4.0
    assert repr(timer) == "RecoveryTimer(timeout=1.0, deadline=4.0)"


@pytest.mark.parametrize("bad", [-5.0, math.inf, math.nan])
def test_timer_rejects_bad_timeout(bad: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        RecoveryTimer(bad)


@given(
    timeout=timeouts,
    outages=st.lists(st.lists(times, min_size=1, max_size=10).map(sorted), min_size=1, max_size=5),
)
def test_each_outage_deadline_comes_from_its_first_start(
    timeout: float, outages: list[list[float]]
) -> None:
    timer = RecoveryTimer(timeout)
    for starts in outages:
        for now in starts:
            timer.start(now)
            assert timer.deadline == starts[0] + timeout
            assert timer.expired(now) == (now >= starts[0] + timeout)
            assert timer.remaining(now) == max(0.0, starts[0] + timeout - now)
        timer.end()
        assert timer.deadline is None
