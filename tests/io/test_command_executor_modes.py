"""The rules of Mesos's command and default executors, the launch flags, no leftovers.

In-process against the FakeAgent where that is enough; as a spawned
``python -m trio_mesos.command_executor`` (a real subreaper, the real
command line) where the program matters. Real processes, real time, wide bounds.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys

import pytest
import trio

import trio_mesos
from tests.io.executor_helpers import (
    BASE_ENV,
    EXECUTOR,
    FAILED,
    FINISHED,
    KILLED,
    RUNNING,
    STARTING,
    STUBBORN,
    alive,
    command_executor_info,
    default_executor_info,
    group,
    last_message,
    output,
    policy,
    read_lines,
    running,
    shell_task,
    states,
    task_dir,
    wait_for_line,
    wait_gone,
)
from trio_mesos.command_executor import MULTIPLE_TASKS_MESSAGE, LaunchFlags
from trio_mesos.testing import AckPolicy, FakeAgent
from trio_mesos.v1 import mesos_pb2

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux")


def with_role(task: mesos_pb2.TaskInfo, role: str) -> mesos_pb2.TaskInfo:
    cpus = task.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR)
    cpus.scalar.value = 0.1
    cpus.allocation_info.role = role
    return task


# -- the default executor ------------------------------------------------------------------


async def test_a_failed_task_kills_its_group_and_the_executor_exits_when_done(
    tmp_path: pathlib.Path,
) -> None:
    failing = with_role(
        shell_task("fails", 'echo "$MESOS_CONTAINER_IP $MESOS_ALLOCATION_ROLE"; sleep 0.3; exit 1'),
        "web",
    )
    env = {**BASE_ENV, "LIBPROCESS_IP": "127.0.0.7"}
    info = default_executor_info()
    async with FakeAgent(executor_id="default-executor", executor_info=info) as agent:
        # the group kill uses the default grace (3 s in Mesos), not the tasks' 30 s
        async with running(agent, tmp_path, environ=env, default_kill_grace_period=0.5) as (
            _,
            driver,
        ):
            with trio.fail_after(20):
                await agent.launch_group(
                    group(
                        failing,
                        shell_task("sibling", "exec sleep 30"),
                        shell_task("stubborn", STUBBORN, grace=30),
                    )
                )
                await wait_for_line(task_dir(tmp_path, "stubborn") / "stdout", "ready")
                start = trio.current_time()
                await agent.wait_terminal("fails", "sibling", "stubborn")
                elapsed = trio.current_time() - start
                # every task terminal and acknowledged: it ends by itself
                assert await driver.join() is trio_mesos.Status.DRIVER_STOPPED
    assert elapsed < 3.0
    assert states(agent, "fails") == [STARTING, RUNNING, FAILED]
    assert states(agent, "sibling") == [STARTING, RUNNING, KILLED]
    assert states(agent, "stubborn") == [STARTING, RUNNING, KILLED]
    assert last_message(agent, "stubborn") == "Command terminated with signal Killed"
    assert output(tmp_path, "fails") == ["127.0.0.7 web"]
    assert agent.pending_acks == []


async def test_a_default_executor_shuts_down_on_a_plain_launch(tmp_path: pathlib.Path) -> None:
    info = default_executor_info()
    async with FakeAgent(executor_id="default-executor", executor_info=info) as agent:
        async with running(agent, tmp_path) as (_, driver):
            with trio.fail_after(20):
                await agent.launch_group(group(shell_task("sleeper", "exec sleep 30")))
                await agent.wait_for_update("sleeper", mesos_pb2.TASK_RUNNING)
                await agent.launch(shell_task("plain", "true"))
                assert await driver.join() is trio_mesos.Status.DRIVER_STOPPED
    assert states(agent, "sleeper") == [STARTING, RUNNING, KILLED]
    assert states(agent, "plain") == []  # never run, never reported (as Mesos)


# -- the command executor ---------------------------------------------------------------------


async def test_a_command_executor_runs_one_task(tmp_path: pathlib.Path) -> None:
    info = command_executor_info("solo")
    async with FakeAgent(executor_id="solo", executor_info=info) as agent:
        async with running(agent, tmp_path) as (_, driver):
            with trio.fail_after(20):
                await agent.launch(
                    with_role(shell_task("solo", "echo $MESOS_ALLOCATION_ROLE; sleep 0.3"), "db")
                )
                await agent.launch(shell_task("second", "echo should-not-run"))
                await agent.wait_terminal("second")
                assert await driver.join() is trio_mesos.Status.DRIVER_STOPPED
    assert states(agent, "solo") == [STARTING, RUNNING, FINISHED]
    assert states(agent, "second") == [FAILED]
    assert last_message(agent, "second") == MULTIPLE_TASKS_MESSAGE
    # the command executor's task writes to the sandbox's own stdout
    assert read_lines(tmp_path / "stdout") == ["db"]


async def test_a_command_executor_shuts_down_on_launch_group(tmp_path: pathlib.Path) -> None:
    info = command_executor_info("solo")
    async with FakeAgent(executor_id="solo", executor_info=info) as agent:
        async with running(agent, tmp_path) as (_, driver):
            with trio.fail_after(20):
                await agent.launch(shell_task("solo", "exec sleep 30"))
                await agent.wait_for_update("solo", mesos_pb2.TASK_RUNNING)
                await agent.launch_group(group(shell_task("grouped", "true")))
                assert await driver.join() is trio_mesos.Status.DRIVER_STOPPED
    assert states(agent, "solo") == [STARTING, RUNNING, KILLED]
    assert states(agent, "grouped") == []


async def test_the_grace_of_a_later_kill_counts_from_the_first(tmp_path: pathlib.Path) -> None:
    async with FakeAgent() as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            await agent.launch(shell_task("stubborn", STUBBORN))
            await wait_for_line(task_dir(tmp_path, "stubborn") / "stdout", "ready")
            start = trio.current_time()
            await agent.kill("stubborn", policy(30))
            await trio.sleep(1.0)
            # 1.2 s from the first KILL: SIGKILL 0.2 s from now, not 1.2 s
            await agent.kill("stubborn", policy(1.2))
            await agent.wait_terminal("stubborn")
            elapsed = trio.current_time() - start
    assert 1.1 <= elapsed < 2.0
    assert last_message(agent, "stubborn") == "Command terminated with signal Killed"


async def test_user_flag_switches_user_as_root_and_fails_the_task_otherwise(
    tmp_path: pathlib.Path,
) -> None:
    flags = LaunchFlags(user="nobody", supplementary_groups=(4242,))
    async with FakeAgent() as agent, running(agent, tmp_path, launch_flags=flags):
        with trio.fail_after(20):
            await agent.launch(shell_task("as-nobody", "id -u; id -G"))
            await agent.wait_terminal("as-nobody")
    if os.geteuid() == 0:
        assert states(agent, "as-nobody") == [STARTING, RUNNING, FINISHED]
        uid, groups = output(tmp_path, "as-nobody")
        assert uid == "65534"
        assert "4242" in groups.split()
    else:
        assert states(agent, "as-nobody") == [STARTING, FAILED]
        assert "--user=nobody" in last_message(agent, "as-nobody")


# -- the program: subreaper, fail-safe, flags, configuration errors ------------------------------


async def test_a_setsid_grandchild_is_gone_after_kill() -> None:
    # The subshell exits at once: its setsid'ed child is an orphan in a session
    # of its own, re-parented to the executor (a subreaper), outside the task's tree.
    command = "(setsid sleep 30 & echo $! > grandchild.pid); echo ready; exec sleep 30"
    info = command_executor_info("solo")
    async with FakeAgent(executor_id="solo", executor_info=info) as agent:
        async with agent.spawn_executor(EXECUTOR) as process:
            with trio.fail_after(20):
                await agent.wait_subscribed()
                await agent.launch(shell_task("solo", command, grace=5))
                await wait_for_line(process.sandbox / "stdout", "ready")
                grandchild = int(read_lines(process.sandbox / "grandchild.pid")[0])
                assert alive(grandchild)
                await agent.kill("solo")
                code = await process.wait()
                await wait_gone(grandchild, 3.0)
            assert code == 0, process.stderr_path.read_text()
    assert states(agent, "solo") == [STARTING, RUNNING, KILLED]


async def test_the_program_exits_1_when_the_terminal_update_is_never_acknowledged() -> None:
    info = command_executor_info("solo")
    async with FakeAgent(
        executor_id="solo", executor_info=info, ack_policy=AckPolicy.MANUAL
    ) as agent:
        async with agent.spawn_executor([*EXECUTOR, "--terminal-ack-timeout=0.5"]) as process:
            with trio.fail_after(20):
                await agent.wait_subscribed()
                await agent.launch(shell_task("solo", "true"))
                await agent.wait_for_update("solo", mesos_pb2.TASK_FINISHED)
                start = trio.current_time()
                code = await process.wait()
                elapsed = trio.current_time() - start
            log = process.stderr_path.read_text()
    assert code == 1, log
    assert 0.3 <= elapsed < 5.0
    assert log.splitlines()[-1] == (
        "trio-mesos-executor: Did not receive ACK for the terminal status update from the agent"
    )


async def test_the_agents_launch_flags_are_applied(tmp_path: pathlib.Path) -> None:
    environment = {
        "variables": [
            {"name": "FROM_FLAG", "value": "flag"},
            {"name": "BOTH", "value": "flag"},
        ]
    }
    command = {"value": 'echo "$FROM_FLAG $BOTH"; pwd -P', "shell": True}
    info = command_executor_info("solo")
    async with FakeAgent(executor_id="solo", executor_info=info) as agent:
        workdir = tmp_path
        argv = [
            *EXECUTOR,
            "--launcher_dir=/usr/libexec/mesos",
            "--sandbox_directory=/mnt/mesos/sandbox",
            f"--task_environment={json.dumps(environment)}",
            f"--task_command={json.dumps(command)}",
            f"--working_directory={workdir}",
        ]
        async with agent.spawn_executor(argv) as process:
            with trio.fail_after(20):
                await agent.wait_subscribed()
                task = shell_task("solo", "echo ignored: --task_command wins")
                task.command.environment.variables.add(name="BOTH", value="task")
                await agent.launch(task)
                code = await process.wait()
            log = process.stderr_path.read_text()
            lines = read_lines(process.sandbox / "stdout")
    assert code == 0, log
    assert states(agent, "solo") == [STARTING, RUNNING, FINISHED]
    # --task_environment under CommandInfo.environment (of the task's CommandInfo)
    assert lines == ["flag flag", str(workdir.resolve())]
    assert "unknown argument" not in log


async def test_an_unsupported_launch_flag_fails_the_task_instead_of_running_it() -> None:
    info = command_executor_info("solo")
    async with FakeAgent(executor_id="solo", executor_info=info) as agent:
        async with agent.spawn_executor([*EXECUTOR, "--rootfs=/var/lib/images/x"]) as process:
            with trio.fail_after(20):
                await agent.wait_subscribed()
                await agent.launch(shell_task("solo", "echo ran > ran.txt"))
                code = await process.wait()
            ran = (process.sandbox / "ran.txt").exists()
    assert code == 0
    assert not ran
    assert states(agent, "solo") == [STARTING, FAILED]
    last = agent.updates("solo")[-1]
    assert last.HasField("reason")
    assert last.reason == mesos_pb2.TaskStatus.REASON_COMMAND_EXECUTOR_FAILED
    assert "--rootfs" in last.message


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--task_environment=not json"], {}, "--task_environment"),
        ([], {"TRIO_MESOS_STREAM_IDLE_TIMEOUT": "soon"}, "TRIO_MESOS_STREAM_IDLE_TIMEOUT"),
        (["--stream-idle-timeout=0"], {}, "idle timeout"),
        (
            [],
            {"LIBPROCESS_SSL_ENABLED": "1", "LIBPROCESS_SSL_CA_FILE": "/nonexistent/ca.pem"},
            "LIBPROCESS_SSL_CA_FILE",
        ),
    ],
)
async def test_configuration_errors_exit_2_with_one_line(
    argv: list[str], env: dict[str, str], expected: str
) -> None:
    async with FakeAgent() as agent:
        async with agent.spawn_executor([*EXECUTOR, *argv], extra_env=env) as process:
            with trio.fail_after(20):
                code = await process.wait()
            log = process.stderr_path.read_text()
    assert code == 2, log
    assert "Traceback" not in log
    last = log.splitlines()[-1]
    assert last.startswith("trio-mesos-executor: ")
    assert expected in last


async def test_a_group_keeps_running_when_asked(tmp_path: pathlib.Path) -> None:
    # --keep-group-running (what the realmesos conformance suite expects)
    async with FakeAgent() as agent:
        async with running(agent, tmp_path, kill_group_on_failure=False):
            with trio.fail_after(20):
                await agent.launch_group(
                    group(shell_task("fails", "exit 3"), shell_task("goes-on", "sleep 0.5"))
                )
                await agent.wait_terminal("fails", "goes-on")
    assert states(agent, "fails") == [STARTING, RUNNING, FAILED]
    assert states(agent, "goes-on") == [STARTING, RUNNING, FINISHED]


async def test_orphans_are_reaped_and_exit_statuses_are_not_stolen() -> None:
    # "daemon" leaves an orphan that exits by itself 0.3 s later: re-parented to the
    # executor (a subreaper), it must be reaped (not left a zombie), while the
    # executor's own children keep their exit statuses.
    daemon = "(sleep 0.3 & echo $! > orphan.pid); exec sleep 30"
    async with FakeAgent() as agent:
        async with agent.spawn_executor([*EXECUTOR, "--stay-up"]) as process:
            with trio.fail_after(20):
                await agent.wait_subscribed()
                await agent.launch(shell_task("daemon", daemon))
                await agent.launch(shell_task("seven", "sleep 1.5; exit 7"))
                await agent.wait_terminal("seven")
                orphan = int(read_lines(task_dir(process.sandbox, "daemon") / "orphan.pid")[0])
                await wait_until_gone_from_proc(orphan)
                os.kill(process.pid, signal.SIGTERM)
                assert await process.wait() == 0
    assert last_message(agent, "seven") == "Command exited with status 7"
    assert states(agent, "daemon") == [STARTING, RUNNING, KILLED]


async def wait_until_gone_from_proc(pid: int) -> None:
    """Until ``/proc/<pid>`` is gone: exited *and* reaped."""
    with trio.fail_after(5):
        while True:  # polling: nothing to wait on
            if not pathlib.Path(f"/proc/{pid}").exists():
                return
            await trio.sleep(0.05)


async def test_a_command_executor_exits_at_once_after_shutdown() -> None:
    info = command_executor_info("solo")
    async with FakeAgent(executor_id="solo", executor_info=info, shutdown_grace_period=5) as agent:
        async with agent.spawn_executor(EXECUTOR) as process:
            with trio.fail_after(20):
                await agent.wait_subscribed()
                await agent.launch(shell_task("solo", "exec sleep 30"))
                await agent.wait_for_update("solo", mesos_pb2.TASK_RUNNING)
                start = trio.current_time()
                await agent.shutdown()
                code = await process.wait()
                elapsed = trio.current_time() - start
    assert code == 0
    # not held up until the driver's own deadline (4 s): nothing is left to wait for
    assert elapsed < 2.0
    assert states(agent, "solo") == [STARTING, RUNNING, KILLED]


@pytest.mark.parametrize(
    ("argv", "env"),
    [(["--stream-idle-timeout=1"], {}), ([], {"TRIO_MESOS_STREAM_IDLE_TIMEOUT": "1"})],
    ids=["flag", "environment"],
)
async def test_stall_detection_can_be_turned_on(argv: list[str], env: dict[str, str]) -> None:
    # Without checkpointing a lost stream ends the executor: a stalled stream is
    # noticed only with stall detection on (the flag, or the environment variable).
    async with FakeAgent(checkpoint=False, heartbeat_interval=None) as agent:
        async with agent.spawn_executor([*EXECUTOR, *argv], extra_env=env) as process:
            with trio.fail_after(20):
                await agent.wait_subscribed()
                await agent.stall()
                code = await process.wait()
            log = process.stderr_path.read_text()
    assert code != 0, log
    assert "stalled" in log
