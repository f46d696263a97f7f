"""Pipelined calls on the call connection (issue 7).

The driver writes calls ahead on its keep-alive call connection (at most
``MAX_CALLS_IN_FLIGHT`` unanswered) and reads the answers in order. Per task,
at most one UPDATE waits for its 202 (the ledger's order rule), so a task's
updates reach the agent in the order they were made, also when the
connection breaks with calls in flight: those go back to QUEUED and are sent
again. FakeAgent over memory streams, virtual time; nothing is timed.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

import trio_mesos
from trio_mesos import _acks
from trio_mesos._calls import MAX_CALLS_IN_FLIGHT
from trio_mesos.testing import FakeAgent
from trio_mesos.v1 import executor_pb2, mesos_pb2

from .helpers import driver_options, make_task, status

RUNNING, FINISHED = mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED
UPDATE = executor_pb2.Call.UPDATE
#: Each task's updates, in the order they are made.
SCRIPT = [(RUNNING, "first"), (RUNNING, "second"), (FINISHED, "last")]
LIMIT = 3600.0


class Tap(trio.abc.Stream):
    """A stream that counts requests written and responses read; can break once."""

    def __init__(self, inner: trio.abc.Stream, *, break_mid_pipeline: bool = False) -> None:
        self.inner = inner
        self.posts = 0
        self.responses = 0
        self.max_outstanding = 0
        self.break_mid_pipeline = break_mid_pipeline
        self.broke_with_outstanding = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.posts += bytes(data).count(b"POST ")
        self.max_outstanding = max(self.max_outstanding, self.posts - self.responses)
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.break_mid_pipeline and self.responses >= 1 and self.posts - self.responses >= 2:
            self.break_mid_pipeline = False
            self.broke_with_outstanding = self.posts - self.responses
            await trio.aclose_forcefully(self.inner)
            raise trio.BrokenResourceError("tap: the call connection broke")
        data = await self.inner.receive_some(max_bytes)
        self.responses += bytes(data).count(b"HTTP/1.1 ")
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


class Dialer:
    """``open_stream``: the first connection is the event stream; later ones are taps."""

    def __init__(self, agent: FakeAgent, **tap_options: Any) -> None:
        self.agent = agent
        self.taps: list[Tap] = []
        self.tap_options = tap_options

    async def __call__(self) -> trio.abc.Stream:
        stream = await self.agent.connect()
        if not self.opened_stream:
            self.opened_stream = True
            return stream
        tap = Tap(stream, **(self.tap_options if not self.taps else {}))
        self.taps.append(tap)
        return tap

    opened_stream = False


class Scripted(trio_mesos.Executor):
    async def launch_task(self, driver: Any, task: mesos_pb2.TaskInfo) -> None:
        for state, message in SCRIPT:
            driver.send_status_update(status(task.task_id.value, state, message))

    async def launch_task_group(self, driver: Any, task_group: mesos_pb2.TaskGroupInfo) -> None:
        for task in task_group.tasks:
            await self.launch_task(driver, task)


class SendingWatch:
    """Records, at every QUEUED -> SENDING, how many of the task's updates were SENDING."""

    def __init__(self, monkeypatch: Any) -> None:
        self.concurrent: list[int] = []
        original = _acks.AckLedger.update_sending

        def update_sending(ledger: _acks.AckLedger, uuid: bytes) -> _acks.PendingUpdate:
            entry = ledger.get(uuid)
            assert entry is not None
            self.concurrent.append(
                sum(
                    1
                    for e in ledger
                    if e.task_id == entry.task_id and e.delivery is _acks.Delivery.SENDING
                )
            )
            return original(ledger, uuid)

        monkeypatch.setattr(_acks.AckLedger, "update_sending", update_sending)


def distinct_updates(agent: FakeAgent, task_id: str) -> list[tuple[int, str]]:
    """(state, message) of the task's UPDATE calls the agent accepted, first arrival of
    each uuid, in arrival order."""
    seen: set[bytes] = set()
    result = []
    for call in agent.calls:
        if call.type != UPDATE or call.call is None or call.status_code != 202:
            continue
        st = call.call.update.status
        if st.task_id.value != task_id or st.uuid in seen:
            continue
        seen.add(st.uuid)
        result.append((int(st.state), st.message))
    return result


async def run_tasks(agent: FakeAgent, dialer: Dialer, task_ids: list[str]) -> None:
    """One LAUNCH_GROUP with the tasks; returns once the driver stopped (all ACKed)."""
    group = mesos_pb2.TaskGroupInfo()
    for task_id in task_ids:
        group.tasks.add().CopyFrom(make_task(task_id))
    options = driver_options(agent, open_stream=dialer)
    async with trio_mesos.open_executor_driver(Scripted(), **options) as driver:
        await agent.launch_group(group)
        await agent.wait_terminal(*task_ids)
    assert driver.statistics().unacknowledged_updates == 0


async def test_calls_are_pipelined_across_tasks_in_per_task_order(
    autojump_clock: trio.testing.MockClock, monkeypatch: Any
) -> None:
    watch = SendingWatch(monkeypatch)
    task_ids = [f"task-{i}" for i in range(20)]
    with trio.fail_after(LIMIT):
        async with FakeAgent() as agent:
            dialer = Dialer(agent)
            await run_tasks(agent, dialer, task_ids)
    # Several calls were in flight at once on one connection...
    assert len(dialer.taps) == 1
    assert dialer.taps[0].max_outstanding > 1
    # ...but never two updates of the same task.
    assert watch.concurrent and set(watch.concurrent) == {0}
    for task_id in task_ids:
        assert distinct_updates(agent, task_id) == [(int(s), m) for s, m in SCRIPT]


async def test_a_connection_broken_mid_pipeline_loses_and_reorders_nothing(
    autojump_clock: trio.testing.MockClock, monkeypatch: Any
) -> None:
    watch = SendingWatch(monkeypatch)
    task_ids = [f"task-{i}" for i in range(20)]
    with trio.fail_after(LIMIT):
        async with FakeAgent() as agent:
            dialer = Dialer(agent, break_mid_pipeline=True)
            await run_tasks(agent, dialer, task_ids)
    # The first call connection broke with calls in flight; a new one took over.
    assert dialer.taps[0].broke_with_outstanding >= 2
    assert len(dialer.taps) >= 2
    assert set(watch.concurrent) == {0}
    for task_id in task_ids:
        assert distinct_updates(agent, task_id) == [(int(s), m) for s, m in SCRIPT]
        assert agent.task_state(task_id) == FINISHED


async def test_calls_in_flight_are_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    task_ids = [f"task-{i}" for i in range(3 * MAX_CALLS_IN_FLIGHT)]
    with trio.fail_after(LIMIT):
        async with FakeAgent() as agent:
            dialer = Dialer(agent)
            await run_tasks(agent, dialer, task_ids)
    assert dialer.taps[0].max_outstanding == MAX_CALLS_IN_FLIGHT
    for task_id in task_ids:
        assert distinct_updates(agent, task_id) == [(int(s), m) for s, m in SCRIPT]
