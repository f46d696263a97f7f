"""The executor callbacks: what the driver calls when the agent says something."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._proto import mesos_pb2

if TYPE_CHECKING:
    from ._driver import ExecutorDriver

__all__ = ["Executor"]

log = logging.getLogger("trio_mesos.executor")


class Executor:
    """Base class of executors: override the callbacks you need.

    Every callback is an ``async def`` that receives the driver first, as in
    ``org.apache.mesos.Executor``, and protobuf messages from
    :mod:`trio_mesos.v1`. The driver awaits them one at a time, in the order
    the agent sent the events, from one dispatcher task: while a callback
    runs, no other callback starts (the agent's stream is still read: a
    SHUTDOWN behind a slow callback is seen at once). Long work belongs in
    :meth:`ExecutorDriver.start_task`, not in a callback.

    A callback that raises ends the driver: the exception comes out of
    :func:`~trio_mesos.open_executor_driver` as itself. When the driver's end
    is decided, queued callbacks never start, and the one running is
    cancelled at the end's bound (see :class:`~trio_mesos.ExecutorDriver`).
    """

    async def registered(
        self,
        driver: ExecutorDriver,
        executor_info: mesos_pb2.ExecutorInfo,
        framework_info: mesos_pb2.FrameworkInfo,
        agent_info: mesos_pb2.AgentInfo,
    ) -> None:
        """The first SUBSCRIBED: the agent accepted this executor."""

    async def reregistered(self, driver: ExecutorDriver, agent_info: mesos_pb2.AgentInfo) -> None:
        """SUBSCRIBED again after an outage (agent restart with checkpointing)."""

    async def disconnected(self, driver: ExecutorDriver) -> None:
        """The connection to the agent was lost; called once per outage."""

    async def launch_task(self, driver: ExecutorDriver, task: mesos_pb2.TaskInfo) -> None:
        """LAUNCH: run ``task``. Report its states with ``driver.send_status_update``."""

    async def launch_task_group(
        self, driver: ExecutorDriver, task_group: mesos_pb2.TaskGroupInfo
    ) -> None:
        """LAUNCH_GROUP: run the group's tasks. By default, :meth:`launch_task` for each."""
        for task in task_group.tasks:
            await self.launch_task(driver, task)

    async def kill_task(
        self,
        driver: ExecutorDriver,
        task_id: mesos_pb2.TaskID,
        kill_policy: mesos_pb2.KillPolicy | None,
    ) -> None:
        """KILL: kill the task and report ``TASK_KILLED``.

        ``kill_policy`` is the KILL's own policy (which overrides the task's),
        or None. Work started with ``driver.start_task`` for this task is
        cancelled right after this returns (so this may note the policy for
        the work's cancellation handler to use).
        """

    async def acknowledged(self, driver: ExecutorDriver, task_id: str, uuid: bytes) -> None:
        """ACKNOWLEDGED: the agent has the update ``uuid`` of ``task_id`` for good."""

    async def framework_message(self, driver: ExecutorDriver, data: bytes) -> None:
        """MESSAGE: opaque bytes from the framework's scheduler."""

    async def shutdown(self, driver: ExecutorDriver) -> None:
        """SHUTDOWN (or the agent lost for good): kill every task and report them.

        Work started with ``driver.start_task`` has already been cancelled.
        After a SHUTDOWN, status updates still go out while the grace period
        lasts; when the agent is lost for good nothing reaches it any more
        (awaiting ``driver.update`` raises ``AgentUnavailableError`` at once).
        Either way the driver ends at the latest one second before the grace
        period runs out, cancelling this callback if it still runs.
        """

    async def error(self, driver: ExecutorDriver, message: str) -> None:
        """An error the agent or the driver reports (e.g. an UPDATE refused with 4xx).

        By default it is logged at ERROR level.
        """
        log.error("error from the Mesos agent: %s", message)
