"""``open_executor_driver`` and ``run_executor``: the driver's entry points.

They build an :class:`~trio_mesos.ExecutorDriver` (:mod:`._driver`), start it
in a nursery beside the caller's block, end it by how the block ends, and turn
what the nursery raised into what the caller sees (:mod:`._exits`).
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from ._config import ExecutorConfig
from ._driver import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_STOP_TIMEOUT,
    ExecutorDriver,
)
from ._executor import Executor
from ._exits import raise_outcome
from ._messages import ContentType
from ._recordio import DEFAULT_MAX_RECORD_SIZE
from ._status import Status
from ._transport import OpenStream, default_open_stream

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

__all__ = ["open_executor_driver", "run_executor"]


def _config_from_os_environ() -> ExecutorConfig:
    config = ExecutorConfig.from_environ(dict(os.environ))
    # As the C++ library: the token must not leak into the tasks' environment.
    os.environ.pop("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", None)
    return config


@asynccontextmanager
async def open_executor_driver(
    executor: Executor,
    *,
    config: ExecutorConfig | None = None,
    open_stream: OpenStream | None = None,
    content_type: ContentType | str = ContentType.PROTOBUF,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    rng: random.Random | None = None,
    max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
    stream_idle_timeout: float | None = None,
    kill_process_group_after_grace: bool = False,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
) -> AsyncIterator[ExecutorDriver]:
    """Run an executor driver for the duration of an ``async with`` block.

    ::

        async with trio_mesos.open_executor_driver(MyExecutor()) as driver:
            status = await driver.join()

    Entering subscribes to the agent: the block starts once the agent
    answered SUBSCRIBE with SUBSCRIBED (or with SHUTDOWN as the first event).
    Inside, the driver's tasks (event stream, update sending, callback
    dispatch, task work) run beside the block. Leaving the block normally or
    by an exception stops the driver gracefully (``stop()``, bounded by
    ``stop_timeout``); leaving by cancellation or KeyboardInterrupt aborts at
    once. The driver's end never cancels the block by itself; a callback or
    task work that raises does (the exception then comes out of the
    ``async with``).

    Args:
        executor: the callbacks.
        config: the executor's configuration. Default: read from
            ``os.environ`` (``ExecutorConfig.from_environ``), after which
            ``MESOS_EXECUTOR_AUTHENTICATION_TOKEN`` is removed from
            ``os.environ`` so tasks do not inherit it.
        open_stream: async callable returning a new stream to the agent.
            Default: TCP (with keepalive) to the agent's endpoint, or its Unix socket.
        content_type: ``application/x-protobuf`` (default) or ``application/json``.
        stop_timeout: seconds to wait for pending ACKs when stopping.
        heartbeat_interval: seconds between HEARTBEAT calls (Mesos: 30 min).
        rng: random source of the reconnect backoff (tests pass a seeded one).
        max_record_size: largest event accepted from the agent, in bytes.
        stream_idle_timeout: seconds without any byte on the event stream after
            which it counts as lost (a stalled agent or middlebox). Off by
            default; the agent sends a HEARTBEAT event every 30 minutes, so
            only a value above that (e.g. ``45 * 60``) is safe.
        call_timeout: seconds the agent has to answer a call completely
            (opening a connection; SUBSCRIBE's head and first event; the whole
            answer to any other call).
        kill_process_group_after_grace: after SHUTDOWN, SIGKILL this process's
            whole process group once the shutdown grace period is over, from a
            timer thread, as Mesos's C++ libraries always do (not under
            ``MESOS_LOCAL``). Off by default, since it kills whatever shares
            the process group.

    Raises:
        AgentUnavailableError: the first connection failed (could not be
            opened, TLS refused, closed or silent before SUBSCRIBED), or the
            agent refused SUBSCRIBE, or no SUBSCRIBED came within the recovery
            timeout while the agent answered 503/404 (after the ``error`` and
            ``shutdown`` callbacks); raised on entry, naming the cause.
        ConfigError: the environment is invalid (when ``config`` is None).
        Exception: whatever a callback, task work or the block raised, as
            itself; several at once as one ``ExceptionGroup``.
    """
    if config is None:
        config = _config_from_os_environ()
    driver: ExecutorDriver = ExecutorDriver._create(
        executor,
        config,
        open_stream=open_stream or default_open_stream(config),
        content_type=ContentType(content_type),
        stop_timeout=stop_timeout,
        heartbeat_interval=heartbeat_interval,
        rng=rng or random.Random(),
        max_record_size=max_record_size,
        stream_idle_timeout=stream_idle_timeout,
        kill_process_group_after_grace=kill_process_group_after_grace,
        call_timeout=call_timeout,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(driver._run)
            try:
                yield driver
            except (trio.Cancelled, KeyboardInterrupt, SystemExit):
                driver.abort()
                raise
            except BaseException:
                driver.stop()
                await driver.join()
                raise
            driver.stop()
            await driver.join()
    except BaseExceptionGroup as group:
        raise_outcome(group, driver._raised)


async def run_executor(
    executor: Executor,
    *,
    task_status: trio.TaskStatus[ExecutorDriver] = trio.TASK_STATUS_IGNORED,
    **kwargs: Any,
) -> Status:
    """Start a driver and wait for its end: the seed's ``run()``, for ``__main__``.

    ``trio.run(run_executor, MyExecutor())``, or
    ``driver = await nursery.start(run_executor, MyExecutor())``, which
    returns the driver once subscribed. Takes the keyword arguments of
    :func:`open_executor_driver`; returns the final Status.
    """
    async with open_executor_driver(executor, **kwargs) as driver:
        task_status.started(driver)
        return await driver.join()
