"""The end table (issue 12): every way the driver ends, with the bound it holds.

Each row of the table in ``ExecutorDriver``'s docstring is tested twice: once
with an executor *callback* that blocks forever, once with *task work*
(``driver.start_task``) that blocks forever. For each: the final Status,
``join()`` returning (awaited by a task outside the driver), the virtual time
the end came, that the blocking callback or work was cancelled at the bound
and not before (where the row lets it go on), that queued callbacks never
start once the end is decided, that waiters awaited inside a blocking callback
(``update``, ``wait_acknowledged``, ``message``) raise ``DriverClosedError``
at the end (``AgentUnavailableError`` at once when the agent is lost for
good), and that ``statistics()`` agrees with ``join()``.

Then: cancellation honesty (a ``move_on_after`` around the ``async with``:
every ``Cancelled`` handler sees the final Status, across many scheduling
variants), and the log of updates that never went out.

Everything runs against the FakeAgent over memory streams in virtual time
(``autojump_clock``).
"""

from __future__ import annotations

import logging
import random
import sys
import textwrap
from typing import Any

import pytest
import trio
import trio.testing

import trio_mesos
from trio_mesos import AgentUnavailableError, DriverClosedError, Status
from trio_mesos._recordio import encode_record
from trio_mesos.testing import AckPolicy, FakeAgent
from trio_mesos.testing._hostile import RawAnswer, chunk, raw_response, raw_stream_head, send
from trio_mesos.v1 import executor_pb2, mesos_pb2

from .helpers import bounded, driver_options, make_task, status

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

RUNNING, FINISHED = mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED
KILLED = mesos_pb2.TASK_KILLED
SUBSCRIBE, UPDATE = executor_pb2.Call.SUBSCRIBE, executor_pb2.Call.UPDATE
MESSAGE = executor_pb2.Call.MESSAGE
ABORTED, STOPPED = Status.DRIVER_ABORTED, Status.DRIVER_STOPPED
#: Virtual-time slack for "at exactly this instant" (float sums only).
EXACT = 1e-6
#: Virtual seconds: the honesty tests cancel from outside after half of it.
LIMIT = 600.0
#: The agent's default shutdown grace (FakeAgent) and the driver's bound after it.
GRACE = 5.0
BOUND = GRACE - 1.0
MODES = ["callback", "work"]
WAITERS = ("update", "acknowledged", "message")



class Boom(Exception):
    pass


class Other(Exception):
    pass


# --------------------------------------------------------------------------
# The probe: an executor whose callbacks and work block as a test says
# --------------------------------------------------------------------------


class Probe(trio_mesos.Executor):
    """Records callbacks and cancellations with their virtual times.

    Args:
        agent: the FakeAgent (the waiters make it refuse calls with 503).
        block_launch: task ids whose ``launch_task`` blocks forever (with the
            three waiters when ``waiters``).
        wait_launch: task ids whose ``launch_task`` awaits the three waiters
            and returns once they failed.
        work_for: task ids whose ``launch_task`` starts work that blocks
            forever; cancelled, it sends TASK_KILLED and records the Status.
        block_shutdown: the ``shutdown`` callback blocks forever (with the
            waiters when ``waiters``).
        cleanup_on_shutdown: the ``shutdown`` callback starts work that blocks
            forever (for task ``t1``) and returns.
        raising_work: task ids whose ``launch_task`` starts work that raises
            ``Boom`` once :attr:`go` is set.
        raise_on_message: ``framework_message`` raises ``Boom`` on ``b"boom"``.
    """

    def __init__(
        self,
        agent: FakeAgent,
        *,
        block_launch: tuple[str, ...] = (),
        wait_launch: tuple[str, ...] = (),
        work_for: tuple[str, ...] = (),
        block_shutdown: bool = False,
        cleanup_on_shutdown: bool = False,
        waiters: bool = False,
        raising_work: tuple[str, ...] = (),
        raise_on_message: bool = False,
    ) -> None:
        self.agent = agent
        self.block_launch = block_launch
        self.wait_launch = wait_launch
        self.work_for = work_for
        self.block_shutdown = block_shutdown
        self.cleanup_on_shutdown = cleanup_on_shutdown
        self.waiters = waiters
        self.raising_work = raising_work
        self.raise_on_message = raise_on_message
        #: (callback name, virtual time it started)
        self.calls: list[tuple[str, float]] = []
        #: label -> virtual time its ``trio.Cancelled`` arrived
        self.cancelled: dict[str, float] = {}
        #: label -> what ``send_status_update`` returned in its Cancelled handler
        self.handler_status: dict[str, Status] = {}
        #: waiter kind -> (what it raised, or None; virtual time)
        self.waited: dict[str, tuple[BaseException | None, float]] = {}
        #: the uuid of an update the agent accepted but will not acknowledge
        self.acked_uuid: bytes | None = None
        self.go = trio.Event()
        self.raised: list[BaseException] = []
        self._running: set[str] = set()
        self._changed = trio.lowlevel.ParkingLot()

    def _record(self, name: str) -> None:
        self.calls.append((name, trio.current_time()))
        self._changed.unpark_all()

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def started(self, name: str) -> list[float]:
        return [t for n, t in self.calls if n == name]

    async def wait_for(self, name: str, count: int = 1) -> None:
        while self.names().count(name) < count:
            await self._changed.park()

    async def wait_started(self, label: str) -> None:
        while label not in self._running:
            await self._changed.park()

    # -- building blocks --------------------------------------------------

    async def prepare_waiters(self, driver: trio_mesos.ExecutorDriver) -> None:
        """An update the agent accepts and never ACKs; then UPDATE and MESSAGE get 503s."""
        self.acked_uuid = await driver.update(status("t0", RUNNING, "accepted, never acked"))
        self.agent.fail_next(10**6, 503, "Agent has not finished recovery", calls=[UPDATE, MESSAGE])

    async def _await(self, driver: trio_mesos.ExecutorDriver, kind: str) -> None:
        try:
            if kind == "update":
                await driver.update(status("t0", FINISHED, "never accepted"))
            elif kind == "acknowledged":
                assert self.acked_uuid is not None
                await driver.wait_acknowledged(self.acked_uuid)
            else:
                await driver.message(b"never accepted")
        except (DriverClosedError, AgentUnavailableError) as exc:
            self.waited[kind] = (exc, trio.current_time())
        else:
            self.waited[kind] = (None, trio.current_time())

    async def _all_waiters(self, driver: trio_mesos.ExecutorDriver) -> None:
        async with trio.open_nursery() as nursery:
            for kind in WAITERS:
                nursery.start_soon(self._await, driver, kind)

    async def forever(
        self,
        driver: trio_mesos.ExecutorDriver,
        label: str,
        task_id: str | None = None,
        swallow: bool = False,
    ) -> None:
        """Block forever; when cancelled, record it (and send TASK_KILLED for ``task_id``).

        With ``swallow`` the cancellation is swallowed and this returns, so a
        dispatcher would go on to the next callback unless the end dropped them.
        """
        self._running.add(label)
        self._changed.unpark_all()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            self.cancelled[label] = trio.current_time()
            if task_id is not None:
                self.handler_status[label] = driver.send_status_update(
                    status(task_id, KILLED, f"from {label}")
                )
            if not swallow:
                raise

    async def _block(self, driver: trio_mesos.ExecutorDriver, label: str, waiters: bool) -> None:
        """The blocking callback: forever (cancelled, it returns), the waiters beside it."""
        async with trio.open_nursery() as nursery:
            if waiters:
                nursery.start_soon(self._all_waiters, driver)
            await self.forever(driver, label, swallow=True)

    async def _raise_when_told(self) -> None:
        await self.go.wait()
        exc = Boom("from task work")
        self.raised.append(exc)
        raise exc

    # -- callbacks --------------------------------------------------------

    async def registered(self, driver, executor_info, framework_info, agent_info):  # type: ignore[no-untyped-def]
        self._record("registered")

    async def reregistered(self, driver, agent_info):  # type: ignore[no-untyped-def]
        self._record("reregistered")

    async def disconnected(self, driver):  # type: ignore[no-untyped-def]
        self._record("disconnected")

    async def launch_task(self, driver, task):  # type: ignore[no-untyped-def]
        self._record("launch_task")
        task_id = task.task_id.value
        if task_id in self.work_for:
            driver.start_task(task_id, self.forever, driver, f"work {task_id}", task_id)
        if task_id in self.raising_work:
            driver.start_task(task_id, self._raise_when_told)
        if task_id in self.wait_launch:
            await self._all_waiters(driver)
        if task_id in self.block_launch:
            await self._block(driver, f"launch_task {task_id}", self.waiters)

    async def framework_message(self, driver, data):  # type: ignore[no-untyped-def]
        self._record("framework_message")
        if self.raise_on_message and data == b"boom":
            exc = Boom("from framework_message")
            self.raised.append(exc)
            raise exc

    async def acknowledged(self, driver, task_id, uuid):  # type: ignore[no-untyped-def]
        self._record("acknowledged")

    async def shutdown(self, driver):  # type: ignore[no-untyped-def]
        self._record("shutdown")
        if self.cleanup_on_shutdown:
            driver.start_task("t1", self.forever, driver, "cleanup", "t1")
        if self.block_shutdown:
            # (the waiters run in one callback only: launch_task's, if it awaits them)
            await self._block(driver, "shutdown", self.waiters and not self.wait_launch)

    async def error(self, driver, message):  # type: ignore[no-untyped-def]
        self._record("error")


async def _join(driver: trio_mesos.ExecutorDriver, joined: list[tuple[Status, float]]) -> None:
    joined.append((await driver.join(), trio.current_time()))


def assert_ended(
    driver: trio_mesos.ExecutorDriver,
    joined: list[tuple[Status, float]],
    final: Status,
    at: float,
) -> None:
    """join() returned ``final`` at ``at``; status and statistics agree."""
    assert joined == [(final, pytest.approx(at, abs=EXACT))]
    stats = driver.statistics()
    assert stats.status == final == driver.start()
    assert stats.state == {ABORTED: "aborted", STOPPED: "stopped"}[final]


def assert_waiters_failed(
    probe: Probe, error: type[BaseException], at: float, **other_times: float
) -> None:
    """Each waiter raised ``error`` at ``at`` (or at ``other_times[kind]``)."""
    got = {kind: (type(exc).__name__, when) for kind, (exc, when) in probe.waited.items()}
    expected = {
        kind: (error.__name__, pytest.approx(other_times.get(kind, at), abs=EXACT))
        for kind in WAITERS
    }
    assert got == expected


def assert_nothing_sent_after(agent: FakeAgent, task_id: str) -> None:
    """No TASK_KILLED from a Cancelled handler reached the agent."""
    assert KILLED not in [u.state for u in agent.updates(task_id)]


def private_in_chain(exc: BaseException) -> list[str]:
    """trio_mesos-private (or internal-error) classes in ``exc``, its groups and chains."""
    found, seen = [], set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        module = type(item).__module__
        private = type(item).__name__.startswith("_")
        if module.startswith("trio_mesos") and (
            private or isinstance(item, trio_mesos.TrioMesosInternalError)
        ):
            found.append(type(item).__name__)
        todo += [item.__cause__, item.__context__]
        if isinstance(item, BaseExceptionGroup):
            todo += item.exceptions
    return found


async def settle() -> None:
    """Let the driver read what the agent wrote (virtual time passes)."""
    await trio.sleep(0.5)


# --------------------------------------------------------------------------
# Row 1: abort(), cancellation from outside: nothing runs on; next checkpoint
# --------------------------------------------------------------------------


async def _start_blocking(agent: FakeAgent, probe: Probe, driver: Any, mode: str) -> None:
    """t0 launched (and, with waiters, an unacknowledged update); then t1's blocker."""
    await agent.launch(make_task("t0"))
    await probe.wait_for("launch_task")
    if probe.waiters:
        await probe.prepare_waiters(driver)
    await agent.launch(make_task("t1"))
    await probe.wait_started("launch_task t1" if mode == "callback" else "work t1")
    if mode == "callback":
        await agent.message(b"queued behind the blocking callback")
    await settle()


def _blocking_probe(agent: FakeAgent, mode: str, **kwargs: Any) -> Probe:
    if mode == "callback":
        return Probe(agent, block_launch=("t1",), waiters=True, **kwargs)
    return Probe(agent, work_for=("t1",), **kwargs)


def _assert_blocker_cancelled(
    probe: Probe, agent: FakeAgent, mode: str, at: float, final: Status
) -> None:
    if mode == "callback":
        assert probe.cancelled == {"launch_task t1": pytest.approx(at, abs=EXACT)}
        # queued behind the blocking callback: never started
        assert "framework_message" not in probe.names()
        assert_waiters_failed(probe, DriverClosedError, at)
    else:
        assert probe.cancelled == {"work t1": pytest.approx(at, abs=EXACT)}
        # the end was decided: the handler's update is not queued
        assert probe.handler_status == {"work t1": final}
        assert_nothing_sent_after(agent, "t1")
    assert all(t <= at + EXACT for _, t in probe.calls)


@pytest.mark.parametrize("mode", MODES)
@bounded
async def test_abort_ends_at_once(mode: str, autojump_clock: trio.testing.MockClock) -> None:
    joined: list[tuple[Status, float]] = []
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD, heartbeat_interval=None) as agent:
        probe = _blocking_probe(agent, mode)
        async with trio.open_nursery() as outside:
            async with trio_mesos.open_executor_driver(probe, **driver_options(agent)) as driver:
                outside.start_soon(_join, driver, joined)
                await _start_blocking(agent, probe, driver, mode)
                aborted = trio.current_time()
                assert driver.abort() == ABORTED
                # after the decision nothing is queued
                assert driver.send_status_update(status("t0", FINISHED)) == ABORTED
                assert await driver.join() == ABORTED
                assert trio.current_time() == pytest.approx(aborted, abs=EXACT)
    assert_ended(driver, joined, ABORTED, aborted)
    _assert_blocker_cancelled(probe, agent, mode, aborted, ABORTED)
    assert driver.error is None


@pytest.mark.parametrize("mode", MODES)
@bounded
async def test_cancellation_from_outside_ends_at_once(
    mode: str, autojump_clock: trio.testing.MockClock
) -> None:
    joined: list[tuple[Status, float]] = []
    in_block: list[Status] = []
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD, heartbeat_interval=None) as agent:
        probe = _blocking_probe(agent, mode)
        async with trio.open_nursery() as outside:
            cancel_at = trio.current_time() + 10.0
            with trio.move_on_at(cancel_at) as scope:
                async with trio_mesos.open_executor_driver(
                    probe, **driver_options(agent)
                ) as driver:
                    outside.start_soon(_join, driver, joined)
                    await _start_blocking(agent, probe, driver, mode)
                    try:
                        await trio.sleep_forever()
                    except trio.Cancelled:
                        in_block.append(driver.send_status_update(status("t0", FINISHED)))
                        raise
            assert scope.cancelled_caught
            assert trio.current_time() == pytest.approx(cancel_at, abs=EXACT)
    assert in_block == [ABORTED]
    assert_ended(driver, joined, ABORTED, cancel_at)
    _assert_blocker_cancelled(probe, agent, mode, cancel_at, ABORTED)
    assert_nothing_sent_after(agent, "t0")


# --------------------------------------------------------------------------
# Row 2: a callback or task work raises: ABORTED at once; the exception as itself
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@bounded
async def test_user_code_raising_ends_at_once_and_comes_out_as_itself(
    mode: str, autojump_clock: trio.testing.MockClock
) -> None:
    # callback mode: t1's launch_task blocks; t0's work raises.
    # work mode: t1's work blocks; framework_message raises.
    joined: list[tuple[Status, float]] = []
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD, heartbeat_interval=None) as agent:
        if mode == "callback":
            probe = _blocking_probe(agent, mode, raising_work=("t0",))
        else:
            probe = _blocking_probe(agent, mode, raise_on_message=True)
        async with trio.open_nursery() as outside:
            with pytest.raises(Boom) as info:
                async with trio_mesos.open_executor_driver(
                    probe, **driver_options(agent)
                ) as driver:
                    outside.start_soon(_join, driver, joined)
                    await _start_blocking(agent, probe, driver, mode)
                    raised_at = trio.current_time()
                    if mode == "callback":
                        probe.go.set()
                    else:
                        await agent.message(b"boom")
                    await trio.sleep_forever()
            assert trio.current_time() == pytest.approx(raised_at, abs=EXACT)
    assert type(info.value) is Boom and probe.raised == [info.value]
    assert private_in_chain(info.value) == []
    assert driver.error is info.value
    assert_ended(driver, joined, ABORTED, raised_at)
    _assert_blocker_cancelled(probe, agent, mode, raised_at, ABORTED)


@pytest.mark.parametrize("first", ["block", "work", "callback"])
@bounded
async def test_two_user_exceptions_come_out_as_one_group_of_exactly_those(
    first: str, autojump_clock: trio.testing.MockClock
) -> None:
    # "block": the block raises, then task work; "work": task work, then the
    # block (without a checkpoint in between); "callback": a callback raises,
    # then task work.
    go, second_go = trio.Event(), trio.Event()
    raised: list[BaseException] = []

    async def work() -> None:
        await (go if first == "work" else second_go).wait()
        second_go.set()
        exc = Boom("work")
        raised.append(exc)
        raise exc

    class Raiser(trio_mesos.Executor):
        async def framework_message(self, driver, data):  # type: ignore[no-untyped-def]
            second_go.set()
            exc = Other("callback")
            raised.append(exc)
            raise exc

    async with FakeAgent(heartbeat_interval=None) as agent:
        with pytest.raises(ExceptionGroup) as info:
            async with trio_mesos.open_executor_driver(Raiser(), **driver_options(agent)) as d:
                d.start_task("t0", work)
                await settle()
                if first == "callback":
                    await agent.message(b"raise")
                    await trio.sleep_forever()
                if first == "block":
                    second_go.set()
                else:
                    go.set()
                    await second_go.wait()
                exc = Other("block")
                raised.append(exc)
                raise exc
    group = info.value
    assert type(group) is ExceptionGroup
    assert len(raised) == 2
    assert sorted(map(id, group.exceptions)) == sorted(map(id, raised))
    assert private_in_chain(group) == []
    # the block raising first stops the driver (nothing pending: at once); the
    # work's exception comes after that end and still comes out
    final = STOPPED if first == "block" else ABORTED
    assert d.statistics().status == final == d.start()
    for kind in (Boom, Other):
        matched, rest = group.split(kind)
        assert matched is not None and rest is not None
        assert [type(e) for e in matched.exceptions] == [kind]
    if sys.version_info >= (3, 11):  # catchable with except* (syntax from 3.11 on)
        caught: list[BaseException] = []
        exec(textwrap.dedent("""
            try:
                raise group
            except* Boom as booms:
                caught += booms.exceptions
            except* Other as others:
                caught += others.exceptions
        """), {"group": group, "caught": caught, "Boom": Boom, "Other": Other})
        assert sorted(map(id, caught)) == sorted(map(id, raised))


# --------------------------------------------------------------------------
# Row 3: stop(), leaving the block: ACKs drain, callbacks and work go on; stop_timeout
# --------------------------------------------------------------------------

STOP_TIMEOUT = 7.0


@pytest.mark.parametrize("trigger", ["stop", "leave"])
@pytest.mark.parametrize("mode", MODES)
@bounded
async def test_stop_drains_while_user_code_goes_on_until_stop_timeout(
    mode: str,
    trigger: str,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    joined: list[tuple[Status, float]] = []
    during: list[Status] = []
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD, heartbeat_interval=None) as agent:
        probe = _blocking_probe(agent, mode)
        options = driver_options(agent, stop_timeout=STOP_TIMEOUT)
        with caplog.at_level(logging.WARNING, logger="trio_mesos"):
            async with trio.open_nursery() as outside:
                async with trio_mesos.open_executor_driver(probe, **options) as driver:
                    outside.start_soon(_join, driver, joined)
                    await _start_blocking(agent, probe, driver, mode)
                    if mode == "work":
                        # an update never acknowledged: the drain waits for it
                        await driver.update(status("t0", RUNNING))

                    async def watch() -> None:
                        # during the drain: nothing cancelled, no waiter failed,
                        # updates still queue, new callbacks still start
                        await trio.sleep(STOP_TIMEOUT - 0.5)
                        assert probe.cancelled == {}
                        assert probe.waited == {}
                        assert driver.statistics().state == "stopping"
                        during.append(driver.send_status_update(status("t0", RUNNING, "drain")))
                        if mode == "work":
                            await agent.message(b"during the drain")
                            await probe.wait_for("framework_message")

                    outside.start_soon(watch)
                    stopped = trio.current_time()
                    if trigger == "stop":
                        assert driver.stop() == STOPPED
                        assert await driver.join() == STOPPED
                left = trio.current_time()
    assert left == pytest.approx(stopped + STOP_TIMEOUT, abs=EXACT)
    assert during == [Status.DRIVER_RUNNING]
    if mode == "work":  # (in callback mode the agent answers UPDATEs with 503)
        assert [u.message for u in agent.updates("t0")][-1] == "drain"  # went out in the drain
    assert_ended(driver, joined, STOPPED, stopped + STOP_TIMEOUT)
    _assert_blocker_cancelled(probe, agent, mode, stopped + STOP_TIMEOUT, STOPPED)
    # stop() past its timeout says what was left unacknowledged, and of which tasks
    summary = [r.getMessage() for r in caplog.records if "not acknowledged" in r.getMessage()]
    assert len(summary) == 1 and "t0" in summary[0]


@pytest.mark.parametrize("mode", MODES)
@bounded
async def test_stop_during_an_outage_ends_at_once_with_user_code_blocked(
    mode: str, autojump_clock: trio.testing.MockClock
) -> None:
    # Nothing can be acknowledged without the stream: the drain is over at once.
    joined: list[tuple[Status, float]] = []
    async with FakeAgent(
        checkpoint=True, ack_policy=AckPolicy.WITHHELD, heartbeat_interval=None
    ) as agent:
        probe = _blocking_probe(agent, mode)
        options = driver_options(
            agent, config=agent.executor_config(checkpoint=True), stop_timeout=STOP_TIMEOUT
        )
        async with trio.open_nursery() as outside:
            async with trio_mesos.open_executor_driver(probe, **options) as driver:
                outside.start_soon(_join, driver, joined)
                await _start_blocking(agent, probe, driver, mode)
                lost = trio.current_time()
                await agent.restart(down=1000.0)
                await trio.sleep(2.0)
                assert probe.cancelled == {}
                stopped = trio.current_time()
                assert driver.stop() == STOPPED
                assert await driver.join() == STOPPED
                assert trio.current_time() == pytest.approx(stopped, abs=EXACT)
    assert_ended(driver, joined, STOPPED, stopped)
    if mode == "callback":
        # the message was dropped with the connection; the others end with the driver
        got = {kind: (type(exc).__name__, when) for kind, (exc, when) in probe.waited.items()}
        assert got == {
            "message": ("AgentUnavailableError", pytest.approx(lost, abs=EXACT)),
            "update": ("DriverClosedError", pytest.approx(stopped, abs=EXACT)),
            "acknowledged": ("DriverClosedError", pytest.approx(stopped, abs=EXACT)),
        }
        assert probe.cancelled == {"launch_task t1": pytest.approx(stopped, abs=EXACT)}
        assert "framework_message" not in probe.names()
    else:
        assert probe.cancelled == {"work t1": pytest.approx(stopped, abs=EXACT)}
        assert probe.handler_status == {"work t1": STOPPED}
        assert_nothing_sent_after(agent, "t1")


# --------------------------------------------------------------------------
# Row 4: SHUTDOWN: the shutdown callback and task work go on; G - 1 s
# --------------------------------------------------------------------------


def executor_info(grace: float | None) -> mesos_pb2.ExecutorInfo:
    info = mesos_pb2.ExecutorInfo(type=mesos_pb2.ExecutorInfo.CUSTOM)
    info.executor_id.value = "fake-executor"
    info.framework_id.value = "fake-framework-0000"
    if grace is not None:
        info.shutdown_grace_period.nanoseconds = int(grace * 1e9)
    return info


@pytest.mark.parametrize(
    ("env_grace", "info_grace", "bound"), [(6.0, None, 5.0), (6.0, 4.0, 3.0), (3.0, 8.0, 2.0)]
)
@pytest.mark.parametrize("mode", MODES)
@bounded
async def test_shutdown_ends_at_grace_minus_one_second(
    mode: str,
    env_grace: float,
    info_grace: float | None,
    bound: float,
    autojump_clock: trio.testing.MockClock,
) -> None:
    # callback mode: the shutdown callback blocks forever (with the waiters).
    # work mode: SHUTDOWN cancels t1's work at once (its TASK_KILLED goes out and
    # is acknowledged); the shutdown callback starts cleanup work that blocks.
    joined: list[tuple[Status, float]] = []
    ack = AckPolicy.WITHHELD if mode == "callback" else AckPolicy.IMMEDIATE
    async with FakeAgent(
        ack_policy=ack,
        heartbeat_interval=None,
        shutdown_grace_period=env_grace,
        executor_info=executor_info(info_grace),
    ) as agent:
        if mode == "callback":
            probe = Probe(agent, block_shutdown=True, waiters=True)
        else:
            probe = Probe(agent, work_for=("t1",), cleanup_on_shutdown=True)
        async with trio.open_nursery() as outside:
            async with trio_mesos.open_executor_driver(probe, **driver_options(agent)) as driver:
                outside.start_soon(_join, driver, joined)
                await agent.launch(make_task("t0"))
                await agent.launch(make_task("t1"))
                await probe.wait_for("launch_task", 2)
                if mode == "callback":
                    await probe.prepare_waiters(driver)
                else:
                    await probe.wait_started("work t1")
                await settle()
                shutdown = trio.current_time()
                await agent.shutdown()
                await probe.wait_started("shutdown" if mode == "callback" else "cleanup")
                if mode == "callback":
                    await agent.message(b"queued behind the shutdown callback")
                await trio.sleep(bound - 0.5)
                # the grace: nothing cancelled yet (but t1's work, by SHUTDOWN)
                assert set(probe.cancelled) <= {"work t1"}
                assert probe.waited == {}
                assert driver.statistics().state == "shutting down"
                assert await driver.join() == STOPPED
    end = shutdown + bound
    assert_ended(driver, joined, STOPPED, end)
    assert probe.started("shutdown") == [pytest.approx(shutdown, abs=EXACT)]
    if mode == "callback":
        assert probe.cancelled == {"shutdown": pytest.approx(end, abs=EXACT)}
        assert "framework_message" not in probe.names()
        assert_waiters_failed(probe, DriverClosedError, end)
    else:
        assert probe.cancelled == {
            "work t1": pytest.approx(shutdown, abs=EXACT),
            "cleanup": pytest.approx(end, abs=EXACT),
        }
        # during the grace updates go out; at the bound nothing is queued any more
        assert probe.handler_status == {"work t1": Status.DRIVER_RUNNING, "cleanup": STOPPED}
        assert [u.message for u in agent.updates("t1")] == ["from work t1"]
        assert agent.task_state("t1") == KILLED
        assert driver.statistics().unacknowledged_updates == 0


@pytest.mark.parametrize(
    ("stop_timeout", "expected"),
    [(10.0, 1.0 + BOUND), (3.0, 3.0)],
    ids=["shutdown-grace-first", "stop-timeout-first"],
)
@pytest.mark.parametrize("mode", MODES)
@bounded
async def test_shutdown_during_stop_arms_the_grace_and_the_earliest_bound_wins(
    mode: str, stop_timeout: float, expected: float, autojump_clock: trio.testing.MockClock
) -> None:
    joined: list[tuple[Status, float]] = []
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD, heartbeat_interval=None) as agent:
        probe = _blocking_probe(agent, mode)
        options = driver_options(agent, stop_timeout=stop_timeout)
        async with trio.open_nursery() as outside:
            async with trio_mesos.open_executor_driver(probe, **options) as driver:
                outside.start_soon(_join, driver, joined)
                await _start_blocking(agent, probe, driver, mode)
                if mode == "work":
                    await driver.update(status("t0", RUNNING))  # never acknowledged
                stopped = trio.current_time()
                assert driver.stop() == STOPPED
                await trio.sleep(1.0)
                await agent.shutdown()
                assert await driver.join() == STOPPED
    end = stopped + expected
    assert_ended(driver, joined, STOPPED, end)
    if mode == "callback":
        _assert_blocker_cancelled(probe, agent, mode, end, STOPPED)
    else:
        # the SHUTDOWN cancelled the work at once; its TASK_KILLED went out
        assert probe.cancelled == {"work t1": pytest.approx(stopped + 1.0, abs=EXACT)}
        assert probe.handler_status == {"work t1": Status.DRIVER_RUNNING}
        assert agent.task_state("t1") == KILLED


# --------------------------------------------------------------------------
# Row 5: the agent lost for good: shutdown and error callbacks, work; G - 1 s
# --------------------------------------------------------------------------


async def _lose_agent(agent: FakeAgent, how: str) -> float:
    """Make the agent go away; return when the driver gives it up (virtual time)."""
    if how == "checkpoint-off":
        lost = trio.current_time()
        await agent.drop_stream()
        return lost
    if how == "recovery-timeout":
        lost = trio.current_time()
        await agent.restart(down=1000.0)
        return lost + agent.recovery_timeout
    refused_at: list[float] = []
    refused = trio.Event()
    inner = send(
        raw_response(401, [("WWW-Authenticate", 'Bearer realm="mesos"')], b"Unauthorized")
    )

    async def refuse(stream: trio.abc.Stream, reply: bytes) -> bool:
        refused_at.append(trio.current_time())
        refused.set()
        return await inner(stream, reply)

    answer: RawAnswer = refuse
    agent.hijack_next(1, answer, calls=[SUBSCRIBE])
    await agent.restart(down=2.0, recovering=0.0)
    await refused.wait()
    return refused_at[0]


LOSSES = ["checkpoint-off", "recovery-timeout", "resubscribe-401"]


@pytest.mark.parametrize("how", LOSSES)
@pytest.mark.parametrize("mode", MODES)
@bounded
async def test_losing_the_agent_for_good_ends_aborted_at_grace_minus_one_second(
    mode: str, how: str, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # callback mode: t1's launch_task awaits the three waiters (they fail with
    # AgentUnavailableError when the agent is given up, so it returns); then
    # error and shutdown run, and shutdown blocks forever.
    # work mode: t1's work is cancelled when the agent is given up; shutdown
    # starts cleanup work that blocks forever.
    joined: list[tuple[Status, float]] = []
    checkpoint = how != "checkpoint-off"
    async with FakeAgent(
        checkpoint=checkpoint,
        ack_policy=AckPolicy.WITHHELD,
        heartbeat_interval=None,
        recovery_timeout=10.0,
        reregistration_timeout=1.0,
    ) as agent:
        if mode == "callback":
            probe = Probe(agent, wait_launch=("t1",), block_shutdown=True, waiters=True)
        else:
            probe = Probe(agent, work_for=("t1",), cleanup_on_shutdown=True)
        options = driver_options(agent, config=agent.executor_config(checkpoint=checkpoint))
        with caplog.at_level(logging.WARNING, logger="trio_mesos"):
            async with trio.open_nursery() as outside:
                async with trio_mesos.open_executor_driver(probe, **options) as driver:
                    outside.start_soon(_join, driver, joined)
                    await agent.launch(make_task("t0"))
                    await probe.wait_for("launch_task")
                    if mode == "callback":
                        await probe.prepare_waiters(driver)
                    await agent.launch(make_task("t1"))
                    await probe.wait_for("launch_task", 2)
                    await settle()
                    lost = trio.current_time()
                    given_up = await _lose_agent(agent, how)
                    if how == "recovery-timeout":
                        # the outage: callbacks and work go on, waiters wait
                        await trio.sleep(agent.recovery_timeout - 0.5)
                        assert probe.cancelled == {}
                        assert set(probe.waited) <= {"message"}  # dropped at the loss
                        assert driver.statistics().state in ("disconnected", "connecting")
                    assert await driver.join() == ABORTED
    end = given_up + BOUND
    assert_ended(driver, joined, ABORTED, end)
    assert isinstance(driver.error, AgentUnavailableError)
    assert probe.started("error") == [pytest.approx(given_up, abs=EXACT)]
    assert probe.started("shutdown") == [pytest.approx(given_up, abs=EXACT)]
    assert probe.names().index("error") < probe.names().index("shutdown")
    if mode == "callback":
        assert probe.cancelled == {"shutdown": pytest.approx(end, abs=EXACT)}
        # a message is dropped when the connection goes; the others fail when
        # the agent is given up (so the callback returned, and shutdown ran)
        assert_waiters_failed(probe, AgentUnavailableError, given_up, message=lost)
    else:
        assert probe.cancelled == {
            "work t1": pytest.approx(given_up, abs=EXACT),
            "cleanup": pytest.approx(end, abs=EXACT),
        }
        assert probe.handler_status == {"work t1": Status.DRIVER_RUNNING, "cleanup": ABORTED}
        # the TASK_KILLED queued after the loss never went out, and says so
        never = [r.getMessage() for r in caplog.records if "never accepted" in r.getMessage()]
        assert len(never) == 1 and "t1" in never[0] and "TASK_KILLED" in never[0]


# --------------------------------------------------------------------------
# Row 6: the first connection fails: the block never runs; call_timeout
# --------------------------------------------------------------------------

CALL_TIMEOUT = 12.0


def _record(kind: int, task_id: str | None = None) -> bytes:
    event = executor_pb2.Event(type=kind)  # type: ignore[arg-type]
    if kind == executor_pb2.Event.LAUNCH:
        assert task_id is not None
        event.launch.task.CopyFrom(make_task(task_id))
    elif kind == executor_pb2.Event.MESSAGE:
        event.message.data = b"before SUBSCRIBED"
    return chunk(encode_record(event.SerializeToString()))


def heartbeats_only(interval: float) -> RawAnswer:
    """A 200 stream head, then a HEARTBEAT every ``interval`` s, for ever."""

    async def answer(stream: trio.abc.Stream, reply: bytes) -> bool:
        await stream.send_all(raw_stream_head())
        while True:
            await trio.sleep(interval)
            await stream.send_all(_record(executor_pb2.Event.HEARTBEAT))

    return answer


#: id -> (hijacked SUBSCRIBE answer or None, open_stream behaviour, error text, seconds)
FIRST_CONNECTION: dict[str, tuple[RawAnswer | None, str, str, float]] = {
    "open-stream-raises": (None, "raise", "cannot connect", 0.0),
    "open-stream-hangs": (None, "hang", f"more than {CALL_TIMEOUT:g} s", CALL_TIMEOUT),
    "closed-before-the-answer": (send(b""), "agent", "cannot connect", 0.0),
    "head-then-silence": (
        send(raw_stream_head(), then_hang=True), "agent", f"{CALL_TIMEOUT:g} s", CALL_TIMEOUT
    ),
    "heartbeats-only": (heartbeats_only(5.0), "agent", "Heartbeat", 5.0),
    "launch-first": (
        send(raw_stream_head() + _record(executor_pb2.Event.LAUNCH, "t1"), then_hang=True),
        "agent",
        "Launch",
        0.0,
    ),
    "message-first": (
        send(raw_stream_head() + _record(executor_pb2.Event.MESSAGE), then_hang=True),
        "agent",
        "Message",
        0.0,
    ),
}


@pytest.mark.parametrize("case", list(FIRST_CONNECTION))
@pytest.mark.parametrize("mode", MODES)
@bounded
async def test_a_failed_first_connection_is_an_error_on_entry_within_call_timeout(
    mode: str, case: str, autojump_clock: trio.testing.MockClock
) -> None:
    answer, dial, expected, seconds = FIRST_CONNECTION[case]
    async with FakeAgent(heartbeat_interval=None) as agent:
        if mode == "callback":
            # every callback that could run would block forever
            probe = Probe(agent, block_launch=("t1",), block_shutdown=True)
        else:
            probe = Probe(agent, work_for=("t1",), cleanup_on_shutdown=True)

        async def open_stream() -> trio.abc.Stream:
            if dial == "raise":
                raise ConnectionRefusedError("connection refused")
            if dial == "hang":
                await trio.sleep_forever()
            return await agent.connect()

        if answer is not None:
            agent.hijack_next(1, answer, calls=[SUBSCRIBE])
        options = driver_options(agent, open_stream=open_stream, call_timeout=CALL_TIMEOUT)
        start = trio.current_time()
        with pytest.raises(AgentUnavailableError) as info:
            async with trio_mesos.open_executor_driver(probe, **options):
                pytest.fail("the block must not run")  # pragma: no cover
        elapsed = trio.current_time() - start
    assert expected in str(info.value)
    assert elapsed == pytest.approx(seconds, abs=EXACT)
    assert probe.calls == [] and probe.cancelled == {}  # nothing was dispatched
    assert private_in_chain(info.value) == []


# --------------------------------------------------------------------------
# Cancellation honesty: the end is known before any Cancelled handler runs
# --------------------------------------------------------------------------

HONESTY_VARIANTS = 50
CANCEL_AFTER = 1.0
#: Steps a task takes before it parks (virtual seconds, or a bare checkpoint).
_STEPS = ["checkpoint", 0.0, 0.25, 0.5, CANCEL_AFTER, "checkpoint", CANCEL_AFTER]
_PARKS = ["sleep_forever", "event", "sleep_long", "parking_lot"]


def _plan(seed: int) -> dict[str, Any]:
    """All random choices of one variant, drawn before it runs."""
    rng = random.Random(seed)
    tasks = [f"t{i}" for i in range(rng.randint(1, 3))]

    def steps() -> list[Any]:
        return [rng.choice(_STEPS) for _ in range(rng.randint(0, 3))]

    handlers = []
    for i in range(rng.randint(2, 6)):
        where = rng.choice(["block-child", "work", "work"])
        handlers.append((f"h{i}", where, rng.choice(tasks), steps(), rng.choice(_PARKS)))
    rng.shuffle(handlers)
    return {
        "tasks": tasks,
        "handlers": handlers,
        "noise": [(steps(), rng.choice(_PARKS)) for _ in range(rng.randint(0, 4))],
        "noise_in_work": rng.random() < 0.5,
        "by": rng.choice(["deadline", "deadline", "cancel-call"]),
        "block_steps": steps(),
    }


async def _park(kind: str) -> None:
    if kind == "sleep_forever":
        await trio.sleep_forever()
    elif kind == "event":
        await trio.Event().wait()
    elif kind == "sleep_long":
        await trio.sleep(10 * CANCEL_AFTER)
        await trio.sleep_forever()
    else:
        await trio.lowlevel.ParkingLot().park()


async def _steps(steps: list[Any]) -> None:
    for step in steps:
        if step == "checkpoint":
            await trio.lowlevel.checkpoint()
        else:
            await trio.sleep(step)


@pytest.mark.parametrize("seed", range(HONESTY_VARIANTS))
@bounded
async def test_every_cancelled_handler_sees_the_final_status(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    plan = _plan(seed)
    seen: list[tuple[str, Status]] = []
    async with FakeAgent(ack_policy=AckPolicy.WITHHELD, heartbeat_interval=None) as agent:
        probe = Probe(agent)
        with trio.move_on_after(LIMIT / 2) as outer:
            async with trio_mesos.open_executor_driver(probe, **driver_options(agent)) as driver:
                for count, task_id in enumerate(plan["tasks"], 1):
                    await agent.launch(make_task(task_id))
                    await probe.wait_for("launch_task", count)
                    await driver.update(status(task_id, RUNNING))
                start = trio.current_time()
                cancel_at = start + CANCEL_AFTER
                if plan["by"] == "deadline":
                    outer.deadline = cancel_at

                async def guarded(label: str, task_id: str, steps: list[Any], park: str) -> None:
                    try:
                        await _steps(steps)
                        await _park(park)
                    except trio.Cancelled:
                        seen.append((label, driver.send_status_update(
                            status(task_id, KILLED, f"from {label}"))))
                        raise

                async def noise(steps: list[Any], park: str) -> None:
                    await _steps(steps)
                    await _park(park)

                async def canceller() -> None:
                    await trio.sleep_until(cancel_at)
                    outer.cancel()

                async with trio.open_nursery() as nursery:
                    if plan["by"] == "cancel-call":
                        nursery.start_soon(canceller)
                    for steps, park in plan["noise"]:
                        if plan["noise_in_work"]:
                            driver.start_task(plan["tasks"][0], noise, steps, park)
                        else:
                            nursery.start_soon(noise, steps, park)
                    for label, where, task_id, steps, park in plan["handlers"]:
                        if where == "work":
                            driver.start_task(task_id, guarded, label, task_id, steps, park)
                        else:
                            nursery.start_soon(guarded, label, task_id, steps, park)
                    await guarded("block", plan["tasks"][0], plan["block_steps"], "sleep_forever")
        assert outer.cancelled_caught
        assert trio.current_time() == pytest.approx(cancel_at, abs=EXACT)
        await trio.sleep(5)  # anything queued would have gone out by now
    assert sorted(label for label, _ in seen) == sorted(
        ["block", *(label for label, *_ in plan["handlers"])]
    )
    assert [s for _, s in seen] == [ABORTED] * len(seen), (plan, seen)
    assert driver.statistics().status == ABORTED
    assert driver.statistics().state == "aborted"
    assert all(u.state == RUNNING for u in agent.updates())
    late = [c for c in agent.calls if c.type == UPDATE and c.time >= cancel_at - EXACT]
    assert late == []


# --------------------------------------------------------------------------
# Updates that never went out are logged at the end, with task id and state
# --------------------------------------------------------------------------


@pytest.mark.parametrize("end", ["abort", "stop", "recovery-timeout"])
@bounded
async def test_every_update_never_sent_is_logged_with_its_task_and_state(
    end: str, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    queued = [("t0", RUNNING), ("t1", FINISHED), ("t0", FINISHED), ("t2", mesos_pb2.TASK_FAILED)]
    async with FakeAgent(
        checkpoint=True, heartbeat_interval=None, recovery_timeout=10.0, reregistration_timeout=1.0
    ) as agent:
        options = driver_options(agent, config=agent.executor_config(checkpoint=True))
        with caplog.at_level(logging.WARNING, logger="trio_mesos"):
            async with trio_mesos.open_executor_driver(Probe(agent), **options) as driver:
                for task_id in ("t0", "t1", "t2"):
                    await agent.launch(make_task(task_id))
                await settle()
                await agent.restart(down=1000.0)
                for task_id, state in queued:
                    queued_status = driver.send_status_update(status(task_id, state))
                    assert queued_status == Status.DRIVER_RUNNING
                await trio.sleep(1)
                if end == "abort":
                    driver.abort()
                elif end == "stop":
                    driver.stop()
                await driver.join()
    assert agent.updates() == []
    never = [r.getMessage() for r in caplog.records if "never accepted" in r.getMessage()]
    assert len(never) == len(queued)
    for (task_id, state), line in zip(queued, never, strict=True):
        assert f"task {task_id} " in line and mesos_pb2.TaskState.Name(state) in line
    summary = [r.getMessage() for r in caplog.records if "not acknowledged" in r.getMessage()]
    assert len(summary) == 1 and "4 update(s)" in summary[0]
    assert all(t in summary[0] for t in ("t0", "t1", "t2"))
