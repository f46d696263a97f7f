"""Tests of the quickstart's SleepExecutor against the FakeAgent, in virtual time.

Shown on the "Testing your executor" page; run by the project's test suite
(tests/test_docs.py collects these functions), so the page cannot go stale.
Needs pytest and pytest-trio (``trio_mode = true``), and quickstart.py
importable.
"""

import trio
import trio.testing
from quickstart import SleepExecutor, make_task

import trio_mesos
from trio_mesos.testing import AckPolicy, FakeAgent
from trio_mesos.v1 import executor_pb2, mesos_pb2

RUNNING, FINISHED, KILLED = mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED, mesos_pb2.TASK_KILLED


async def test_a_task_sleeps_then_finishes(autojump_clock: trio.testing.MockClock):
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(SleepExecutor(), **agent.driver_options()):
            start = trio.current_time()
            await agent.launch(make_task("nap", seconds=600))
            finished = await agent.wait_for_update("nap", FINISHED)
            # ten virtual minutes, no real waiting
            assert trio.current_time() - start == 600
    assert finished.message == "slept 600 s"
    assert [u.state for u in agent.updates("nap")] == [RUNNING, FINISHED]


async def test_kill_cancels_the_work_and_reports_killed(autojump_clock: trio.testing.MockClock):
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(SleepExecutor(), **agent.driver_options()):
            await agent.launch(make_task("forever", seconds=3600))
            await agent.wait_for_update("forever", RUNNING)
            await agent.kill("forever")
            await agent.wait_for_update("forever", KILLED)
    assert agent.task_state("forever") == KILLED


class WatchedSleepExecutor(SleepExecutor):
    """The executor under test, plus an event the test can wait for."""

    def __init__(self):
        self.reregistered_event = trio.Event()

    async def reregistered(self, driver, agent_info):
        self.reregistered_event.set()


async def test_updates_made_during_an_agent_restart_are_not_lost(
    autojump_clock: trio.testing.MockClock,
):
    executor = WatchedSleepExecutor()
    # A checkpointing framework: the executor must survive the agent's restart.
    async with FakeAgent(checkpoint=True) as agent:
        async with trio_mesos.open_executor_driver(executor, **agent.driver_options()) as driver:
            await agent.launch(make_task("nap", seconds=3))
            await agent.wait_for_update("nap", RUNNING)

            # The agent crashes: 5 s refusing connections, then 2 s answering
            # 503, then it waits for the executor to re-subscribe. The task
            # finishes at t=3, while the agent is down.
            await agent.restart(down=5, recovering=2)
            await executor.reregistered_event.wait()

            # The TASK_FINISHED made during the outage travelled in the
            # re-SUBSCRIBE (its unacknowledged_updates), as Mesos requires.
            assert FINISHED in [u.state for u in agent.unacknowledged_updates_seen]
            stats = driver.statistics()
            assert (stats.subscriptions, stats.reconnects) == (2, 1)
        # Leaving the block waited for the agent's acknowledgements.
        assert driver.statistics().unacknowledged_updates == 0
    assert [u.state for u in agent.updates("nap")][-1] == FINISHED
    assert agent.task_state("nap") == FINISHED


async def test_updates_are_retried_until_accepted(autojump_clock: trio.testing.MockClock):
    async with FakeAgent(ack_policy=AckPolicy.MANUAL) as agent:
        async with trio_mesos.open_executor_driver(
            SleepExecutor(), **agent.driver_options()
        ) as driver:
            # The next two UPDATE calls get 503, as from a recovering agent.
            agent.fail_next(2, 503, "Agent has not finished recovery",
                            calls=[executor_pb2.Call.UPDATE])
            await agent.launch(make_task("nap", seconds=1))
            await agent.wait_for_update("nap", FINISHED)
            updates = [c for c in agent.calls if c.type == executor_pb2.Call.UPDATE]
            assert [c.status_code for c in updates][:3] == [503, 503, 202]
            # MANUAL: nothing is acknowledged until the test says so.
            assert driver.statistics().unacknowledged_updates == 2
            assert await agent.ack_all() == 2
