"""Issue 12's bugs and rules, one regression test each (the "Why" of the issue).

Memory streams, the FakeAgent and virtual time (``autojump_clock``), except the
TLS cases, which need real sockets and use real time with wide bounds. Each
test names the rule it holds; a comment says how the driver failed it before.
"""

from __future__ import annotations

import functools
import itertools
import logging
import pathlib
import random
import re
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
import trio.testing
import trustme

import trio_mesos
from trio_mesos import (
    AgentUnavailableError,
    ExecutorConfig,
    MessageQueueFullError,
    Status,
    TrioMesosInternalError,
)
from trio_mesos._calls import MESSAGE_QUEUE_SIZE
from trio_mesos._recordio import encode_record
from trio_mesos._transport import default_open_stream
from trio_mesos.testing import AckPolicy, FakeAgent, RecordedCall
from trio_mesos.testing._hostile import RawAnswer, chunk, hang, raw_stream_head, send
from trio_mesos.v1 import executor_pb2, mesos_pb2

from .helpers import Recorder, bounded, driver_options, make_task, status
from .test_tls import Files, server_context, tls_environ

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

SUBSCRIBE, UPDATE = executor_pb2.Call.SUBSCRIBE, executor_pb2.Call.UPDATE
MESSAGE, HEARTBEAT = executor_pb2.Call.MESSAGE, executor_pb2.Call.HEARTBEAT
RUNNING, FINISHED = mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED
NOT_RECOVERED = "Agent has not finished recovery"
#: Virtual seconds after which a test fails instead of hanging.
#: Real seconds for the TLS tests (real sockets); far below any recovery timeout.
REAL_LIMIT = 30.0
#: Virtual-time slack for "at exactly this instant" (float sums only).
EXACT = 1e-6



# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def type_of(call: RecordedCall) -> int:
    """The Call type; decoded here when the agent answered before decoding."""
    if call.type is not None:
        return call.type
    return int(executor_pb2.Call.FromString(call.request_body).type)


def calls_of(agent: FakeAgent, call_type: int) -> list[RecordedCall]:
    return [c for c in agent.calls if type_of(c) == call_type]


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def event_chunk(event: executor_pb2.Event) -> bytes:
    """One event as the agent frames it on the stream: a RecordIO record in a chunk."""
    return chunk(encode_record(event.SerializeToString()))


def launch_event(task_id: str) -> executor_pb2.Event:
    event = executor_pb2.Event(type=executor_pb2.Event.LAUNCH)
    event.launch.task.CopyFrom(make_task(task_id))
    return event


def before_first_event(extra: bytes) -> Callable[[bytes], bytes]:
    """Rewrite the agent's own SUBSCRIBE answer: ``extra`` between the head and SUBSCRIBED."""

    def rewrite(reply: bytes) -> bytes:
        head, separator, events = reply.partition(b"\r\n\r\n")
        assert separator and events, "not a stream head with events"
        return head + separator + extra + events

    return rewrite


def heartbeats_only(interval: float) -> RawAnswer:
    """Answer SUBSCRIBE with 200 and then only HEARTBEAT events, one every ``interval`` s."""

    async def answer(stream: trio.abc.Stream, reply: bytes) -> bool:
        await stream.send_all(raw_stream_head())
        heartbeat = event_chunk(executor_pb2.Event(type=executor_pb2.Event.HEARTBEAT))
        while True:
            await stream.send_all(heartbeat)
            await trio.sleep(interval)

    return answer


class Counting:
    """``open_stream`` wrapper that counts connection attempts."""

    def __init__(self, open_stream: Callable[[], Awaitable[trio.abc.Stream]]) -> None:
        self._open = open_stream
        self.attempts = 0

    async def __call__(self) -> trio.abc.Stream:
        self.attempts += 1
        return await self._open()


class ConstantRandom(random.Random):
    """A random source whose ``random()`` is always ``value``: every backoff delay is known."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its group members, and everything in their cause/context chains."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def private_classes(exc: BaseException) -> list[str]:
    """Classes from trio_mesos's private modules anywhere in ``exc``'s chains."""
    return [
        f"{cls.__module__}.{cls.__qualname__}"
        for e in chain(exc)
        for cls in type(e).__mro__
        if cls.__module__.startswith("trio_mesos._")
        or (cls.__module__.startswith("trio_mesos.") and cls.__name__.startswith("_"))
    ]


# --------------------------------------------------------------------------
# 1. The first event must be SUBSCRIBED or SHUTDOWN, within call_timeout
# --------------------------------------------------------------------------


@bounded
async def test_heartbeats_instead_of_subscribed_fail_the_entry_by_call_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Before: any event reset the "SUBSCRIBED within call_timeout" deadline,
    # so an agent sending only HEARTBEATs kept __aenter__ waiting for ever.
    executor = Recorder()
    async with FakeAgent() as agent:
        agent.hijack_next(1, heartbeats_only(interval=3.0), calls=[SUBSCRIBE])
        start = trio.current_time()
        with pytest.raises(AgentUnavailableError) as excinfo:
            async with trio_mesos.open_executor_driver(
                executor, **driver_options(agent, call_timeout=10.0)
            ):
                pytest.fail("the block ran without SUBSCRIBED")
        elapsed = trio.current_time() - start
    # by call_timeout at the latest (a HEARTBEAT first is itself a lost stream: at once)
    assert elapsed <= 10.0 + EXACT
    assert "SUBSCRIBED" in str(excinfo.value)
    assert "Heartbeat" in str(excinfo.value) or "within 10 s" in str(excinfo.value)
    assert executor.calls == []


@bounded
async def test_an_event_before_subscribed_is_not_dispatched_and_fails_the_first_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Before: events before SUBSCRIBED were dispatched: launch_task ran before registered.
    executor = Recorder()
    async with FakeAgent() as agent:
        sneaky = before_first_event(event_chunk(launch_event("sneaky")))
        agent.hijack_next(1, send(sneaky, then_hang=True), calls=[SUBSCRIBE], process=True)
        start = trio.current_time()
        with pytest.raises(AgentUnavailableError) as excinfo:
            async with trio_mesos.open_executor_driver(executor, **driver_options(agent)):
                pytest.fail("the block ran although the first event was LAUNCH")
        elapsed = trio.current_time() - start
    assert executor.calls == []  # neither launch_task nor registered
    assert "first event" in str(excinfo.value)
    assert elapsed == pytest.approx(0.0, abs=EXACT)  # at once: it is a lost first connection


@bounded
async def test_an_event_before_subscribed_on_a_resubscribe_is_a_lost_stream_and_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent(checkpoint=True) as agent:
        options = driver_options(agent, config=agent.executor_config(checkpoint=True))
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await executor.wait_for("registered")
            sneaky = before_first_event(event_chunk(launch_event("sneaky")))
            agent.hijack_next(1, send(sneaky, then_hang=True), calls=[SUBSCRIBE], process=True)
            await agent.restart(down=1.0, recovering=0.0)
            await executor.wait_for("reregistered")
            # a third SUBSCRIBE: the one with LAUNCH first counted as lost, then retried
            assert len(calls_of(agent, SUBSCRIBE)) == 3
            assert driver.error is None
            assert driver.statistics().state == "subscribed"
            assert driver.start() is Status.DRIVER_RUNNING
    assert "launch_task" not in executor.names()
    assert executor.names().count("disconnected") == 1


# --------------------------------------------------------------------------
# 2. Messages retried after 503s keep their order
# --------------------------------------------------------------------------


@bounded
async def test_three_messages_answered_503_are_resent_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Before: m1, m3, m2.
    async with FakeAgent(heartbeat_interval=None) as agent:
        async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)) as driver:
            agent.fail_next(3, 503, NOT_RECOVERED, calls=[MESSAGE])
            for data in (b"m1", b"m2", b"m3"):
                assert driver.send_framework_message(data) is Status.DRIVER_RUNNING
            await agent.wait_call(MESSAGE, 6)
            await driver.message(b"m4")
    sent = [
        (c.status_code, executor_pb2.Call.FromString(c.request_body).message.data)
        for c in calls_of(agent, MESSAGE)
    ]
    # one MESSAGE at a time: m1 is retried until taken, and nothing overtakes it
    assert [code for code, _ in sent[:4]] == [503, 503, 503, 202]
    assert [data for _, data in sent[:4]] == [b"m1"] * 4
    assert agent.messages == [b"m1", b"m2", b"m3", b"m4"]


# --------------------------------------------------------------------------
# 3. A refusal with a truncated body is a refusal: the status line decides
# --------------------------------------------------------------------------

#: A 400 whose body is shorter than its Content-Length.
TRUNCATED_400 = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 200\r\n\r\n"
    b"Framework fake-framework-0000 is unkn"
)


@pytest.mark.parametrize(
    ("answer", "latest"),
    [
        pytest.param(send(TRUNCATED_400), 0.0, id="then-closed"),
        # the body's read is bounded (a few seconds): far less than the recovery timeout
        pytest.param(hang(TRUNCATED_400), 10.0, id="then-silent"),
    ],
)
@bounded
async def test_a_resubscribe_refused_with_a_truncated_body_gives_up_at_once(
    answer: RawAnswer, latest: float, autojump_clock: trio.testing.MockClock
) -> None:
    # Before: retried as a lost stream for the whole recovery timeout (585 attempts).
    executor = Recorder()
    async with FakeAgent(checkpoint=True, recovery_timeout=900.0) as agent:
        options = driver_options(agent, config=agent.executor_config(checkpoint=True))
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await executor.wait_for("registered")
            agent.hijack_next(1, answer, calls=[SUBSCRIBE])
            await agent.drop_stream()
            lost_at = trio.current_time()
            assert await driver.join() is Status.DRIVER_ABORTED
            elapsed = trio.current_time() - lost_at
    assert elapsed <= latest + EXACT
    assert len(agent.hijacked) == 1 and agent.subscriptions == 1  # one attempt, not retried
    assert isinstance(driver.error, AgentUnavailableError)
    assert "400" in str(driver.error)
    assert "error" in executor.names() and "shutdown" in executor.names()
    assert driver.statistics().state == "aborted"


# --------------------------------------------------------------------------
# 4. stop() past its timeout logs what is left unacknowledged
# --------------------------------------------------------------------------


@bounded
async def test_stop_past_its_timeout_logs_the_unacknowledged_count_and_task_ids(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: nothing was logged.
    executor = Recorder()
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD) as agent:
        options = driver_options(agent, stop_timeout=5.0)
        with caplog.at_level(logging.INFO, logger="trio_mesos.driver"):
            async with trio_mesos.open_executor_driver(executor, **options) as driver:
                for task_id in ("task-a", "task-b"):
                    await agent.launch(make_task(task_id))
                await executor.wait_for("launch_task", 2)
                await driver.update(status("task-a", RUNNING))
                await driver.update(status("task-b", RUNNING))
                await driver.update(status("task-b", FINISHED))
                start = trio.current_time()
                assert driver.stop() is Status.DRIVER_STOPPED
                assert await driver.join() is Status.DRIVER_STOPPED
            assert trio.current_time() - start == pytest.approx(5.0, abs=EXACT)
    texts = [
        r.getMessage()
        for r in caplog.records
        if r.name == "trio_mesos.driver" and r.levelno >= logging.WARNING
    ]
    about = [t for t in texts if "task-a" in t and "task-b" in t]
    assert about, f"no warning names the unacknowledged tasks: {texts}"
    assert any(re.search(r"\b3\b", t) for t in about), about


# --------------------------------------------------------------------------
# 5. Retry timing is per call
# --------------------------------------------------------------------------


@bounded
async def test_a_heartbeats_202_does_not_reset_an_updates_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Backoff delays: 0 first, then backoff_max * rng.random() = 2 s each.
    # Heartbeats are due all the time (0.5 s interval) and answered 202; a
    # backoff they reset would make every UPDATE retry after one immediate.
    executor = Recorder()
    async with FakeAgent(heartbeat_interval=None) as agent:
        options = driver_options(agent, rng=ConstantRandom(1.0), heartbeat_interval=0.5)
        backoff_max = options["config"].subscription_backoff_max
        assert backoff_max == 2.0
        async with trio_mesos.open_executor_driver(executor, **options) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            agent.fail_next(6, 503, NOT_RECOVERED, calls=[UPDATE])
            await driver.update(status("t1", RUNNING))
    updates = calls_of(agent, UPDATE)
    assert [c.status_code for c in updates] == [503] * 6 + [202]
    first, last = updates[0].time, updates[-1].time
    beats = [c for c in calls_of(agent, HEARTBEAT) if first < c.time < last]
    assert beats and all(c.status_code == 202 for c in beats)
    assert gaps([c.time for c in updates]) == pytest.approx([0.0] + [backoff_max] * 5, abs=EXACT)


# --------------------------------------------------------------------------
# 6. Any failure of the first connection ends the driver at once, naming the cause
# --------------------------------------------------------------------------


@bounded
async def test_a_first_connection_that_cannot_be_opened_fails_the_entry_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def refuse() -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        raise ConnectionRefusedError(111, "Connection refused by the test")

    dial = Counting(refuse)
    async with FakeAgent(checkpoint=True) as agent:
        options = driver_options(
            agent, config=agent.executor_config(checkpoint=True), open_stream=dial
        )
        start = trio.current_time()
        with pytest.raises(AgentUnavailableError) as excinfo:
            async with trio_mesos.open_executor_driver(Recorder(), **options):
                pytest.fail("the block ran without a connection")
        elapsed = trio.current_time() - start
    assert "Connection refused by the test" in str(excinfo.value)
    assert elapsed == pytest.approx(0.0, abs=EXACT)
    assert dial.attempts == 1


@bounded
async def test_a_first_connection_closed_before_the_answer_fails_the_entry_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with FakeAgent(checkpoint=True) as agent:
        dial = Counting(agent.connect)
        options = driver_options(
            agent, config=agent.executor_config(checkpoint=True), open_stream=dial
        )
        agent.hijack_next(1, send(b""), calls=[SUBSCRIBE])
        start = trio.current_time()
        with pytest.raises(AgentUnavailableError) as excinfo:
            async with trio_mesos.open_executor_driver(Recorder(), **options):
                pytest.fail("the block ran without an answer to SUBSCRIBE")
        elapsed = trio.current_time() - start
    message = str(excinfo.value)
    assert "cannot connect to the agent" in message
    # the cause in words, not h11's state machine ("invalid HTTP ... ConnectionClosed")
    assert "closed the connection" in message, message
    assert "invalid HTTP" not in message, message
    assert elapsed == pytest.approx(0.0, abs=EXACT)
    assert dial.attempts == 1


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.mark.parametrize("tls12_only", [False, True], ids=["tls1.3", "tls1.2"])
async def test_a_client_certificate_required_but_missing_fails_the_entry_at_once(
    ca: trustme.CA, tmp_path: pathlib.Path, tls12_only: bool
) -> None:
    # Before: under TLS 1.3 the refusal (which arrives after the handshake,
    # on the first read) was retried as a lost stream about once a second
    # for the whole recovery timeout (15 min by default); TLS 1.2 ended at once.
    files = Files(tmp_path)
    async with FakeAgent(checkpoint=True, recovery_timeout=900.0) as agent:
        context = server_context(ca, "127.0.0.1", client_ca=trustme.CA(), tls12_only=tls12_only)
        await agent.listen_tcp(ssl_context=context)
        env = tls_environ(
            agent,
            tmp_path,
            LIBPROCESS_SSL_CA_FILE=files.ca(ca),
            LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME="openssl",
        )
        config = ExecutorConfig.from_environ(env)
        assert config.checkpoint and config.recovery_timeout == 900.0
        dial = Counting(default_open_stream(config))
        start = trio.current_time()
        with trio.fail_after(REAL_LIMIT), pytest.raises(AgentUnavailableError) as excinfo:
            async with trio_mesos.open_executor_driver(Recorder(), config=config, open_stream=dial):
                pytest.fail("the block ran although the agent refused the executor")
        elapsed = trio.current_time() - start
    message = str(excinfo.value)
    assert "LIBPROCESS_SSL_CERT_FILE" in message and "TLS" in message, message
    assert dial.attempts == 1  # not retried
    assert elapsed < REAL_LIMIT / 2
    assert agent.calls == []


# --------------------------------------------------------------------------
# 7. The message queue: its bound is an error of its own; nothing dropped while healthy
# --------------------------------------------------------------------------


@bounded
async def test_a_message_that_does_not_fit_raises_message_queue_full_and_the_rest_keep_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Before: the queue dropped its oldest message and message() said
    # "agent unavailable". Here the agent holds back its answer to the first
    # MESSAGE (one is in flight at a time), so the others queue up.
    async with FakeAgent(heartbeat_interval=None) as agent:
        async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)) as driver:
            stalled = trio.Event()

            async def stall(stream: trio.abc.Stream, reply: bytes) -> bool:
                stalled.set()
                await trio.sleep_forever()
                raise AssertionError("unreachable")

            agent.hijack_next(1, stall, calls=[MESSAGE])
            driver.send_framework_message(b"stalled")
            await stalled.wait()
            queued = [b"queued %d" % i for i in range(MESSAGE_QUEUE_SIZE)]
            for data in queued:
                assert driver.send_framework_message(data) is Status.DRIVER_RUNNING
            with pytest.raises(MessageQueueFullError) as excinfo:
                await driver.message(b"does not fit")
            assert not isinstance(excinfo.value, AgentUnavailableError)
            assert driver.start() is Status.DRIVER_RUNNING
            # once the stalled call times out, the queued messages go out, in order
            await agent.wait_call(MESSAGE, len(queued))
            await driver.message(b"last")
    assert agent.messages == [*queued, b"last"]
    assert b"does not fit" not in agent.messages


@bounded
async def test_5000_awaited_messages_all_arrive_while_the_agent_is_healthy(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Before: up to 665 of 5,000 messages were dropped by the 1,024-message
    # queue. ``await message()`` is the back-pressured way: from several
    # senders at once, each awaiting its messages in a loop, none is dropped.
    senders, count = 10, 5000

    async def sender(driver: trio_mesos.ExecutorDriver, first: int) -> None:
        for i in range(first, count, senders):
            await driver.message(b"%d" % i)

    async with FakeAgent(heartbeat_interval=None) as agent:
        async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)) as driver:
            async with trio.open_nursery() as nursery:
                for first in range(senders):
                    nursery.start_soon(sender, driver, first)
    assert sorted(agent.messages) == sorted(b"%d" % i for i in range(count))
    for first in range(senders):  # each sender's messages in its order
        mine = [int(m) for m in agent.messages if int(m) % senders == first]
        assert mine == list(range(first, count, senders))


# --------------------------------------------------------------------------
# 8. Exceptions: user exceptions come out as themselves, or as one group of exactly them
# --------------------------------------------------------------------------


@bounded
async def test_the_block_and_task_work_raising_come_out_as_one_group_of_exactly_those(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Before: TrioMesosInternalError ("a bug in trio_mesos"), with a private
    # _DriverFailure in __cause__.
    failing = trio.Event()

    async def work() -> None:
        await trio.sleep(1)
        failing.set()
        raise KeyError("from the work")

    async with FakeAgent() as agent:
        with pytest.raises(BaseExceptionGroup) as excinfo:
            async with trio_mesos.open_executor_driver(
                Recorder(), **driver_options(agent)
            ) as driver:
                driver.start_task("t1", work)
                await failing.wait()
                raise ValueError("from the block")
    group = excinfo.value
    assert isinstance(group, ExceptionGroup)
    assert sorted(type(e).__name__ for e in group.exceptions) == ["KeyError", "ValueError"]
    assert str(group.exceptions[0].args[0]).startswith("from the")
    for kind, text in ((ValueError, "from the block"), (KeyError, "from the work")):
        matched, rest = group.split(kind)
        assert matched is not None and len(matched.exceptions) == 1
        assert matched.exceptions[0].args == (text,)
        assert rest is not None and len(rest.exceptions) == 1
    assert not any(isinstance(e, TrioMesosInternalError) for e in chain(group))
    assert private_classes(group) == []
    if sys.version_info >= (3, 11):  # except* is syntax from 3.11 on
        caught: list[str] = []
        namespace = {"group": group, "caught": caught}
        exec(
            textwrap.dedent("""
            try:
                raise group
            except* ValueError as values:
                caught += [type(e).__name__ for e in values.exceptions]
            except* KeyError as keys:
                caught += [type(e).__name__ for e in keys.exceptions]
        """),
            namespace,
        )
        assert sorted(caught) == ["KeyError", "ValueError"]


class Boom(Exception):
    pass


class RaisesOnRegistered(trio_mesos.Executor):
    async def registered(self, driver: Any, *args: Any) -> None:
        raise Boom("from the callback")


@pytest.mark.parametrize("where", ["callback", "task-work", "block"])
@bounded
async def test_one_user_exception_comes_out_as_itself(
    where: str, autojump_clock: trio.testing.MockClock
) -> None:
    async def work() -> None:
        await trio.sleep(1)
        raise Boom("from the work")

    executor = RaisesOnRegistered() if where == "callback" else Recorder()
    async with FakeAgent() as agent:
        with pytest.raises(Boom) as excinfo:
            async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
                if where == "task-work":
                    driver.start_task("t1", work)
                if where == "block":
                    raise Boom("from the block")
                await trio.sleep_forever()
    assert type(excinfo.value) is Boom
    assert not any(isinstance(e, TrioMesosInternalError) for e in chain(excinfo.value))
    assert private_classes(excinfo.value) == []


# --------------------------------------------------------------------------
# 9. Trio conventions: nursery.start(run_executor, ...); start_task typed like start_soon
# --------------------------------------------------------------------------


@bounded
async def test_nursery_start_run_executor_returns_the_driver_once_subscribed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio.open_nursery() as nursery:
            driver = await nursery.start(
                functools.partial(trio_mesos.run_executor, executor, **driver_options(agent))
            )
            assert isinstance(driver, trio_mesos.ExecutorDriver)
            assert driver.statistics().state == "subscribed"
            assert driver.statistics().subscriptions == 1
            assert driver.executor_info is not None
            assert agent.subscribed
            assert driver.start() is Status.DRIVER_RUNNING
            await executor.wait_for("registered")
            driver.stop()
        assert await driver.join() is Status.DRIVER_STOPPED


async def test_nursery_start_run_executor_with_the_environments_config(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The literal form: nursery.start(run_executor, executor), the configuration
    # read from os.environ as under a real agent (TCP: real sockets, real time).
    executor = Recorder()
    async with FakeAgent() as agent:
        await agent.listen_tcp()
        for name, value in agent.executor_environment(tmp_path).items():
            monkeypatch.setenv(name, value)
        with trio.fail_after(REAL_LIMIT):
            async with trio.open_nursery() as nursery:
                driver = await nursery.start(trio_mesos.run_executor, executor)
                assert isinstance(driver, trio_mesos.ExecutorDriver)
                assert driver.statistics().state == "subscribed"
                assert agent.subscribed
                await executor.wait_for("registered")
                driver.stop()
    assert await driver.join() is Status.DRIVER_STOPPED


MYPY_FILE = """
import trio_mesos


async def work(n: int) -> None:
    pass


def {name}(driver: trio_mesos.ExecutorDriver) -> None:
    driver.start_task("t", work, {argument})
"""


def test_mypy_flags_wrong_arguments_to_start_task(tmp_path: pathlib.Path) -> None:
    bad, good = tmp_path / "bad.py", tmp_path / "good.py"
    bad.write_text(MYPY_FILE.format(name="bad", argument='"not an int"'))
    good.write_text(MYPY_FILE.format(name="good", argument="1"))
    root = pathlib.Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--hide-error-context",
            str(bad),
            str(good),
        ],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
        check=False,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert [line for line in lines if "good.py" in line] == []
    errors = [line for line in lines if "bad.py" in line]
    assert len(errors) == 1, lines
    assert "start_task" in errors[0] and "[arg-type]" in errors[0], errors


# --------------------------------------------------------------------------
# 10. After an ABORTED end, statistics().state says "aborted"
# --------------------------------------------------------------------------


ABORTED_ENDS = [
    "abort",
    "abort-while-stopping",
    "abort-in-a-callback",
    "callback-raises",
    "task-work-raises",
    "cancelled-from-outside",
    "lost-without-checkpoint",
    "recovery-timeout",
]


class Ending(Recorder):
    """``registered`` ends the driver as the test says (or just records)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    async def registered(self, driver: Any, *args: Any) -> None:
        await super().registered(driver, *args)
        if self.how == "abort-in-a-callback":
            driver.abort()
        elif self.how == "callback-raises":
            raise Boom("from the callback")


@pytest.mark.parametrize("how", ABORTED_ENDS)
@bounded
async def test_after_an_aborted_end_the_state_is_aborted(
    how: str, autojump_clock: trio.testing.MockClock
) -> None:
    # Before: "subscribed" (a callback or task work raised) or "stopping".
    async def failing_work() -> None:
        await trio.sleep(1)
        raise Boom("from the work")

    executor = Ending(how)
    drivers: list[trio_mesos.ExecutorDriver] = []
    checkpoint = how == "recovery-timeout"
    async with FakeAgent(
        checkpoint=checkpoint, recovery_timeout=60.0, ack_policy=AckPolicy.WITHHELD
    ) as agent:
        options = driver_options(
            agent, config=agent.executor_config(checkpoint=checkpoint), stop_timeout=100.0
        )
        with trio.move_on_after(500.0) as outside:
            try:
                async with trio_mesos.open_executor_driver(executor, **options) as driver:
                    drivers.append(driver)
                    await executor.wait_for("registered")
                    if how == "abort":
                        driver.abort()
                    elif how == "abort-while-stopping":
                        await agent.launch(make_task("t1"))
                        await executor.wait_for("launch_task")
                        await driver.update(status("t1", RUNNING))
                        driver.stop()
                        await trio.sleep(1)
                        assert driver.statistics().state == "stopping"
                        driver.abort()
                    elif how == "task-work-raises":
                        driver.start_task("t1", failing_work)
                    elif how == "lost-without-checkpoint":
                        await agent.drop_stream()
                    elif how == "recovery-timeout":
                        await agent.restart(down=1000.0)
                    if how in ("cancelled-from-outside", "callback-raises", "task-work-raises"):
                        await trio.sleep_forever()  # the end cancels the block
                    assert await driver.join() is Status.DRIVER_ABORTED
                    assert driver.statistics().state == "aborted"
            except Boom:
                assert how in ("callback-raises", "task-work-raises")
    assert outside.cancelled_caught == (how == "cancelled-from-outside")
    (driver,) = drivers
    stats = driver.statistics()
    assert stats.state == "aborted" and stats.status is Status.DRIVER_ABORTED
    if how in ("lost-without-checkpoint", "recovery-timeout"):
        assert isinstance(driver.error, AgentUnavailableError)
