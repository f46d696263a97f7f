"""The driver, part 2: recovery, update retries, liveness and SHUTDOWN (issue 5).

Everything runs against the FakeAgent over memory streams in virtual time
(``autojump_clock``), so times are asserted exactly or within the bounds the
protocol gives: the first reconnect attempt at once, later ones within
``[0, MESOS_SUBSCRIPTION_BACKOFF_MAX]``, the recovery deadline at the first
loss + ``MESOS_RECOVERY_TIMEOUT`` (PROTOCOL.md §3.8, §4.3-§4.5, §3.7).

Each remaining pymesos defect of PEERS.md §2.1 has a regression test here,
named after it (defects 1, 2, 3, 5, 9, 10, 11).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio
import trio.testing

import trio_mesos
from trio_mesos import AgentUnavailableError, ExecutorConfig, Status
from trio_mesos.testing import AckPolicy, FakeAgent, RecordedCall
from trio_mesos.v1 import executor_pb2, mesos_pb2

from .helpers import Recorder, bounded, driver_options, make_task, status

STARTING, RUNNING = mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING
FINISHED, KILLED = mesos_pb2.TASK_FINISHED, mesos_pb2.TASK_KILLED
SUBSCRIBE, UPDATE = executor_pb2.Call.SUBSCRIBE, executor_pb2.Call.UPDATE
MESSAGE, HEARTBEAT = executor_pb2.Call.MESSAGE, executor_pb2.Call.HEARTBEAT
NOT_RECOVERED = "Agent has not finished recovery"
#: Virtual-time slack for "at exactly this instant" (float sums only).
EXACT = 1e-6


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


class Dialer:
    """``open_stream`` that records every connection attempt (time, agent state)."""

    def __init__(self, agent: FakeAgent) -> None:
        self.agent = agent
        self.attempts: list[tuple[float, str]] = []
        self._changed = trio.lowlevel.ParkingLot()

    async def __call__(self) -> trio.abc.Stream:
        self.attempts.append((trio.current_time(), self.agent.state))
        self._changed.unpark_all()
        return await self.agent.connect()

    async def wait_attempts(self, count: int) -> None:
        while len(self.attempts) < count:
            await self._changed.park()

    def times(self, start: int = 0) -> list[float]:
        """Times of the attempts from the ``start``-th on."""
        return [t for t, _ in self.attempts[start:]]


def type_of(call: RecordedCall) -> int:
    """The Call type; decoded here when the agent answered before decoding (503)."""
    if call.type is not None:
        return call.type
    return int(executor_pb2.Call.FromString(call.request_body).type)


def calls_of(agent: FakeAgent, call_type: int, start: int = 0) -> list[RecordedCall]:
    """Calls of ``call_type`` among ``agent.calls[start:]``."""
    return [c for c in agent.calls[start:] if type_of(c) == call_type]


def subscribes(agent: FakeAgent) -> list[RecordedCall]:
    """Accepted SUBSCRIBE calls (the ones that opened a stream)."""
    return [c for c in calls_of(agent, SUBSCRIBE) if c.status_code == 200]


def update_codes(agent: FakeAgent, uuid: bytes) -> list[int]:
    """HTTP answers to the UPDATE calls carrying update ``uuid``, in order."""
    return [
        c.status_code
        for c in calls_of(agent, UPDATE)
        if c.call is not None and c.call.update.status.uuid == uuid
    ]


def listed(agent: FakeAgent) -> tuple[list[str], list[tuple[str, int, str]]]:
    """The last accepted SUBSCRIBE's lists: task ids, and (task, state, message)."""
    return (
        [t.task_id.value for t in agent.unacknowledged_tasks_seen],
        [(u.task_id.value, u.state, u.message) for u in agent.unacknowledged_updates_seen],
    )


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def recovering_options(agent: FakeAgent, **overrides: Any) -> dict[str, Any]:
    """Driver options for a checkpointing executor of ``agent`` (its timeouts)."""
    assert agent.checkpoint
    config = agent.executor_config(checkpoint=True)
    assert config.recovery_timeout == agent.recovery_timeout
    assert config.subscription_backoff_max == agent.reregistration_timeout
    return driver_options(agent, config=config, **overrides)


async def launched(agent: FakeAgent, executor: Recorder, *task_ids: str) -> None:
    for task_id in task_ids:
        await agent.launch(make_task(task_id))
    await executor.wait_for("launch_task", len(task_ids))


# --------------------------------------------------------------------------
# Stream drop
# --------------------------------------------------------------------------


@bounded
async def test_stream_drop_resubscribes_at_once_with_exactly_the_unacknowledged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent(
        checkpoint=True, ack_policy=AckPolicy.MANUAL, heartbeat_interval=None
    ) as agent:
        dialer = Dialer(agent)
        options = recovering_options(agent, open_stream=dialer)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await launched(agent, executor, "t1", "t2", "t3")
            acked = await driver.update(status("t1", RUNNING, "a"))
            await driver.update(status("t2", RUNNING, "b"))
            await agent.ack(acked)
            await executor.wait_for("acknowledged")

            lost, mark = trio.current_time(), len(dialer.attempts)
            await agent.drop_stream()
            await agent.wait_subscribed(2)
            await executor.wait_for("reregistered")
            # the first attempt is immediate: no virtual time passed
            assert trio.current_time() == pytest.approx(lost, abs=EXACT)
            assert dialer.times(mark)[0] == pytest.approx(lost, abs=EXACT)
            # t1 had an ACK: neither it nor its update is listed; t3 has no update yet
            assert listed(agent) == (["t2", "t3"], [("t2", RUNNING, "b")])
            assert executor.names().count("disconnected") == 1

            # a second outage: immediate again (the backoff was reset), a new
            # single `disconnected`, the same lists
            lost, mark = trio.current_time(), len(dialer.attempts)
            await agent.drop_stream()
            await agent.wait_subscribed(3)
            await executor.wait_for("reregistered", 2)
            assert dialer.times(mark)[0] == pytest.approx(lost, abs=EXACT)
            assert listed(agent) == (["t2", "t3"], [("t2", RUNNING, "b")])
            stats = driver.statistics()
            assert (stats.reconnects, stats.subscriptions) == (2, 3)
            driver.abort()
    names = [n for n in executor.names() if n in ("registered", "disconnected", "reregistered")]
    assert names == ["registered", *["disconnected", "reregistered"] * 2]


@bounded
async def test_unacknowledged_updates_are_replayed_until_acked_pymesos_defect_3(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # pymesos never filled its ledger: the resubscribe listed nothing. Withheld
    # ACKs must not make the driver re-send UPDATEs either (only inside SUBSCRIBE).
    executor = Recorder()
    async with FakeAgent(
        checkpoint=True, ack_policy=AckPolicy.WITHHELD, heartbeat_interval=None
    ) as agent:
        async with trio_mesos.open_executor_driver(executor, **recovering_options(agent)) as driver:
            await launched(agent, executor, "t1")
            running = await driver.update(status("t1", RUNNING, "r"))
            finished = await driver.update(status("t1", FINISHED, "f"))
            await trio.sleep(600)  # no ACK for ten minutes: nothing is re-sent
            assert update_codes(agent, running) == [202]
            assert update_codes(agent, finished) == [202]

            await agent.drop_stream()
            await agent.wait_subscribed(2)
            assert listed(agent) == (["t1"], [("t1", RUNNING, "r"), ("t1", FINISHED, "f")])
            assert [u.uuid for u in agent.unacknowledged_updates_seen] == [running, finished]

            await agent.ack(running)  # the task is acknowledged with its first ACK
            await executor.wait_for("acknowledged")
            await agent.drop_stream()
            await agent.wait_subscribed(3)
            assert listed(agent) == ([], [("t1", FINISHED, "f")])

            await agent.ack(finished)
            await executor.wait_for("acknowledged", 2)
            await agent.drop_stream()
            await agent.wait_subscribed(4)
            assert listed(agent) == ([], [])
            assert driver.statistics().unacknowledged_updates == 0
            # in the whole run, each update went out in exactly one UPDATE call
            assert update_codes(agent, running) == [202]
            assert update_codes(agent, finished) == [202]
    assert agent.task_state("t1") == FINISHED


@bounded
async def test_a_stalled_stream_loses_acks_and_the_resubscribe_lists_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent(checkpoint=True, heartbeat_interval=None) as agent:
        async with trio_mesos.open_executor_driver(executor, **recovering_options(agent)) as driver:
            await launched(agent, executor, "t1", "t2")
            await driver.update(status("t1", RUNNING, "acked"))
            await executor.wait_for("acknowledged")
            await agent.stall()  # the agent accepts UPDATEs; their ACKs are lost
            await driver.update(status("t2", RUNNING, "1"))
            await driver.update(status("t1", FINISHED, "2"))
            await trio.sleep(30)
            assert executor.names().count("acknowledged") == 1
            assert driver.statistics().unacknowledged_updates == 2
            await agent.drop_stream()
            await agent.wait_subscribed(2)
            await executor.wait_for("acknowledged", 3)  # re-ACKed from the SUBSCRIBE
            assert listed(agent) == (["t2"], [("t2", RUNNING, "1"), ("t1", FINISHED, "2")])
            assert driver.statistics().unacknowledged_updates == 0


# --------------------------------------------------------------------------
# Agent restart
# --------------------------------------------------------------------------


@bounded
async def test_agent_restart_through_its_phases_loses_no_update(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    backoff_max = 2.0
    async with FakeAgent(
        checkpoint=True, reregistration_timeout=backoff_max, heartbeat_interval=None
    ) as agent:
        dialer = Dialer(agent)
        options = recovering_options(agent, open_stream=dialer)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await launched(agent, executor, "t1")
            await driver.update(status("t1", STARTING, "0"))
            await executor.wait_for("acknowledged")

            lost, mark, calls_mark = trio.current_time(), len(dialer.attempts), len(agent.calls)
            await agent.restart(down=3.0, recovering=4.0)
            # after the SUBSCRIBE, the first UPDATEs still meet a recovering agent
            agent.fail_next(3, 503, NOT_RECOVERED, calls=[UPDATE])
            driver.send_status_update(status("t1", RUNNING, "1"))  # queued: disconnected
            await agent.wait_subscribed(2)
            resubscribed, outage_attempts = trio.current_time(), len(dialer.attempts)
            finished = await driver.update(status("t1", FINISHED, "2"))
            await driver.wait_acknowledged(finished)
            await executor.wait_for("reregistered")
            await agent.wait_recovered()

            attempts = dialer.times(mark)[: outage_attempts - mark]
            refused = [t for t, state in dialer.attempts if state == "down"]
            sub_calls = calls_of(agent, SUBSCRIBE, calls_mark)
    # refused while down, 503 while recovering containers, then 200
    assert attempts[0] == pytest.approx(lost, abs=EXACT)
    assert refused and all(lost <= t < lost + 3.0 for t in refused)
    assert all(0 <= g <= backoff_max for g in gaps(attempts))
    codes = [c.status_code for c in sub_calls]
    assert codes[-1] == 200 and set(codes[:-1]) == {503} and len(codes) >= 2
    assert all(b"not finished recovery" in c.response_body for c in sub_calls[:-1])
    assert lost + 7.0 <= resubscribed <= lost + 7.0 + backoff_max
    # the outage's update travelled in the SUBSCRIBE, the later one as UPDATE, retried on 503
    assert listed(agent) == ([], [("t1", RUNNING, "1")])
    assert update_codes(agent, finished) == [503, 503, 503, 202]
    assert [(u.state, u.message) for u in agent.updates("t1")] == [
        (STARTING, "0"),
        (RUNNING, "1"),
        (FINISHED, "2"),
    ]
    assert agent.task_state("t1") == FINISHED
    assert executor.names().count("disconnected") == 1
    assert executor.names().count("reregistered") == 1


@pytest.mark.parametrize("code", [500, 502, 503, 404])
@bounded
async def test_updates_are_retried_with_backoff_until_202_and_stay_in_order(
    code: int, autojump_clock: trio.testing.MockClock
) -> None:
    executor = Recorder()
    async with FakeAgent(heartbeat_interval=None) as agent:
        options = driver_options(agent)
        backoff_max = options["config"].subscription_backoff_max
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await launched(agent, executor, "t1", "t2")
            agent.fail_next(4, code, "try again later", calls=[UPDATE])
            first = await driver.update(status("t1", RUNNING, "1"))
            second = await driver.update(status("t1", FINISHED, "2"))
            other = await driver.update(status("t2", RUNNING, "3"))
            await driver.wait_acknowledged(other)
    assert update_codes(agent, first) == [code] * 4 + [202]
    assert update_codes(agent, second) == [202] and update_codes(agent, other) == [202]
    times = [c.time for c in calls_of(agent, UPDATE)][:5]
    assert gaps(times)[0] == pytest.approx(0.0, abs=EXACT)  # the first retry at once
    assert all(0 <= g <= backoff_max for g in gaps(times))
    assert [u.message for u in agent.updates("t1")] == ["1", "2"]
    assert agent.task_state("t1") == FINISHED
    assert "error" not in executor.names()


@bounded
async def test_updates_queued_while_disconnected_arrive_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    after_snapshot: list[bytes] = []
    async with FakeAgent(checkpoint=True, heartbeat_interval=None) as agent:
        async with trio_mesos.open_executor_driver(executor, **recovering_options(agent)) as driver:
            await launched(agent, executor, "t1", "t2")
            await agent.restart(down=3.0, recovering=1.0)
            sent = [
                ("t1", STARTING, "1"),
                ("t2", STARTING, "2"),
                ("t1", RUNNING, "3"),
                ("t2", RUNNING, "4"),
                ("t1", FINISHED, "5"),
            ]
            for task_id, state, message in sent:
                driver.send_status_update(status(task_id, state, message))

            def during_subscribe(item: Any) -> None:
                # runs when the agent has just accepted the SUBSCRIBE, before
                # SUBSCRIBED is read: these updates are not in its lists
                if (
                    isinstance(item, RecordedCall)
                    and type_of(item) == SUBSCRIBE
                    and item.status_code == 200
                    and not after_snapshot
                ):
                    after_snapshot.append(item.request_body)
                    driver.send_status_update(status("t2", FINISHED, "6"))
                    driver.send_status_update(status("t2", FINISHED, "7"))

            remove = agent.add_observer(during_subscribe)
            await agent.wait_subscribed(2)
            remove()
            await executor.wait_for("acknowledged", len(sent) + 2)
            assert driver.statistics().unacknowledged_updates == 0
    assert after_snapshot
    assert listed(agent) == (["t1", "t2"], sent)
    updates_after = [
        (c.call.update.status.task_id.value, c.call.update.status.message)
        for c in calls_of(agent, UPDATE)
        if c.call is not None
    ]
    assert updates_after == [("t2", "6"), ("t2", "7")]
    assert [u.message for u in agent.updates("t1")] == ["1", "3", "5"]
    assert [u.message for u in agent.updates("t2")] == ["2", "4", "6", "7"]


@bounded
async def test_the_ack_lost_in_a_restart_is_listed_and_acked_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A real agent ACKs after checkpointing: a crash in between loses the ACK.
    executor = Recorder()
    async with FakeAgent(
        checkpoint=True, ack_policy=AckPolicy.DELAYED, ack_delay=5.0, heartbeat_interval=None
    ) as agent:
        async with trio_mesos.open_executor_driver(executor, **recovering_options(agent)) as driver:
            await launched(agent, executor, "t1", "t2")
            uuid = await driver.update(status("t1", FINISHED, "f"))
            await trio.sleep(1)
            await agent.restart(down=2.0, recovering=1.0)
            await agent.wait_subscribed(2)
            subscribed = trio.current_time()
            assert listed(agent) == (["t1", "t2"], [("t1", FINISHED, "f")])
            await driver.wait_acknowledged(uuid)
            assert trio.current_time() == pytest.approx(subscribed + 5.0, abs=EXACT)
            assert update_codes(agent, uuid) == [202]  # once as UPDATE, once in SUBSCRIBE
    assert [u.uuid for u in agent.updates("t1")] == [uuid, uuid]
    assert agent.task_state("t1") == FINISHED


@bounded
async def test_update_returns_when_the_resubscribe_delivers_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # update() is documented to wait for the agent's acceptance (its 202); an
    # update listed in a successful SUBSCRIBE is accepted (AckLedger.subscribed
    # moves it to ACCEPTED and it is never sent as UPDATE).
    executor = Recorder()
    returned: list[float] = []
    done = trio.Event()
    async with FakeAgent(
        checkpoint=True, ack_policy=AckPolicy.WITHHELD, heartbeat_interval=None
    ) as agent:
        async with trio_mesos.open_executor_driver(executor, **recovering_options(agent)) as driver:
            await launched(agent, executor, "t1")
            await agent.restart(down=2.0, recovering=0.0)

            async def update() -> None:
                await driver.update(status("t1", RUNNING, "during the outage"))
                returned.append(trio.current_time())
                done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(update)
                await agent.wait_subscribed(2)
                subscribed = trio.current_time()
                assert listed(agent) == (["t1"], [("t1", RUNNING, "during the outage")])
                with trio.move_on_after(60):
                    await done.wait()
                nursery.cancel_scope.cancel()
            driver.abort()
    assert calls_of(agent, UPDATE) == []
    assert returned == [pytest.approx(subscribed, abs=0.1)]


# --------------------------------------------------------------------------
# Recovery deadline and checkpointing off
# --------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["refused", "503"])
@bounded
async def test_recovery_deadline_is_first_loss_plus_timeout_pymesos_defect_2(
    phase: str, autojump_clock: trio.testing.MockClock
) -> None:
    # pymesos ignored MESOS_RECOVERY_TIMEOUT and reset its deadline on every
    # TCP connect; here failed attempts (refused, or answered 503) never move it.
    executor = Recorder()
    async with FakeAgent(
        checkpoint=True, recovery_timeout=10.0, reregistration_timeout=1.0, heartbeat_interval=None
    ) as agent:
        dialer = Dialer(agent)
        options = recovering_options(agent, open_stream=dialer)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            lost, calls_mark = trio.current_time(), len(agent.calls)
            if phase == "refused":
                await agent.restart(down=1000.0, recovering=0.0)
            else:
                await agent.restart(down=0.5, recovering=1000.0)
            assert await driver.join() == Status.DRIVER_ABORTED
            ended = trio.current_time()
    assert ended == pytest.approx(lost + 10.0, abs=EXACT)
    assert isinstance(driver.error, AgentUnavailableError)
    assert "recovery timeout" in str(driver.error) and "10 s" in str(driver.error)
    assert len(dialer.attempts) >= 8  # ~ one a second, none of them moved the deadline
    if phase == "503":
        assert len(calls_of(agent, SUBSCRIBE, calls_mark)) >= 5
    assert executor.names() == ["registered", "disconnected", "error", "shutdown"]
    assert driver.statistics().status == Status.DRIVER_ABORTED


@bounded
async def test_an_agent_that_never_answers_the_resubscribe_meets_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # After the loss the agent accepts the connection but never answers the
    # SUBSCRIBE: the attempt hangs, and the outage's deadline still ends it.
    executor = Recorder()
    silent: list[trio.abc.Stream] = []
    async with FakeAgent(
        checkpoint=True, recovery_timeout=10.0, reregistration_timeout=1.0, heartbeat_interval=None
    ) as agent:

        async def open_stream() -> trio.abc.Stream:
            if agent.subscriptions == 0 or agent.subscribed:
                return await agent.connect()
            client, server = trio.testing.memory_stream_pair()
            silent.append(server)  # reads nothing, answers nothing
            return client

        options = recovering_options(agent, open_stream=open_stream)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            lost = trio.current_time()
            await agent.drop_stream()
            assert await driver.join() == Status.DRIVER_ABORTED
            assert trio.current_time() == pytest.approx(lost + 10.0, abs=EXACT)
    assert len(silent) == 1  # the first attempt never ended; no other was made
    assert isinstance(driver.error, AgentUnavailableError)
    assert executor.names() == ["registered", "disconnected", "error", "shutdown"]


@bounded
async def test_each_outage_gets_its_own_deadline(autojump_clock: trio.testing.MockClock) -> None:
    executor = Recorder()
    async with FakeAgent(
        checkpoint=True, recovery_timeout=10.0, reregistration_timeout=1.0, heartbeat_interval=None
    ) as agent:
        async with trio_mesos.open_executor_driver(executor, **recovering_options(agent)) as driver:
            # two outages of 6+ s each: 12+ s in total, but each within 10 s
            for count in (2, 3):
                await agent.restart(down=6.0, recovering=0.0)
                await agent.wait_subscribed(count)
                await executor.wait_for("reregistered", count - 1)
            assert driver.statistics().state == "subscribed"
            lost = trio.current_time()
            await agent.restart(down=1000.0)
            assert await driver.join() == Status.DRIVER_ABORTED
            assert trio.current_time() == pytest.approx(lost + 10.0, abs=EXACT)
    assert executor.names().count("disconnected") == 3
    assert executor.names()[-1] == "shutdown"


@bounded
async def test_checkpoint_0_shuts_down_at_once_pymesos_defect_1(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # pymesos read MESOS_CHECKPOINT with bool(): "0" meant "on". The agent
    # always sets the variable, to "1" or "0".
    executor = Recorder()
    async with FakeAgent(checkpoint=True, heartbeat_interval=None) as agent:
        await agent.listen_tcp()
        environ = agent.executor_environment("/sandbox", checkpoint=False)
        assert environ["MESOS_CHECKPOINT"] == "0"
        config = ExecutorConfig.from_environ(environ)
        assert config.checkpoint is False
        dialer = Dialer(agent)
        options = driver_options(agent, config=config, open_stream=dialer)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await launched(agent, executor, "t1")
            lost = trio.current_time()
            await agent.drop_stream()
            assert await driver.join() == Status.DRIVER_ABORTED
            assert trio.current_time() == pytest.approx(lost, abs=EXACT)
            await trio.sleep(60)
    assert len(dialer.attempts) == 1  # the first connection only: no reconnect
    assert len(calls_of(agent, SUBSCRIBE)) == 1
    assert isinstance(driver.error, AgentUnavailableError)
    assert "checkpointing is off" in str(driver.error)
    assert executor.names()[-1] == "shutdown"
    assert "reregistered" not in executor.names()


# --------------------------------------------------------------------------
# Backoff: no storm, one `disconnected`, prompt stop
# --------------------------------------------------------------------------


@bounded
async def test_no_retry_storm_on_503_pymesos_defect_5(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # pymesos re-sent SUBSCRIBE at once on every 503: ~2,000 requests a second.
    executor = Recorder()
    backoff_max, phase = 2.0, 60.0
    async with FakeAgent(
        checkpoint=True, reregistration_timeout=backoff_max, heartbeat_interval=None
    ) as agent:
        dialer = Dialer(agent)
        options = recovering_options(agent, open_stream=dialer)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            lost, mark, calls_mark = trio.current_time(), len(dialer.attempts), len(agent.calls)
            await agent.restart(down=0.0, recovering=phase)
            await agent.wait_subscribed(2)
            resubscribed = trio.current_time()
            attempts = dialer.times(mark)
            answers = [c.status_code for c in calls_of(agent, SUBSCRIBE, calls_mark)]
            driver.abort()
    # the mean delay is backoff_max / 2: about phase / 1 s attempts, far from a storm
    assert answers[-1] == 200 and set(answers[:-1]) == {503}
    assert phase / backoff_max <= len(answers) - 1 <= 2 * phase / (backoff_max / 2)
    assert attempts[0] == pytest.approx(lost, abs=EXACT)
    assert all(0 <= g <= backoff_max for g in gaps(attempts))
    assert lost + phase <= resubscribed <= lost + phase + backoff_max
    assert executor.names().count("disconnected") == 1  # pymesos defect 9 as well


@bounded
async def test_one_disconnected_per_outage_pymesos_defect_9(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # pymesos called disconnected() on every failed attempt, and after stop().
    executor = Recorder()
    async with FakeAgent(
        checkpoint=True, reregistration_timeout=0.5, heartbeat_interval=None
    ) as agent:
        dialer = Dialer(agent)
        options = recovering_options(agent, open_stream=dialer)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            for outage in (1, 2):
                before = len(dialer.attempts)
                await agent.restart(down=5.0, recovering=5.0)
                await agent.wait_subscribed(outage + 1)
                await executor.wait_for("reregistered", outage)
                assert len(dialer.attempts) - before >= 10
                assert executor.names().count("disconnected") == outage
            driver.stop()
            await driver.join()
            await agent.restart(down=1.0)
            await trio.sleep(10)
    assert executor.names().count("disconnected") == 2
    assert executor.names().count("reregistered") == 2


@bounded
async def test_stop_in_the_middle_of_a_backoff_is_prompt_pymesos_defect_10(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # pymesos' stop() waited for the backoff sleep to end (3.0 s -> 7.3 s).
    executor = Recorder()
    async with FakeAgent(
        checkpoint=True, reregistration_timeout=15.0, heartbeat_interval=None
    ) as agent:
        dialer = Dialer(agent)
        options = recovering_options(agent, open_stream=dialer)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await agent.restart(down=1000.0)
            await dialer.wait_attempts(len(dialer.attempts) + 3)
            await trio.sleep(0.01)  # now inside a backoff delay (up to 15 s)
            assert driver.statistics().state == "disconnected"
            stopped = trio.current_time()
            assert driver.stop() == Status.DRIVER_STOPPED
            assert await driver.join() == Status.DRIVER_STOPPED
            assert trio.current_time() == pytest.approx(stopped, abs=EXACT)
            attempts = len(dialer.attempts)
            await trio.sleep(60)
    assert len(dialer.attempts) == attempts
    assert executor.names().count("disconnected") == 1


@bounded
async def test_stop_during_an_outage_with_pending_updates_is_prompt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent(
        checkpoint=True, ack_policy=AckPolicy.WITHHELD, heartbeat_interval=None
    ) as agent:
        dialer = Dialer(agent)
        options = recovering_options(agent, open_stream=dialer, stop_timeout=30.0)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await launched(agent, executor, "t1")
            await driver.update(status("t1", RUNNING))
            await agent.restart(down=1000.0)
            await trio.sleep(5)
            stopped = trio.current_time()
            attempts = len(dialer.attempts)
            assert driver.stop() == Status.DRIVER_STOPPED
            assert await driver.join() == Status.DRIVER_STOPPED
            waited = trio.current_time() - stopped
    # nothing can be acknowledged without the stream, and no reconnect is
    # attempted while stopping: waiting for stop_timeout would only delay
    assert waited == pytest.approx(0.0, abs=EXACT)
    assert len(dialer.attempts) == attempts
    assert driver.statistics().unacknowledged_updates == 1


@bounded
async def test_the_stream_lost_while_stopping_ends_the_stop_without_reconnecting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent(
        checkpoint=True, ack_policy=AckPolicy.WITHHELD, heartbeat_interval=None
    ) as agent:
        dialer = Dialer(agent)
        options = recovering_options(agent, open_stream=dialer, stop_timeout=30.0)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await launched(agent, executor, "t1")
            await driver.update(status("t1", RUNNING))
            driver.stop()  # waits for the ACK, up to 30 s
            await trio.sleep(1)
            assert driver.statistics().state == "stopping"
            attempts = len(dialer.attempts)
            lost = trio.current_time()
            await agent.drop_stream()
            assert await driver.join() == Status.DRIVER_STOPPED
            assert trio.current_time() == pytest.approx(lost, abs=EXACT)
            await trio.sleep(10)
    assert len(dialer.attempts) == attempts
    assert "disconnected" not in executor.names()
    assert len(subscribes(agent)) == 1


# --------------------------------------------------------------------------
# SHUTDOWN
# --------------------------------------------------------------------------


class SlowKiller(Recorder):
    """Starts work per task; cancelled, the work cleans up for ``cleanup`` s, then TASK_KILLED."""

    def __init__(self, cleanup: float = 2.0) -> None:
        super().__init__()
        self.cleanup = cleanup
        self.killed_at: dict[str, float] = {}
        self.message_outcome = ""

    async def launch_task(self, driver, task):  # type: ignore[no-untyped-def]
        await super().launch_task(driver, task)  # type: ignore[no-untyped-call]
        driver.start_task(task.task_id.value, self.work, driver, task.task_id.value)

    async def work(self, driver: Any, task_id: str) -> None:
        driver.send_status_update(status(task_id, RUNNING))
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await trio.sleep(self.cleanup)
            self.killed_at[task_id] = trio.current_time()
            driver.send_status_update(status(task_id, KILLED))
            raise

    async def shutdown(self, driver):  # type: ignore[no-untyped-def]
        await super().shutdown(driver)  # type: ignore[no-untyped-call]
        try:
            await driver.message(b"shutting down")  # sends keep working in the grace
        except AgentUnavailableError:
            self.message_outcome = "dropped"
        else:
            self.message_outcome = "sent"


@bounded
async def test_shutdown_waits_for_slow_tasks_killed_and_acknowledged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = SlowKiller(cleanup=2.0)
    async with FakeAgent(
        ack_policy=AckPolicy.DELAYED, ack_delay=0.5, heartbeat_interval=None
    ) as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            for task_id in ("a", "b", "c"):
                await agent.launch(make_task(task_id))
                await agent.wait_for_update(task_id, RUNNING)
            await trio.sleep(1)
            start = trio.current_time()
            await agent.shutdown()
            assert await driver.join() == Status.DRIVER_STOPPED
            ended = trio.current_time()
    grace = agent.shutdown_grace_period
    # 2 s of cleanup, then 0.5 s until the ACKs: the end is when they arrived
    assert ended == pytest.approx(start + 2.5, abs=EXACT)
    assert ended - start <= grace - 1.0
    assert sorted(executor.killed_at) == ["a", "b", "c"]
    assert {agent.task_state(t) for t in "abc"} == {KILLED}
    acked = {args[0] for name, args in executor.calls if name == "acknowledged"}
    assert acked == {"a", "b", "c"}
    assert driver.statistics().unacknowledged_updates == 0
    assert agent.messages == [b"shutting down"]
    assert executor.message_outcome == "sent"
    assert executor.names()[-1] == "acknowledged"


@pytest.mark.parametrize("checkpoint", [True, False])
@bounded
async def test_the_stream_ending_after_shutdown_is_not_an_outage(
    checkpoint: bool, autojump_clock: trio.testing.MockClock
) -> None:
    executor = SlowKiller(cleanup=2.0)
    async with FakeAgent(checkpoint=checkpoint, heartbeat_interval=None) as agent:
        dialer = Dialer(agent)
        options = driver_options(agent, open_stream=dialer)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await agent.launch(make_task("t1"))
            await agent.wait_for_update("t1", RUNNING)
            start = trio.current_time()
            await agent.shutdown()
            await trio.sleep(0.5)
            await agent.drop_stream()  # the TASK_KILLED's ACK will be lost
            assert await driver.join() == Status.DRIVER_STOPPED
            ended = trio.current_time()
    # no ACK can come without the stream: the end comes once the agent accepted the
    # TASK_KILLED (after the work's 2 s of cleanup), not at the grace's bound
    assert ended == pytest.approx(start + executor.cleanup, abs=0.01)
    assert ended < start + agent.shutdown_grace_period - 1.0
    # the TASK_KILLED went out (UPDATE, 202) after the stream had ended
    assert [u.state for u in agent.updates("t1")] == [RUNNING, KILLED]
    assert len(calls_of(agent, SUBSCRIBE)) == 1
    assert "disconnected" not in executor.names()
    assert driver.statistics().reconnects == 0
    assert driver.error is None


@pytest.mark.parametrize(
    ("config_grace", "info_grace", "expected"),
    [(5.0, 4.0, 3.0), (3.0, 10.0, 2.0), (5.0, None, 4.0)],
)
@bounded
async def test_shutdown_grace_is_the_smaller_one_minus_one_second_pymesos_defect_11(
    config_grace: float,
    info_grace: float | None,
    expected: float,
    autojump_clock: trio.testing.MockClock,
) -> None:
    # pymesos killed the process group at once (grace 0) or returned before it.
    info = mesos_pb2.ExecutorInfo(type=mesos_pb2.ExecutorInfo.CUSTOM)
    info.executor_id.value = "fake-executor"
    info.framework_id.value = "fake-framework-0000"
    if info_grace is not None:
        info.shutdown_grace_period.nanoseconds = int(info_grace * 1e9)
    executor = Recorder()
    async with FakeAgent(
        shutdown_grace_period=config_grace,
        executor_info=info,
        ack_policy=AckPolicy.WITHHELD,
        heartbeat_interval=None,
    ) as agent:
        options = driver_options(agent, config=agent.executor_config())
        assert options["config"].shutdown_grace_period == config_grace
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await launched(agent, executor, "t1")
            await driver.update(status("t1", RUNNING))  # never acknowledged
            start = trio.current_time()
            await agent.shutdown()
            assert await driver.join() == Status.DRIVER_STOPPED
            assert trio.current_time() == pytest.approx(start + expected, abs=EXACT)
    assert executor.names()[-1] == "shutdown"


@bounded
async def test_shutdown_as_the_first_event_of_a_resubscribe_still_sends_task_killed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The agent sent SHUTDOWN while the executor was cut off (it was lost), or
    # it restarted with --recover=cleanup: the re-SUBSCRIBE gets a stream with
    # only SHUTDOWN (PROTOCOL.md §3.2, §3.8). The tasks must still report
    # TASK_KILLED during the grace (the C++ library is SUBSCRIBED on the 200).
    executor = SlowKiller(cleanup=0.5)
    async with FakeAgent(checkpoint=True, heartbeat_interval=None) as agent:
        async with trio_mesos.open_executor_driver(executor, **recovering_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await agent.wait_for_update("t1", RUNNING)
            await agent.stall()
            assert not await agent.shutdown()  # lost on the stalled stream
            await agent.drop_stream()
            assert await driver.join() == Status.DRIVER_STOPPED
    assert agent.executor_state == "terminating"
    assert "shutdown" in executor.names()
    assert agent.task_state("t1") == KILLED
    assert (executor.message_outcome, agent.messages) == ("sent", [b"shutting down"])


# --------------------------------------------------------------------------
# MESSAGE: best effort
# --------------------------------------------------------------------------


@bounded
async def test_a_message_is_retried_on_503_while_connected(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with FakeAgent(heartbeat_interval=None) as agent:
        backoff_max = agent.executor_config().subscription_backoff_max
        async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)) as driver:
            agent.fail_next(3, 503, NOT_RECOVERED, calls=[MESSAGE])
            await driver.message(b"hello")
    sent = calls_of(agent, MESSAGE)
    assert [c.status_code for c in sent] == [503, 503, 503, 202]
    assert all(0 <= g <= backoff_max for g in gaps([c.time for c in sent]))
    assert agent.messages == [b"hello"]


@bounded
async def test_a_message_pending_when_the_connection_goes_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    outcome: list[BaseException] = []
    async with FakeAgent(checkpoint=True, heartbeat_interval=None) as agent:
        async with trio_mesos.open_executor_driver(executor, **recovering_options(agent)) as driver:

            async def send() -> None:
                try:
                    await driver.message(b"lost")
                except AgentUnavailableError as exc:
                    outcome.append(exc)

            agent.fail_next(5, 503, NOT_RECOVERED, calls=[MESSAGE])
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                await agent.wait_call(MESSAGE, 2)
                calls_mark = len(agent.calls)
                await agent.drop_stream()
            assert len(outcome) == 1
            await agent.wait_subscribed(2)
            await trio.sleep(30)
            assert calls_of(agent, MESSAGE, calls_mark) == []  # never replayed
            # a message after the reconnect goes out (past the rest of the 503s)
            await driver.message(b"after")
    assert agent.messages == [b"after"]


@bounded
async def test_a_message_made_while_disconnected_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # send_framework_message's docstring: "Messages queued while disconnected
    # [...] are dropped"; the C++ library drops every call made while not
    # subscribed (PROTOCOL.md §4.4 rule 3); the issue: "never replayed after a
    # reconnect". driver.message() must say so at once, not block for the outage.
    executor = Recorder()
    outcome: list[tuple[float, str]] = []
    async with FakeAgent(checkpoint=True, heartbeat_interval=None) as agent:
        async with trio_mesos.open_executor_driver(executor, **recovering_options(agent)) as driver:

            async def send() -> None:
                try:
                    await driver.message(b"trio API")
                except AgentUnavailableError:
                    outcome.append((trio.current_time(), "dropped"))
                else:
                    outcome.append((trio.current_time(), "sent"))

            await agent.restart(down=10.0, recovering=0.0)
            start = trio.current_time()
            assert driver.send_framework_message(b"seed API") == Status.DRIVER_RUNNING
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                await agent.wait_subscribed(2)
                await trio.sleep(10)
    assert agent.messages == []
    assert calls_of(agent, MESSAGE) == []
    assert [what for _, what in outcome] == ["dropped"]
    assert outcome[0][0] == pytest.approx(start, abs=EXACT)  # at once, not after the outage


# --------------------------------------------------------------------------
# Liveness
# --------------------------------------------------------------------------


@bounded
async def test_a_heartbeat_call_every_interval_while_subscribed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent(checkpoint=True, heartbeat_interval=None) as agent:
        options = recovering_options(agent, heartbeat_interval=60.0)
        async with trio_mesos.open_executor_driver(executor, **options):
            subscribed = subscribes(agent)[0].time
            await trio.sleep(200)
            first = [c.time - subscribed for c in calls_of(agent, HEARTBEAT)]
            assert first == pytest.approx([60.0, 120.0, 180.0], abs=EXACT)

            await agent.restart(down=100.0, recovering=0.0)
            await agent.wait_subscribed(2)
            again = subscribes(agent)[1].time
            await trio.sleep(130)
    beats = calls_of(agent, HEARTBEAT)
    assert all(c.status_code == 202 for c in beats)
    after = [c.time - again for c in beats if c.time > subscribed + 190]
    # none during the outage; the period restarts from the new SUBSCRIBED
    assert after == pytest.approx([60.0, 120.0], abs=EXACT)


@bounded
async def test_agent_heartbeat_events_count_as_liveness(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with FakeAgent(heartbeat_interval=30.0) as agent:
        async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)) as driver:
            subscribed = driver.statistics().last_event_time
            assert subscribed is not None
            await trio.sleep(75)
            assert driver.statistics().last_event_time == pytest.approx(
                subscribed + 60.0, abs=EXACT
            )
            assert driver.statistics().state == "subscribed"
