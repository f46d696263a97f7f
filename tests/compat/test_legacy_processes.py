"""Legacy-style executors (examples/) as real processes under the FakeAgent.

Each example is written for pymesos or for the old Mesos bindings, with a
thread per task, and changed only in its imports. Started the way an agent
starts an executor (its own process group, the agent's environment), each
runs tasks, is killed, echoes a framework message, shuts down and exits 0;
with checkpointing it rides out an agent restart without losing an update.

Real time and real processes: wide bounds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from trio_mesos.testing import FakeAgent
from trio_mesos.v1 import executor_pb2, mesos_pb2

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
PROGRAMS = ["pymesos_executor", "mesos_bindings_executor"]
LIMIT = 60.0

RUNNING, FINISHED = mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED
KILLED, FAILED = mesos_pb2.TASK_KILLED, mesos_pb2.TASK_FAILED


def shell_task(task_id: str, command: str) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name=task_id, data=command.encode())
    task.task_id.value = task_id
    task.agent_id.value = "fake-agent-S0"
    return task


def states(agent: FakeAgent, task_id: str) -> list[int]:
    """The task's states as the agent took them (an update re-sent with its uuid once)."""
    seen: dict[bytes, int] = {}
    for update in agent.updates(task_id):
        seen.setdefault(update.uuid, update.state)
    return list(seen.values())


def argv(program: str) -> list[str]:
    return [sys.executable, str(EXAMPLES / f"{program}.py")]


@pytest.mark.parametrize("program", PROGRAMS)
async def test_launch_kill_message_shutdown(program: str) -> None:
    with trio.fail_after(LIMIT):
        async with FakeAgent(shutdown_grace_period=5) as agent:
            async with agent.spawn_executor(argv(program)) as process:
                await agent.wait_subscribed()
                await agent.launch(shell_task("ok", "true"))
                await agent.launch(shell_task("bad", "exit 3"))
                await agent.launch(shell_task("long", "sleep 60"))
                await agent.wait_terminal("ok", "bad")
                await agent.wait_for_update("long", RUNNING)
                await agent.kill("long")
                await agent.wait_terminal("long")
                await agent.message(b"ping")
                await agent.wait_call(executor_pb2.Call.MESSAGE)
                await agent.launch(shell_task("last", "sleep 60"))
                await agent.wait_for_update("last", RUNNING)
                await agent.shutdown()
                assert await process.wait() == 0
    assert states(agent, "ok") == [RUNNING, FINISHED]
    assert states(agent, "bad") == [RUNNING, FAILED]
    assert agent.updates("bad")[-1].message == "exit status 3"
    assert states(agent, "long") == [RUNNING, KILLED]
    assert states(agent, "last") == [RUNNING, KILLED]
    assert agent.messages == [b"echo: ping"]
    assert agent.pending_acks == []


@pytest.mark.parametrize("program", PROGRAMS)
async def test_agent_restart_with_checkpointing_loses_no_update(program: str) -> None:
    with trio.fail_after(LIMIT):
        async with FakeAgent(checkpoint=True, shutdown_grace_period=5) as agent:
            async with agent.spawn_executor(argv(program)) as process:
                await agent.wait_subscribed()
                await agent.launch(shell_task("through", "sleep 1"))
                await agent.wait_for_update("through", RUNNING)
                # The task ends while the agent is down: its update must wait, then go.
                await agent.restart(down=2.0, recovering=0.5)
                await agent.wait_subscribed(2)
                await agent.wait_terminal("through")
                await agent.launch(shell_task("after", "true"))
                await agent.wait_terminal("after")
                await agent.shutdown()
                assert await process.wait() == 0
    assert states(agent, "through") == [RUNNING, FINISHED]
    assert states(agent, "after") == [RUNNING, FINISHED]
    assert agent.last_subscribe is not None
    assert agent.pending_acks == []


LINGERING = """
import sys, threading
from trio_mesos.compat.{module} import {names}

class Stuck({base}):
    def shutdown(self, driver):
        threading.Event().wait()  # a callback that never returns

status = {driver}(Stuck()).run()
print("run() returned", int(status), flush=True)
threading.Event().wait()  # and a process that would linger after it
"""
STYLES = {
    "pymesos": {"module": "pymesos", "names": "Executor, MesosExecutorDriver",
                "base": "Executor", "driver": "MesosExecutorDriver"},
    "mesos": {"module": "mesos", "names": "interface, native",
              "base": "interface.Executor", "driver": "native.MesosExecutorDriver"},
}


@pytest.mark.parametrize("style", STYLES)
async def test_a_stuck_shutdown_callback_is_abandoned_and_the_group_killed(style: str) -> None:
    program = LINGERING.format(**STYLES[style])
    grace = 2.0
    with trio.fail_after(LIMIT):
        async with FakeAgent(shutdown_grace_period=grace) as agent:
            async with agent.spawn_executor([sys.executable, "-c", program]) as process:
                await agent.wait_subscribed()
                await agent.shutdown()
                started = trio.current_time()
                code = await process.wait()
                took = trio.current_time() - started
                output = process.stdout_path.read_text()
    # run() returned at the driver's bound (grace - 1 s); the kill came at the grace.
    assert "run() returned 4" in output
    assert code == -9
    assert grace - 0.5 < took < grace + 10
