"""The quickstart's executor as a real process, started the way an agent starts it.

Shown on the "Testing your executor" page; run by the project's test suite.
Real time (a process cannot follow a MockClock): about a second.
"""

import sys

import quickstart
import trio
from quickstart import make_task

from trio_mesos.testing import FakeAgent
from trio_mesos.v1 import mesos_pb2


async def test_the_executor_process_runs_a_task_and_exits_on_shutdown():
    with trio.fail_after(30):
        async with FakeAgent(shutdown_grace_period=3) as agent:
            argv = [sys.executable, quickstart.__file__]
            async with agent.spawn_executor(argv) as process:
                await agent.wait_subscribed()
                await agent.launch(make_task("nap", seconds=0.1))
                await agent.wait_terminal("nap")
                await agent.shutdown()
                assert await process.wait() == 0
    assert agent.task_state("nap") == mesos_pb2.TASK_FINISHED
    assert process.environment["MESOS_FRAMEWORK_ID"] == agent.framework_id
