"""The threaded driver under both shims: trio in one thread, callbacks in another.

Legacy executors are written for blocking drivers: ``start()`` returns at
once, callbacks are plain functions called one at a time, ``join()`` blocks
the calling thread, and driver methods are called from any thread (a thread
per task is the classic style). :class:`ThreadedDriver` gives them that:

* ``start()`` runs :func:`trio_mesos.open_executor_driver` in a background
  thread (``trio.run``) with the process-group kill after the shutdown grace
  armed, as the C++ libraries and pymesos do (not under ``MESOS_LOCAL``);
* the driver's callbacks only hand each call to one **callback thread**,
  which runs them one at a time in event order; so a callback that blocks
  never stalls the driver's own work (ACKs, heartbeats, reconnects go on).
  The ``shutdown`` callback is the exception: the driver waits for it (and
  for the callbacks queued before it), so that its updates still go out
  during the grace period;
* ``stop()``, ``abort()``, ``sendStatusUpdate`` and ``sendFrameworkMessage``
  call the trio driver's thread-safe methods;
* ``join()`` blocks until the trio thread ends and returns the final Status.

A thread cannot be cancelled: when the driver's end bound passes, a callback
still running is abandoned (the callback thread is a daemon), and the
process-group kill makes sure the executor exits. Once the end is decided,
queued callbacks never start.

What a shim must provide: :meth:`ThreadedDriver._make_executor` (the
``trio_mesos.Executor`` whose callbacks call :meth:`ThreadedDriver._post`)
and :meth:`ThreadedDriver._callback_failed`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, Final

import trio

from .._config import ExecutorConfig
from .._driver import ExecutorDriver
from .._executor import Executor
from .._open import open_executor_driver
from .._status import Status

__all__ = ["ThreadedDriver"]

log: Final = logging.getLogger("trio_mesos.compat")

_Job = tuple[str, Callable[..., object], tuple[Any, ...], "Callable[[], None] | None"]


class ThreadedDriver:
    """A blocking driver: trio_mesos in a background thread, callbacks on another.

    Args:
        kill_process_group_after_grace: SIGKILL the process group at the end
            of the shutdown grace period (default True, as the legacy drivers).
        options: more keyword arguments of :func:`trio_mesos.open_executor_driver`.
    """

    def __init__(self, *, kill_process_group_after_grace: bool = True, **options: Any) -> None:
        config = options.pop("config", None)
        if config is None:
            config = ExecutorConfig.from_environ(dict(os.environ))
            # As the C++ library: the token must not leak into the tasks' environment.
            os.environ.pop("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", None)
        self.config: ExecutorConfig = config
        self._options = dict(options, config=config,
                             kill_process_group_after_grace=kill_process_group_after_grace)
        self._lock = threading.Lock()
        self._status = Status.DRIVER_NOT_STARTED
        self._driver: ExecutorDriver | None = None
        self._requested: Callable[[ExecutorDriver], Status] | None = None  # before subscribed
        self._trio_thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = threading.Event()  # callbacks never start once set
        self._done = threading.Event()
        #: What ended the driver abnormally: a callback's exception, or the
        #: driver's own (e.g. ``AgentUnavailableError``: no agent to talk to).
        self.failure: BaseException | None = None

    # -- what a shim provides ----------------------------------------------------

    def _make_executor(self) -> Executor:
        raise NotImplementedError

    def _callback_failed(self, name: str, exc: Exception) -> None:
        """A callback raised ``exc`` (logged already); by default the driver aborts."""
        self.failure = exc
        self._closed.set()
        self.abort()

    # -- the legacy lifecycle ------------------------------------------------------

    def start(self) -> Status:
        """Start the driver in a background thread; returns ``DRIVER_RUNNING`` at once.

        A driver starts once; later calls return its current status.
        """
        with self._lock:
            if self._trio_thread is not None:
                return self._status
            self._status = Status.DRIVER_RUNNING
            self._trio_thread = threading.Thread(
                target=self._trio_main, name="trio_mesos driver", daemon=True
            )
            worker = threading.Thread(target=self._work, name="trio_mesos callbacks", daemon=True)
        worker.start()
        self._trio_thread.start()
        return Status.DRIVER_RUNNING

    def stop(self) -> Status:
        """Stop gracefully (pending ACKs drain); returns ``DRIVER_STOPPED``. Any thread."""
        return self._request(ExecutorDriver.stop, Status.DRIVER_STOPPED)

    def abort(self) -> Status:
        """Abort now; returns ``DRIVER_ABORTED``. Any thread."""
        return self._request(ExecutorDriver.abort, Status.DRIVER_ABORTED)

    def join(self) -> Status:
        """Block until the driver has ended; return ``DRIVER_STOPPED`` or ``DRIVER_ABORTED``.

        ``DRIVER_NOT_STARTED`` at once if :meth:`start` was never called.
        """
        if self._trio_thread is None:
            return self._status
        self._done.wait()
        return self._status

    def run(self) -> Status:
        """:meth:`start` then :meth:`join`."""
        self.start()
        return self.join()

    def _request(self, method: Callable[[ExecutorDriver], Status], answer: Status) -> Status:
        with self._lock:
            driver = self._driver
            if driver is None:
                if self._status is not Status.DRIVER_RUNNING:
                    return self._status
                if self._requested is None:  # the first request wins
                    self._requested = method
                return answer
        return method(driver)

    def _send(self, send: Callable[[ExecutorDriver], Status]) -> Status:
        driver = self._driver
        return self._status if driver is None else send(driver)

    # -- the trio thread -------------------------------------------------------------

    def _trio_main(self) -> None:
        try:
            trio.run(self._run)
        except BaseException as exc:  # the driver's failure, kept for join()
            log.error("the executor driver failed: %s", exc, exc_info=exc)
            if self.failure is None:
                self.failure = exc
            self._status = Status.DRIVER_ABORTED
        finally:
            self._closed.set()
            self._jobs.put(None)
            self._done.set()

    async def _run(self) -> None:
        async with open_executor_driver(self._make_executor(), **self._options) as driver:
            self._bind(driver)
            status = await driver.join()
            self._closed.set()
            self._status = status

    def _bind(self, driver: ExecutorDriver) -> None:
        """The driver is subscribed (on the trio thread; the first callback may come first)."""
        with self._lock:
            if self._driver is not None:
                return
            self._driver = driver
            requested = self._requested
        if requested is not None:
            requested(driver)

    # -- the callback thread ------------------------------------------------------------

    def _post(self, driver: ExecutorDriver, name: str, fn: Callable[..., object],
              *args: Any) -> None:
        """Queue ``fn(*args)`` for the callback thread (called on the trio thread)."""
        self._bind(driver)
        self._jobs.put((name, fn, args, None))

    async def _post_and_wait(self, driver: ExecutorDriver, name: str,
                             fn: Callable[..., object], *args: Any) -> None:
        """Queue ``fn(*args)`` and wait until the callback thread has run it."""
        self._bind(driver)
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def finished() -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        self._jobs.put((name, fn, args, finished))
        await done.wait()  # cancelled at the driver's bound: the thread is abandoned

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            name, fn, args, finished = job
            try:
                if not self._closed.is_set():
                    fn(*args)
            except Exception as exc:
                log.exception("the executor's %s callback raised", name)
                self._callback_failed(name, exc)
            finally:
                if finished is not None:
                    finished()


class LegacyCallbacks(Executor):
    """The trio_mesos executor that hands each event to a legacy executor's callback.

    Args:
        shim: the driver the legacy callbacks receive.
        legacy: the legacy executor (camelCase callbacks).
        convert: a message as the legacy callbacks take it (dict or protobuf).
        data: a framework message's bytes as ``frameworkMessage`` takes them.
        groups: LAUNCH_GROUP calls ``launchTaskGroup`` with a list of tasks
            (pymesos); otherwise ``launchTask`` once per task.
    """

    def __init__(
        self,
        shim: ThreadedDriver,
        legacy: Any,
        *,
        convert: Callable[[Any], Any],
        data: Callable[[bytes], Any],
        groups: bool,
    ) -> None:
        self._shim = shim
        self._legacy = legacy
        self._convert = convert
        self._data = data
        self._groups = groups

    def _call(self, driver: ExecutorDriver, name: str, *args: Any) -> None:
        self._shim._post(driver, name, getattr(self._legacy, name), self._shim, *args)

    async def registered(self, driver: ExecutorDriver, executor_info: Any, framework_info: Any,
                         agent_info: Any) -> None:
        c = self._convert
        self._call(driver, "registered", c(executor_info), c(framework_info), c(agent_info))

    async def reregistered(self, driver: ExecutorDriver, agent_info: Any) -> None:
        self._call(driver, "reregistered", self._convert(agent_info))

    async def disconnected(self, driver: ExecutorDriver) -> None:
        self._call(driver, "disconnected")

    async def launch_task(self, driver: ExecutorDriver, task: Any) -> None:
        self._call(driver, "launchTask", self._convert(task))

    async def launch_task_group(self, driver: ExecutorDriver, task_group: Any) -> None:
        if self._groups:
            self._call(driver, "launchTaskGroup", [self._convert(t) for t in task_group.tasks])
        else:
            for task in task_group.tasks:
                self._call(driver, "launchTask", self._convert(task))

    async def kill_task(self, driver: ExecutorDriver, task_id: Any, kill_policy: Any) -> None:
        self._call(driver, "killTask", self._convert(task_id))

    async def framework_message(self, driver: ExecutorDriver, data: bytes) -> None:
        self._call(driver, "frameworkMessage", self._data(data))

    async def error(self, driver: ExecutorDriver, message: str) -> None:
        self._call(driver, "error", message)

    async def shutdown(self, driver: ExecutorDriver) -> None:
        await self._shim._post_and_wait(driver, "shutdown", self._legacy.shutdown, self._shim)
