"""The exceptions trio_mesos raises on purpose.

Hierarchy (STYLE.md §3.4)::

    TrioMesosError                  base of everything raised on purpose
      ConfigError                   bad or missing MESOS_* / LIBPROCESS_* environment
      ProtocolError                 abstract, as in h11
        LocalProtocolError          we were asked to do something the protocol forbids
        RemoteProtocolError         the agent sent something the protocol forbids
      DriverClosedError             the driver was used after it ended
      AgentUnavailableError         the agent could not be reached / re-subscribed to
      CallRejectedError             the agent refused a call for good (4xx)
      MessageQueueFullError         too many framework messages wait to be sent
      JoinFromCallbackError         join() awaited inside an executor callback
    TrioMesosInternalError          a bug in trio_mesos; never caught internally

Every exception keeps its data in attributes, has a readable ``str()`` and
survives ``copy.copy`` and ``pickle``: constructors take the same arguments
that ``args`` holds.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AgentUnavailableError",
    "CallRejectedError",
    "JoinFromCallbackError",
    "MessageQueueFullError",
    "ConfigError",
    "DriverClosedError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "TrioMesosError",
    "TrioMesosInternalError",
]


class TrioMesosError(Exception):
    """Base class of every error trio_mesos raises on purpose."""


class ConfigError(TrioMesosError, ValueError):
    """The executor's environment is missing variables or has malformed ones.

    All problems are collected and reported at once.

    Attributes:
        problems: ``(variable, explanation)`` pairs, one per problem, in the
            order they were found. Values of secret variables never appear.
    """

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems: tuple[tuple[str, str], ...] = tuple(
            (str(name), str(why)) for name, why in problems
        )
        super().__init__(self.problems)

    @property
    def variables(self) -> tuple[str, ...]:
        """The names of the variables that have problems."""
        return tuple(name for name, _ in self.problems)

    def __str__(self) -> str:
        lines = [f"{name}: {why}" for name, why in self.problems]
        count = len(lines)
        head = f"invalid executor environment ({count} problem{'s' if count != 1 else ''})"
        return head + "".join(f"\n  {line}" for line in lines)


class ProtocolError(TrioMesosError):
    """A violation of the Mesos executor protocol (abstract; as in h11).

    Attributes:
        offset: where in the input the problem was found (bytes consumed
            before it), or None when not applicable.
    """

    def __init__(self, msg: str, offset: int | None = None) -> None:
        if type(self) is ProtocolError:
            raise TypeError("tried to directly instantiate ProtocolError")
        self.msg = msg
        self.offset = offset
        super().__init__(msg, offset)

    def __str__(self) -> str:
        if self.offset is None:
            return self.msg
        return f"{self.msg} (at byte {self.offset})"


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol forbids (e.g. send TASK_STAGING)."""


class RemoteProtocolError(ProtocolError):
    """The agent sent something the protocol forbids (bad RecordIO, bad event bytes)."""


class DriverClosedError(TrioMesosError):
    """The driver was used after it had ended (stopped or aborted)."""


class AgentUnavailableError(TrioMesosError):
    """The agent could not be reached or re-subscribed to within the rules.

    Attributes:
        status_code: the last HTTP status the agent answered with, if any.
    """

    def __init__(self, msg: str, status_code: int | None = None) -> None:
        self.msg = msg
        self.status_code = status_code
        super().__init__(msg, status_code)

    def __str__(self) -> str:
        return self.msg


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


class MessageQueueFullError(TrioMesosError):
    """A framework message was refused: the queue of messages waiting to be sent is full.

    The queue holds ``MESSAGE_QUEUE_SIZE`` (1,024) messages; a message that
    does not fit is dropped (the ones already queued keep their place and
    their order). ``await driver.message(...)`` gives back-pressure instead.
    """


class JoinFromCallbackError(TrioMesosError, RuntimeError):
    """``join()`` was awaited inside an executor callback.

    The callback runs inside the driver, whose end cancels it: a ``join()``
    there could never return the final status (call ``stop()`` and return
    instead).
    """


class TrioMesosInternalError(Exception):
    """A bug in trio_mesos: please report it. Never caught internally."""
