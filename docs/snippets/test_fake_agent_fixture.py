"""The ``fake_agent`` fixture of trio_mesos.testing.pytest_plugin, in virtual time.

Shown on the "Testing your executor" page; run by the project's test suite,
whose top-level conftest.py enables the plugin by name. Needs pytest-trio
(``trio_mode = true``) and quickstart.py importable.
"""

import pytest
import trio
from quickstart import SleepExecutor, make_task

import trio_mesos
from trio_mesos.testing import AckPolicy
from trio_mesos.v1 import mesos_pb2

FINISHED = mesos_pb2.TASK_FINISHED


async def test_the_fixture_gives_a_running_agent(fake_agent, autojump_clock):
    executor = SleepExecutor()
    async with trio_mesos.open_executor_driver(executor, **fake_agent.driver_options()):
        start = trio.current_time()
        await fake_agent.launch(make_task("nap", seconds=60))
        status = await fake_agent.wait_for_update("nap", FINISHED)
        assert trio.current_time() - start == 60  # virtual time
    assert status.message == "slept 60 s"


@pytest.mark.fake_agent(ack_policy=AckPolicy.MANUAL, checkpoint=True)
async def test_a_marker_gives_the_agent_its_arguments(fake_agent, autojump_clock):
    assert fake_agent.checkpoint
    executor = SleepExecutor()
    async with trio_mesos.open_executor_driver(executor, **fake_agent.driver_options()) as driver:
        await fake_agent.launch(make_task("nap", seconds=1))
        await fake_agent.wait_for_update("nap", FINISHED)
        # MANUAL: nothing is acknowledged until the test says so.
        assert driver.statistics().unacknowledged_updates == 2
        assert await fake_agent.ack_all() == 2
