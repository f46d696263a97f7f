"""The counting rules of health checks and checks (src/checks/ of Mesos 1.11), without I/O."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trio_mesos.command_executor._health import (
    CheckTracker,
    HealthCounter,
    HealthVerdict,
    empty_check_status,
    is_healthy,
)
from trio_mesos.v1 import mesos_pb2

CheckInfo = mesos_pb2.CheckInfo


def command_result(code: int) -> mesos_pb2.CheckStatusInfo:
    result = mesos_pb2.CheckStatusInfo(type=CheckInfo.COMMAND)
    result.command.exit_code = code
    return result


def http_result(code: int) -> mesos_pb2.CheckStatusInfo:
    result = mesos_pb2.CheckStatusInfo(type=CheckInfo.HTTP)
    result.http.status_code = code
    return result


def tcp_result(ok: bool) -> mesos_pb2.CheckStatusInfo:
    result = mesos_pb2.CheckStatusInfo(type=CheckInfo.TCP)
    result.tcp.succeeded = ok
    return result


def test_what_counts_as_healthy() -> None:
    assert is_healthy(command_result(0))[0]
    assert not is_healthy(command_result(1))[0]
    assert [is_healthy(http_result(c))[0] for c in (199, 200, 302, 399, 400, 503)] == [
        False,
        True,
        True,
        True,
        False,
        False,
    ]
    assert is_healthy(tcp_result(True))[0]
    assert not is_healthy(tcp_result(False))[0]


def test_updates_on_the_first_success_and_the_first_after_failures() -> None:
    counter = HealthCounter(consecutive_failures=3, grace_period=0, start=0)
    ok, bad = command_result(0), command_result(1)
    assert counter.result(ok, 1) == HealthVerdict(True)
    assert counter.result(ok, 2) is None  # healthy again: nothing to say
    assert counter.result(bad, 3) == HealthVerdict(False, False, 1)
    assert counter.result("Command timed out after 1 s", 4) == HealthVerdict(False, False, 2)
    assert counter.result(ok, 5) == HealthVerdict(True)  # the first success after failures
    assert counter.result(bad, 6) == HealthVerdict(False, False, 1)  # counting starts over
    assert counter.result(bad, 7) == HealthVerdict(False, False, 2)
    assert counter.result(bad, 8) == HealthVerdict(False, True, 3)  # kill


def test_failures_are_ignored_only_while_initializing_within_the_grace_period() -> None:
    counter = HealthCounter(consecutive_failures=1, grace_period=10, start=100)
    bad = command_result(1)
    assert counter.result(bad, 105) is None
    assert counter.result(bad, 110) is None  # "<=": still in the grace period
    assert counter.result(bad, 110.5) == HealthVerdict(False, True, 1)
    # after a success the grace period no longer protects
    counter = HealthCounter(consecutive_failures=2, grace_period=10, start=100)
    assert counter.result(command_result(0), 101) == HealthVerdict(True)
    assert counter.result(bad, 102) == HealthVerdict(False, False, 1)


@given(st.lists(st.booleans(), max_size=40), st.integers(min_value=1, max_value=5))
def test_a_kill_comes_exactly_at_the_limit_of_consecutive_failures(
    results: list[bool], limit: int
) -> None:
    counter = HealthCounter(consecutive_failures=limit, grace_period=0, start=0)
    run = 0
    for now, ok in enumerate(results):
        verdict = counter.result(command_result(0 if ok else 1), now)
        run = 0 if ok else run + 1
        if not ok:
            assert verdict == HealthVerdict(False, run >= limit, run)


def test_a_check_reports_changes_only_and_an_error_as_empty() -> None:
    tracker = CheckTracker(CheckInfo.COMMAND)
    assert tracker.result(command_result(3)) == command_result(3)
    assert tracker.result(command_result(3)) is None
    assert tracker.result("Command timed out") == empty_check_status(CheckInfo.COMMAND)
    assert tracker.result("again") is None
    assert tracker.result(command_result(0)) == command_result(0)
    empty = empty_check_status(CheckInfo.TCP)
    assert empty.type == CheckInfo.TCP
    assert empty.HasField("tcp")
    assert not empty.tcp.HasField("succeeded")
