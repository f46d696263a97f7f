"""The driver against the FakeAgent over memory streams (virtual time where it matters)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import pytest
import trio
import trio.testing

import trio_mesos
from trio_mesos import (
    AgentUnavailableError,
    CallRejectedError,
    DriverClosedError,
    JoinFromCallbackError,
    LocalProtocolError,
    Status,
)
from trio_mesos._recordio import encode_record
from trio_mesos.testing import AckPolicy, FakeAgent
from trio_mesos.v1 import executor_pb2, mesos_pb2

from .helpers import Recorder, driver_options, make_task, status

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

RUNNING, FINISHED, KILLED = mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED, mesos_pb2.TASK_KILLED


# --------------------------------------------------------------------------
# Lifecycle and the seed API
# --------------------------------------------------------------------------


async def test_subscribe_register_launch_update_ack_stop() -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            assert driver.start() == Status.DRIVER_RUNNING
            executor_info, framework_info, agent_info = await executor.wait_for("registered")
            assert executor_info.executor_id.value == agent.executor_id
            assert framework_info.id.value == agent.framework_id
            assert agent_info.id.value == agent.agent_id
            await agent.launch(make_task("t1"))
            (task,) = await executor.wait_for("launch_task")
            assert task.task_id.value == "t1"
            assert driver.send_status_update(status("t1", RUNNING)) == Status.DRIVER_RUNNING
            got = await agent.wait_for_update("t1", RUNNING)
            assert got.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR
            assert len(got.uuid) == 16
            assert got.executor_id.value == agent.executor_id
            task_id, uuid = await executor.wait_for("acknowledged")
            assert (task_id, uuid) == ("t1", got.uuid)
            assert driver.stop() == Status.DRIVER_STOPPED
            assert await driver.join() == Status.DRIVER_STOPPED
        assert driver.start() == Status.DRIVER_STOPPED
    assert executor.names()[:3] == ["registered", "launch_task", "acknowledged"]


async def test_the_executor_subscribes_with_its_ids_and_content_type() -> None:
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)):
            call = agent.calls[0]
            assert call.call is not None
            assert call.call.type == executor_pb2.Call.SUBSCRIBE
            assert call.call.framework_id.value == agent.framework_id
            assert call.content_type == "application/x-protobuf"
            assert call.status_code == 200


async def test_json_content_type_works_end_to_end() -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        options = driver_options(agent, content_type="application/json")
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            await driver.update(status("t1", FINISHED))
            await agent.wait_for_update("t1", FINISHED)
    assert {c.content_type for c in agent.calls} == {"application/json"}


async def test_methods_after_the_end_return_the_final_status() -> None:
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            driver.stop()
            assert await driver.join() == Status.DRIVER_STOPPED
            # twice, and every seed method after the end
            assert await driver.join() == Status.DRIVER_STOPPED
            assert driver.stop() == Status.DRIVER_STOPPED
            assert driver.abort() == Status.DRIVER_STOPPED
            assert driver.start() == Status.DRIVER_STOPPED
            assert driver.send_status_update(status("t1", RUNNING)) == Status.DRIVER_STOPPED
            assert driver.send_framework_message(b"x") == Status.DRIVER_STOPPED
            assert await driver.run() == Status.DRIVER_STOPPED
            with pytest.raises(DriverClosedError):
                await driver.update(status("t1", RUNNING))
            with pytest.raises(DriverClosedError):
                await driver.message(b"x")
            with pytest.raises(DriverClosedError):
                driver.start_task("t1", trio.sleep_forever)


async def test_abort_is_not_stop() -> None:
    # pymesos defect 10: abort was stop, and nothing returned a Status.
    executor = Recorder()
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD) as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            driver.send_status_update(status("t1", RUNNING))
            assert driver.abort() == Status.DRIVER_ABORTED
            assert driver.abort() == Status.DRIVER_ABORTED
            assert driver.stop() == Status.DRIVER_ABORTED
            assert await driver.join() == Status.DRIVER_ABORTED
            assert driver.statistics().status == Status.DRIVER_ABORTED
            await agent.message(b"after abort")
            await trio.sleep(0.1)
    assert "framework_message" not in executor.names()


async def test_abort_waits_for_nothing(autojump_clock: trio.testing.MockClock) -> None:
    executor = Recorder()
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD) as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            driver.send_status_update(status("t1", RUNNING))
            start = trio.current_time()
            driver.abort()
        assert trio.current_time() - start < 0.01
        assert driver.statistics().unacknowledged_updates == 1


async def test_leaving_the_block_waits_for_pending_acks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent(ack_policy=AckPolicy.DELAYED, ack_delay=3.0) as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            driver.send_status_update(status("t1", FINISHED))
            start = trio.current_time()
        # the ACK came 3 s after the update, and the driver waited for it
        assert trio.current_time() - start == pytest.approx(3.0, abs=0.1)
        assert driver.statistics().unacknowledged_updates == 0
        # the end came with the drain: the last ACK's callback never started
        assert "acknowledged" not in executor.names()


async def test_leaving_the_block_waits_at_most_stop_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD) as agent:
        options = driver_options(agent, stop_timeout=7.0)
        executor = Recorder()
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            driver.send_status_update(status("t1", RUNNING))
            start = trio.current_time()
        assert trio.current_time() - start == pytest.approx(7.0, abs=0.1)
        assert await driver.join() == Status.DRIVER_STOPPED
        assert driver.statistics().unacknowledged_updates == 1


async def test_run_executor_returns_the_final_status() -> None:
    class StopOnRegistered(trio_mesos.Executor):
        async def registered(self, driver, *args: Any) -> None:  # type: ignore[no-untyped-def]
            driver.stop()

    async with FakeAgent() as agent:
        result = await trio_mesos.run_executor(StopOnRegistered(), **driver_options(agent))
    assert result == Status.DRIVER_STOPPED


async def test_no_public_constructor() -> None:
    with pytest.raises(TypeError):
        trio_mesos.ExecutorDriver()


async def test_statistics_are_a_frozen_snapshot() -> None:
    executor = Recorder()
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD) as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            before = driver.statistics()
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            await driver.update(status("t1", RUNNING))
            after = driver.statistics()
            driver.abort()
    assert before.state == "subscribed" and before.subscriptions == 1
    assert before.unacknowledged_updates == 0
    assert after.unacknowledged_updates == 1 and after.unacknowledged_tasks == 1
    assert after.updates_accepted == 1
    assert after.last_event_time is not None
    with pytest.raises(AttributeError):
        after.state = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------
# Status updates
# --------------------------------------------------------------------------


async def test_the_callers_status_is_never_mutated_and_uuids_are_fresh() -> None:
    # pymesos defect 4: the dict was stamped in place and reused its uuid.
    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            mine = status("t1", RUNNING)
            before = mine.SerializeToString()
            first = await driver.update(mine)
            mine.state = FINISHED
            second = await driver.update(mine)
            assert mine.SerializeToString() != before  # only our own change
            mine.state = RUNNING
            assert mine.SerializeToString() == before
            assert not mine.HasField("uuid") and not mine.HasField("source")
    assert first != second
    assert [u.uuid for u in agent.updates("t1")] == [first, second]


async def test_invalid_updates_raise_at_once() -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            with pytest.raises(LocalProtocolError, match="TASK_STAGING"):
                driver.send_status_update(status("t1", mesos_pb2.TASK_STAGING))
            with pytest.raises(LocalProtocolError, match="never launched"):
                driver.send_status_update(status("nope", RUNNING))
            with pytest.raises(LocalProtocolError):
                await driver.update(status("nope", RUNNING))
            assert driver.statistics().unacknowledged_updates == 0


async def test_updates_of_a_task_arrive_in_order() -> None:
    executor = Recorder()
    states = [mesos_pb2.TASK_STARTING, RUNNING, FINISHED]
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            for state in states:
                driver.send_status_update(status("t1", state))
            await agent.wait_for_update("t1", FINISHED)
    assert [u.state for u in agent.updates("t1")] == states


async def test_wait_acknowledged_with_manual_acks() -> None:
    executor = Recorder()
    async with FakeAgent(ack_policy=AckPolicy.MANUAL) as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            uuid = await driver.update(status("t1", FINISHED))
            acked = trio.Event()

            async def wait() -> None:
                await driver.wait_acknowledged(uuid)
                acked.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait)
                await trio.sleep(0.05)
                assert not acked.is_set()
                await _maybe_await(agent.ack(uuid))
            assert acked.is_set()
            await driver.wait_acknowledged(uuid)  # already acknowledged: returns at once


async def test_an_update_refused_with_4xx_goes_to_error_and_leaves_the_ledger() -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            agent.fail_next(1, 400, "Framework cannot be found")
            with pytest.raises(CallRejectedError) as info:
                await driver.update(status("t1", RUNNING))
            assert info.value.status_code == 400
            (message,) = await executor.wait_for("error")
            assert "400" in message and "Framework cannot be found" in message
            assert driver.statistics().unacknowledged_updates == 0


async def test_updates_answered_503_are_retried(autojump_clock: trio.testing.MockClock) -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            agent.fail_next(3, 503, "Agent has not finished recovery")
            await driver.update(status("t1", RUNNING))
    updates = [
        c for c in agent.calls if c.call is not None and c.call.type == executor_pb2.Call.UPDATE
    ]
    assert [c.status_code for c in updates] == [503, 503, 503, 202]
    assert len({c.call.update.status.uuid for c in updates}) == 1  # type: ignore[union-attr]


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


async def test_every_event_reaches_its_callback_in_order() -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)):
            await agent.launch(make_task("t1"))
            group = mesos_pb2.TaskGroupInfo(tasks=[make_task("g1"), make_task("g2")])
            await agent.launch_group(group)
            policy = mesos_pb2.KillPolicy()
            policy.grace_period.nanoseconds = 2_000_000_000
            await agent.kill("t1", kill_policy=policy)
            await agent.message(b"hello")
            await agent.heartbeat()
            await agent.inject(encode_record(b"\x08\x2a"))  # unknown event type 42
            error = executor_pb2.Event(type=executor_pb2.Event.ERROR)
            error.error.message = "boom"
            await agent.inject(encode_record(error.SerializeToString()))
            await executor.wait_for("error")
    assert executor.names() == [
        "registered",
        "launch_task",
        "launch_task_group",
        "kill_task",
        "framework_message",
        "error",
    ]
    calls = dict(executor.calls)
    assert [t.task_id.value for t in calls["launch_task_group"][0].tasks] == ["g1", "g2"]
    task_id, kill_policy = calls["kill_task"]
    assert task_id.value == "t1" and kill_policy.grace_period.nanoseconds == 2_000_000_000
    assert calls["framework_message"] == (b"hello",)
    assert calls["error"] == ("boom",)


async def test_a_kill_without_policy_passes_none() -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)):
            await agent.launch(make_task("t1"))
            await agent.kill("t1")
            _, kill_policy = await executor.wait_for("kill_task")
    assert kill_policy is None


async def test_launch_group_default_calls_launch_task_for_each() -> None:
    seen: list[str] = []
    both = trio.Event()

    class OnlyLaunch(trio_mesos.Executor):
        async def launch_task(self, driver, task) -> None:  # type: ignore[no-untyped-def]
            seen.append(task.task_id.value)
            if len(seen) == 2:
                both.set()

    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(OnlyLaunch(), **driver_options(agent)) as d:
            group = mesos_pb2.TaskGroupInfo(tasks=[make_task("a"), make_task("b")])
            await agent.launch_group(group)
            await both.wait()
            await d.update(status("b", RUNNING))  # both tasks are known to the driver
    assert seen == ["a", "b"]


async def test_heartbeat_event_is_handled_quietly(caplog: pytest.LogCaptureFixture) -> None:
    # mesos-go's example executor died on the HEARTBEAT event; pymesos ignored liveness.
    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            with caplog.at_level(logging.WARNING, logger="trio_mesos"):
                await agent.heartbeat()
                await agent.heartbeat()
                await agent.launch(make_task("t1"))
                await executor.wait_for("launch_task")
            assert driver.statistics().state == "subscribed"
    assert not [r for r in caplog.records if r.name.startswith("trio_mesos")]


async def test_unknown_event_types_are_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)):
            with caplog.at_level(logging.WARNING, logger="trio_mesos"):
                await agent.inject(encode_record(b"\x08\x63"))  # type 99
                await agent.launch(make_task("t1"))
                await executor.wait_for("launch_task")
    assert any("unknown type 99" in r.getMessage() for r in caplog.records)


async def test_shutdown_as_the_first_event(autojump_clock: trio.testing.MockClock) -> None:
    # The agent is already shutting the executor down when it subscribes
    # (e.g. it re-subscribes during the grace period): SHUTDOWN comes first.
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)) as first:
            await agent.shutdown()
            first.abort()
        executor = Recorder()
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            assert await driver.join() == Status.DRIVER_STOPPED
    assert executor.names() == ["shutdown"]


async def test_shutdown_ends_the_driver_once_drained(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Killer(Recorder):
        async def shutdown(self, driver):  # type: ignore[no-untyped-def]
            await super().shutdown(driver)
            driver.send_status_update(status("t1", KILLED))

    executor = Killer()
    async with FakeAgent(ack_policy=AckPolicy.DELAYED, ack_delay=0.5) as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            start = trio.current_time()
            await agent.shutdown()
            assert await driver.join() == Status.DRIVER_STOPPED
            # ended when the TASK_KILLED was acknowledged, well within the grace
            assert trio.current_time() - start == pytest.approx(0.5, abs=0.1)
    assert agent.task_state("t1") == KILLED


async def test_shutdown_ends_by_grace_minus_one_second(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD) as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            driver.send_status_update(status("t1", RUNNING))  # never acknowledged
            start = trio.current_time()
            await agent.shutdown()
            assert await driver.join() == Status.DRIVER_STOPPED
            grace = agent.executor_config().shutdown_grace_period
            assert trio.current_time() - start == pytest.approx(grace - 1.0, abs=0.1)


# --------------------------------------------------------------------------
# Task work
# --------------------------------------------------------------------------


async def test_kill_cancels_one_tasks_work_and_shutdown_all() -> None:
    cancelled: list[str] = []

    class Worker(Recorder):
        async def launch_task(self, driver, task):  # type: ignore[no-untyped-def]
            await super().launch_task(driver, task)
            driver.start_task(task.task_id.value, self.work, driver, task.task_id.value)

        async def work(self, driver: Any, task_id: str) -> None:
            try:
                driver.send_status_update(status(task_id, RUNNING))
                await trio.sleep_forever()
            except trio.Cancelled:
                cancelled.append(task_id)
                driver.send_status_update(status(task_id, KILLED))
                raise

    executor = Worker()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            for name in ("a", "b", "c"):
                await agent.launch(make_task(name))
                await agent.wait_for_update(name, RUNNING)
            await agent.kill("b")
            await agent.wait_for_update("b", KILLED)
            assert cancelled == ["b"]
            assert driver.statistics().running_tasks == 2
            await agent.shutdown()
            await driver.join()
    assert sorted(cancelled) == ["a", "b", "c"]
    assert {agent.task_state(t) for t in "abc"} == {KILLED}


async def test_abort_cancels_task_work() -> None:
    cancelled = trio.Event()

    async def work() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)) as driver:
            driver.start_task("t1", work)
            await trio.sleep(0.01)
            driver.abort()
            await driver.join()
    assert cancelled.is_set()


# --------------------------------------------------------------------------
# Exceptions and cancellation
# --------------------------------------------------------------------------


class Boom(Exception):
    pass


async def test_a_callback_that_raises_comes_out_as_itself() -> None:
    observed: list[Status] = []

    class Raiser(trio_mesos.Executor):
        async def launch_task(self, driver, task):  # type: ignore[no-untyped-def]
            raise Boom("from launch_task")

    async with FakeAgent() as agent:
        with pytest.raises(Boom, match="from launch_task"):
            async with trio_mesos.open_executor_driver(Raiser(), **driver_options(agent)) as d:

                async def joiner() -> None:
                    observed.append(await d.join())

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(joiner)
                    await agent.launch(make_task("t1"))
                    await trio.sleep_forever()
    assert observed == [] or observed == [Status.DRIVER_ABORTED]
    assert d.statistics().status == Status.DRIVER_ABORTED
    assert isinstance(d.error, Boom)


async def test_join_elsewhere_returns_aborted_when_a_callback_raises() -> None:
    results: list[Status] = []

    class Raiser(trio_mesos.Executor):
        async def framework_message(self, driver, data):  # type: ignore[no-untyped-def]
            raise Boom(data)

    async with FakeAgent() as agent:
        async with trio.open_nursery() as outer:
            driver_ready = trio.Event()
            holder: list[Any] = []

            async def run() -> None:
                with pytest.raises(Boom):
                    async with trio_mesos.open_executor_driver(
                        Raiser(), **driver_options(agent)
                    ) as d:
                        holder.append(d)
                        driver_ready.set()
                        await trio.sleep_forever()

            outer.start_soon(run)
            await driver_ready.wait()
            driver = holder[0]

            async def joiner() -> None:
                results.append(await driver.join())

            outer.start_soon(joiner)
            await agent.message(b"bad")
    assert results == [Status.DRIVER_ABORTED]


async def test_the_body_raising_comes_out_as_itself_after_draining() -> None:
    executor = Recorder()
    async with FakeAgent(ack_policy=AckPolicy.DELAYED, ack_delay=0.2) as agent:
        with pytest.raises(Boom):
            async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as d:
                await agent.launch(make_task("t1"))
                await executor.wait_for("launch_task")
                d.send_status_update(status("t1", FINISHED))
                raise Boom("body")
    assert d.statistics().unacknowledged_updates == 0
    assert d.statistics().status == Status.DRIVER_STOPPED


async def test_keyboard_interrupt_in_a_callback_comes_out_as_keyboard_interrupt() -> None:
    class Interrupter(trio_mesos.Executor):
        async def launch_task(self, driver, task):  # type: ignore[no-untyped-def]
            raise KeyboardInterrupt

    async with FakeAgent() as agent:
        with pytest.raises(KeyboardInterrupt):
            async with trio_mesos.open_executor_driver(Interrupter(), **driver_options(agent)):
                await agent.launch(make_task("t1"))
                await trio.sleep_forever()


async def test_join_from_a_callback_raises_a_named_error() -> None:
    errors: list[BaseException] = []

    class Joiner(trio_mesos.Executor):
        async def launch_task(self, driver, task):  # type: ignore[no-untyped-def]
            try:
                await driver.join()
            except JoinFromCallbackError as exc:
                errors.append(exc)
            driver.stop()

    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(Joiner(), **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            assert await driver.join() == Status.DRIVER_STOPPED
    assert len(errors) == 1


async def test_stop_and_abort_from_another_task_and_from_a_callback() -> None:
    class Stopper(trio_mesos.Executor):
        async def launch_task(self, driver, task):  # type: ignore[no-untyped-def]
            assert driver.stop() == Status.DRIVER_STOPPED

    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(Stopper(), **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            assert await driver.join() == Status.DRIVER_STOPPED

    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)) as driver:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: _call_soon(driver.abort))
                assert await driver.join() == Status.DRIVER_ABORTED


async def _call_soon(fn: Any) -> None:
    await trio.sleep(0.01)
    fn()


async def test_cancelling_the_block_aborts(autojump_clock: trio.testing.MockClock) -> None:
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD) as agent:
        with trio.move_on_after(5) as scope:
            async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)) as d:
                await agent.launch(make_task("t1"))
                await trio.sleep(0.1)
                d.send_status_update(status("t1", RUNNING))
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert d.statistics().status == Status.DRIVER_ABORTED


@pytest.mark.parametrize("phase", ["connect", "subscribe"])
async def test_cancellation_while_entering(
    phase: str, autojump_clock: trio.testing.MockClock
) -> None:
    silent_peers = []

    async def slow_connect() -> trio.abc.Stream:
        if phase == "connect":
            await trio.sleep_forever()
        client, server = trio.testing.memory_stream_pair()
        silent_peers.append(server)  # reads nothing, answers nothing
        return client

    async with FakeAgent() as agent:
        options = driver_options(agent, open_stream=slow_connect)
        with trio.move_on_after(3) as scope:
            async with trio_mesos.open_executor_driver(Recorder(), **options):
                pytest.fail("the block must not run")  # pragma: no cover
        assert scope.cancelled_caught
        assert len(silent_peers) == (1 if phase == "subscribe" else 0)


async def test_cancellation_mid_callback_leaves_nothing_behind() -> None:
    entered = trio.Event()

    class Slow(trio_mesos.Executor):
        async def launch_task(self, driver, task):  # type: ignore[no-untyped-def]
            entered.set()
            await trio.sleep_forever()

    async with FakeAgent() as agent:
        with trio.move_on_after(5) as scope:
            async with trio_mesos.open_executor_driver(Slow(), **driver_options(agent)) as d:
                await agent.launch(make_task("t1"))
                await entered.wait()
                scope.cancel()
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert d.statistics().status == Status.DRIVER_ABORTED


# --------------------------------------------------------------------------
# Connecting
# --------------------------------------------------------------------------


async def test_an_unreachable_agent_fails_on_entry() -> None:
    async def refuse() -> trio.abc.Stream:
        raise ConnectionRefusedError("connection refused")

    async with FakeAgent() as agent:
        options = driver_options(agent, open_stream=refuse)
        with pytest.raises(AgentUnavailableError, match="cannot connect"):
            async with trio_mesos.open_executor_driver(Recorder(), **options):
                pytest.fail("the block must not run")  # pragma: no cover


async def test_401_is_a_clear_error_on_entry() -> None:
    # pymesos defect 6: a 401 killed the process through SIGINT, with no callback.
    executor = Recorder()
    async with FakeAgent(token="the-right-token") as agent:
        config = agent.executor_config(authentication_token="a-wrong-token")
        with pytest.raises(AgentUnavailableError) as info:
            async with trio_mesos.open_executor_driver(
                executor, **driver_options(agent, config=config)
            ):
                pytest.fail("the block must not run")  # pragma: no cover
    assert "401" in str(info.value)
    assert "a-wrong-token" not in str(info.value)
    # the block never ran, and neither does any callback (the error is the exception)
    assert executor.names() == []


async def test_the_token_is_sent_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    token = "secret-token-value"
    async with FakeAgent(token=token) as agent:
        config = agent.executor_config(authentication_token=token)
        executor = Recorder()
        with caplog.at_level(logging.DEBUG, logger="trio_mesos"):
            async with trio_mesos.open_executor_driver(
                executor, **driver_options(agent, config=config)
            ) as driver:
                await agent.launch(make_task("t1"))
                await executor.wait_for("launch_task")
                await driver.update(status("t1", RUNNING))
                text = repr(driver) + repr(driver.config) + str(driver.statistics())
    assert all(
        dict((k.lower(), v) for k, v in c.headers).get("authorization") == f"Bearer {token}"
        for c in agent.calls
    )
    assert token not in text
    assert token not in caplog.text


async def _maybe_await(value: Any) -> None:
    if hasattr(value, "__await__"):
        await value


async def test_the_environment_is_read_and_the_token_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "env-secret-token"
    async with FakeAgent(token=token) as agent:
        await agent.listen_tcp()
        env = agent.executor_environment("/tmp")
        env["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"] = token
        for name in list(os.environ):
            if name.startswith(("MESOS_", "LIBPROCESS_")):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        executor = Recorder()
        options = {"open_stream": agent.connect}
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            # As the C++ library: read once, then gone, so tasks never inherit it.
            assert "MESOS_EXECUTOR_AUTHENTICATION_TOKEN" not in os.environ
            assert driver.config.executor_id == agent.executor_id
            await executor.wait_for("registered")
    headers = {k.lower(): v for k, v in agent.calls[0].headers}
    assert headers["authorization"] == f"Bearer {token}"


def test_the_exception_policy_of_the_context_manager() -> None:
    from trio_mesos._exits import raise_outcome

    class Other(Exception):
        pass

    one = BaseExceptionGroup("g", [Boom("only")])
    with pytest.raises(Boom, match="only"):
        raise_outcome(one, [])
    # what the driver's tasks raised is unwrapped, with the block's Cancelled ignored
    deep = Boom("deep")
    ours = BaseExceptionGroup("g", [BaseExceptionGroup("tasks", [deep]), trio.Cancelled._create()])
    with pytest.raises(Boom, match="deep"):
        raise_outcome(ours, [deep])
    # a group the block raised itself is passed on as it is
    theirs = BaseExceptionGroup("inner", [Boom("a"), Other("b")])
    with pytest.raises(BaseExceptionGroup) as group_info:
        raise_outcome(BaseExceptionGroup("g", [theirs]), [])
    assert group_info.value is theirs
    with pytest.raises(KeyboardInterrupt):
        raise_outcome(BaseExceptionGroup("g", [Boom("x"), KeyboardInterrupt()]), [])
    interrupt = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        raise_outcome(
            BaseExceptionGroup("g", [BaseExceptionGroup("t", [interrupt])]), [interrupt]
        )
    # several user exceptions: one ExceptionGroup of exactly those, no private class
    a, b = Boom("a"), Other("b")
    with pytest.raises(ExceptionGroup) as info:
        raise_outcome(BaseExceptionGroup("g", [a, BaseExceptionGroup("t", [b])]), [b])
    assert list(info.value.exceptions) == [a, b]
    assert info.value.__cause__ is None
    assert not any(type(e).__module__.startswith("trio_mesos") for e in info.value.exceptions)


async def test_a_group_raised_by_the_block_comes_out_unchanged() -> None:
    async with FakeAgent() as agent:
        with pytest.raises(BaseExceptionGroup) as info:
            async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)):
                raise BaseExceptionGroup("mine", [Boom("one")])
    assert info.value.message == "mine"
    assert [type(e) for e in info.value.exceptions] == [Boom]


async def test_stop_with_nothing_pending_cancels_a_callback_that_never_returns() -> None:
    release = trio.Event()
    cancelled = []

    class Slow(trio_mesos.Executor):
        async def acknowledged(self, driver, task_id, uuid):  # type: ignore[no-untyped-def]
            try:
                await release.wait()  # a callback that does not return by itself
            except trio.Cancelled:
                cancelled.append(uuid)
                raise

    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(Slow(), **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await agent.wait_event(executor_pb2.Event.LAUNCH)
            await trio.sleep(0.01)
            uuid = await driver.update(status("t1", FINISHED))
            await agent.wait_event(executor_pb2.Event.ACKNOWLEDGED)
            await trio.sleep(0.01)
            # nothing pending: the drain is complete, so the end comes at once and
            # the callback that never returns is cancelled
            assert driver.stop() == Status.DRIVER_STOPPED
            assert driver.statistics().state == "stopped"
            assert driver.abort() == Status.DRIVER_STOPPED
            assert await driver.join() == Status.DRIVER_STOPPED
    assert cancelled == [uuid]


async def test_a_call_never_answered_is_retried_after_the_call_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    silent_peers: list[trio.abc.Stream] = []
    dials = 0

    async def dial() -> trio.abc.Stream:
        nonlocal dials
        dials += 1
        if dials == 2:  # the first call connection: accepts bytes, never answers
            client, server = trio.testing.memory_stream_pair()
            silent_peers.append(server)
            return client
        return await agent.connect()

    async with FakeAgent() as agent:
        options = driver_options(agent, open_stream=dial, call_timeout=12.0)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            start = trio.current_time()
            await driver.update(status("t1", RUNNING))
            assert trio.current_time() - start == pytest.approx(12.0, abs=0.1)
    assert dials == 3
    assert [u.state for u in agent.updates("t1")] == [RUNNING]


async def test_no_callback_starts_after_abort_even_with_events_queued() -> None:
    seen: list[str] = []
    all_sent = trio.Event()

    class AbortOnFirst(trio_mesos.Executor):
        async def launch_task(self, driver, task):  # type: ignore[no-untyped-def]
            seen.append(task.task_id.value)  # before any checkpoint
            if task.task_id.value == "t1":
                await all_sent.wait()  # t2 and t3 are queued behind us by now
                driver.abort()

    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(AbortOnFirst(), **driver_options(agent)) as d:
            for name in ("t1", "t2", "t3"):
                await agent.launch(make_task(name))
            await trio.sleep(0.01)
            all_sent.set()
            assert await d.join() == Status.DRIVER_ABORTED
    assert seen == ["t1"]


async def test_abort_after_the_agent_was_lost_keeps_the_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    release = trio.Event()

    class SlowShutdown(Recorder):
        async def shutdown(self, driver):  # type: ignore[no-untyped-def]
            await super().shutdown(driver)  # type: ignore[no-untyped-call]
            await release.wait()

    executor = SlowShutdown()
    async with FakeAgent(checkpoint=False) as agent:
        config = agent.executor_config(checkpoint=False)
        options = driver_options(agent, config=config)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await executor.wait_for("registered")
            await agent.drop_stream()
            await executor.wait_for("shutdown")  # the agent is lost: the grace runs
            assert driver.abort() == Status.DRIVER_ABORTED
    assert isinstance(driver.error, AgentUnavailableError)
    assert "checkpointing is off" in str(driver.error)
