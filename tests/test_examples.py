"""The examples run against the FakeAgent, and use only public names."""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import random
from types import ModuleType

import trio
import trio.testing

import trio_mesos
from trio_mesos.testing import AckPolicy, FakeAgent
from trio_mesos.v1 import mesos_pb2

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def private_names(source: str) -> list[str]:
    """Underscore names of trio_mesos that ``source`` imports or touches."""
    found = []
    for node in ast.walk(ast.parse(source)):
        module = getattr(node, "module", None) or ""
        if isinstance(node, ast.ImportFrom) and module.startswith("trio_mesos"):
            found += [module] if "._" in module else []
            found += [a.name for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if "trio_mesos._" in a.name]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            if not node.attr.startswith("__"):
                found.append(node.attr)
    return found


def test_examples_use_only_public_names() -> None:
    files = sorted(EXAMPLES.glob("*.py"))
    assert files
    for path in files:
        assert private_names(path.read_text()) == [], path.name


def test_the_private_name_check_can_fail() -> None:
    assert private_names("from trio_mesos._driver import ExecutorDriver") != []
    assert private_names("import trio_mesos._http") != []
    assert private_names("driver._ledger") != []
    assert private_names("from trio_mesos import open_executor_driver") == []


async def test_hello_executor_terminal_update_is_acknowledged_before_the_driver_returns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hello = load("hello_executor")
    async with FakeAgent(ack_policy=AckPolicy.DELAYED, ack_delay=2.0) as agent:
        options = {"config": agent.executor_config(), "open_stream": agent.connect,
                   "rng": random.Random(0)}
        async with trio_mesos.open_executor_driver(hello.HelloExecutor(), **options) as driver:
            task = mesos_pb2.TaskInfo(name="hello")
            task.task_id.value = "hello-1"
            task.agent_id.value = agent.agent_id
            await agent.launch(task)
            await agent.wait_for_update("hello-1", mesos_pb2.TASK_FINISHED)
            driver.stop()
        # the ACK (2 s after the update) arrived before open_executor_driver returned
        assert driver.statistics().unacknowledged_updates == 0
        assert [u.state for u in agent.updates("hello-1")] == [
            mesos_pb2.TASK_RUNNING,
            mesos_pb2.TASK_FINISHED,
        ]
        assert agent.pending_acks == []
