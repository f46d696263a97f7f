"""Helpers of the command executor's tests: tasks, executor infos, an in-process executor."""

from __future__ import annotations

import os
import pathlib
import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

import trio_mesos
from trio_mesos.command_executor import CommandExecutor, task_directory_name
from trio_mesos.testing import FakeAgent
from trio_mesos.v1 import mesos_pb2

TOKEN = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
#: The executor's own environment in the in-process tests.
BASE_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "BASE_ONLY": "from-the-executor",
    "OVERRIDDEN": "from-the-executor",
    TOKEN: "the-secret-token",
}
EXECUTOR = [sys.executable, "-m", "trio_mesos.command_executor"]
#: Sets the trap before saying "ready", so a kill after "ready" meets a SIGTERM-proof task.
STUBBORN = "trap '' TERM; echo ready; sleep 30"

STARTING, RUNNING, KILLING = "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"
FINISHED, FAILED, KILLED = "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED"


# -- helpers ------------------------------------------------------------------------


def shell_task(task_id: str, command: str, *, grace: float | None = None) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name=f"task {task_id}")
    task.task_id.value = task_id
    task.agent_id.value = "fake-agent-S0"
    task.command.value = command
    if grace is not None:
        task.kill_policy.grace_period.nanoseconds = int(grace * 1e9)
    return task


def argv_task(task_id: str, value: str, arguments: list[str]) -> mesos_pb2.TaskInfo:
    task = shell_task(task_id, value)
    task.command.shell = False
    task.command.arguments.extend(arguments)
    return task


def policy(grace: float) -> mesos_pb2.KillPolicy:
    result = mesos_pb2.KillPolicy()
    result.grace_period.nanoseconds = int(grace * 1e9)
    return result


def group(*tasks: mesos_pb2.TaskInfo) -> mesos_pb2.TaskGroupInfo:
    result = mesos_pb2.TaskGroupInfo()
    result.tasks.extend(tasks)
    return result


def states(agent: FakeAgent, task_id: str) -> list[str]:
    return [mesos_pb2.TaskState.Name(u.state) for u in agent.updates(task_id)]


def last_message(agent: FakeAgent, task_id: str) -> str:
    return agent.updates(task_id)[-1].message


def read_lines(path: pathlib.Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def task_dir(sandbox: pathlib.Path, task_id: str) -> pathlib.Path:
    """A task's own sandbox (every task but a command executor's one task)."""
    return sandbox / "tasks" / task_directory_name(task_id)


def output(sandbox: pathlib.Path, task_id: str, stream: str = "stdout") -> list[str]:
    return read_lines(task_dir(sandbox, task_id) / stream)


async def wait_for_line(path: pathlib.Path, line: str, seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while True:  # polling: files and /proc have nothing to wait on
            if line in read_lines(path):
                return
            await trio.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (zombies count as gone)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def wait_gone(pid: int, seconds: float = 5.0) -> None:
    with trio.fail_after(seconds):
        while True:
            if not alive(pid):
                return
            await trio.sleep(0.02)


def killing_framework() -> mesos_pb2.FrameworkInfo:
    info = mesos_pb2.FrameworkInfo(user="tester", name="killing-capable")
    info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE)
    return info


@asynccontextmanager
async def running(
    agent: FakeAgent, sandbox: pathlib.Path, **kwargs: object
) -> AsyncIterator[tuple[CommandExecutor, trio_mesos.ExecutorDriver]]:
    """The command executor in-process, over memory streams, with ``sandbox``."""
    kwargs.setdefault("environ", BASE_ENV)
    executor = CommandExecutor(**kwargs)  # type: ignore[arg-type]
    config = agent.executor_config(sandbox=str(sandbox), directory=str(sandbox))
    async with trio_mesos.open_executor_driver(
        executor, config=config, open_stream=agent.connect, rng=random.Random(0)
    ) as driver:
        yield executor, driver


def command_executor_info(executor_id: str) -> mesos_pb2.ExecutorInfo:
    """What a real agent sends a command executor: no type (src/slave/slave.cpp)."""
    info = mesos_pb2.ExecutorInfo(name=f"Command Executor (Task: {executor_id})")
    info.executor_id.value = executor_id
    info.framework_id.value = "fake-framework-0000"
    return info


def default_executor_info(executor_id: str = "default-executor") -> mesos_pb2.ExecutorInfo:
    info = mesos_pb2.ExecutorInfo(type=mesos_pb2.ExecutorInfo.DEFAULT)
    info.executor_id.value = executor_id
    info.framework_id.value = "fake-framework-0000"
    return info


def reasons(agent: FakeAgent, task_id: str) -> list[str]:
    return [
        mesos_pb2.TaskStatus.Reason.Name(u.reason) if u.HasField("reason") else ""
        for u in agent.updates(task_id)
    ]
