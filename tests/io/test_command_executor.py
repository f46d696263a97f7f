"""The command executor against the FakeAgent.

Most tests run the executor in-process (``CommandExecutor`` + ``open_executor_driver``
over memory streams); the tasks are real processes, so these tests use real time with
wide bounds. The last ones start ``python -m trio_mesos.command_executor`` as a real
subprocess with ``FakeAgent.spawn_executor`` (TCP, the real agent's environment).
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import pytest
import trio

import trio_mesos
from tests.io.executor_helpers import (
    EXECUTOR,
    FAILED,
    FINISHED,
    KILLED,
    KILLING,
    RUNNING,
    STARTING,
    STUBBORN,
    alive,
    argv_task,
    group,
    killing_framework,
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
from trio_mesos.testing import AckPolicy, FakeAgent
from trio_mesos.v1 import executor_pb2, mesos_pb2

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process groups, /proc (Linux)"
)


# -- commands, environment, output -----------------------------------------------------


async def test_shell_and_argv_commands(tmp_path: pathlib.Path) -> None:
    async with FakeAgent() as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            await agent.launch(shell_task("shell", "echo shell:$((1+2)); echo oops >&2"))
            # shell=false: `value` is the program, `arguments` the whole argv
            await agent.launch(
                argv_task("argv0", "/bin/sh", ["my-argv0", "-c", 'echo "argv0=$0"'])
            )
            # ... and `value` is looked up in PATH; arguments are not re-split
            await agent.launch(argv_task("path", "printf", ["printf", "%s|", "a b", "c"]))
            await agent.wait_terminal("shell", "argv0", "path")
    for task_id in ("shell", "argv0", "path"):
        assert states(agent, task_id) == [STARTING, RUNNING, FINISHED], task_id
        assert last_message(agent, task_id) == "Command exited with status 0"
    assert output(tmp_path, "shell") == ["shell:3"]
    assert output(tmp_path, "shell", "stderr") == ["oops"]
    assert output(tmp_path, "argv0") == ["argv0=my-argv0"]
    assert output(tmp_path, "path") == ["a b|c|"]


async def test_environment_merge_and_working_directory(tmp_path: pathlib.Path) -> None:
    task = shell_task(
        "env/1",
        'printf "%s\\n" "$BASE_ONLY" "$OVERRIDDEN" "$FROM_TASK" "${SECRET_ONE-unset}" '
        '"${MESOS_EXECUTOR_AUTHENTICATION_TOKEN-unset}" "$MESOS_SANDBOX" '
        '"${MESOS_ALLOCATION_ROLE-unset}" "${MESOS_CONTAINER_IP-unset}"; pwd -P',
    )
    variables = task.command.environment.variables
    variables.add(name="OVERRIDDEN", value="from-the-task")
    variables.add(name="FROM_TASK", value="task value")
    secret = variables.add(name="SECRET_ONE", type=mesos_pb2.Environment.Variable.SECRET)
    secret.secret.type = mesos_pb2.Secret.VALUE
    secret.secret.value.data = b"hidden"
    async with FakeAgent() as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            await agent.launch(task)
            await agent.wait_terminal("env/1")
    assert states(agent, "env/1") == [STARTING, RUNNING, FINISHED]
    # each task has its own sandbox, tasks/<task id made safe as a file name>
    sandbox = tmp_path / "tasks" / "env_1"
    assert output(tmp_path, "env/1") == [
        "from-the-executor",
        "from-the-task",
        "task value",
        "unset",  # secrets are not supported: skipped
        "unset",  # never the executor's token
        str(sandbox),
        "unset",  # no resources: no role
        "unset",  # not a task of a group
        str(sandbox.resolve()),
    ]


async def test_custom_executor_mode_runs_the_data_as_a_shell_command(
    tmp_path: pathlib.Path,
) -> None:
    task = shell_task("custom", "unused")
    task.ClearField("command")
    task.data = b"echo from-data"
    async with FakeAgent() as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            await agent.launch(task)
            await agent.wait_terminal("custom")
    assert states(agent, "custom") == [STARTING, RUNNING, FINISHED]
    assert output(tmp_path, "custom") == ["from-data"]


async def test_exit_status_and_signals(tmp_path: pathlib.Path) -> None:
    async with FakeAgent() as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            for task in (
                shell_task("ok", "true"),
                shell_task("seven", "exit 7"),
                shell_task("signalled", "kill -KILL $$"),
            ):
                await agent.launch(task)
            await agent.wait_terminal("ok", "seven", "signalled")
    assert states(agent, "ok") == [STARTING, RUNNING, FINISHED]
    assert states(agent, "seven") == [STARTING, RUNNING, FAILED]
    assert last_message(agent, "seven") == "Command exited with status 7"
    assert states(agent, "signalled") == [STARTING, RUNNING, FAILED]
    assert last_message(agent, "signalled") == "Command terminated with signal Killed"


async def test_tasks_that_cannot_start_fail(tmp_path: pathlib.Path) -> None:
    nothing = shell_task("nothing", "unused")
    nothing.ClearField("command")
    async with FakeAgent() as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            await agent.launch(argv_task("missing", "/nonexistent/program", ["program"]))
            await agent.launch(nothing)
            await agent.wait_terminal("missing", "nothing")
    assert states(agent, "missing") == [STARTING, FAILED]
    assert "Failed to launch the command" in last_message(agent, "missing")
    assert states(agent, "nothing") == [STARTING, FAILED]
    assert "no command" in last_message(agent, "nothing")


async def test_many_fast_tasks_keep_their_updates_in_order(tmp_path: pathlib.Path) -> None:
    # `true` ends at once: its RUNNING must still reach the agent before its FINISHED
    # (the agent drops anything after a terminal update).
    ids = [f"fast-{i}" for i in range(25)]
    async with FakeAgent() as agent, running(agent, tmp_path):
        with trio.fail_after(30):
            await agent.launch(shell_task("single", "true"))
            await agent.launch_group(group(*(shell_task(i, "true") for i in ids)))
            await agent.wait_terminal("single", *ids)
    for task_id in ["single", *ids]:
        assert states(agent, task_id) == [STARTING, RUNNING, FINISHED], task_id
        assert agent.task_state(task_id) == mesos_pb2.TASK_FINISHED
        statuses = agent.updates(task_id)
        assert all(s.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR for s in statuses)
        assert all(len(s.uuid) == 16 for s in statuses)


# -- kill --------------------------------------------------------------------------------


async def test_kill_terminates_an_obedient_task_at_once(tmp_path: pathlib.Path) -> None:
    async with FakeAgent() as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            await agent.launch(shell_task("sleeper", "exec sleep 30"))
            await agent.wait_for_update("sleeper", mesos_pb2.TASK_RUNNING)
            start = trio.current_time()
            await agent.kill("sleeper")
            await agent.wait_terminal("sleeper")
            elapsed = trio.current_time() - start
    # SIGTERM is enough: far less than the default 3 s grace period
    assert elapsed < 2.0
    # no TASK_KILLING: the framework lacks the capability
    assert states(agent, "sleeper") == [STARTING, RUNNING, KILLED]
    assert last_message(agent, "sleeper") == "Command terminated with signal Terminated"


async def test_kill_escalates_to_sigkill_after_the_task_policy_grace(
    tmp_path: pathlib.Path,
) -> None:
    async with FakeAgent() as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            await agent.launch(shell_task("stubborn", STUBBORN, grace=0.6))
            await wait_for_line(task_dir(tmp_path, "stubborn") / "stdout", "ready")
            start = trio.current_time()
            await agent.kill("stubborn")
            await agent.wait_terminal("stubborn")
            elapsed = trio.current_time() - start
    assert 0.5 <= elapsed < 3.0
    assert states(agent, "stubborn") == [STARTING, RUNNING, KILLED]
    assert last_message(agent, "stubborn") == "Command terminated with signal Killed"


async def test_the_kill_policy_of_the_kill_overrides_and_only_shrinks(
    tmp_path: pathlib.Path,
) -> None:
    async with FakeAgent() as agent, running(agent, tmp_path):
        with trio.fail_after(25):
            await agent.launch_group(
                group(
                    shell_task("override", STUBBORN, grace=30),
                    shell_task("shrink", STUBBORN),
                    shell_task("no-extend", STUBBORN),
                )
            )
            for task_id in ("override", "shrink", "no-extend"):
                await wait_for_line(task_dir(tmp_path, task_id) / "stdout", "ready")
            start = trio.current_time()
            # the KILL's policy replaces the task's 30 s
            await agent.kill("override", policy(0.3))
            # a second KILL brings an escalation under way forward ...
            await agent.kill("shrink", policy(30))
            # ... but never postpones it
            await agent.kill("no-extend", policy(0.8))
            await trio.sleep(0.2)
            await agent.kill("shrink", policy(0.2))
            await agent.kill("no-extend", policy(30))
            done: dict[str, float] = {}

            async def watch(task_id: str) -> None:
                await agent.wait_terminal(task_id)
                done[task_id] = trio.current_time() - start

            async with trio.open_nursery() as nursery:
                for task_id in ("override", "shrink", "no-extend"):
                    nursery.start_soon(watch, task_id)
    assert 0.25 <= done["override"] < 3.0
    # the second KILL's 0.2 s count from the first KILL: they were over at once
    assert 0.15 <= done["shrink"] < 3.0
    assert 0.7 <= done["no-extend"] < 3.5
    for task_id in ("override", "shrink", "no-extend"):
        assert states(agent, task_id) == [STARTING, RUNNING, KILLED], task_id
        assert last_message(agent, task_id) == "Command terminated with signal Killed"


async def test_task_killing_only_with_the_framework_capability(tmp_path: pathlib.Path) -> None:
    async with FakeAgent(framework_info=killing_framework()) as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            await agent.launch(shell_task("polite", "exec sleep 30"))
            await agent.wait_for_update("polite", mesos_pb2.TASK_RUNNING)
            await agent.kill("polite")
            await agent.wait_terminal("polite")
    assert states(agent, "polite") == [STARTING, RUNNING, KILLING, KILLED]


async def test_kill_reaches_the_whole_process_group(tmp_path: pathlib.Path) -> None:
    # The grandchild ignores SIGTERM and outlives its parent shell.
    command = "(trap '' TERM; exec sleep 30) & echo $! > grandchild.pid; echo ready; wait"
    async with FakeAgent() as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            await agent.launch(shell_task("family", command, grace=5))
            await wait_for_line(task_dir(tmp_path, "family") / "stdout", "ready")
            grandchild = int(read_lines(task_dir(tmp_path, "family") / "grandchild.pid")[0])
            assert alive(grandchild)
            start = trio.current_time()
            await agent.kill("family")
            await agent.wait_terminal("family")
            # the shell died of SIGTERM; the grandchild was killed with the group
            # at once, not after the 5 s grace period
            assert trio.current_time() - start < 3.0
            await wait_gone(grandchild)
    assert states(agent, "family") == [STARTING, RUNNING, KILLED]


async def test_leftovers_of_a_finished_task_are_killed(tmp_path: pathlib.Path) -> None:
    async with FakeAgent() as agent, running(agent, tmp_path):
        with trio.fail_after(20):
            await agent.launch(shell_task("daemonizer", "sleep 30 & echo $! > bg.pid"))
            await agent.wait_terminal("daemonizer")
            await wait_gone(int(read_lines(task_dir(tmp_path, "daemonizer") / "bg.pid")[0]))
    assert states(agent, "daemonizer") == [STARTING, RUNNING, FINISHED]


# -- shutdown, messages, exit --------------------------------------------------------------


async def test_shutdown_kills_every_task_and_waits_for_the_acks(tmp_path: pathlib.Path) -> None:
    # grace 3 s: the driver ends by 2 s, the SIGKILL comes by 1 s (even over a 30 s policy)
    async with FakeAgent(
        shutdown_grace_period=3.0, ack_policy=AckPolicy.DELAYED, ack_delay=0.2
    ) as agent:
        async with running(agent, tmp_path) as (executor, driver):
            with trio.fail_after(20):
                await agent.launch(shell_task("obedient", "echo $$ > obedient.pid; exec sleep 30"))
                await agent.launch_group(
                    group(shell_task("stubborn", STUBBORN, grace=30), shell_task("quick", "true"))
                )
                await wait_for_line(task_dir(tmp_path, "stubborn") / "stdout", "ready")
                await agent.wait_terminal("quick")
                await agent.wait_for_update("obedient", mesos_pb2.TASK_RUNNING)
                start = trio.current_time()
                await agent.shutdown()
                status = await driver.join()
                elapsed = trio.current_time() - start
            assert executor.terminating
    assert status is trio_mesos.Status.DRIVER_STOPPED
    assert 0.9 <= elapsed < 2.0 + 0.5
    assert states(agent, "obedient") == [STARTING, RUNNING, KILLED]
    assert states(agent, "stubborn") == [STARTING, RUNNING, KILLED]
    assert last_message(agent, "stubborn") == "Command terminated with signal Killed"
    assert states(agent, "quick") == [STARTING, RUNNING, FINISHED]
    # every terminal update was acknowledged before the driver ended
    assert driver.statistics().unacknowledged_updates == 0
    assert agent.pending_acks == []
    assert not alive(int(read_lines(task_dir(tmp_path, "obedient") / "obedient.pid")[0]))


@pytest.mark.parametrize("echo", [True, False])
async def test_framework_messages_are_echoed_only_when_asked(
    tmp_path: pathlib.Path, echo: bool
) -> None:
    async with FakeAgent() as agent, running(agent, tmp_path, echo_messages=echo):
        with trio.fail_after(20):
            await agent.message(b"\x00ping\xff")
            await agent.message(b"second")
            # a round trip after the messages: any echo has been sent by then
            await agent.launch(shell_task("after", "true"))
            await agent.wait_terminal("after")
            if echo:
                await agent.wait_call(executor_pb2.Call.MESSAGE, 2)
    assert agent.messages == ([b"\x00ping\xff", b"second"] if echo else [])


async def test_single_command_task_executor_stops_after_the_terminal_ack(
    tmp_path: pathlib.Path,
) -> None:
    async with FakeAgent(executor_id="solo", ack_policy=AckPolicy.MANUAL) as agent:
        async with running(agent, tmp_path) as (_, driver):
            with trio.fail_after(20):
                await agent.launch(shell_task("solo", "true"))
                await agent.wait_for_update("solo", mesos_pb2.TASK_FINISHED)
                await trio.sleep(0.3)
                assert driver.statistics().status is trio_mesos.Status.DRIVER_RUNNING
                await agent.ack_all()
                assert await driver.join() is trio_mesos.Status.DRIVER_STOPPED
    assert states(agent, "solo") == [STARTING, RUNNING, FINISHED]
    assert agent.pending_acks == []


@pytest.mark.parametrize(
    ("executor_id", "exit_when_done", "exits"),
    [
        ("custom-executor", None, False),  # a custom executor waits for SHUTDOWN
        ("custom-executor", True, True),  # --exit-when-done
        ("solo", False, False),  # --stay-up, even as a command executor
    ],
)
async def test_when_the_executor_exits_by_itself(
    tmp_path: pathlib.Path, executor_id: str, exit_when_done: bool | None, exits: bool
) -> None:
    async with FakeAgent(executor_id=executor_id) as agent:
        async with running(agent, tmp_path, exit_when_done=exit_when_done) as (_, driver):
            with trio.fail_after(20):
                await agent.launch(shell_task("solo", "true"))
                ids = ["solo"]
                if executor_id != "solo":
                    await agent.launch_group(group(shell_task("other", "true")))
                    ids.append("other")
                await agent.wait_terminal(*ids)
                with trio.move_on_after(1.0):
                    await driver.join()
                ended = driver.statistics().status is not trio_mesos.Status.DRIVER_RUNNING
                assert ended is exits
                driver.stop()


# -- as a real subprocess (TCP, the agent's environment) -----------------------------------


async def test_spawned_command_executor_runs_its_task_and_exits_after_the_ack() -> None:
    # The authentication token must reach the driver (the agent enforces it)
    # but never the task; the agent's --launcher_dir argument is ignored.
    async with FakeAgent(executor_id="solo", token="s3cret-token") as agent:
        argv = [*EXECUTOR, "--launcher_dir=/usr/libexec/mesos"]
        async with agent.spawn_executor(argv) as process:
            with trio.fail_after(20):
                await agent.wait_subscribed()
                await agent.launch(
                    shell_task(
                        "solo",
                        'echo "${MESOS_EXECUTOR_AUTHENTICATION_TOKEN-unset}"; pwd -P; exit 0',
                    )
                )
                code = await process.wait()
            sandbox = process.sandbox
            log = process.stderr_path.read_text()
            assert code == 0, log
            # a command executor's task writes to the sandbox's stdout
            assert read_lines(sandbox / "stdout") == ["unset", str(sandbox.resolve())]
            assert "unknown argument" not in log
            assert "s3cret-token" not in log
    assert states(agent, "solo") == [STARTING, RUNNING, FINISHED]
    assert agent.pending_acks == []


async def test_spawned_group_executor_shuts_down_within_the_grace_period() -> None:
    async with FakeAgent(executor_id="default-executor", shutdown_grace_period=3.0) as agent:
        async with agent.spawn_executor([*EXECUTOR, "--echo-messages"]) as process:
            with trio.fail_after(20):
                await agent.wait_subscribed()
                await agent.launch_group(
                    group(shell_task("sleeper", "exec sleep 30"), shell_task("stubborn", STUBBORN))
                )
                await wait_for_line(task_dir(process.sandbox, "stubborn") / "stdout", "ready")
                await agent.wait_for_update("sleeper", mesos_pb2.TASK_RUNNING)
                await agent.message(b"echo me")
                await agent.wait_call(executor_pb2.Call.MESSAGE)
                start = trio.current_time()
                await agent.shutdown()
                code = await process.wait()
                elapsed = trio.current_time() - start
            assert code == 0, process.stderr_path.read_text()
    # exited by itself well before the agent's 3 s
    assert elapsed < 2.6
    assert agent.messages == [b"echo me"]
    assert states(agent, "sleeper") == [STARTING, RUNNING, KILLED]
    assert states(agent, "stubborn") == [STARTING, RUNNING, KILLED]
    assert all(u.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR for u in agent.updates())


async def test_spawned_executor_exits_nonzero_when_the_agent_is_lost() -> None:
    async with FakeAgent() as agent:  # no checkpointing: an agent loss is the end
        async with agent.spawn_executor(EXECUTOR) as process:
            with trio.fail_after(20):
                await agent.wait_subscribed()
                await agent.launch(shell_task("orphan", "echo $$ > orphan.pid; exec sleep 30"))
                await agent.wait_for_update("orphan", mesos_pb2.TASK_RUNNING)
                await agent.drop_stream()
                code = await process.wait()
                pid_file = task_dir(process.sandbox, "orphan") / "orphan.pid"
                await wait_gone(int(read_lines(pid_file)[0]))
            log = process.stderr_path.read_text()
    assert code == 1, log
    assert "the executor driver aborted" in log
    assert "checkpointing is off" in log


async def test_spawned_executor_kills_its_tasks_and_exits_0_on_sigterm() -> None:
    async with FakeAgent() as agent:
        async with agent.spawn_executor(EXECUTOR) as process:
            with trio.fail_after(20):
                await agent.wait_subscribed()
                await agent.launch_group(
                    group(shell_task("a", "exec sleep 30"), shell_task("b", "exec sleep 30"))
                )
                await agent.wait_for_update("a", mesos_pb2.TASK_RUNNING)
                await agent.wait_for_update("b", mesos_pb2.TASK_RUNNING)
                os.kill(process.pid, signal.SIGTERM)
                code = await process.wait()
            assert code == 0, process.stderr_path.read_text()
    assert states(agent, "a") == [STARTING, RUNNING, KILLED]
    assert states(agent, "b") == [STARTING, RUNNING, KILLED]
    assert agent.pending_acks == []


def test_invalid_environment_exits_2_with_the_config_error(tmp_path: pathlib.Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MESOS_EXECUTOR_ID": "x"}
    result = subprocess.run(
        EXECUTOR, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    assert "trio-mesos-executor: invalid executor environment" in result.stderr
    assert "MESOS_FRAMEWORK_ID" in result.stderr
    assert "Traceback" not in result.stderr
