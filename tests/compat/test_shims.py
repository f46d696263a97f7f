"""The shims in-process: dict shapes, callbacks, threading model, exceptions.

The shim runs its own ``trio.run`` in a background thread and talks to a
FakeAgent on TCP in the test's run. ``kill_process_group_after_grace=False``
everywhere: the process group here is the test runner's.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import addict
import pytest
import trio
from google.protobuf.message import Message
from hypothesis import assume, given

from tests import strategies
from trio_mesos import LocalProtocolError, Status
from trio_mesos._recordio import encode_record
from trio_mesos.compat import pymesos
from trio_mesos.compat.mesos import executor as mesos_executor
from trio_mesos.compat.mesos import interface, native
from trio_mesos.compat.mesos.interface import mesos_pb2 as old_pb2
from trio_mesos.testing import FakeAgent
from trio_mesos.testing._agent_json import write_json
from trio_mesos.v1 import executor_pb2, mesos_pb2

RUNNING, FINISHED, KILLED = mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED, mesos_pb2.TASK_KILLED
LIMIT = 30.0


def make_task(task_id: str) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name=task_id, data=b"\x00payload")
    task.task_id.value = task_id
    task.agent_id.value = "fake-agent-S0"
    return task


def agent_json(message: Message) -> Any:
    return json.loads(write_json(message))


# -- the dict shape ----------------------------------------------------------------


@given(strategies.events())
def test_dicts_are_what_the_agent_writes(event: executor_pb2.Event) -> None:
    from trio_mesos.compat._json import message_to_dict

    assert message_to_dict(event) == agent_json(event)


def test_dicts_keep_the_agents_quirks() -> None:
    from trio_mesos.compat._json import message_to_dict

    framework = mesos_pb2.FrameworkInfo(user="u", name="n")
    resource = mesos_pb2.Resource(name="cpus", type=mesos_pb2.Value.SCALAR)
    resource.scalar.value = 1e20
    shaped = {
        "framework": message_to_dict(framework),
        "resource": message_to_dict(resource),
    }
    # explicit defaults written, deprecated role not, the exponent's zero trimmed
    assert shaped["framework"]["failover_timeout"] == 0.0
    assert shaped["framework"]["checkpoint"] is False
    assert "role" not in shaped["framework"]
    assert shaped["resource"]["scalar"]["value"] == 1e2
    assert shaped == {"framework": agent_json(framework), "resource": agent_json(resource)}


@given(strategies.task_statuses())
def test_status_dicts_read_back(status: mesos_pb2.TaskStatus) -> None:
    from trio_mesos.compat._json import message_to_dict, status_from_dict

    shaped = message_to_dict(status)
    before = json.dumps(shaped, sort_keys=True)
    # 15 digits round the largest doubles up to infinity, which JSON cannot carry.
    assume("Infinity" not in before)
    # The agent's doubles keep 15 digits: the dict reads back to what it says.
    assert message_to_dict(status_from_dict(shaped)) == shaped
    status.ClearField("timestamp")
    assert status_from_dict(message_to_dict(status)) == status
    assert json.dumps(shaped, sort_keys=True) == before  # not modified


@pytest.mark.parametrize("bad", [
    {"task_id": {"value": "t"}, "state": "TASK_NOPE"},
    {"task_id": {"value": "t"}, "state": "TASK_RUNNING", "data": "not base64!"},
    {"state": "TASK_RUNNING"},
])
def test_bad_status_dicts_are_refused(bad: dict[str, Any]) -> None:
    from trio_mesos.compat._json import status_from_dict

    with pytest.raises(LocalProtocolError, match="not a TaskStatus"):
        status_from_dict(bad)


def test_old_names() -> None:
    assert old_pb2.SlaveID is mesos_pb2.AgentID
    assert old_pb2.SlaveInfo is mesos_pb2.AgentInfo
    assert old_pb2.TaskStatus is mesos_pb2.TaskStatus
    assert old_pb2.TASK_RUNNING == mesos_pb2.TASK_RUNNING
    assert [old_pb2.DRIVER_NOT_STARTED, old_pb2.DRIVER_RUNNING, old_pb2.DRIVER_ABORTED,
            old_pb2.DRIVER_STOPPED] == [1, 2, 3, 4]
    assert interface.mesos_pb2 is old_pb2
    assert mesos_executor.MesosExecutorDriver is native.MesosExecutorDriver
    assert pymesos.decode_data(pymesos.encode_data(b"\x00\xff")) == b"\x00\xff"


# -- a recording legacy executor -------------------------------------------------------


class Calls:
    """What the legacy callbacks received, in order, and on which thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.threads: set[int] = set()
        self.changed = threading.Condition()

    def record(self, name: str, *args: Any) -> None:
        with self.changed:
            self.calls.append((name, args))
            self.threads.add(threading.get_ident())
            self.changed.notify_all()

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def args(self, name: str) -> tuple[Any, ...]:
        return next(args for n, args in self.calls if n == name)

    async def wait_for(self, name: str, count: int = 1) -> None:
        def wait() -> None:
            with self.changed:
                assert self.changed.wait_for(lambda: self.names().count(name) >= count, LIMIT)

        await trio.to_thread.run_sync(wait)


class PymesosRecorder(pymesos.Executor):
    def __init__(self, calls: Calls) -> None:
        self.c = calls

    def registered(self, driver, executorInfo, frameworkInfo, agentInfo):  # type: ignore[no-untyped-def]
        self.c.record("registered", executorInfo, frameworkInfo, agentInfo)

    def launchTask(self, driver, task):  # type: ignore[no-untyped-def]
        self.c.record("launchTask", task)
        update = {"task_id": task["task_id"], "state": "TASK_RUNNING", "data": task["data"]}
        self.c.record("sent", driver.sendStatusUpdate(update), update)

    def launchTaskGroup(self, driver, task_infos):  # type: ignore[no-untyped-def]
        self.c.record("launchTaskGroup", task_infos)

    def killTask(self, driver, taskId):  # type: ignore[no-untyped-def]
        self.c.record("killTask", taskId)
        driver.sendStatusUpdate({"task_id": taskId, "state": "TASK_KILLED"})

    def frameworkMessage(self, driver, message):  # type: ignore[no-untyped-def]
        self.c.record("frameworkMessage", message)
        driver.sendFrameworkMessage(message)

    def shutdown(self, driver):  # type: ignore[no-untyped-def]
        self.c.record("shutdown")

    def error(self, driver, message):  # type: ignore[no-untyped-def]
        self.c.record("error", message)


@pytest.fixture
def calls() -> Iterator[Calls]:
    return Calls()


async def test_pymesos_callbacks_get_agent_json_dicts(calls: Calls) -> None:
    with trio.fail_after(LIMIT):
        async with FakeAgent() as agent:
            await agent.listen_tcp()
            driver = pymesos.MesosExecutorDriver(
                PymesosRecorder(calls), config=agent.executor_config(),
                kill_process_group_after_grace=False,
            )
            assert driver.aborted
            assert driver.start() == Status.DRIVER_RUNNING
            await calls.wait_for("registered")
            await agent.launch(make_task("one"))
            group = mesos_pb2.TaskGroupInfo(tasks=[make_task("g1"), make_task("g2")])
            await agent.launch_group(group)
            await agent.wait_for_update("one", RUNNING)
            await agent.kill("one")
            await agent.wait_for_update("one", KILLED)
            await agent.message(b"\x00hello")
            await agent.wait_call(executor_pb2.Call.MESSAGE)
            assert driver.abort() == Status.DRIVER_ABORTED
            assert await trio.to_thread.run_sync(driver.join) == Status.DRIVER_ABORTED
            assert driver.aborted

    executor_info, framework_info, agent_info = calls.args("registered")
    assert type(executor_info) is dict
    subscribed = next(e.event for e in agent.events if e.type == executor_pb2.Event.SUBSCRIBED)
    assert subscribed is not None
    assert executor_info == agent_json(subscribed.subscribed.executor_info)
    assert driver.executor_info == executor_info
    assert framework_info["id"] == {"value": agent.framework_id}
    assert agent_info["id"] == {"value": agent.agent_id}
    (task,) = calls.args("launchTask")
    assert task == agent_json(make_task("one"))
    assert task["task_id"] == {"value": "one"}
    assert task["data"] == base64.b64encode(b"\x00payload").decode()
    status, update = calls.args("sent")
    assert status == Status.DRIVER_RUNNING
    assert update == {"task_id": {"value": "one"}, "state": "TASK_RUNNING",
                      "data": "AHBheWxvYWQ="}  # the caller's dict is not modified
    assert agent.updates("one")[0].data == b"\x00payload"
    (tasks,) = calls.args("launchTaskGroup")
    assert [t["task_id"]["value"] for t in tasks] == ["g1", "g2"]
    assert calls.args("killTask") == ({"value": "one"},)
    assert calls.args("frameworkMessage") == (base64.b64encode(b"\x00hello").decode(),)
    assert agent.messages == [b"\x00hello"]
    assert len(calls.threads) == 1  # one callback thread
    assert threading.get_ident() not in calls.threads
    assert driver.framework_id == {"value": agent.framework_id}
    assert driver.executor_id == {"value": agent.executor_id}
    assert driver.checkpoint is False


async def test_pymesos_use_addict(calls: Calls) -> None:
    with trio.fail_after(LIMIT):
        async with FakeAgent() as agent:
            await agent.listen_tcp()
            driver = pymesos.MesosExecutorDriver(
                PymesosRecorder(calls), use_addict=True, config=agent.executor_config(),
                kill_process_group_after_grace=False,
            )
            driver.start()
            await agent.wait_subscribed()
            await agent.launch(make_task("one"))
            await agent.wait_for_update("one", RUNNING)
            assert driver.stop() == Status.DRIVER_STOPPED
            assert await trio.to_thread.run_sync(driver.join) == Status.DRIVER_STOPPED
    (task,) = calls.args("launchTask")
    assert isinstance(task, addict.Dict)
    assert task.task_id.value == "one"


class Blocking(PymesosRecorder):
    """launchTask of task "block" blocks until released."""

    def __init__(self, calls: Calls) -> None:
        super().__init__(calls)
        self.release = threading.Event()

    def launchTask(self, driver, task):  # type: ignore[no-untyped-def]
        super().launchTask(driver, task)
        if task["task_id"]["value"] == "block":
            assert self.release.wait(LIMIT)


async def test_a_blocking_callback_does_not_stall_the_driver(calls: Calls) -> None:
    executor = Blocking(calls)
    with trio.fail_after(LIMIT):
        async with FakeAgent() as agent:
            await agent.listen_tcp()
            driver = pymesos.MesosExecutorDriver(executor, config=agent.executor_config(),
                                                 kill_process_group_after_grace=False)
            driver.start()
            await agent.wait_subscribed()
            await agent.launch(make_task("block"))
            await agent.wait_for_update("block", RUNNING)
            # The callback blocks: the update still went out and its ACK is read...
            await agent.wait_event(executor_pb2.Event.ACKNOWLEDGED)
            await agent.launch(make_task("next"))
            for _ in range(3):
                await agent.heartbeat()
            await agent.wait_event(executor_pb2.Event.HEARTBEAT, 3)
            assert agent.stream_connected
            # ... but the next callback waits its turn.
            assert calls.names().count("launchTask") == 1
            executor.release.set()
            await agent.wait_for_update("next", RUNNING)
            driver.stop()
            assert await trio.to_thread.run_sync(driver.join) == Status.DRIVER_STOPPED
    assert [name for name in calls.names() if name == "launchTask"] == ["launchTask"] * 2
    assert agent.pending_acks == []


class Raising(PymesosRecorder):
    def launchTask(self, driver, task):  # type: ignore[no-untyped-def]
        raise ValueError("boom in launchTask")


async def test_pymesos_callback_exception_aborts_and_join_raises_it(
    calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(LIMIT):
        async with FakeAgent() as agent:
            await agent.listen_tcp()
            driver = pymesos.MesosExecutorDriver(Raising(calls), config=agent.executor_config(),
                                                 kill_process_group_after_grace=False)
            driver.start()
            await agent.wait_subscribed()
            await agent.launch(make_task("one"))
            with pytest.raises(ValueError, match="boom in launchTask"):
                await trio.to_thread.run_sync(driver.run)
            await agent.message(b"late")  # the agent lost the executor; nothing is called
    assert driver.aborted
    assert "frameworkMessage" not in calls.names()
    assert "the executor's launchTask callback raised" in caplog.text


class Bindings(interface.Executor):
    def __init__(self, calls: Calls, raise_in: str = "") -> None:
        self.c = calls
        self.raise_in = raise_in

    def _maybe_raise(self, name: str) -> None:
        if name == self.raise_in:
            raise RuntimeError(f"boom in {name}")

    def registered(self, driver, executorInfo, frameworkInfo, slaveInfo):  # type: ignore[no-untyped-def]
        self.c.record("registered", executorInfo, frameworkInfo, slaveInfo)

    def launchTask(self, driver, task):  # type: ignore[no-untyped-def]
        self.c.record("launchTask", task)
        update = old_pb2.TaskStatus(task_id=task.task_id, state=old_pb2.TASK_RUNNING)
        self.c.record("sent", driver.sendStatusUpdate(update))
        self._maybe_raise("launchTask")

    def killTask(self, driver, taskId):  # type: ignore[no-untyped-def]
        self.c.record("killTask", taskId)

    def frameworkMessage(self, driver, message):  # type: ignore[no-untyped-def]
        self.c.record("frameworkMessage", message)
        driver.sendFrameworkMessage(message)

    def error(self, driver, message):  # type: ignore[no-untyped-def]
        self.c.record("error", message)
        self._maybe_raise("error")


async def test_bindings_callbacks_get_protobuf(calls: Calls) -> None:
    with trio.fail_after(LIMIT):
        async with FakeAgent() as agent:
            await agent.listen_tcp()
            driver = native.MesosExecutorDriver(Bindings(calls), config=agent.executor_config(),
                                                kill_process_group_after_grace=False)
            assert driver.join() == old_pb2.DRIVER_NOT_STARTED
            assert driver.start() == old_pb2.DRIVER_RUNNING
            await agent.wait_subscribed()
            await agent.launch(make_task("one"))
            group = mesos_pb2.TaskGroupInfo(tasks=[make_task("g1")])
            await agent.launch_group(group)
            await agent.wait_for_update("g1", RUNNING)
            await agent.kill("one")
            await calls.wait_for("killTask")
            await agent.message(b"\x00hello")
            await agent.wait_call(executor_pb2.Call.MESSAGE)
            assert driver.stop() == old_pb2.DRIVER_STOPPED
            assert await trio.to_thread.run_sync(driver.join) == old_pb2.DRIVER_STOPPED
    executor_info, framework_info, slave_info = calls.args("registered")
    assert isinstance(executor_info, old_pb2.ExecutorInfo)
    assert framework_info.id.value == agent.framework_id
    assert isinstance(slave_info, old_pb2.SlaveInfo)
    assert slave_info.id.value == agent.agent_id
    assert [args[0].task_id.value for n, args in calls.calls if n == "launchTask"] == ["one", "g1"]
    assert calls.args("sent") == (old_pb2.DRIVER_RUNNING,)
    assert calls.args("killTask") == (old_pb2.TaskID(value="one"),)
    assert calls.args("frameworkMessage") == (b"\x00hello",)
    assert agent.messages == [b"\x00hello"]


async def test_bindings_callback_exception_aborts(
    calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(LIMIT):
        async with FakeAgent() as agent:
            await agent.listen_tcp()
            driver = native.MesosExecutorDriver(Bindings(calls, "launchTask"),
                                                config=agent.executor_config(),
                                                kill_process_group_after_grace=False)
            driver.start()
            await agent.wait_subscribed()
            await agent.launch(make_task("one"))
            status = await trio.to_thread.run_sync(driver.join)
    assert status == old_pb2.DRIVER_ABORTED
    assert "the executor's launchTask callback raised" in caplog.text


async def test_bindings_exception_in_error_is_only_logged(
    calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    with trio.fail_after(LIMIT):
        async with FakeAgent() as agent:
            await agent.listen_tcp()
            driver = native.MesosExecutorDriver(Bindings(calls, "error"),
                                                config=agent.executor_config(),
                                                kill_process_group_after_grace=False)
            driver.start()
            await agent.wait_subscribed()
            await calls.wait_for("registered")
            error = executor_pb2.Event(type=executor_pb2.Event.ERROR)
            error.error.message = "an agent error"
            await agent.inject(encode_record(error.SerializeToString()))
            await calls.wait_for("error")
            await agent.message(b"still here")
            await calls.wait_for("frameworkMessage")
            assert driver.stop() == old_pb2.DRIVER_STOPPED
            assert await trio.to_thread.run_sync(driver.join) == old_pb2.DRIVER_STOPPED
    assert "the executor's error callback raised" in caplog.text


def test_join_before_start_and_a_missing_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from trio_mesos import ConfigError

    monkeypatch.delenv("MESOS_FRAMEWORK_ID", raising=False)
    with pytest.raises(ConfigError):
        pymesos.MesosExecutorDriver(pymesos.Executor())


def test_importing_the_shims_has_no_side_effects() -> None:
    import subprocess
    import sys

    program = """
import logging, signal, threading
before = (signal.getsignal(signal.SIGINT), list(logging.getLogger().handlers))
errors = []
def imports():
    try:
        import trio_mesos.compat.pymesos, trio_mesos.compat.mesos.native
        import trio_mesos.compat.mesos.executor
    except BaseException as exc:
        errors.append(exc)
thread = threading.Thread(target=imports)
thread.start()
thread.join()
assert not errors, errors
assert (signal.getsignal(signal.SIGINT), list(logging.getLogger().handlers)) == before
for name in ("pymesos", "trio_mesos.compat", "trio_mesos"):
    assert logging.getLogger(name).handlers == [], name
"""
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)
