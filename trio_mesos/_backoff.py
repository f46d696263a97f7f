"""Reconnection timing: the subscription backoff and the recovery deadline.

Theory of operation
===================

The rule is the C++ v1 executor library's (``src/executor/executor.cpp``,
PROTOCOL.md §4.3):

* "``backoff()``: if already connected/subscribing/subscribed stop; else
  ``connect()`` now and schedule the next ``backoff()`` after
  ``maxBackoff * uniform(0,1)``. (So attempts: immediately, then at random
  intervals in ``[0, MESOS_SUBSCRIPTION_BACKOFF_MAX]``.)"
* "if ``checkpoint`` and we had been connected → start recovery timer
  (``MESOS_RECOVERY_TIMEOUT``) once"; "if a recovery timer is already running
  (we are in a retry cycle) → nothing else"; "Recovery timer expiry while
  still not connected → ``shutdown()``."

The bound matters: the restarted agent waits only
``--executor_reregistration_timeout`` (= ``MESOS_SUBSCRIPTION_BACKOFF_MAX``)
for executors to re-subscribe, so a retry must come at least that often
(pymesos' exponential backoff misses the window, PEERS.md §2.1 defect 2).

:class:`Backoff` gives the delay before each attempt; :class:`RecoveryTimer`
keeps the one deadline of an outage. Both are pure: randomness comes from a
``random.Random`` passed in, time from ``now`` arguments (the I/O shell passes
``trio.current_time()``). When to call :meth:`RecoveryTimer.end` is the
shell's decision; the C++ library cancels its timer when the TCP connections
are up again, not on a successful SUBSCRIBE.
"""

from __future__ import annotations

import math
import random

__all__ = ["Backoff", "RecoveryTimer"]


def _check_duration(name: str, value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class Backoff:
    """Delays between subscription attempts: 0 first, then uniform in ``[0, backoff_max]``.

    Args:
        backoff_max: ``MESOS_SUBSCRIPTION_BACKOFF_MAX`` in seconds.
        rng: the random source; only its ``random()`` method is used.

    Raises:
        ValueError: ``backoff_max`` is negative or not finite.
    """

    __slots__ = ("_attempts", "_backoff_max", "_rng")

    def __init__(self, backoff_max: float, rng: random.Random) -> None:
        self._backoff_max = _check_duration("backoff_max", backoff_max)
        self._rng = rng
        self._attempts = 0

    @property
    def backoff_max(self) -> float:
        """The upper bound of every delay, in seconds."""
        return self._backoff_max

    @property
    def attempts(self) -> int:
        """How many delays :meth:`next_delay` has handed out since the last reset."""
        return self._attempts

    def next_delay(self) -> float:
        """Return how long to wait before the next attempt, and count the attempt.

        Returns:
            0.0 for the first attempt after construction or :meth:`reset`;
            afterwards ``backoff_max * rng.random()``, which lies in
            ``[0, backoff_max]``.
        """
        self._attempts += 1
        if self._attempts == 1:
            return 0.0
        return self._backoff_max * self._rng.random()

    def reset(self) -> None:
        """Start over after a successful subscription: the next attempt is immediate."""
        self._attempts = 0

    def __repr__(self) -> str:
        return f"Backoff(backoff_max={self._backoff_max!r}, attempts={self._attempts})"


class RecoveryTimer:
    """The deadline of one outage: ``MESOS_RECOVERY_TIMEOUT`` after it began.

    Failed reconnection attempts do not move the deadline; only :meth:`end`
    (the outage is over) lets the next :meth:`start` set a new one.

    Args:
        timeout: ``MESOS_RECOVERY_TIMEOUT`` in seconds.

    Raises:
        ValueError: ``timeout`` is negative or not finite.
    """

    __slots__ = ("_deadline", "_timeout")

    def __init__(self, timeout: float) -> None:
        self._timeout = _check_duration("timeout", timeout)
        self._deadline: float | None = None

    @property
    def timeout(self) -> float:
        """The length of the recovery window, in seconds."""
        return self._timeout

    @property
    def deadline(self) -> float | None:
        """When the current outage's recovery window closes; None outside an outage."""
        return self._deadline

    @property
    def running(self) -> bool:
        """Whether an outage is in progress (a deadline is set)."""
        return self._deadline is not None

    def start(self, now: float) -> None:
        """Note a disconnection at ``now``; only the first call of an outage sets the deadline."""
        if self._deadline is None:
            self._deadline = now + self._timeout

    def expired(self, now: float) -> bool:
        """Whether the recovery window is over: an outage is running and ``now >= deadline``."""
        return self._deadline is not None and now >= self._deadline

    def remaining(self, now: float) -> float:
        """Seconds left until the deadline (never negative); ``math.inf`` outside an outage."""
        if self._deadline is None:
            return math.inf
        return max(0.0, self._deadline - now)

    def end(self) -> None:
        """The outage is over (connected again): the next :meth:`start` sets a new deadline."""
        self._deadline = None

    def __repr__(self) -> str:
        return f"RecoveryTimer(timeout={self._timeout!r}, deadline={self._deadline!r})"
