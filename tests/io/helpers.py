"""Helpers for driver tests: tasks, statuses, a recording executor."""

from __future__ import annotations

import random
from typing import Any

import trio

import trio_mesos
from trio_mesos.v1 import mesos_pb2


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
    """open_executor_driver keyword arguments for a FakeAgent over memory streams."""
    options: dict[str, Any] = {
        "config": agent.executor_config(),
        "open_stream": agent.connect,
        "rng": random.Random(1234),
    }
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
