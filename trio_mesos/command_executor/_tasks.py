"""One task's record: its state, its sandbox and output files, the updates it makes.

Status updates follow ``createTaskStatus``, ``taskHealthUpdated`` and
``taskCheckUpdated`` of ``src/launcher/executor.cpp`` and
``src/launcher/default_executor.cpp`` (Mesos 1.11).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import re
from typing import IO, Final

import trio

from trio_mesos.v1 import mesos_pb2

from ._health import empty_check_status
from ._processes import describe_exit, same_file

__all__ = ["Mode", "TaskRun", "has_killing_capability", "only_cancelled", "task_directory_name"]

Reason = mesos_pb2.TaskStatus.Reason
_UNSAFE_FILE_CHARACTERS: Final = re.compile(r"[^A-Za-z0-9._-]")


def task_directory_name(task_id: str) -> str:
    """The task's folder under ``tasks/``: ``web/1`` -> ``web_1``."""
    name = _UNSAFE_FILE_CHARACTERS.sub("_", task_id)
    return "_" + name if name in ("", ".", "..") else name


class Mode(enum.Enum):
    """Which Mesos executor this one stands in for."""

    #: ``mesos-executor``: the agent's ``ExecutorInfo`` has no type (``getExecutorInfo`` in
    #: ``src/slave/slave.cpp``), or the first LAUNCH brings the task whose id is the
    #: executor id. One task; output in the sandbox's ``stdout``/``stderr``.
    COMMAND = "command"
    #: ``mesos-default-executor``: ``ExecutorInfo.type`` is DEFAULT. LAUNCH_GROUP only.
    DEFAULT = "default"
    #: Anything else: any number of LAUNCH and LAUNCH_GROUP.
    CUSTOM = "custom"


@dataclasses.dataclass(eq=False)
class TaskRun:
    """What the executor knows about one task."""

    info: mesos_pb2.TaskInfo
    #: The task's ``MESOS_SANDBOX``, where its ``stdout`` and ``stderr`` go.
    sandbox: str
    #: The task's working directory.
    cwd: str
    #: Ids of the tasks of its LAUNCH_GROUP, or None.
    group: tuple[str, ...] | None = None
    #: The command executor's one task (output to the executor's sandbox files).
    command_task: bool = False
    process: trio.Process | None = None
    running_sent: bool = False
    killing_sent: bool = False
    #: A kill is under way (KILL, a health check, max_completion_time, group, SHUTDOWN).
    kill_requested: bool = False
    #: When the first kill began (the grace of a later KILL counts from it).
    kill_started: float | None = None
    killed_by_health: bool = False
    killed_by_completion: bool = False
    #: The group is being killed because of this task or a sibling.
    killing_group: bool = False
    #: When the escalation sends SIGKILL (trio time); only ever moves earlier.
    sigkill_at: float = math.inf
    terminal_state: int | None = None
    #: The last update sent (health and check updates are copies of it).
    last_status: mesos_pb2.TaskStatus | None = None
    changed: trio.Event = dataclasses.field(default_factory=trio.Event)
    finished: trio.Event = dataclasses.field(default_factory=trio.Event)

    @property
    def task_id(self) -> str:
        return self.info.task_id.value

    def kill_by(self, deadline: float) -> None:
        """Make the SIGKILL come no later than ``deadline``."""
        if deadline < self.sigkill_at:
            self.sigkill_at = deadline
            self.changed.set()

    def state_status(
        self, state: int, message: str | None, reason: int | None, *, unhealthy: bool
    ) -> mesos_pb2.TaskStatus:
        """A state update made from scratch (``createTaskStatus`` of both executors).

        A checked task's updates always carry a ``check_status``, empty here.
        """
        status = mesos_pb2.TaskStatus(state=state)  # type: ignore[arg-type]
        status.task_id.CopyFrom(self.info.task_id)
        if message:
            status.message = message
        if reason is not None:
            status.reason = reason  # type: ignore[assignment]
        if self.info.HasField("check"):
            status.check_status.CopyFrom(empty_check_status(self.info.check.type))
        if unhealthy:
            status.healthy = False
        return status

    def amended_status(
        self,
        reason: int,
        *,
        healthy: bool | None = None,
        check_status: mesos_pb2.CheckStatusInfo | None = None,
    ) -> mesos_pb2.TaskStatus | None:
        """``taskHealthUpdated``/``taskCheckUpdated``: the last update again, amended.

        None once the task is being killed or has ended (``killed || terminated``).
        """
        if self.kill_requested or self.terminal_state is not None or self.last_status is None:
            return None
        status = mesos_pb2.TaskStatus()
        status.CopyFrom(self.last_status)
        status.reason = reason  # type: ignore[assignment]
        if healthy is not None:
            status.healthy = healthy
        if check_status is not None:
            status.check_status.CopyFrom(check_status)
        return status

    def killed_outcome(self, returncode: int | None) -> tuple[int, str, int | None]:
        """State, message, reason of a task that was killed (``reaped`` in ``executor.cpp``)."""
        if returncode is None:
            message = "The command did not exit after SIGKILL"
        else:
            message = describe_exit(returncode)
        if self.killed_by_completion:
            return mesos_pb2.TASK_FAILED, message, Reason.REASON_MAX_COMPLETION_TIME_REACHED
        return mesos_pb2.TASK_KILLED, message, None

    def open_output(self) -> tuple[IO[bytes] | None, IO[bytes] | None]:
        """Where the task's stdout and stderr go.

        The command executor's task: the sandbox's ``stdout``/``stderr`` (the
        executor's own when the agent opened them there: the task inherits them,
        as ``mesos-executor``'s task does). Others: ``tasks/<id>/stdout|stderr``
        (``tasks/<id>`` is the task's sandbox, as in the default executor).
        """
        os.makedirs(self.sandbox, exist_ok=True)
        files: list[IO[bytes] | None] = []
        try:
            for fd, name in ((1, "stdout"), (2, "stderr")):
                path = os.path.join(self.sandbox, name)
                if self.command_task and same_file(fd, path):
                    files.append(None)  # inherit the executor's own
                else:
                    files.append(open(path, "ab"))  # noqa: SIM115 - closed by the caller
        except BaseException:
            for file in files:
                if file is not None:
                    file.close()
            raise
        return files[0], files[1]


def has_killing_capability(info: mesos_pb2.FrameworkInfo | None) -> bool:
    """Whether the framework has the ``TASK_KILLING_STATE`` capability."""
    wanted = mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE
    return info is not None and any(c.type == wanted for c in info.capabilities)


def only_cancelled(exc: BaseException) -> bool:
    inner = getattr(exc, "exceptions", None)  # an exception group (3.10: the backport)
    if inner is None:
        return isinstance(exc, trio.Cancelled)
    return all(only_cancelled(e) for e in inner)
