"""The agent's tasks, the statuses it has seen and the acknowledgements it owes (pure).

The update path follows ``Slave::statusUpdate`` and the status update manager
(``src/slave/slave.cpp``, ``src/slave/task_status_update_manager.cpp``;
PROTOCOL.md §3.4 outcome table): an update for another agent or an unknown
task is forwarded and never acknowledged; a duplicate uuid is acknowledged
again; an update after a terminal one is dropped but acknowledged; otherwise
the task takes the new state. A SUBSCRIBE's ``unacknowledged_updates`` take
the same path, except that one without a uuid is ignored and a re-sent
``TASK_STAGING`` makes the agent shut the executor down
(``Slave::subscribe``).

Pure: times come in as arguments.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from .._messages import is_terminal
from ..v1 import executor_pb2, mesos_pb2

__all__ = ["TaskBook", "UpdateOutcome", "ack_event"]

logger = logging.getLogger("trio_mesos.testing.fake_agent")


class UpdateOutcome(enum.Enum):
    """What the agent does after an update reached its update path."""

    IGNORED = "ignored"  # no acknowledgement
    ACKNOWLEDGE = "acknowledge"
    SHUT_DOWN = "shut down"  # TASK_STAGING re-sent in a SUBSCRIBE


@dataclass(eq=False)
class _Task:
    info: mesos_pb2.TaskInfo
    state: int = mesos_pb2.TASK_STAGING
    uuids: set[bytes] = field(default_factory=set)


def ack_event(task_id: str, key: bytes) -> executor_pb2.Event:
    """ACKNOWLEDGED for the update ``key`` of ``task_id``."""
    event = executor_pb2.Event(type=executor_pb2.Event.ACKNOWLEDGED)
    event.acknowledged.task_id.value = task_id
    event.acknowledged.uuid = key
    return event


class TaskBook:
    """Launched tasks, every status seen, and pending acknowledgements of one agent."""

    def __init__(self, agent_id: str, executor_id: str) -> None:
        self.agent_id = agent_id
        self.executor_id = executor_id
        self._tasks: dict[str, _Task] = {}
        self._history: dict[str, list[mesos_pb2.TaskStatus]] = {}
        self.all_updates: list[mesos_pb2.TaskStatus] = []
        #: uuid -> task id of accepted updates whose ACKNOWLEDGED is not sent yet.
        self.pending_acks: dict[bytes, str] = {}

    def launched(self, info: mesos_pb2.TaskInfo) -> None:
        """``info`` was sent in LAUNCH or LAUNCH_GROUP: the task is ``TASK_STAGING``."""
        self._tasks[info.task_id.value] = _Task(info)

    def state(self, task_id: str) -> int | None:
        """The latest state of a launched task, or None."""
        task = self._tasks.get(task_id)
        return None if task is None else task.state

    def history(self, task_id: str) -> list[mesos_pb2.TaskStatus]:
        """Every status of ``task_id``, in arrival order."""
        return list(self._history.get(task_id, ()))

    def _add(self, status: mesos_pb2.TaskStatus) -> None:
        self._history.setdefault(status.task_id.value, []).append(status)
        self.all_updates.append(status)

    def process_update(
        self, status: mesos_pb2.TaskStatus, *, from_subscribe: bool = False
    ) -> UpdateOutcome:
        """Record ``status`` and apply the update path (module docstring)."""
        task_id = status.task_id.value
        self._add(status)
        if from_subscribe:
            if not status.HasField("uuid"):
                logger.warning("ignoring update without uuid for task %s", task_id)
                return UpdateOutcome.IGNORED
            if status.state == mesos_pb2.TASK_STAGING:
                logger.error("TASK_STAGING re-sent in SUBSCRIBE: shutting the executor down")
                return UpdateOutcome.SHUT_DOWN
        if status.HasField("agent_id") and status.agent_id.value != self.agent_id:
            logger.warning("ignoring update for task %s addressed to another agent", task_id)
            return UpdateOutcome.IGNORED
        task = self._tasks.get(task_id)
        if task is None:
            logger.info("update for unknown task %s: forwarded, never acknowledged", task_id)
            return UpdateOutcome.IGNORED
        key = status.uuid
        if key in task.uuids:
            logger.info("duplicate update %s for task %s: acknowledged again", key.hex(), task_id)
        elif is_terminal(task.state):
            logger.info("update for terminated task %s dropped (but acknowledged)", task_id)
        else:
            task.uuids.add(key)
            task.state = status.state
        return UpdateOutcome.ACKNOWLEDGE

    def _set_by_agent(
        self, task_ids: Iterator[str], state: int, reason: int, message: str, now: float
    ) -> None:
        for task_id in list(task_ids):
            status = mesos_pb2.TaskStatus(state=state)  # type: ignore[arg-type]
            status.task_id.value = task_id
            status.source = mesos_pb2.TaskStatus.SOURCE_AGENT
            status.reason = reason  # type: ignore[assignment]
            status.message = message
            status.agent_id.value = self.agent_id
            status.executor_id.value = self.executor_id
            status.uuid = uuid.uuid4().bytes
            status.timestamp = now
            self._add(status)
            self._tasks[task_id].state = state

    def fail_unfinished(self, state: int, reason: int, message: str, now: float) -> None:
        """The executor is gone: every task not terminal gets ``state`` from the agent."""
        unfinished = (i for i, task in self._tasks.items() if not is_terminal(task.state))
        self._set_by_agent(unfinished, state, reason, message, now)

    def lose_unlisted_staging(self, subscribe: executor_pb2.Call.Subscribe, now: float) -> None:
        """A re-SUBSCRIBE that does not list a task still ``TASK_STAGING``: it is
        ``TASK_LOST`` (``REASON_AGENT_RESTARTED``), as in ``Slave::subscribe``."""
        listed = {task.task_id.value for task in subscribe.unacknowledged_tasks}
        lost = (
            i
            for i, task in self._tasks.items()
            if task.state == mesos_pb2.TASK_STAGING and i not in listed
        )
        self._set_by_agent(
            lost,
            mesos_pb2.TASK_LOST,
            mesos_pb2.TaskStatus.REASON_AGENT_RESTARTED,
            "Task launched during agent restart",
            now,
        )
