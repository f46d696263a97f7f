"""Driver calls from any thread (issue 15, item 1).

``send_status_update``, ``send_framework_message``, ``start``, ``stop`` and
``abort`` called from plain ``threading.Thread``s and ``trio.to_thread``
workers: same return values, same exceptions, each thread's order kept, and
the end honoured: every call that returned ``DRIVER_RUNNING`` reached the
agent and was acknowledged; calls after the end return the final Status and
send nothing.

Real clock (threads cannot follow a MockClock), FakeAgent over memory streams.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import trio

import trio_mesos
from trio_mesos import LocalProtocolError, Status
from trio_mesos.testing import FakeAgent
from trio_mesos.v1 import mesos_pb2

from .helpers import Recorder, driver_options, make_task, status

RUNNING, STOPPED, ABORTED = Status.DRIVER_RUNNING, Status.DRIVER_STOPPED, Status.DRIVER_ABORTED
THREADS = 8
UPDATES = 1000
STOP_AT = 500  # thread 0 calls stop() after this many of its updates
#: Seconds between a thread's updates. Unpaced, 8 threads queue far faster than
#: an agent acknowledges, and the stop drain of a large backlog is slow (the
#: driver rescans its whole ledger after every answer while stopping).
PACE = 0.01
#: Wall-clock seconds after which a test fails instead of hanging (2 noisy cores).
LIMIT = 120.0


def _update(task_id: str, index: int) -> mesos_pb2.TaskStatus:
    update = status(task_id, mesos_pb2.TASK_RUNNING)
    update.data = b"%d" % index
    return update


class _Sender:
    """One thread's updates: UPDATES of them, then on until the driver has ended.

    The drain after ``stop()`` ends as soon as nothing is left unacknowledged,
    so the end usually comes while the threads still send.
    """

    def __init__(self, driver: trio_mesos.ExecutorDriver, number: int) -> None:
        self.driver = driver
        self.task_id = f"t{number}"
        self.number = number
        self.returned: list[tuple[int, Status]] = []
        self.stop_returned: Status | None = None
        self.threads: set[int] = set()

    def __call__(self) -> None:
        self.threads.add(threading.get_ident())
        send = self.driver.send_status_update
        index = 0
        for index in range(UPDATES):
            self.returned.append((index, send(_update(self.task_id, index))))
            if self.number == 0 and index == STOP_AT:
                self.stop_returned = self.driver.stop()
            time.sleep(PACE)
        # On, slowly (so that the drain can catch up), until the end was decided.
        deadline = time.monotonic() + LIMIT
        while self.returned[-1][1] is RUNNING and time.monotonic() < deadline:
            time.sleep(0.2)
            index += 1
            self.returned.append((index, send(_update(self.task_id, index))))
        for _ in range(5):
            index += 1
            self.returned.append((index, send(_update(self.task_id, index))))


async def _launched(agent: FakeAgent, recorder: Recorder, count: int) -> None:
    for number in range(count):
        await agent.launch(make_task(f"t{number}"))
    await recorder.wait_for("launch_task", count)


async def test_eight_threads_of_updates_while_the_driver_stops() -> None:
    recorder = Recorder()
    with trio.fail_after(LIMIT * 2):
        async with FakeAgent() as agent:
            options = driver_options(agent, stop_timeout=LIMIT)
            async with trio_mesos.open_executor_driver(recorder, **options) as driver:
                await _launched(agent, recorder, THREADS)
                senders = [_Sender(driver, number) for number in range(THREADS)]
                plain = [threading.Thread(target=sender, name=f"plain-{sender.number}")
                         for sender in senders[: THREADS // 2]]
                for thread in plain:
                    thread.start()
                async with trio.open_nursery() as nursery:
                    for sender in senders[THREADS // 2:]:
                        nursery.start_soon(trio.to_thread.run_sync, sender)
                    for thread in plain:
                        nursery.start_soon(trio.to_thread.run_sync, thread.join)
                final = await driver.join()
            statistics = driver.statistics()

    assert final is STOPPED
    assert senders[0].stop_returned is STOPPED
    assert statistics.unacknowledged_updates == 0
    assert agent.pending_acks == []
    assert len({ident for s in senders for ident in s.threads}) == THREADS
    after_end = 0
    for sender in senders:
        results = [result for _, result in sender.returned]
        ran = [index for index, result in sender.returned if result is RUNNING]
        # RUNNING until the end was decided, the final Status after it: never back.
        assert results == [RUNNING] * len(ran) + [STOPPED] * (len(results) - len(ran))
        assert len(ran) > (STOP_AT if sender.number == 0 else 0)
        after_end += len(results) - len(ran)
        # Every RUNNING call reached the agent, in the thread's order; nothing after.
        received = [int(update.data) for update in agent.updates(sender.task_id)
                    if update.state == mesos_pb2.TASK_RUNNING]
        assert received == ran
    assert after_end >= 5 * THREADS


async def test_thread_calls_keep_return_values_and_errors() -> None:
    recorder = Recorder()
    with trio.fail_after(LIMIT):
        async with FakeAgent() as agent:
            async with trio_mesos.open_executor_driver(recorder, **driver_options(agent)) as driver:
                await _launched(agent, recorder, 1)

                def from_thread() -> list[Any]:
                    results: list[Any] = [driver.start(), driver.send_framework_message(b"hi")]
                    with pytest.raises(LocalProtocolError, match="never launched"):
                        driver.send_status_update(status("unknown", mesos_pb2.TASK_RUNNING))
                    staging = status("t0", mesos_pb2.TASK_STAGING)
                    with pytest.raises(LocalProtocolError):
                        driver.send_status_update(staging)
                    results.append(driver.send_status_update(status("t0", mesos_pb2.TASK_FINISHED)))
                    results.append(driver.abort())
                    results.append(driver.send_status_update(status("t0", mesos_pb2.TASK_FINISHED)))
                    results.append(driver.stop())
                    return results

                results = await trio.to_thread.run_sync(from_thread)
                assert await driver.join() is ABORTED
    assert results == [RUNNING, RUNNING, RUNNING, ABORTED, ABORTED, ABORTED]
    assert [m for m in agent.messages] in ([b"hi"], [])  # aborted at once: best effort


def test_calls_after_the_trio_run_return_the_final_status() -> None:
    recorder = Recorder()
    kept: list[trio_mesos.ExecutorDriver] = []

    async def main() -> None:
        async with FakeAgent() as agent:
            async with trio_mesos.open_executor_driver(recorder, **driver_options(agent)) as driver:
                kept.append(driver)

    trio.run(main)
    results: list[Status] = []
    thread = threading.Thread(target=lambda: results.extend([
        kept[0].send_status_update(status("t0", mesos_pb2.TASK_RUNNING)),
        kept[0].send_framework_message(b"late"),
        kept[0].stop(),
        kept[0].abort(),
        kept[0].start(),
    ]))
    thread.start()
    thread.join()
    assert results == [STOPPED] * 5
