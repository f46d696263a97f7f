"""Liveness: the stalled-stream deadline and the opt-in last-resort process-group kill."""

from __future__ import annotations

import pathlib
import signal
import sys
import textwrap

import pytest
import trio
import trio.testing

import trio_mesos
from trio_mesos.testing import FakeAgent
from trio_mesos.v1 import executor_pb2

from .helpers import Recorder, driver_options


async def test_a_stalled_stream_counts_as_lost(autojump_clock: trio.testing.MockClock) -> None:
    executor = Recorder()
    async with FakeAgent(checkpoint=True, heartbeat_interval=None) as agent:
        config = agent.executor_config(checkpoint=True, subscription_backoff_max=2.0)
        options = driver_options(agent, config=config, stream_idle_timeout=60.0)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await executor.wait_for("registered")
            start = trio.current_time()
            await agent.stall()
            await executor.wait_for("disconnected")
            assert trio.current_time() - start == pytest.approx(60.0, abs=0.1)
            await executor.wait_for("reregistered")
            assert driver.statistics().subscriptions == 2
            driver.stop()


async def test_agent_heartbeats_keep_a_quiet_stream_alive(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent(checkpoint=True, heartbeat_interval=30.0) as agent:
        config = agent.executor_config(checkpoint=True)
        options = driver_options(agent, config=config, stream_idle_timeout=45.0)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await trio.sleep(600)
            assert "disconnected" not in executor.names()
            assert driver.statistics().subscriptions == 1
            driver.stop()


EXECUTOR = textwrap.dedent(
    """
    import subprocess, sys, time
    import trio, trio_mesos

    class Stuck(trio_mesos.Executor):
        async def registered(self, driver, *args):
            # a child in our process group, as a task would be
            child = subprocess.Popen(["sleep", "60"])
            driver.send_framework_message(str(child.pid).encode())

        async def shutdown(self, driver):
            time.sleep(60)  # blocks the event loop: only the last resort can end this

    async def main():
        async with trio_mesos.open_executor_driver(
            Stuck(), kill_process_group_after_grace=True
        ) as driver:
            await driver.join()

    trio.run(main)
    """
)


async def test_the_last_resort_kills_the_process_group_after_the_grace(
    tmp_path: pathlib.Path,
) -> None:
    script = tmp_path / "stuck_executor.py"
    script.write_text(EXECUTOR)
    # G = 3 s: the driver's bound is G - 1 = 2 s, the process group's kill G
    async with FakeAgent(shutdown_grace_period=3.0) as agent:
        await agent.listen_tcp()
        async with agent.spawn_executor([sys.executable, str(script)]) as process:
            with trio.fail_after(30):
                await agent.wait_subscribed()
                await agent.wait_call(executor_pb2.Call.MESSAGE)
                child = int(agent.messages[0])
                start = trio.current_time()
                await agent.shutdown()
                returncode = await process.wait()
            elapsed = trio.current_time() - start
    assert returncode == -signal.SIGKILL
    assert 2.9 <= elapsed < 12
    with trio.fail_after(10):
        while alive(child):  # noqa: ASYNC110 - a real process: init reaps the orphan soon
            await trio.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
