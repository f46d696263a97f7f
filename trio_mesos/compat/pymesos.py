"""A drop-in replacement for pymesos 0.3.15's executor side.

An executor written for pymesos runs after changing only its import::

    from trio_mesos.compat.pymesos import Executor, MesosExecutorDriver, encode_data

Same names, signatures and threading model as ``pymesos.MesosExecutorDriver``
and ``pymesos.Executor``: ``start()`` runs the driver in a background thread;
callbacks (camelCase, with pymesos's arguments) run one at a time in event
order on one worker thread; messages are dicts shaped as the agent's own JSON
(``json.loads`` of what the agent writes), or ``addict.Dict`` with
``use_addict=True`` (``pip install 'trio-mesos[addict]'``); status updates
are given as such dicts; ``frameworkMessage`` gets, and
``sendFrameworkMessage`` takes, base64 strings (:func:`encode_data`).

Underneath is :func:`trio_mesos.open_executor_driver`, so pymesos's defects
are gone while its API stays (the migration guide lists each difference):
updates are kept until acknowledged and re-sent on re-subscription;
``MESOS_CHECKPOINT=0`` means no checkpointing; the recovery timeout and
backoff bound come from the agent's environment; ``abort()`` is not
``stop()``; a blocking callback does not stall ACKs and heartbeats; the
caller's status dict is not modified and every update gets a fresh uuid;
importing installs no signal handler and no log handler; lifecycle methods
return a :class:`trio_mesos.Status`. An exception raised by a callback is
logged, aborts the driver, and is raised again by ``join()``/``run()``
(pymesos raised it in the main thread through its SIGINT handler).
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any, Final

from .._driver import ExecutorDriver
from .._executor import Executor as _TrioExecutor
from .._status import Status
from ._engine import LegacyCallbacks, ThreadedDriver
from ._json import message_to_dict, status_from_dict

__all__ = ["DAY", "Executor", "MesosExecutorDriver", "decode_data", "encode_data"]

#: pymesos's default ``timeout`` (a POSIX day, in seconds).
DAY: Final = 86400


def encode_data(data: bytes) -> str:
    """Bytes as the base64 text the agent's JSON carries (pymesos's helper)."""
    return binascii.b2a_base64(data).strip().decode("ascii")


def decode_data(data: str | bytes) -> bytes:
    """Base64 text back to bytes (pymesos's helper)."""
    return binascii.a2b_base64(data)


class Executor:
    """Base class of pymesos executors; override the callbacks you need.

    Each callback is a plain function called on the driver's callback thread,
    one at a time, in the order of the agent's events; the messages are dicts
    (or ``addict.Dict`` with ``use_addict=True``).
    """

    def registered(self, driver: MesosExecutorDriver, executorInfo: dict[str, Any],
                   frameworkInfo: dict[str, Any], agentInfo: dict[str, Any]) -> None:
        """The driver subscribed for the first time."""

    def reregistered(self, driver: MesosExecutorDriver, agentInfo: dict[str, Any]) -> None:
        """The driver subscribed again (agent restarted, with checkpointing)."""

    def disconnected(self, driver: MesosExecutorDriver) -> None:
        """The connection to the agent was lost (once per outage)."""

    def launchTask(self, driver: MesosExecutorDriver, task: dict[str, Any]) -> None:
        """LAUNCH: run the task (a ``TaskInfo`` dict)."""

    def launchTaskGroup(self, driver: MesosExecutorDriver,
                        task_infos: list[dict[str, Any]]) -> None:
        """LAUNCH_GROUP: run the group's tasks (a list of ``TaskInfo`` dicts)."""

    def killTask(self, driver: MesosExecutorDriver, taskId: dict[str, Any]) -> None:
        """KILL: kill the task (``{"value": ...}``) and send its ``TASK_KILLED``."""

    def frameworkMessage(self, driver: MesosExecutorDriver, message: str) -> None:
        """MESSAGE from the scheduler, as base64 text (:func:`decode_data`)."""

    def shutdown(self, driver: MesosExecutorDriver) -> None:
        """SHUTDOWN, or the agent lost for good: kill every task and report them."""

    def error(self, driver: MesosExecutorDriver, message: str) -> None:
        """An error from the agent or the driver."""


def _dict_class(use_addict: bool) -> Callable[[dict[str, Any]], Any]:
    if not use_addict:
        return dict
    try:
        from addict import Dict  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        raise ImportError(
            "use_addict=True needs the addict package: pip install 'trio-mesos[addict]'"
        ) from None
    return Dict  # type: ignore[no-any-return, unused-ignore]


class MesosExecutorDriver(ThreadedDriver):
    """pymesos's ``MesosExecutorDriver``, on trio_mesos.

    The environment is read here (``MESOS_FRAMEWORK_ID``, ...; a
    :class:`~trio_mesos.ConfigError` names what is wrong).

    Args:
        executor: the :class:`Executor`.
        use_addict: messages as ``addict.Dict`` instead of ``dict``.
        timeout: accepted for compatibility and not used: how long the agent
            may be away comes from ``MESOS_RECOVERY_TIMEOUT``, as the agent sets it.
        http_timeout: seconds the agent has to answer a call (pymesos: 10).
        kill_process_group_after_grace: SIGKILL the process group at the end
            of the shutdown grace period, as pymesos does (not under
            ``MESOS_LOCAL``).
        options: further keyword arguments of :func:`trio_mesos.open_executor_driver`.
    """

    def __init__(
        self,
        executor: Any,
        use_addict: bool = False,
        timeout: float = DAY,
        http_timeout: float = 10,
        *,
        kill_process_group_after_grace: bool = True,
        **options: Any,
    ) -> None:
        options.setdefault("call_timeout", http_timeout)
        super().__init__(kill_process_group_after_grace=kill_process_group_after_grace, **options)
        self.executor = executor
        self._dict_cls = _dict_class(use_addict)
        config = self.config
        self.framework_id: dict[str, str] = {"value": config.framework_id}
        self.executor_id: dict[str, str] = {"value": config.executor_id}
        self.checkpoint: bool = config.checkpoint
        self.local: bool = config.local
        self.grace_shutdown_period: float = config.shutdown_grace_period
        #: Dicts from the first SUBSCRIBED, as pymesos keeps them.
        self.executor_info: dict[str, Any] | None = None
        self.framework_info: dict[str, Any] | None = None

    @property
    def aborted(self) -> bool:
        """The driver is not running (never started, or ended)."""
        return self._status is not Status.DRIVER_RUNNING

    def _make_executor(self) -> _TrioExecutor:
        return _Callbacks(self)

    def join(self) -> Status:
        """Block until the driver has ended; return its final Status.

        Raises:
            Exception: what a callback raised (it aborted the driver), or why
                the driver could not run (e.g. ``AgentUnavailableError``).
        """
        status = super().join()
        if self.failure is not None:
            raise self.failure
        return status

    def sendStatusUpdate(self, status: dict[str, Any]) -> Status:
        """Send a status update given as a ``TaskStatus`` dict; any thread.

        ``task_id`` and ``state`` are needed; ``uuid``, ``timestamp``,
        ``source``, ``executor_id`` and ``agent_id`` are set by the driver
        (a fresh uuid each time); the dict is not modified. Kept and re-sent
        until the agent acknowledges it.

        Raises:
            LocalProtocolError: not a ``TaskStatus``, or one the agent would refuse.
        """
        update = status_from_dict(status)
        return self._send(lambda driver: driver.send_status_update(update))

    def sendFrameworkMessage(self, data: str | bytes) -> Status:
        """Send a message to the scheduler, given as base64 text (:func:`encode_data`)."""
        raw = decode_data(data)
        return self._send(lambda driver: driver.send_framework_message(raw))


class _Callbacks(LegacyCallbacks):
    def __init__(self, shim: MesosExecutorDriver) -> None:
        dict_cls = shim._dict_cls
        super().__init__(shim, shim.executor, convert=lambda m: dict_cls(message_to_dict(m)),
                         data=encode_data, groups=True)
        self._pymesos = shim

    async def registered(self, driver: ExecutorDriver, executor_info: Any, framework_info: Any,
                         agent_info: Any) -> None:
        if self._pymesos.executor_info is None:
            self._pymesos.executor_info = message_to_dict(executor_info)
            self._pymesos.framework_info = message_to_dict(framework_info)
        await super().registered(driver, executor_info, framework_info, agent_info)
