"""Helpers shared by the driver tests: a time bound, tasks, statuses, a recording executor."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

import trio_mesos
from trio_mesos.v1 import mesos_pb2

#: Virtual seconds after which a test fails instead of hanging (a driver that
#: waits for something that never comes would otherwise block forever).
LIMIT = 3600.0

_F = TypeVar("_F", bound=Callable[..., Awaitable[None]])


def bounded(fn: _F) -> _F:
    """Run the test under ``trio.fail_after(LIMIT)`` (virtual time)."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> None:
        with trio.fail_after(LIMIT):
            await fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def make_task(task_id: str, *, command: str | None = None) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name=f"task {task_id}")
    task.task_id.value = task_id
    task.agent_id.value = "fake-agent-S0"
    if command is not None:
        task.command.value = command
    return task


def status(task_id: str, state: int, message: str = "") -> mesos_pb2.TaskStatus:
    result = mesos_pb2.TaskStatus(state=state)  # type: ignore[arg-type]
    result.task_id.value = task_id
    if message:
        result.message = message
    return result


def driver_options(agent: Any, **overrides: Any) -> dict[str, Any]:
    """``agent.driver_options()`` (seeded 1234) with ``overrides`` of any argument."""
    options: dict[str, Any] = agent.driver_options(seed=1234)
    options.update(overrides)
    return options


class Recorder(trio_mesos.Executor):
    """Records every callback as (name, args); lets tests wait for one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._changed = trio.Event()

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        self._changed.set()
        self._changed = trio.Event()

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    async def wait_for(self, name: str, count: int = 1) -> tuple[Any, ...]:
        """Wait until callback ``name`` ran ``count`` times; return its last args."""
        while self.names().count(name) < count:
            await self._changed.wait()
        return [args for n, args in self.calls if n == name][-1]

    async def registered(self, driver, executor_info, framework_info, agent_info):  # type: ignore[no-untyped-def]
        self._record("registered", executor_info, framework_info, agent_info)

    async def reregistered(self, driver, agent_info):  # type: ignore[no-untyped-def]
        self._record("reregistered", agent_info)

    async def disconnected(self, driver):  # type: ignore[no-untyped-def]
        self._record("disconnected")

    async def launch_task(self, driver, task):  # type: ignore[no-untyped-def]
        self._record("launch_task", task)

    async def launch_task_group(self, driver, task_group):  # type: ignore[no-untyped-def]
        self._record("launch_task_group", task_group)

    async def kill_task(self, driver, task_id, kill_policy):  # type: ignore[no-untyped-def]
        self._record("kill_task", task_id, kill_policy)

    async def acknowledged(self, driver, task_id, uuid):  # type: ignore[no-untyped-def]
        self._record("acknowledged", task_id, uuid)

    async def framework_message(self, driver, data):  # type: ignore[no-untyped-def]
        self._record("framework_message", data)

    async def shutdown(self, driver):  # type: ignore[no-untyped-def]
        self._record("shutdown")

    async def error(self, driver, message):  # type: ignore[no-untyped-def]
        self._record("error", message)
