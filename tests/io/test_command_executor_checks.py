"""Health checks, checks and max_completion_time of the command executor (real processes).

Each test runs the executor in-process against the FakeAgent; the checks probe
real commands, a real HTTP server and a real TCP listener on 127.0.0.1, in
real time with wide bounds.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable

import pytest
import trio

from tests.io.executor_helpers import (
    FAILED,
    KILLED,
    RUNNING,
    STARTING,
    command_executor_info,
    killing_framework,
    policy,
    reasons,
    running,
    shell_task,
    states,
)
from trio_mesos.testing import FakeAgent
from trio_mesos.v1 import mesos_pb2

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux")

HEALTH = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
CHECK = "REASON_TASK_CHECK_STATUS_UPDATED"


def health_check(kind: str, *, port: int = 0, command: str = "") -> mesos_pb2.HealthCheck:
    """A fast health check: no delay, 0.15 s apart, 3 failures kill, no grace period."""
    check = mesos_pb2.HealthCheck(
        delay_seconds=0,
        interval_seconds=0.15,
        timeout_seconds=5,
        consecutive_failures=3,
        grace_period_seconds=0,
    )
    if kind == "COMMAND":
        check.type = mesos_pb2.HealthCheck.COMMAND
        check.command.value = command
    elif kind == "HTTP":
        check.type = mesos_pb2.HealthCheck.HTTP
        check.http.port = port
        check.http.path = "/health"
    else:
        check.type = mesos_pb2.HealthCheck.TCP
        check.tcp.port = port
    return check


def healthy_flags(agent: FakeAgent, task_id: str) -> list[bool]:
    return [u.healthy for u in agent.updates(task_id) if u.HasField("healthy")]


async def wait_until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while True:  # polling: the agent's records have nothing to wait on
            if predicate():
                return
            await trio.sleep(0.02)


class Switch:
    """A service that is up (healthy) until :meth:`fail` is called."""

    def __init__(self) -> None:
        self.up = True

    def fail(self) -> None:
        self.up = False


async def serve_http(switch: Switch, task_status: trio.TaskStatus[int]) -> None:
    """An HTTP server on 127.0.0.1: 302 to /ok, then 200 while up; 503 once down."""

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            request = b""
            while b"\r\n\r\n" not in request:
                data = await stream.receive_some(4096)
                if not data:
                    return
                request += data
            target = request.split(b" ", 2)[1]
            if target == b"/health":
                head = b"HTTP/1.1 302 Found\r\nLocation: /ok\r\n"
            elif switch.up:
                head = b"HTTP/1.1 200 OK\r\n"
            else:
                head = b"HTTP/1.1 503 Service Unavailable\r\n"
            await stream.send_all(head + b"Content-Length: 0\r\nConnection: close\r\n\r\n")

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def serve_tcp(switch: Switch, task_status: trio.TaskStatus[int]) -> None:
    """A TCP listener on 127.0.0.1, closed once the switch is off."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    task_status.started(listener.socket.getsockname()[1])
    async with listener:
        while switch.up:
            with trio.move_on_after(0.05):
                stream = await listener.accept()
                await stream.aclose()


@pytest.mark.parametrize("kind", ["COMMAND", "HTTP", "TCP"])
async def test_a_health_check_that_passes_then_fails_kills_the_task(
    tmp_path: pathlib.Path, kind: str
) -> None:
    switch = Switch()
    flag = tmp_path / "fail"
    async with trio.open_nursery() as servers, FakeAgent() as agent, running(agent, tmp_path):
        port = 0
        if kind == "HTTP":
            port = await servers.start(serve_http, switch)
        elif kind == "TCP":
            port = await servers.start(serve_tcp, switch)
        task = shell_task("web", "exec sleep 30", grace=0.5)
        task.health_check.CopyFrom(health_check(kind, port=port, command=f"test ! -e {flag}"))
        with trio.fail_after(20):
            await agent.launch(task)
            await wait_until(lambda: healthy_flags(agent, "web") == [True])
            await trio.sleep(0.5)  # more passing checks: no more updates
            assert healthy_flags(agent, "web") == [True]
            flag.touch()
            switch.fail()
            await agent.wait_terminal("web")
        servers.cancel_scope.cancel()
    updates = agent.updates("web")
    # STARTING, RUNNING, healthy, then exactly 3 counted failures, then the kill
    assert states(agent, "web") == [STARTING, RUNNING, RUNNING, RUNNING, RUNNING, RUNNING, KILLED]
    assert reasons(agent, "web")[2:6] == [HEALTH] * 4
    assert healthy_flags(agent, "web") == [True, False, False, False, False]
    assert updates[-1].healthy is False
    assert updates[-1].message == "Command terminated with signal Terminated"


async def test_health_check_failures_are_ignored_during_the_grace_period(
    tmp_path: pathlib.Path,
) -> None:
    check = health_check("COMMAND", command="exit 1")
    check.grace_period_seconds = 1.0
    check.consecutive_failures = 2
    task = shell_task("slow-start", "exec sleep 30")
    task.health_check.CopyFrom(check)
    async with FakeAgent(framework_info=killing_framework()) as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            await agent.launch(task)
            await agent.wait_for_update("slow-start", mesos_pb2.TASK_RUNNING)
            start = trio.current_time()
            await trio.sleep(0.7)
            # failures within the grace period, before any success: not counted
            assert healthy_flags(agent, "slow-start") == []
            await agent.wait_terminal("slow-start")
            elapsed = trio.current_time() - start
    assert 0.9 <= elapsed < 6.0
    assert healthy_flags(agent, "slow-start") == [False, False, False]
    # TASK_KILLING first (the framework has the capability): health checks kill politely
    assert states(agent, "slow-start")[-2:] == ["TASK_KILLING", KILLED]


async def test_check_status_on_every_update_and_an_update_when_it_changes(
    tmp_path: pathlib.Path,
) -> None:
    task = shell_task("checked", "echo started; sleep 0.8; exit 0")
    task.check.type = mesos_pb2.CheckInfo.COMMAND
    task.check.command.command.value = "exit 3"
    task.check.delay_seconds = 0
    task.check.interval_seconds = 0.1
    async with FakeAgent() as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            await agent.launch(task)
            await agent.wait_terminal("checked")
    updates = agent.updates("checked")
    assert states(agent, "checked") == [STARTING, RUNNING, RUNNING, "TASK_FINISHED"]
    for update in updates:
        assert update.check_status.type == mesos_pb2.CheckInfo.COMMAND
        assert update.check_status.HasField("command")
    # empty until the first result; then one update for the change, none for repeats
    assert not updates[1].check_status.command.HasField("exit_code")
    assert updates[2].reason == mesos_pb2.TaskStatus.REASON_TASK_CHECK_STATUS_UPDATED
    assert updates[2].check_status.command.exit_code == 3
    assert reasons(agent, "checked").count(CHECK) == 1


async def test_max_completion_time_fails_the_task_without_grace(tmp_path: pathlib.Path) -> None:
    task = shell_task("deadline", "trap '' TERM; sleep 1.5", grace=30)
    task.max_completion_time.nanoseconds = 500_000_000
    slow = shell_task("killed-first", "exec sleep 30")
    slow.max_completion_time.nanoseconds = 1_000_000_000
    async with FakeAgent(framework_info=killing_framework()) as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            start = trio.current_time()
            await agent.launch(task)
            await agent.launch(slow)
            await agent.wait_for_update("killed-first", mesos_pb2.TASK_RUNNING)
            await agent.kill("killed-first", policy(0.1))
            await agent.wait_terminal("deadline", "killed-first")
            elapsed = trio.current_time() - start
            await trio.sleep(1.2)  # past killed-first's limit: the KILL cancelled the timer
    assert 0.4 <= elapsed < 1.4  # SIGKILL at once, despite the 30 s policy and the trap
    assert states(agent, "deadline") == [STARTING, RUNNING, FAILED]  # no TASK_KILLING
    last = agent.updates("deadline")[-1]
    assert last.reason == mesos_pb2.TaskStatus.REASON_MAX_COMPLETION_TIME_REACHED
    assert last.message == "Command terminated with signal Killed"
    assert states(agent, "killed-first") == [STARTING, RUNNING, "TASK_KILLING", KILLED]


async def test_a_command_task_of_the_real_agent_shape_is_health_checked(
    tmp_path: pathlib.Path,
) -> None:
    # As realmesos's --health-check-cmd: the command executor's one task.
    task = shell_task("solo", "exec sleep 30")
    task.health_check.CopyFrom(health_check("COMMAND", command="true"))
    info = command_executor_info("solo")
    async with FakeAgent(executor_id="solo", executor_info=info) as agent:
        async with running(agent, tmp_path):
            with trio.fail_after(20):
                await agent.launch(task)
                await wait_until(lambda: healthy_flags(agent, "solo") == [True])
                await agent.kill("solo")
                await agent.wait_terminal("solo")
    assert states(agent, "solo") == [STARTING, RUNNING, RUNNING, KILLED]
    assert not agent.updates("solo")[-1].HasField("healthy")
