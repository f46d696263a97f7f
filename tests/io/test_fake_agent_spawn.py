"""FakeAgent.spawn_executor: the real agent's environment, the sandbox, process groups.

Real subprocesses and real time (no MockClock); bounds are wide.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys
import textwrap
from typing import Any

import pytest
import trio

from trio_mesos import ExecutorConfig
from trio_mesos.testing import DEFAULT_PATH, FakeAgent
from trio_mesos.v1 import executor_pb2, mesos_pb2

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process groups; pidfd_open (Linux)"
)

#: Starts a grandchild ``sleep 60`` (same process group), subscribes, sends
#: its environment, cwd and process ids in a MESSAGE call, and waits.
DUMPER = textwrap.dedent(
    """
    import base64, http.client, json, os, subprocess, sys, time
    child = subprocess.Popen(["sleep", "60"])
    info = {"env": dict(os.environ), "cwd": os.getcwd(), "pid": os.getpid(),
            "pgid": os.getpgid(0), "sid": os.getsid(0), "child": child.pid}
    print("to stdout", flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    host, port = os.environ["MESOS_AGENT_ENDPOINT"].split(":")
    ids = {"framework_id": {"value": os.environ["MESOS_FRAMEWORK_ID"]},
           "executor_id": {"value": os.environ["MESOS_EXECUTOR_ID"]}}
    headers = {"Content-Type": "application/json"}
    stream = http.client.HTTPConnection(host, int(port))
    stream.request("POST", "/api/v1/executor",
                   json.dumps(dict(ids, type="SUBSCRIBE", subscribe={})), headers)
    assert stream.getresponse().status == 200
    calls = http.client.HTTPConnection(host, int(port))
    data = base64.b64encode(json.dumps(info).encode()).decode()
    calls.request("POST", "/api/v1/executor",
                  json.dumps(dict(ids, type="MESSAGE", message={"data": data})), headers)
    assert calls.getresponse().status == 202
    time.sleep(60)
    """
)

#: Exactly what a Mesos 1.11 agent gives (../shared/realmesos/README.md).
REAL_VARIABLES = {
    "LIBPROCESS_IP",
    "LIBPROCESS_PORT",
    "MESOS_AGENT_ENDPOINT",
    "MESOS_SLAVE_PID",
    "MESOS_SLAVE_ID",
    "MESOS_FRAMEWORK_ID",
    "MESOS_EXECUTOR_ID",
    "MESOS_DIRECTORY",
    "MESOS_SANDBOX",
    "MESOS_CHECKPOINT",
    "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
    "MESOS_HTTP_COMMAND_EXECUTOR",
    "PATH",
}
CHECKPOINT_VARIABLES = {"MESOS_RECOVERY_TIMEOUT", "MESOS_SUBSCRIPTION_BACKOFF_MAX"}


async def reported_info(agent: FakeAgent, seconds: float = 20.0) -> dict[str, Any]:
    """What the dumper sent in its MESSAGE call (real time, wide bound)."""
    with trio.fail_after(seconds):
        recorded = await agent.wait_call(executor_pb2.Call.MESSAGE)
    assert recorded.call is not None
    data: dict[str, Any] = json.loads(recorded.call.message.data)
    return data


async def exits_within(pid: int, seconds: float = 10.0) -> bool:
    """Whether process ``pid`` (not our child) is gone within ``seconds``."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        with trio.move_on_after(seconds):
            # A pidfd becomes readable when the process terminates.
            await trio.lowlevel.wait_readable(fd)
            return True
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("checkpoint", [False, True])
async def test_environment_sandbox_and_group_cleanup(
    tmp_path: pathlib.Path, checkpoint: bool
) -> None:
    script = tmp_path / "dumper.py"
    script.write_text(DUMPER)
    async with FakeAgent(checkpoint=checkpoint, reregistration_timeout=3) as agent:
        async with agent.spawn_executor([sys.executable, str(script)]) as proc:
            info = await reported_info(agent)
            env = info["env"]
            assert isinstance(env, dict)
            expected = REAL_VARIABLES | (CHECKPOINT_VARIABLES if checkpoint else set())
            # Nothing inherited. (Python itself sets LC_CTYPE when it starts in
            # the C locale, PEP 538: not something the agent gave.)
            env.pop("LC_CTYPE", None)
            assert set(env) == expected
            assert env == agent.executor_environment(proc.sandbox)
            assert env == proc.environment
            port = agent.port
            assert env["MESOS_AGENT_ENDPOINT"] == f"127.0.0.1:{port}"
            assert env["MESOS_SLAVE_PID"] == f"slave(1)@127.0.0.1:{port}"
            assert env["PATH"] == DEFAULT_PATH
            assert env["LIBPROCESS_PORT"] == "0"
            assert env["MESOS_CHECKPOINT"] == ("1" if checkpoint else "0")
            assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "5secs"
            if checkpoint:
                assert env["MESOS_RECOVERY_TIMEOUT"] == "15mins"
                assert env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] == "3secs"
            # The sandbox: MESOS_DIRECTORY = MESOS_SANDBOX = cwd, laid out like the agent's.
            assert env["MESOS_DIRECTORY"] == env["MESOS_SANDBOX"] == str(proc.sandbox)
            assert info["cwd"] == os.path.realpath(proc.sandbox)
            assert proc.sandbox.parts[-6:] == (
                "frameworks",
                agent.framework_id,
                "executors",
                agent.executor_id,
                "runs",
                agent.container_id,
            )
            # Its own session and process group.
            assert info["pid"] == proc.pid == info["pgid"] == info["sid"]
            assert os.getpgid(0) != proc.pid
            child = info["child"]
            assert isinstance(child, int)
            assert os.getpgid(child) == proc.pid  # (raises if it is not running)
            config = ExecutorConfig.from_environ(env)
            assert config == agent.executor_config(
                directory=str(proc.sandbox), sandbox=str(proc.sandbox)
            )
            sandbox = proc.sandbox
        # Leaving the block killed the whole group: the executor and its grandchild.
        assert proc.returncode == -signal.SIGKILL
        assert await exits_within(child)
        assert (sandbox / "stdout").read_text() == "to stdout\n"
        assert (sandbox / "stderr").read_text() == "to stderr\n"
    # The agent's temporary sandboxes are removed when it exits.
    assert not sandbox.exists()


async def test_given_sandbox_extra_env_and_exit_status(tmp_path: pathlib.Path) -> None:
    sandbox = tmp_path / "box"
    sandbox.mkdir()
    async with FakeAgent(token="tok") as agent:
        async with agent.spawn_executor(
            ["sh", "-c", 'echo "$EXTRA $MESOS_EXECUTOR_AUTHENTICATION_TOKEN"; exit 7'],
            sandbox=sandbox,
            extra_env={"EXTRA": "x"},
            checkpoint=True,
        ) as proc:
            with trio.fail_after(20):
                assert await proc.wait() == 7
            assert proc.environment["MESOS_CHECKPOINT"] == "1"
            assert "MESOS_RECOVERY_TIMEOUT" in proc.environment
        assert (sandbox / "stdout").read_text() == "x tok\n"
    assert sandbox.exists()  # a given sandbox is left alone


async def test_executor_exit_fails_its_tasks(tmp_path: pathlib.Path) -> None:
    """When the executor process exits, the agent treats its container as gone."""
    async with FakeAgent() as agent:
        client_script = tmp_path / "sub.py"
        client_script.write_text(
            textwrap.dedent(
                """
            import http.client, json, os, sys
            host, port = os.environ["MESOS_AGENT_ENDPOINT"].split(":")
            conn = http.client.HTTPConnection(host, int(port))
            body = json.dumps({"type": "SUBSCRIBE",
                "framework_id": {"value": os.environ["MESOS_FRAMEWORK_ID"]},
                "executor_id": {"value": os.environ["MESOS_EXECUTOR_ID"]}, "subscribe": {}})
            conn.request("POST", "/api/v1/executor", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 200
            size = int(response.readline())
            assert json.loads(response.read(size))["type"] == "SUBSCRIBED"
            size = int(response.readline())
            assert json.loads(response.read(size))["type"] == "LAUNCH"
            sys.exit(3)  # crash without any update
            """
            )
        )
        async with agent.spawn_executor([sys.executable, str(client_script)]) as proc:
            with trio.fail_after(20):
                await agent.wait_subscribed()
                task = mesos_pb2.TaskInfo(name="t")
                task.task_id.value = "t"
                task.agent_id.value = agent.agent_id
                await agent.launch(task)
                assert await proc.wait() == 3
                failed = await agent.wait_for_update("t", mesos_pb2.TASK_FAILED)
        assert failed.reason == mesos_pb2.TaskStatus.REASON_EXECUTOR_TERMINATED
        assert failed.message == "Executor terminated"
        assert agent.executor_state == "terminated"
        assert agent.calls[0].type == executor_pb2.Call.SUBSCRIBE


async def test_spawn_needs_a_command() -> None:
    async with FakeAgent() as agent:
        with pytest.raises(ValueError, match="argv"):
            async with agent.spawn_executor([]):
                pass  # pragma: no cover
