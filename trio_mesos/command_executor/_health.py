"""What a check result means: Mesos's counting rules, without I/O.

* :class:`HealthCounter` is ``HealthChecker`` of ``src/checks/health_checker.cpp``
  (Mesos 1.11): ``interpretCheckStatusInfo`` (COMMAND: exit code 0; HTTP:
  status 200-399; TCP: connected), ``failure()`` and ``success()``.
* :class:`CheckTracker` is ``Checker::processCheckResult`` of
  ``src/checks/checker.cpp``: an error counts as the empty result of the
  check's type, and only a *change* of the result is reported.
* :func:`empty_check_status` is ``createEmptyCheckStatusInfo``
  (``src/checks/checker.cpp``), also what ``createTaskStatus`` puts in every
  state update of a checked task (``src/launcher/executor.cpp``).
"""

from __future__ import annotations

import dataclasses

from trio_mesos.v1 import mesos_pb2

__all__ = ["CheckTracker", "HealthCounter", "HealthVerdict", "empty_check_status", "is_healthy"]

CheckInfo = mesos_pb2.CheckInfo

_FIELDS: dict[int, str] = {
    CheckInfo.COMMAND: "command",
    CheckInfo.HTTP: "http",
    CheckInfo.TCP: "tcp",
}


def empty_check_status(check_type: int) -> mesos_pb2.CheckStatusInfo:
    """A ``CheckStatusInfo`` of ``check_type`` with no result yet."""
    status = mesos_pb2.CheckStatusInfo(type=check_type)  # type: ignore[arg-type]
    field = _FIELDS.get(check_type)
    if field is not None:
        getattr(status, field).SetInParent()
    return status


def is_healthy(result: mesos_pb2.CheckStatusInfo) -> tuple[bool, str]:
    """``interpretCheckStatusInfo``: whether a result counts as healthy, and why not."""
    if result.type == CheckInfo.COMMAND:
        code = result.command.exit_code
        return code == 0, f"Command exited with status {code}"
    if result.type == CheckInfo.HTTP:
        code = result.http.status_code
        return 200 <= code < 400, f"Unexpected HTTP response code: {code}"
    if result.type == CheckInfo.TCP:
        return result.tcp.succeeded, "TCP connection failed"
    return True, ""


@dataclasses.dataclass(frozen=True)
class HealthVerdict:
    """What the executor does about one health check result."""

    #: The ``healthy`` field of the update to send.
    healthy: bool
    #: Kill the task (``consecutive_failures`` reached).
    kill: bool = False
    consecutive_failures: int = 0


class HealthCounter:
    """``HealthChecker::failure``/``success`` (``src/checks/health_checker.cpp``).

    Args:
        consecutive_failures: ``HealthCheck.consecutive_failures``.
        grace_period: ``HealthCheck.grace_period_seconds``.
        start: when the health checker was created (the task started).
    """

    def __init__(self, consecutive_failures: int, grace_period: float, start: float) -> None:
        self.limit = consecutive_failures
        self.grace_period = grace_period
        self.start = start
        self.failures = 0
        #: No check has succeeded yet.
        self.initializing = True

    def result(self, outcome: mesos_pb2.CheckStatusInfo | str, now: float) -> HealthVerdict | None:
        """A probe's result (or its error text); the update to send, or None."""
        if isinstance(outcome, str):
            return self.failure(now)
        healthy, _ = is_healthy(outcome)
        return self.success() if healthy else self.failure(now)

    def failure(self, now: float) -> HealthVerdict | None:
        """A failed check; None while it is ignored (initializing, within the grace period)."""
        if self.initializing and self.grace_period > 0 and now - self.start <= self.grace_period:
            return None
        self.failures += 1
        return HealthVerdict(False, self.failures >= self.limit, self.failures)

    def success(self) -> HealthVerdict | None:
        """A passed check: ``healthy=true`` on the first one and the first after failures."""
        verdict = None
        if self.initializing or self.failures > 0:
            verdict = HealthVerdict(True)
            self.initializing = False
        self.failures = 0
        return verdict


class CheckTracker:
    """``Checker::processCheckResult`` (``src/checks/checker.cpp``): report changes only."""

    def __init__(self, check_type: int) -> None:
        self.check_type = check_type
        self.previous = empty_check_status(check_type)

    def result(self, outcome: mesos_pb2.CheckStatusInfo | str) -> mesos_pb2.CheckStatusInfo | None:
        """A probe's result (or its error text); the new ``check_status`` if it changed."""
        current = empty_check_status(self.check_type) if isinstance(outcome, str) else outcome
        if current == self.previous:
            return None
        self.previous = current
        return current
