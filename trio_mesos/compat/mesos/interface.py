"""``mesos.interface`` of the old Mesos Python bindings: the executor's callbacks.

``from trio_mesos.compat.mesos.interface import mesos_pb2`` gives the
messages under their old names (:mod:`trio_mesos.compat.mesos.mesos_pb2`).
"""

from __future__ import annotations

from typing import Any

from . import mesos_pb2

__all__ = ["Executor", "ExecutorDriver", "mesos_pb2"]


class ExecutorDriver:
    """The driver's interface, as ``mesos.interface.ExecutorDriver`` (for mocks in tests)."""

    def start(self) -> Any:
        """Start the driver."""

    def stop(self) -> Any:
        """Stop the driver."""

    def abort(self) -> Any:
        """Abort the driver."""

    def join(self) -> Any:
        """Wait for the driver's end."""

    def run(self) -> Any:
        """Start and join."""

    def sendStatusUpdate(self, status: mesos_pb2.TaskStatus) -> Any:
        """Send a status update."""

    def sendFrameworkMessage(self, data: bytes) -> Any:
        """Send a message to the scheduler."""


class Executor:
    """Base class of executors; override the callbacks you need.

    Each callback is a plain function called on the driver's callback thread,
    one at a time, in the order of the agent's events, with protobuf messages
    (:mod:`mesos_pb2`). An exception raised by a callback is logged and aborts
    the driver (one raised by :meth:`error` is only logged), as the bindings did.
    """

    def registered(self, driver: ExecutorDriver, executorInfo: mesos_pb2.ExecutorInfo,
                   frameworkInfo: mesos_pb2.FrameworkInfo,
                   slaveInfo: mesos_pb2.AgentInfo) -> None:
        """The driver subscribed for the first time."""

    def reregistered(self, driver: ExecutorDriver, slaveInfo: mesos_pb2.AgentInfo) -> None:
        """The driver subscribed again (agent restarted, with checkpointing)."""

    def disconnected(self, driver: ExecutorDriver) -> None:
        """The connection to the agent was lost (once per outage)."""

    def launchTask(self, driver: ExecutorDriver, task: mesos_pb2.TaskInfo) -> None:
        """A task to run; also called once per task of a task group."""

    def killTask(self, driver: ExecutorDriver, taskId: mesos_pb2.TaskID) -> None:
        """Kill the task and send its ``TASK_KILLED``."""

    def frameworkMessage(self, driver: ExecutorDriver, message: bytes) -> None:
        """A message from the scheduler (bytes)."""

    def shutdown(self, driver: ExecutorDriver) -> None:
        """SHUTDOWN, or the agent lost for good: kill every task and report them."""

    def error(self, driver: ExecutorDriver, message: str) -> None:
        """An error from the agent or the driver."""
