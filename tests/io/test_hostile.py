"""Hostile agents (issue 8): every bad answer gets a clear error and a bounded wait.

The FakeAgent answers chosen requests with raw bytes or behaviours
(``FakeAgent.hijack_next``): huge or never-ending heads, a chunk that never
ends, a trickle of one byte per second, a wrong Content-Type on the stream,
200 instead of 202, redirects, a response to a request never sent. Each test
checks the error the driver reports, that it came within a bound (virtual
time, ``autojump_clock``, memory streams), and that no status update was lost.

The last part fuzzes the driver with arbitrary SUBSCRIBE answers chosen by
Hypothesis, from a minimal server over memory streams: only our errors, the
driver reconnects (checkpointing) or ends cleanly, never hangs.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import trio_mesos
from tests.strategies import EVENTS_BY_TYPE, events
from trio_mesos import AgentUnavailableError, ExecutorConfig, Status
from trio_mesos._driver import DEFAULT_CALL_TIMEOUT
from trio_mesos._messages import ContentType
from trio_mesos._recordio import encode_record
from trio_mesos.testing import FakeAgent
from trio_mesos.testing._agent_json import write_json
from trio_mesos.testing._hostile import (
    RawAnswer,
    chunk,
    endless_head,
    hang,
    raw_response,
    raw_stream_head,
    send,
    trickle,
)
from trio_mesos.v1 import executor_pb2, mesos_pb2

from .helpers import Recorder, bounded, driver_options, make_task, status

SUBSCRIBE, UPDATE = executor_pb2.Call.SUBSCRIBE, executor_pb2.Call.UPDATE
RUNNING, FINISHED = mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED
CALL_TIMEOUT = DEFAULT_CALL_TIMEOUT
IDLE = 60.0
#: An idle timeout shorter than the call timeout: it fires first whatever
#: bounds the wait for SUBSCRIBED.
SHORT_IDLE = 20.0


def as_200(reply: bytes) -> bytes:
    return reply.replace(b"HTTP/1.1 202 Accepted", b"HTTP/1.1 200 OK", 1)


def endless_chunk_body(reply: bytes) -> bytes:
    # A 202 whose chunked body announces a chunk that never comes.
    return b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\nab"


def never_ending_record_after(reply: bytes) -> bytes:
    # The real head and SUBSCRIBED, then a record of 1 MB that never completes.
    return reply + chunk(b"1000000\n" + b"x" * 10)


# --------------------------------------------------------------------------
# SUBSCRIBE: the first connection ends with a clear error, in bounded time
# --------------------------------------------------------------------------

#: (id, answer, process, options, expected text, latest virtual time of the error)
FIRST_SUBSCRIBE_CASES: list[tuple[str, RawAnswer, bool, dict[str, Any], str, float]] = [
    (
        "huge-head",
        send(raw_response(200, [("X-Big", "x" * 1_000_000)]), then_hang=True),
        False,
        {},
        "invalid HTTP from the agent",
        0.0,
    ),
    ("endless-head", endless_head(), False, {}, "invalid HTTP from the agent", 0.0),
    (
        "endless-head-slow",
        endless_head(interval=1.0),
        False,
        {},
        f"no answer to SUBSCRIBE within {CALL_TIMEOUT:g} s",
        CALL_TIMEOUT,
    ),
    (
        "trickle-1-byte-per-second",
        trickle(lambda reply: reply),
        True,
        {},
        f"no answer to SUBSCRIBE within {CALL_TIMEOUT:g} s",
        CALL_TIMEOUT,
    ),
    (
        "silence",
        hang(),
        False,
        {},
        f"no answer to SUBSCRIBE within {CALL_TIMEOUT:g} s",
        CALL_TIMEOUT,
    ),
    (
        "wrong-content-type",
        send(raw_stream_head("text/html; charset=utf-8"), then_hang=True),
        False,
        {},
        "the event stream has Content-Type 'text/html'",
        0.0,
    ),
    (
        "stream-ends-before-subscribed",
        send(raw_stream_head() + b"0\r\n\r\n", then_hang=True),
        False,
        {},
        "the agent ended the event stream",
        0.0,
    ),
    (
        "chunk-never-ends-with-idle-timeout",
        send(raw_stream_head() + b"100000\r\n" + b"1000\nabc", then_hang=True),
        False,
        {"stream_idle_timeout": SHORT_IDLE},
        f"nothing from the agent for {SHORT_IDLE:g} s",
        SHORT_IDLE,
    ),
    (
        "not-http",
        send(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", then_hang=True),
        False,
        {},
        "invalid HTTP from the agent",
        0.0,
    ),
    (
        "oversized-record",
        send(raw_stream_head() + chunk(b"18446744073709551615\n"), then_hang=True),
        False,
        {"max_record_size": 1 << 20},
        "exceeds the maximum",
        0.0,
    ),
]


@pytest.mark.parametrize(
    ("answer", "process", "options", "expected", "latest"),
    [pytest.param(*case[1:], id=case[0]) for case in FIRST_SUBSCRIBE_CASES],
)
@bounded
async def test_a_hostile_first_subscribe_is_a_clear_error_in_bounded_time(
    answer: RawAnswer,
    process: bool,
    options: dict[str, Any],
    expected: str,
    latest: float,
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with FakeAgent() as agent:
        agent.hijack_next(1, answer, calls=[SUBSCRIBE], process=process)
        start = trio.current_time()
        with pytest.raises(AgentUnavailableError) as excinfo:
            async with trio_mesos.open_executor_driver(
                Recorder(), **driver_options(agent, **options)
            ):
                pytest.fail("the driver started on a hostile SUBSCRIBE answer")
        elapsed = trio.current_time() - start
    assert expected in str(excinfo.value)
    assert elapsed <= latest + 1e-6
    assert len(agent.hijacked) + agent.subscriptions == 1  # one attempt, no retry


@bounded
async def test_a_first_subscribe_always_redirected_ends_clearly_in_bounded_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Redirects are never followed. On the first SUBSCRIBE one ends the driver
    # at once, naming it (a re-SUBSCRIBE after an outage retries instead, see
    # below). Either way: a clear AgentUnavailableError, within the recovery
    # timeout.
    location = [("Location", "http://10.0.0.9:5051/slave(1)/api/v1/executor")]
    async with FakeAgent() as agent:
        agent.hijack_next(10_000, send(raw_response(307, location)), calls=[SUBSCRIBE])
        config = agent.executor_config()
        start = trio.current_time()
        with pytest.raises(AgentUnavailableError) as excinfo:
            async with trio_mesos.open_executor_driver(
                Recorder(), **driver_options(agent, config=config)
            ):
                pytest.fail("the driver started on a redirect")
        elapsed = trio.current_time() - start
    message = str(excinfo.value)
    assert "'307 Temporary Redirect'" in message or "recovery timeout" in message
    assert elapsed <= config.recovery_timeout + config.subscription_backoff_max + 1e-6
    assert agent.calls == [] and agent.subscriptions == 0


async def test_a_chunk_that_never_ends_before_subscribed_is_bounded_by_default(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with FakeAgent() as agent:
        agent.hijack_next(1, send(raw_stream_head() + b"100000\r\n" + b"1000\nabc", then_hang=True))
        with trio.move_on_after(10 * CALL_TIMEOUT) as waited:
            with pytest.raises(AgentUnavailableError):
                async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)):
                    pytest.fail("the driver started on a hostile SUBSCRIBE answer")
        assert not waited.cancelled_caught, "still waiting for SUBSCRIBED after 300 s"


# --------------------------------------------------------------------------
# SUBSCRIBE again after a loss (checkpointing): retried, nothing lost
# --------------------------------------------------------------------------

RESUBSCRIBE_CASES = FIRST_SUBSCRIBE_CASES


@pytest.mark.parametrize(
    ("answer", "process", "options"),
    [pytest.param(*case[1:4], id=case[0]) for case in RESUBSCRIBE_CASES],
)
@bounded
async def test_a_hostile_resubscribe_is_retried_and_no_update_is_lost(
    answer: RawAnswer,
    process: bool,
    options: dict[str, Any],
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent(checkpoint=True) as agent:
        opts = {"stream_idle_timeout": IDLE, **options}
        async with trio_mesos.open_executor_driver(
            executor, **driver_options(agent, **opts)
        ) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            first = await driver.update(status("t1", RUNNING))
            await driver.wait_acknowledged(first)
            agent.hijack_next(1, answer, calls=[SUBSCRIBE], process=process)
            await agent.drop_stream()
            lost_at = trio.current_time()
            # Made while the agent misbehaves: must reach it all the same.
            uuid = await driver.update(status("t1", FINISHED, "after the hostile answer"))
            await driver.wait_acknowledged(uuid)
            await executor.wait_for("reregistered")
            recovered_at = trio.current_time()
            stats = driver.statistics()
    assert agent.task_state("t1") == FINISHED
    assert [u.uuid for u in agent.updates("t1") if u.state == FINISHED] != []
    assert {u.uuid for u in agent.updates("t1") if u.state == FINISHED} == {uuid}
    assert stats.unacknowledged_updates == 0
    assert stats.status is Status.DRIVER_RUNNING
    # One hostile attempt, then a good one after at most one backoff.
    assert recovered_at - lost_at <= max(CALL_TIMEOUT, IDLE) + 2.0 + 1e-6


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(307, id="redirect-307"),
        pytest.param(302, id="redirect-302"),
        pytest.param(500, id="500"),
        pytest.param(502, id="502"),
    ],
)
@bounded
async def test_a_resubscribe_answered_with_a_redirect_or_5xx_is_retried(
    code: int, autojump_clock: trio.testing.MockClock
) -> None:
    executor = Recorder()
    async with FakeAgent(checkpoint=True) as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            headers = [("Location", "http://10.0.0.9:5051/slave(1)/api/v1/executor")]
            agent.hijack_next(1, send(raw_response(code, headers)), calls=[SUBSCRIBE])
            await agent.drop_stream()
            driver.send_status_update(status("t1", FINISHED))
            with trio.move_on_after(10 * CALL_TIMEOUT):
                await agent.wait_for_update("t1", FINISHED)
            assert driver.error is None, f"the driver ended: {driver.error}"
            assert agent.task_state("t1") == FINISHED


# --------------------------------------------------------------------------
# UPDATE: every hostile answer is retried; the update arrives, same uuid
# --------------------------------------------------------------------------

#: (id, answer, process, extra answers before a good one, latest virtual time)
UPDATE_CASES: list[tuple[str, RawAnswer, bool, int, float]] = [
    ("huge-head", send(raw_response(202, [("X-Big", "x" * 1_000_000)])), False, 1, 3.0),
    ("endless-head", endless_head(b"HTTP/1.1 202 Accepted\r\n"), False, 1, 3.0),
    (
        "endless-head-slow",
        endless_head(b"HTTP/1.1 202 Accepted\r\n", interval=1.0),
        False,
        1,
        CALL_TIMEOUT + 3.0,
    ),
    ("trickle-1-byte-per-second", trickle(lambda r: r), True, 1, CALL_TIMEOUT + 3.0),
    ("silence", hang(), False, 1, CALL_TIMEOUT + 3.0),
    ("chunk-never-ends", send(endless_chunk_body, then_hang=True), True, 1, CALL_TIMEOUT + 3.0),
    (
        "redirects",
        send(raw_response(307, [("Location", "http://10.0.0.9:5051/slave(1)/api/v1/executor")])),
        False,
        3,
        3 * 2.0 + 1.0,
    ),
    ("301", send(raw_response(301, [("Location", "/elsewhere")])), False, 2, 2 * 2.0 + 1.0),
    ("not-http", send(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", then_hang=True), False, 1, 3.0),
    ("eof-mid-head", send(b"HTTP/1.1 202 Acc"), False, 1, 3.0),
    ("502", send(raw_response(502, [], b"Bad Gateway")), False, 2, 2 * 2.0 + 1.0),
]


@pytest.mark.parametrize(
    ("answer", "process", "times", "latest"),
    [pytest.param(*case[1:], id=case[0]) for case in UPDATE_CASES],
)
@bounded
async def test_a_hostile_update_answer_is_retried_until_the_update_arrives(
    answer: RawAnswer,
    process: bool,
    times: int,
    latest: float,
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            agent.hijack_next(times, answer, calls=[UPDATE], process=process)
            start = trio.current_time()
            uuid = await driver.update(status("t1", FINISHED))
            await driver.wait_acknowledged(uuid)
            elapsed = trio.current_time() - start
            stats = driver.statistics()
    arrived = [u.uuid for u in agent.updates("t1")]
    assert set(arrived) == {uuid}  # every repeat carries the same uuid
    assert agent.task_state("t1") == FINISHED
    assert stats.unacknowledged_updates == 0
    assert executor.names().count("error") == 0  # retried, never dropped
    assert elapsed <= latest + 1e-6


@bounded
async def test_200_instead_of_202_counts_as_accepted_with_a_warning(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            agent.hijack_next(1, send(as_200), calls=[UPDATE], process=True)
            with caplog.at_level(logging.WARNING, logger="trio_mesos"):
                uuid = await driver.update(status("t1", FINISHED))
                await driver.wait_acknowledged(uuid)
    updates = [c for c in agent.calls if c.type == UPDATE]
    assert len(updates) == 1  # accepted: not sent again
    assert any("instead of 202" in r.getMessage() for r in caplog.records)


@bounded
async def test_a_response_to_a_request_never_sent_is_not_taken_for_an_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            # The agent answers the first UPDATE, then sends a second 202 nobody
            # asked for; the next UPDATE really gets a 503 (not processed).
            extra = raw_response(202, [("Date", "Thu, 01 Jan 2026 00:00:00 GMT")])
            agent.hijack_next(1, send(lambda reply: reply + extra), calls=[UPDATE], process=True)
            first = await driver.update(status("t1", RUNNING))
            await driver.wait_acknowledged(first)
            agent.fail_next(1, 503, "Agent has not finished recovery", calls=[UPDATE])
            second = driver.send_status_update(status("t1", FINISHED))
            assert second is Status.DRIVER_RUNNING
            with trio.move_on_after(10 * CALL_TIMEOUT):
                await agent.wait_for_update("t1", FINISHED)
            assert agent.task_state("t1") == FINISHED, "the FINISHED update never arrived"


@bounded
async def test_a_trickled_record_that_never_ends_does_not_stick_the_driver(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # After a real SUBSCRIBED the stream trickles one byte per second of a
    # record that never completes: the idle timeout never fires (bytes keep
    # coming), but a started record must be whole within call_timeout, so the
    # stream counts as lost then and the driver re-subscribes; calls still go
    # out and stop() is bounded.
    executor = Recorder()
    async with FakeAgent(checkpoint=True) as agent:
        options = driver_options(agent, stream_idle_timeout=IDLE, stop_timeout=10.0)
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")

            async def trickled(stream: trio.abc.Stream, reply: bytes) -> bool:
                await stream.send_all(reply + b"100000\r\n" + b"1000000\n")
                while True:
                    await trio.sleep(1.0)
                    await stream.send_all(b"x")

            agent.hijack_next(1, trickled, calls=[SUBSCRIBE], process=True)
            await agent.drop_stream()
            await executor.wait_for("reregistered")
            trickle_started = trio.current_time()
            await executor.wait_for("reregistered", count=2)  # the trickle was given up
            assert trio.current_time() - trickle_started <= CALL_TIMEOUT + 1e-6
            assert driver.statistics().state == "subscribed"
            uuid = await driver.update(status("t1", FINISHED))  # the 202 still comes
            assert uuid in {u.uuid for u in agent.updates("t1")}
            stop_at = trio.current_time()
            driver.stop()
            assert await driver.join() is Status.DRIVER_STOPPED
            assert trio.current_time() - stop_at <= 10.0 + 1e-6


# --------------------------------------------------------------------------
# Fuzzing: arbitrary SUBSCRIBE answers from a minimal server
# --------------------------------------------------------------------------


class ByteServer:
    """A minimal agent over memory streams: answers the first SUBSCRIBE with chosen bytes.

    Later connections are refused (``ConnectionRefusedError``), which counts
    as a reconnect attempt. After writing, the server closes the connection
    or, with ``hang``, keeps it open and silent.
    """

    def __init__(self, nursery: trio.Nursery, chunks: list[bytes], hang: bool) -> None:
        self.nursery = nursery
        self.chunks = chunks
        self.hang = hang
        self.attempts = 0

    async def connect(self) -> trio.abc.Stream:
        self.attempts += 1
        await trio.lowlevel.checkpoint()
        if self.attempts > 1:
            # Only the first SUBSCRIBE is answered; reconnects are refused.
            raise ConnectionRefusedError("the fuzzed agent is gone")
        client, server = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self._serve, server)
        return client

    async def _serve(self, stream: trio.abc.Stream) -> None:
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                data = await stream.receive_some(65536)
                if not data:
                    return
                request += data
            for piece in self.chunks:
                await stream.send_all(piece)
                await trio.sleep(0.5)
            if self.hang:
                await trio.sleep_forever()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(stream)


def _subscribed_record() -> bytes:
    event = executor_pb2.Event(type=executor_pb2.Event.SUBSCRIBED)
    sub = event.subscribed
    sub.executor_info.executor_id.value = "fake-executor"
    sub.executor_info.framework_id.value = "fake-framework-0000"
    sub.executor_info.command.value = "x"
    sub.framework_info.user = "u"
    sub.framework_info.name = "n"
    sub.framework_info.id.value = "fake-framework-0000"
    sub.agent_info.hostname = "h"
    sub.agent_info.id.value = "fake-agent-S0"
    sub.container_id.value = "c"
    return encode_record(event.SerializeToString())


def _event_record(kind: int) -> bytes:
    return encode_record(executor_pb2.Event(type=kind).SerializeToString())  # type: ignore[arg-type]


_GOOD_STREAM = (
    raw_stream_head()
    + chunk(_subscribed_record())
    + chunk(_event_record(executor_pb2.Event.HEARTBEAT))
    + b"0\r\n\r\n"
)


def _mutate(draw: st.DrawFn, data: bytes, most: int) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, most))):
        if not buf:
            break
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "digit"]))
        at = draw(st.integers(0, len(buf) - 1))
        if op == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del buf[at:]
        elif op == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[at : at + draw(st.integers(1, 8))]
        else:
            buf[at] = ord(draw(st.sampled_from("0123456789\n\r;")))
    return bytes(buf)


@st.composite
def subscribe_answers(draw: st.DrawFn) -> bytes:
    """What the agent answers SUBSCRIBE with: arbitrary bytes, or structured then mutated.

    Structured: a stream head (either media type) and chunks carrying
    RecordIO records of real events (SUBSCRIBED first, then any events,
    SHUTDOWN included), re-chunked at random; then mutations of the records,
    of the chunked body, or of the whole answer.
    """
    kind = draw(st.sampled_from(["arbitrary", "head+garbage", "structured", "structured"]))
    if kind == "arbitrary":
        return draw(st.binary(max_size=300))
    content_type = draw(st.sampled_from(list(ContentType)))
    head = raw_stream_head(content_type.value)
    if kind == "head+garbage":
        return head + draw(st.binary(max_size=200))
    listed = [draw(EVENTS_BY_TYPE["SUBSCRIBED"])] if draw(st.integers(0, 9)) else []
    listed += draw(st.lists(events(), max_size=4))
    records = b"".join(
        encode_record(write_json(e) if content_type is ContentType.JSON else e.SerializeToString())
        for e in listed
    )
    records = _mutate(draw, records, draw(st.sampled_from([0, 0, 1, 3])))
    cuts = draw(st.lists(st.integers(0, max(0, len(records))), max_size=4))
    body = b"".join(chunk(piece) for piece in _split(records, cuts))
    if draw(st.booleans()):
        body += b"0\r\n\r\n"
    body = _mutate(draw, body, draw(st.sampled_from([0, 0, 1, 2])))
    return _mutate(draw, head, draw(st.sampled_from([0, 0, 0, 1]))) + body


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


async def _drive_fuzzed_agent(chunks: list[bytes], hang: bool, checkpoint: bool) -> str:
    """Run a driver against the fuzzed answer; return how it ended."""
    config = ExecutorConfig(
        framework_id="fake-framework-0000",
        executor_id="fake-executor",
        agent_id="fake-agent-S0",
        checkpoint=checkpoint,
        recovery_timeout=20.0,
        subscription_backoff_max=1.0,
    )
    outcome = ""
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            server = ByteServer(nursery, chunks, hang)
            try:
                async with trio_mesos.open_executor_driver(
                    Recorder(),
                    config=config,
                    open_stream=server.connect,
                    rng=random.Random(7),
                    stream_idle_timeout=IDLE,
                    call_timeout=CALL_TIMEOUT,
                    stop_timeout=5.0,
                ) as driver:
                    final = await driver.join()
                    if final is Status.DRIVER_ABORTED:
                        assert isinstance(driver.error, AgentUnavailableError), driver.error
                        outcome = "aborted"
                    else:
                        assert final is Status.DRIVER_STOPPED  # a SHUTDOWN in the bytes
                        outcome = "stopped"
            except AgentUnavailableError:
                outcome = "unavailable"
            if outcome == "aborted":
                # Lost after subscribing: with checkpointing it tried to
                # reconnect before giving up; without, it did not.
                assert server.attempts >= 2 if checkpoint else server.attempts == 1
            nursery.cancel_scope.cancel()
    return outcome


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    subscribe_answers(),
    st.lists(st.integers(0, 10_000), max_size=6),
    st.booleans(),
    st.booleans(),
)
def test_fuzzed_subscribe_answers_end_in_reconnects_or_a_clean_end(
    data: bytes, cuts: list[int], hang: bool, checkpoint: bool
) -> None:
    # Anything other than AgentUnavailableError (or the asserted ends) escaping
    # open_executor_driver fails the example; so does a hang (fail_after).
    clock = trio.testing.MockClock(autojump_threshold=0)
    outcome = trio.run(_drive_fuzzed_agent, _split(data, cuts), hang, checkpoint, clock=clock)
    event(outcome)
    assert outcome in ("aborted", "stopped", "unavailable")


@pytest.mark.parametrize("checkpoint", [False, True])
def test_the_fuzz_harness_sees_a_good_stream_subscribe(checkpoint: bool) -> None:
    # A test of the test: the unmutated answer subscribes, then the stream
    # ends: without checkpointing the driver aborts; with it, it reconnects
    # (refused) until the recovery timeout.
    clock = trio.testing.MockClock(autojump_threshold=0)
    outcome = trio.run(_drive_fuzzed_agent, [_GOOD_STREAM], False, checkpoint, clock=clock)
    assert outcome == "aborted"


# --------------------------------------------------------------------------
# The FakeAgent's hostile mode itself
# --------------------------------------------------------------------------


@bounded
async def test_hijack_next_applies_to_matching_calls_only_and_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        first = send(raw_response(503, [], b"first rule"))
        second = send(raw_response(503, [], b"second rule"))
        agent.hijack_next(1, first, calls=[UPDATE])
        agent.hijack_next(1, second, calls=[UPDATE])
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            # SUBSCRIBE is not matched: it subscribes normally.
            assert agent.subscriptions == 1
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            uuid = await driver.update(status("t1", RUNNING))
            await driver.wait_acknowledged(uuid)
    # Both hijacked requests were left alone (not processed, not in calls).
    assert len(agent.hijacked) == 2
    assert all(request.path.endswith("/api/v1/executor") for request in agent.hijacked)
    assert [c.type for c in agent.calls] == [SUBSCRIBE, UPDATE]
    assert agent.updates("t1")[0].uuid == uuid


@bounded
async def test_hijack_with_process_handles_the_request_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[bytes] = []

    async def look(stream: trio.abc.Stream, reply: bytes) -> bool:
        seen.append(reply)
        await stream.send_all(reply)
        return True

    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            agent.hijack_next(1, look, calls=[UPDATE], process=True)
            uuid = await driver.update(status("t1", RUNNING))
            await driver.wait_acknowledged(uuid)
            # The connection went on serving: the next call needs no new one.
            uuid = await driver.update(status("t1", FINISHED))
    assert seen and seen[0].startswith(b"HTTP/1.1 202 Accepted\r\n")
    assert agent.hijacked == []
    updates = [c for c in agent.calls if c.type == UPDATE]
    assert len(updates) == 2 and updates[0].connection == updates[1].connection


@bounded
async def test_a_tcp_connect_that_never_completes_is_bounded(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A black-holed agent address: the default transport gives up after
    # CONNECT_TIMEOUT (the OS would wait minutes), and says so.
    from trio_mesos import _transport

    async def black_hole(host: str, port: int) -> trio.SocketStream:
        await trio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    monkeypatch.setattr(_transport.trio, "open_tcp_stream", black_hole)
    config = ExecutorConfig(
        framework_id="f", executor_id="e", agent_host="10.255.255.1", agent_port=5051
    )
    start = trio.current_time()
    with pytest.raises(AgentUnavailableError, match="took more than 30 s"):
        async with trio_mesos.open_executor_driver(Recorder(), config=config):
            pytest.fail("connected to a black hole")  # pragma: no cover
    assert trio.current_time() - start == pytest.approx(_transport.CONNECT_TIMEOUT)
