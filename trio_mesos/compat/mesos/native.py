"""``mesos.native`` of the old Mesos Python bindings: ``MesosExecutorDriver``."""

from __future__ import annotations

import logging
from typing import Any, Final

from ..._executor import Executor as _TrioExecutor
from ..._status import Status
from .._engine import LegacyCallbacks, ThreadedDriver
from . import interface, mesos_pb2

__all__ = ["MesosExecutorDriver"]

log: Final = logging.getLogger("trio_mesos.compat")


class MesosExecutorDriver(ThreadedDriver, interface.ExecutorDriver):
    """The bindings' executor driver, on trio_mesos; every method returns a ``mesos_pb2.DRIVER_*``.

    The environment is read here (a :class:`~trio_mesos.ConfigError` names
    what is wrong). ``start()`` runs the driver in a background thread;
    callbacks run one at a time on a worker thread; every method may be
    called from any thread; ``join()`` and ``run()`` block the calling
    thread until the end (``DRIVER_STOPPED`` or ``DRIVER_ABORTED``).

    Args:
        executor: the :class:`~trio_mesos.compat.mesos.interface.Executor`.
        kill_process_group_after_grace: SIGKILL the process group at the end
            of the shutdown grace period, as libmesos does (not under
            ``MESOS_LOCAL``).
        options: further keyword arguments of :func:`trio_mesos.open_executor_driver`.
    """

    def __init__(self, executor: Any, *, kill_process_group_after_grace: bool = True,
                 **options: Any) -> None:
        super().__init__(kill_process_group_after_grace=kill_process_group_after_grace, **options)
        self.executor = executor

    def _make_executor(self) -> _TrioExecutor:
        return LegacyCallbacks(self, self.executor, convert=lambda message: message,
                               data=bytes, groups=False)

    def _callback_failed(self, name: str, exc: Exception) -> None:
        if name != "error":  # as the bindings: an exception in error() is only logged
            super()._callback_failed(name, exc)

    def sendStatusUpdate(self, status: mesos_pb2.TaskStatus) -> Status:
        """Send a status update (kept and re-sent until acknowledged); any thread.

        Raises:
            LocalProtocolError: ``TASK_STAGING``, an unknown task, or another
                update the agent would refuse.
        """
        return self._send(lambda driver: driver.send_status_update(status))

    def sendFrameworkMessage(self, data: bytes) -> Status:
        """Send a message to the scheduler (best effort); any thread."""
        raw = bytes(data)
        return self._send(lambda driver: driver.send_framework_message(raw))
