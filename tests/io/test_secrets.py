"""Secrets and memory on hostile input (issue 8).

The executor's authentication token (``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``)
never appears in anything the library emits: a whole session runs at DEBUG
logging with a token, with faults (503s, a refused update, a lost stream, a
restart, a refused SUBSCRIBE), and everything emitted is searched -- log
records with their tracebacks, stdout and stderr, warnings -- as well as the
repr and str of the driver, its configuration, statistics and every
exception, their pickles, and formatted tracebacks.

Memory on hostile input is bounded: an oversized record is refused from its
length prefix, answers with an endless body stop at the documented limits.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import pickle
import traceback
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing

import trio_mesos
from trio_mesos import AgentUnavailableError, CallRejectedError, ConfigError, ExecutorConfig, Status
from trio_mesos._http import MAX_BODY
from trio_mesos.testing import FakeAgent
from trio_mesos.testing._hostile import chunk, raw_response, raw_stream_head, send
from trio_mesos.v1 import executor_pb2, mesos_pb2

from .helpers import Recorder, driver_options, make_task, status

SUBSCRIBE, UPDATE = executor_pb2.Call.SUBSCRIBE, executor_pb2.Call.UPDATE
RUNNING, FINISHED = mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED
#: A token no test would produce by accident; searched for whole and in part.
TOKEN = "s3cr3t-T0KEN.eyJmaWQiOiJmYWtlIn0.aGVsbG8td29ybGQtc2lnbmF0dXJl"
#: Every 12-character piece of it: a truncated or partly quoted token counts too.
FRAGMENTS = tuple(TOKEN[i : i + 12] for i in range(len(TOKEN) - 11))
LIMIT = 3600.0


class Everything(logging.Handler):
    """Keeps every record of every logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))
        self.texts.append(repr(record.args))


@pytest.fixture
def emitted() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def leaks(texts: list[str]) -> list[str]:
    return [text for text in texts if any(fragment in text for fragment in FRAGMENTS)]


def dump_exception(exc: BaseException) -> list[str]:
    """Everything an exception shows: str, repr, args, pickle, copy, its traceback."""
    texts = [str(exc), repr(exc), repr(exc.args)]
    texts.append(repr(pickle.loads(pickle.dumps(exc))))
    texts.append(repr(copy.copy(exc)))
    texts.append("".join(traceback.format_exception(exc)))
    return texts


def dump_driver(driver: trio_mesos.ExecutorDriver) -> list[str]:
    config = driver.config
    texts = [repr(driver), str(driver), repr(driver.statistics()), repr(config), str(config)]
    texts += [repr(config.tls), config.agent_url() if config.agent_host else ""]
    if driver.error is not None:
        texts += dump_exception(driver.error)
    return texts


async def test_the_token_never_appears_in_anything_emitted_at_debug(
    emitted: Everything,
    capsys: pytest.CaptureFixture[str],
    recwarn: pytest.WarningsRecorder,
    autojump_clock: trio.testing.MockClock,
) -> None:
    texts: list[str] = []
    executor = Recorder()
    with trio.fail_after(LIMIT):
        async with FakeAgent(token=TOKEN, checkpoint=True) as agent:
            config = agent.executor_config()
            assert config.authentication_token == TOKEN
            async with trio_mesos.open_executor_driver(
                executor, **driver_options(agent, config=config)
            ) as driver:
                await agent.launch(make_task("t1"))
                await agent.launch(make_task("t2"))
                await executor.wait_for("launch_task", 2)
                agent.fail_next(2, 503, "Agent has not finished recovery", calls=[UPDATE])
                await driver.wait_acknowledged(await driver.update(status("t1", RUNNING)))
                await agent.message(b"to the executor")
                await driver.message(b"to the framework")
                # A refused update: an exception and an error callback.
                agent.fail_next(1, 400, "Failed to validate Executor::Call: nope", calls=[UPDATE])
                with pytest.raises(CallRejectedError) as rejected:
                    await driver.update(status("t2", RUNNING))
                texts += dump_exception(rejected.value)
                # A lost stream, then a restart with its 503 phase.
                await agent.drop_stream()
                await executor.wait_for("reregistered")
                await agent.restart(down=1.0, recovering=1.0)
                driver.send_status_update(status("t2", FINISHED))
                await executor.wait_for("reregistered", 2)
                await agent.wait_for_update("t2", FINISHED)
                await agent.kill("t1")
                await executor.wait_for("kill_task")
                texts += dump_driver(driver)
            texts += dump_driver(driver)
            assert driver.statistics().status is Status.DRIVER_STOPPED

            # A token the agent refuses: SUBSCRIBE gets 401.
            wrong = dataclasses.replace(config, authentication_token=TOKEN + "-revoked")
            with pytest.raises(AgentUnavailableError) as refused:
                async with trio_mesos.open_executor_driver(
                    Recorder(), **driver_options(agent, config=wrong)
                ):
                    pytest.fail("subscribed with a revoked token")  # pragma: no cover
            assert "401" in str(refused.value)
            texts += dump_exception(refused.value)

    # The configuration read from an environment, good and bad.
    environ = {
        "MESOS_FRAMEWORK_ID": agent.framework_id,
        "MESOS_EXECUTOR_ID": agent.executor_id,
        "MESOS_AGENT_ENDPOINT": "127.0.0.1:5051",
        "MESOS_CHECKPOINT": "1",
        "MESOS_RECOVERY_TIMEOUT": "15mins",
        "MESOS_SUBSCRIPTION_BACKOFF_MAX": "2secs",
        "MESOS_EXECUTOR_AUTHENTICATION_TOKEN": TOKEN,
    }
    from_environ = ExecutorConfig.from_environ(environ)
    texts += [repr(from_environ), str(from_environ)]
    bad = dict(environ, MESOS_EXECUTOR_AUTHENTICATION_TOKEN=TOKEN + " with space")
    bad["MESOS_CHECKPOINT"] = "1"
    del bad["MESOS_RECOVERY_TIMEOUT"]
    with pytest.raises(ConfigError) as config_error:
        ExecutorConfig.from_environ(bad)
    texts += dump_exception(config_error.value)

    captured = capsys.readouterr()
    texts += [captured.out, captured.err]
    texts += [str(warning.message) for warning in recwarn]
    texts += emitted.texts
    assert len(emitted.texts) >= 2 * 15  # DEBUG really was on: 15 records or more
    assert any("trio_mesos.driver" in text for text in emitted.texts)
    assert leaks(texts) == []
    assert leaks([f"a test of the test: {TOKEN[5:30]}"]) != []
    # The token did go where it belongs: the Authorization header of every call.
    assert agent.calls
    assert {call.header("Authorization") for call in agent.calls if call.status_code != 401} == {
        f"Bearer {TOKEN}"
    }


def _echo(reply: bytes) -> bytes:
    del reply
    body = f"400 Bad Request. You sent: Authorization: Bearer {TOKEN}".encode()
    return raw_response(400, [("Content-Type", "text/plain")], body)


@pytest.mark.parametrize("call", ["UPDATE", "SUBSCRIBE"])
async def test_the_token_is_redacted_from_an_agent_answer_that_echoes_it(
    call: str, emitted: Everything, autojump_clock: trio.testing.MockClock
) -> None:
    texts: list[str] = []
    executor = Recorder()
    with trio.fail_after(LIMIT):
        async with FakeAgent(token=TOKEN) as agent:
            if call == "SUBSCRIBE":
                agent.hijack_next(1, send(_echo), calls=[SUBSCRIBE])
                with pytest.raises(AgentUnavailableError) as excinfo:
                    async with trio_mesos.open_executor_driver(executor, **driver_options(agent)):
                        pytest.fail("subscribed")  # pragma: no cover
                texts += dump_exception(excinfo.value)
            else:
                async with trio_mesos.open_executor_driver(
                    executor, **driver_options(agent)
                ) as driver:
                    await agent.launch(make_task("t1"))
                    await executor.wait_for("launch_task")
                    agent.hijack_next(1, send(_echo), calls=[UPDATE], process=True)
                    with pytest.raises(CallRejectedError) as rejected:
                        await driver.update(status("t1", RUNNING))
                    texts += dump_exception(rejected.value)
                    await executor.wait_for("error")
    texts += [str(args) for name, args in executor.calls if name == "error"]
    texts += emitted.texts
    assert leaks(texts) == []


# --------------------------------------------------------------------------
# Memory on hostile input
# --------------------------------------------------------------------------


class Traced:
    """tracemalloc around a block: the peak of memory allocated inside it."""

    def __enter__(self) -> Traced:
        tracemalloc.start()
        tracemalloc.reset_peak()
        self.peak = 0
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _, self.peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()


async def test_an_oversized_record_is_refused_from_its_length_prefix(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The agent claims an event of 2**64-1 bytes and then sends them as fast
    # as the driver reads: refused at the prefix, nothing of it buffered.
    async def huge(stream: trio.abc.Stream, reply: bytes) -> bool:
        await stream.send_all(raw_stream_head() + chunk(b"18446744073709551615\n"))
        payload = chunk(b"\0" * 65536)
        while True:
            await stream.send_all(payload)

    async with FakeAgent() as agent:
        agent.hijack_next(1, huge, calls=[SUBSCRIBE])
        with Traced() as traced, pytest.raises(AgentUnavailableError) as excinfo:
            async with trio_mesos.open_executor_driver(
                Recorder(), **driver_options(agent, max_record_size=64 * 1024)
            ):
                pytest.fail("subscribed")  # pragma: no cover
    assert "18446744073709551615 bytes exceeds the maximum of 65536 bytes" in str(excinfo.value)
    assert traced.peak < 4 * 2**20


async def test_an_allowed_but_never_completed_record_is_buffered_only_as_it_arrives(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 60 MiB announced (under the 64 MiB default), 1 KiB sent, then silence:
    # the driver holds the kilobyte, not 60 MiB, until the idle timeout.
    async with FakeAgent() as agent:
        prefix = raw_stream_head() + chunk(b"%d\n" % (60 * 2**20) + b"x" * 1024)
        agent.hijack_next(1, send(prefix, then_hang=True), calls=[SUBSCRIBE])
        with Traced() as traced, pytest.raises(AgentUnavailableError, match="stalled"):
            async with trio_mesos.open_executor_driver(
                Recorder(), **driver_options(agent, stream_idle_timeout=20.0)
            ):
                pytest.fail("subscribed")  # pragma: no cover
    assert traced.peak < 4 * 2**20


async def test_an_endless_update_answer_stops_at_the_body_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def endless(stream: trio.abc.Stream, reply: bytes) -> bool:
        await stream.send_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 1000000000000\r\n\r\n")
        block = b"y" * 65536
        while True:
            await stream.send_all(block)

    executor = Recorder()
    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(executor, **driver_options(agent)) as driver:
            await agent.launch(make_task("t1"))
            await executor.wait_for("launch_task")
            agent.hijack_next(1, endless, calls=[UPDATE])
            with Traced() as traced:
                uuid = await driver.update(status("t1", FINISHED))
            await driver.wait_acknowledged(uuid)
    assert agent.task_state("t1") == FINISHED  # retried on a new connection
    assert traced.peak < 4 * MAX_BODY


async def test_an_endless_subscribe_refusal_body_is_read_only_so_far(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def endless(stream: trio.abc.Stream, reply: bytes) -> bool:
        await stream.send_all(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n")
        block = chunk(b"z" * 65536)
        while True:
            await stream.send_all(block)

    async with FakeAgent() as agent:
        agent.hijack_next(1, endless, calls=[SUBSCRIBE])
        start = trio.current_time()
        with Traced() as traced, pytest.raises(AgentUnavailableError, match="400"):
            async with trio_mesos.open_executor_driver(Recorder(), **driver_options(agent)):
                pytest.fail("subscribed")  # pragma: no cover
    assert traced.peak < 4 * 2**20
    assert trio.current_time() - start <= 5.0 + 1e-6
