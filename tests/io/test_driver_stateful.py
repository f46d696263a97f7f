"""The whole driver as a state machine: random agents, random users, virtual time (issue 12).

Theory of operation
-------------------
Hypothesis draws a *program* (:class:`Program`): how the FakeAgent is set up
and what it does over time (launches, kills, framework messages, stream drops,
restarts, failed calls, withheld and released ACKs, SHUTDOWN, silence), what
the executor's callbacks do each time they run, what task work started with
``start_task`` does, and what sibling tasks of the driver's block do (status
updates and framework messages, sent or awaited, ``stop()``, ``abort()``),
with durations from zero to "forever" and exceptions. The program runs once
in ``trio.run`` under ``MockClock(autojump_threshold=0)`` over memory
streams; everything is recorded with a global sequence number (a *stamp*), so
"before" and "after" are exact even within one virtual instant:

* the bytes the driver writes and reads on every connection, through a
  :class:`Tap` between the driver and the agent (requests are stamped at
  their first byte, answers when the driver reads them);
* what the agent answered and which events it delivered (an observer);
* every trigger of an end (``stop()``, ``abort()``, an exception, SHUTDOWN,
  a stream break, a refused re-SUBSCRIBE, cancellation from outside), each
  with the driver's status read just before it (``driver.start()``,
  synchronous, so the probe and the call see the same driver);
* the start and end of every callback, piece of task work and awaited
  driver method.

The invariants are then checked on the recording (:func:`check`); the
end-table bounds (docs/cancellation.rst) are derived from the program and
the recording, not from the driver's own state:

==============================================  ==========================
trigger                                          the driver ends at the latest
==============================================  ==========================
``abort()``, an exception in user code           at that instant
cancellation from outside                        at that instant
``stop()``, leaving the block                    + ``stop_timeout``
SHUTDOWN delivered                               + G - 1 s
stream broken, checkpointing off                 + G - 1 s
stream broken, checkpointing on, no SUBSCRIBED   + recovery timeout + G - 1 s
within the recovery timeout
re-SUBSCRIBE refused (400)                       + G - 1 s
first connection refused / silent                ``__aenter__`` raises
                                                 ``AgentUnavailableError`` at
                                                 once / after ``call_timeout``
==============================================  ==========================

(G = min(``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD``,
``ExecutorInfo.shutdown_grace_period``).) The earliest bound of all the
triggers that happened applies. Over memory streams an event the agent
delivered is in the driver's receive buffer, so the driver sees a break
after the events before it, at the same virtual instant.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.testing
from hypothesis import event, example, given, note
from hypothesis import strategies as st

import trio_mesos
from trio_mesos import (
    AgentUnavailableError,
    CallRejectedError,
    DriverClosedError,
    MessageQueueFullError,
    Status,
    TrioMesosInternalError,
)
from trio_mesos.testing import AckPolicy, FakeAgent, NotSubscribedError, RecordedCall, SentEvent
from trio_mesos.testing._hostile import hang, raw_stream_head
from trio_mesos.v1 import executor_pb2, mesos_pb2

from .helpers import make_task, status

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

Call, Event = executor_pb2.Call, executor_pb2.Event
RUNNING, STOPPED, ABORTED = Status.DRIVER_RUNNING, Status.DRIVER_STOPPED, Status.DRIVER_ABORTED
FOREVER = math.inf
#: Virtual-time slack for "at this instant" (float sums only).
EPS = 1e-6
#: Virtual seconds after which a driver that has not ended counts as hung; far
#: beyond every bound a program can arm (block <= 60 s, stop_timeout <= 30 s).
HORIZON = 1000.0
#: trio_mesos's MESOS_SUBSCRIPTION_BACKOFF_MAX default (used without checkpointing).
DEFAULT_BACKOFF_MAX = 2.0
#: Updates a run may make: an ``acknowledged`` callback that makes an update
#: feeds itself (each ACK brings the next), for ever at one virtual instant.
MAX_UPDATES = 40
#: How long the agent of the "recovering" start answers every request with 503.
RECOVERING = 1.5
#: What awaited driver methods may raise (their docstrings).
ALLOWED_ERRORS = (
    DriverClosedError, AgentUnavailableError, CallRejectedError, MessageQueueFullError
)


# --------------------------------------------------------------------------
# Programs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Update:
    """A status update of the code's task (for sibling tasks: the newest known task).

    ``wait``: ``"no"`` (``send_status_update``), ``"accepted"`` (``await
    update()``) or ``"acked"`` (``update()`` then ``wait_acknowledged()``).
    """

    wait: str = "no"
    terminal: bool = False


@dataclass(frozen=True)
class Message:
    """A framework message: ``send_framework_message``, or ``await message()``."""

    wait: bool = False


@dataclass(frozen=True)
class Stop:
    """``driver.stop()``."""


@dataclass(frozen=True)
class Abort:
    """``driver.abort()``."""


@dataclass(frozen=True)
class Sleep:
    """``trio.sleep(seconds)``; ``FOREVER`` never returns."""

    seconds: float


@dataclass(frozen=True)
class Raise:
    """Raise a :class:`Boom`."""


@dataclass(frozen=True)
class Work:
    """``driver.start_task(task, ...)`` running ``steps``; when cancelled, it
    sends TASK_KILLED if ``killed_on_cancel`` (the usual pattern)."""

    steps: tuple[Any, ...]
    killed_on_cancel: bool = True


Step = Update | Message | Stop | Abort | Sleep | Raise | Work
Code = tuple[Step, ...]


@dataclass(frozen=True)
class Launch:
    """LAUNCH of a new task (``t0``, ``t1``, ...)."""


@dataclass(frozen=True)
class Kill:
    """KILL of the ``index``-th launched task (modulo their number)."""

    index: int = 0


@dataclass(frozen=True)
class FrameworkMessages:
    """``count`` MESSAGE events to the executor."""

    count: int = 1


@dataclass(frozen=True)
class DropStream:
    """Close the event stream's connection (EOF without the last chunk)."""


@dataclass(frozen=True)
class Restart:
    """Crash and restart the agent (``FakeAgent.restart``)."""

    down: float = 0.0
    recovering: float = 0.0


@dataclass(frozen=True)
class FailNext:
    """Answer the next ``n`` calls (of kind ``calls``) with ``code``."""

    n: int = 1
    code: int = 503
    calls: str = "any"


@dataclass(frozen=True)
class AckAll:
    """Send every withheld ACKNOWLEDGED."""


@dataclass(frozen=True)
class Shutdown:
    """SHUTDOWN."""


@dataclass(frozen=True)
class Stall:
    """The stream goes silent (open, nothing written, events lost)."""


AgentStep = (
    Launch | Kill | FrameworkMessages | DropStream | Restart | FailNext | AckAll | Shutdown | Stall
)

CALLBACKS = (
    "registered",
    "reregistered",
    "disconnected",
    "launch_task",
    "kill_task",
    "acknowledged",
    "framework_message",
    "shutdown",
    "error",
)


@dataclass(frozen=True)
class Program:
    """One run: the set-up, the agent's timeline, the sibling tasks, the callbacks.

    The agent launches ``launches`` tasks first, then follows ``agent``
    (delay, step) by (delay, step). Sibling tasks run ``fibers`` once a task is
    known. ``callbacks[kind][i % n]`` is what the i-th call of callback
    ``kind`` does (nothing when absent). ``start``: ``"ok"``, ``"refused"`` (the agent is
    down), ``"silent"`` (SUBSCRIBE answered 200 and then nothing) or
    ``"recovering"`` (every request 503 for a while). The block leaves after
    ``leave_after`` seconds (or when the driver ended); ``cancel_at``
    cancels the ``async with`` from outside.
    """

    checkpoint: bool
    grace_env: float
    grace_info: float | None
    ack: str
    ack_delay: float
    recovery_timeout: float
    backoff_max: float
    stop_timeout: float
    call_timeout: float
    start: str
    leave_after: float
    cancel_at: float | None
    seed: int
    launches: int
    agent: tuple[tuple[float, AgentStep], ...]
    fibers: tuple[Code, ...]
    callbacks: dict[str, tuple[Code, ...]] = field(hash=False)

    @property
    def grace(self) -> float:
        """G - 1 s: the driver's shutdown grace after SUBSCRIBED."""
        info = math.inf if self.grace_info is None else self.grace_info
        return max(0.0, min(self.grace_env, info) - 1.0)


def updates() -> st.SearchStrategy[Update]:
    return st.builds(
        Update, wait=st.sampled_from(["no", "accepted", "acked"]), terminal=st.booleans()
    )


def codes(*, work: bool, raises: bool = True) -> st.SearchStrategy[Code]:
    """Steps of user code; sibling tasks of the block do not raise (``raises``)."""
    update = updates()
    message = st.builds(Message, wait=st.booleans())
    sleep = st.builds(Sleep, st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0, FOREVER]))
    ends = st.sampled_from([Stop(), Abort(), Raise()] if raises else [Stop(), Abort()])
    # stop(), abort() and exceptions end runs early: about one step in ten
    options: list[st.SearchStrategy[Any]] = [update, sleep, message, update, sleep, ends]
    options[1:1] = [update, sleep, message, sleep]
    if work:
        options.insert(4, st.builds(Work, codes(work=False), st.booleans()))
    return st.lists(st.one_of(*options), max_size=4).map(tuple)


def _restarts() -> st.SearchStrategy[Restart]:
    return st.builds(Restart, st.sampled_from([0.0, 1.0, 4.0]), st.sampled_from([0.0, 1.0, 3.0]))


def _fails() -> st.SearchStrategy[FailNext]:
    return st.builds(
        FailNext,
        st.integers(1, 3),
        st.sampled_from([503, 500, 400]),
        st.sampled_from(["any", "UPDATE", "MESSAGE"]),
    )


agent_steps: st.SearchStrategy[AgentStep] = st.one_of(
    st.just(Launch()),
    st.builds(FrameworkMessages, st.sampled_from([1, 2, 20])),
    st.just(DropStream()),
    _fails(),
    st.just(Shutdown()),
    _restarts(),
    st.just(AckAll()),
    st.builds(Kill, st.integers(0, 3)),
    st.just(Stall()),
    st.just(DropStream()),
    _fails(),
    st.just(Shutdown()),
    _restarts(),
)

programs = st.builds(
    Program,
    checkpoint=st.booleans(),
    grace_env=st.sampled_from([3.0, 1.5, 6.0]),
    grace_info=st.sampled_from([None, 2.0, 4.0]),
    ack=st.sampled_from(["immediate", "delayed", "withheld", "delayed", "withheld"]),
    ack_delay=st.sampled_from([0.5, 3.0]),
    recovery_timeout=st.sampled_from([20.0, 5.0]),
    backoff_max=st.sampled_from([2.0, 0.5]),
    stop_timeout=st.sampled_from([4.0, 1.0, 30.0]),
    call_timeout=st.sampled_from([30.0, 5.0]),
    # mostly "ok": the first connection's failures end runs before the block
    start=st.integers(0, 19).map(
        lambda i: "ok" if i < 17 else ("refused", "silent", "recovering")[i - 17]
    ),
    leave_after=st.sampled_from([20.0, 60.0, 0.0, 5.0, 60.0]),
    cancel_at=st.sampled_from([None] * 20 + [0.5, 3.0, 10.0, 40.0]),
    seed=st.integers(0, 2**16),
    launches=st.integers(1, 3),
    agent=st.lists(
        st.tuples(st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0, 15.0]), agent_steps), max_size=14
    ).map(tuple),
    fibers=st.lists(codes(work=True, raises=False), min_size=1, max_size=2).map(tuple),
    callbacks=st.fixed_dictionaries(
        {
            kind: st.lists(codes(work=True), max_size=2).map(tuple)
            for kind in CALLBACKS
            if kind != "launch_task"
        }
        | {
            # launch_task starts with an update (TASK_RUNNING, usually), as executors do
            "launch_task": st.lists(
                st.tuples(updates(), codes(work=True)).map(lambda u: (u[0], *u[1])),
                min_size=1,
                max_size=2,
            ).map(tuple)
        }
    ).map(lambda found: {kind: code for kind, code in found.items() if code}),
)


# --------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------


class Boom(Exception):
    """What user code raises on purpose."""


@dataclass
class Probe:
    """A call of stop(), abort() or a raise, with the status just before it."""

    time: float
    before: Status
    returned: Status | None
    where: str


@dataclass
class Raised:
    time: float
    before: Status
    exc: Boom


@dataclass
class Made:
    stamp: int
    time: float
    task: str


@dataclass
class Awaited:
    what: str  # "update", "acknowledged", "message"
    tag: str
    where: str
    start: float
    end: float | None = None
    outcome: str = "pending"  # "ok", an exception class name, "cancelled"
    uuid: bytes = b""


@dataclass
class Span:
    what: str
    start: float
    end: float | None = None


@dataclass
class Request:
    stamp: int  # of its first byte
    tap: Tap
    index: int
    call: executor_pb2.Call


@dataclass
class Answer:
    stamp: int  # when the driver read its last byte
    code: int
    body: bytes


def _split_http(buffer: bytearray) -> tuple[bytes, bytes] | None:
    """Take one complete HTTP message (head, body by Content-Length) off ``buffer``."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if len(buffer) < end + 4 + length:
        return None
    body = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return head, body


class Tap(trio.abc.Stream):
    """A connection as the driver sees it: what it wrote and what it read."""

    def __init__(self, run: Run, inner: trio.abc.Stream) -> None:
        self.run = run
        self.inner = inner
        self.sent = bytearray()
        self.first_byte = 0
        self.received = bytearray()
        self.requests: list[Request] = []
        self.answers: list[Answer] = []
        self.event_stream = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.run.tapped_send(self, bytes(data))
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        self.run.tapped_receive(self, bytes(data))
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


class Executor(trio_mesos.Executor):
    def __init__(self, run: Run) -> None:
        self.run = run

    async def registered(self, driver, executor_info, framework_info, agent_info):  # type: ignore[no-untyped-def]
        await self.run.callback(driver, "registered", None)

    async def reregistered(self, driver, agent_info):  # type: ignore[no-untyped-def]
        await self.run.callback(driver, "reregistered", None)

    async def disconnected(self, driver):  # type: ignore[no-untyped-def]
        await self.run.callback(driver, "disconnected", None)

    async def launch_task(self, driver, task):  # type: ignore[no-untyped-def]
        await self.run.callback(driver, "launch_task", task.task_id.value)

    async def kill_task(self, driver, task_id, kill_policy):  # type: ignore[no-untyped-def]
        await self.run.callback(driver, "kill_task", getattr(task_id, "value", task_id))

    async def acknowledged(self, driver, task_id, uuid):  # type: ignore[no-untyped-def]
        await self.run.callback(driver, "acknowledged", getattr(task_id, "value", task_id))

    async def framework_message(self, driver, data):  # type: ignore[no-untyped-def]
        await self.run.callback(driver, "framework_message", None)

    async def shutdown(self, driver):  # type: ignore[no-untyped-def]
        await self.run.callback(driver, "shutdown", None)

    async def error(self, driver, message):  # type: ignore[no-untyped-def]
        await self.run.callback(driver, "error", None)


class Run:
    """Runs one program and records everything (see the module docstring)."""

    def __init__(self, program: Program) -> None:
        self.p = program
        self._stamp = 0
        self.problems: list[str] = []
        self.driver: Any = None
        self.agent: FakeAgent | None = None
        # the block and the end
        self.entered = False
        self.entry_time: float | None = None
        self.end_time: float | None = None
        self.joined: Status | None = None
        self.final: tuple[Any, ...] = ()
        self.exit_time: float | None = None
        self.outcome: BaseException | None = None
        self.cancelled_outside = False
        self.hung = False
        self.bound = "none"  # what bounded the end (for the statistics)
        # user code
        self.stops: list[Probe] = []
        self.aborts: list[Probe] = []
        self.raised: list[Raised] = []
        self.spans: list[Span] = []
        self.awaits: list[Awaited] = []
        self.made_updates: dict[str, Made] = {}
        self.made_messages: list[tuple[int, str]] = []
        self.known: list[str] = []
        self.task_known = trio.Event()
        self.counts: dict[str, int] = {}
        # the agent
        self.launched: list[str] = []
        self.breaks: list[tuple[int, float, str]] = []
        # streams that began (SUBSCRIBED, or SHUTDOWN first)
        self.starts: list[tuple[int, float]] = []
        self.shutdowns: list[tuple[int, float]] = []
        self.acks: list[tuple[int, bytes]] = []
        self.subscribe_answers: list[tuple[int, float, int]] = []
        self.carried: dict[int, list[str]] = {}  # subscription serial -> update tags
        self.subscribed_stamp: dict[int, int] = {}  # subscription serial -> SUBSCRIBED delivered
        # the wire
        self.taps: list[Tap] = []
        self.uuid_tags: dict[bytes, str] = {}

    def tick(self) -> int:
        self._stamp += 1
        return self._stamp

    def problem(self, text: str) -> None:
        self.problems.append(f"[{trio.current_time():g}] {text}")

    # -- the run -----------------------------------------------------------

    async def main(self) -> None:
        p = self.p
        executor_info = None
        if p.grace_info is not None:
            executor_info = mesos_pb2.ExecutorInfo(type=mesos_pb2.ExecutorInfo.CUSTOM)
            executor_info.executor_id.value = "fake-executor"
            executor_info.framework_id.value = "fake-framework-0000"
            executor_info.command.value = "fake-executor"
            executor_info.shutdown_grace_period.nanoseconds = int(p.grace_info * 1e9)
        agent = self.agent = FakeAgent(
            checkpoint=p.checkpoint,
            ack_policy=AckPolicy(p.ack),
            ack_delay=p.ack_delay,
            shutdown_grace_period=p.grace_env,
            reregistration_timeout=p.backoff_max,
            recovery_timeout=p.recovery_timeout,
            executor_info=executor_info,
            heartbeat_interval=None,
            # The agent never gives a stream up on its own: every break is the program's.
            write_timeout=1e9,
        )
        async with agent:
            remove = agent.add_observer(self.observe)
            if p.start == "refused":
                await agent.restart(down=10 * HORIZON)
            elif p.start == "silent":
                agent.hijack_next(1, hang(raw_stream_head()), calls=[Call.SUBSCRIBE])
            elif p.start == "recovering":
                await agent.restart(down=0.0, recovering=RECOVERING)
            async with trio.open_nursery() as side:
                with trio.move_on_after(HORIZON) as guard:
                    cancel_at = math.inf if p.cancel_at is None else p.cancel_at
                    with trio.move_on_at(cancel_at) as outside:
                        try:
                            async with trio_mesos.open_executor_driver(
                                Executor(self),
                                config=agent.executor_config(),
                                open_stream=self.dial,
                                rng=random.Random(p.seed),
                                stop_timeout=p.stop_timeout,
                                call_timeout=p.call_timeout,
                            ) as driver:
                                await self.block(driver, side)
                        except Exception as exc:
                            self.outcome = exc
                    self.exit_time = trio.current_time()
                    self.cancelled_outside = outside.cancelled_caught
                self.hung = guard.cancelled_caught
                remove()
                # Sibling tasks get their turn: awaits that the end failed record it.
                await trio.sleep(1.0)
                side.cancel_scope.cancel()

    async def dial(self) -> trio.abc.Stream:
        assert self.agent is not None
        tap = Tap(self, await self.agent.connect())
        self.taps.append(tap)
        return tap

    async def block(self, driver: Any, side: trio.Nursery) -> None:
        self.driver = driver
        self.entered = True
        self.entry_time = trio.current_time()
        side.start_soon(self.watch_end, driver)
        side.start_soon(self.agent_script)
        for i, code in enumerate(self.p.fibers):
            side.start_soon(self.fiber, driver, code, f"sibling task {i}")
        with trio.move_on_after(self.p.leave_after):
            await driver.join()
        self.stops.append(Probe(trio.current_time(), driver.start(), None, "leaving the block"))

    async def fiber(self, driver: Any, code: Code, where: str) -> None:
        await self.task_known.wait()
        await self.run_code(driver, code, None, where)

    async def watch_end(self, driver: Any) -> None:
        self.joined = await driver.join()
        self.end_time = trio.current_time()
        stats = driver.statistics()
        self.final = (driver.start(), stats.status, stats.state, driver.error)

    # -- user code ---------------------------------------------------------

    async def callback(self, driver: Any, kind: str, task: str | None) -> None:
        before = driver.start()
        if before is not RUNNING:
            self.problem(f"callback {kind} started after the end ({before.name})")
        if kind == "launch_task" and task is not None and task not in self.known:
            self.known.append(task)
            self.task_known.set()
        choices = self.p.callbacks.get(kind, ())
        n = self.counts.get(kind, 0)
        self.counts[kind] = n + 1
        code = choices[n % len(choices)] if choices else ()
        span = Span(f"callback {kind}", trio.current_time())
        self.spans.append(span)
        try:
            await self.run_code(driver, code, task, f"callback {kind}")
        finally:
            span.end = trio.current_time()

    async def run_code(self, driver: Any, code: Code, task: str | None, where: str) -> None:
        for step in code:
            await self.step(driver, step, task, where)

    def newest_task(self) -> str | None:
        return self.known[-1] if self.known else None

    async def step(self, driver: Any, step: Step, task: str | None, where: str) -> None:
        now = trio.current_time()
        if isinstance(step, Sleep):
            if step.seconds == FOREVER:
                await trio.sleep_forever()
            else:
                await trio.sleep(step.seconds)
        elif isinstance(step, Update):
            await self.update(driver, task or self.newest_task(), step, where)
        elif isinstance(step, Message):
            await self.message(driver, step, where)
        elif isinstance(step, Stop):
            before = driver.start()
            self.stops.append(Probe(now, before, driver.stop(), where))
        elif isinstance(step, Abort):
            before = driver.start()
            self.aborts.append(Probe(now, before, driver.abort(), where))
        elif isinstance(step, Raise):
            exc = Boom(f"{where} at {now:g}")
            self.raised.append(Raised(now, driver.start(), exc))
            raise exc
        else:
            target = task or self.newest_task()
            if target is None:
                return
            before = driver.start()
            try:
                driver.start_task(target, self.work, driver, step, target)
            except DriverClosedError:
                if before is RUNNING:
                    self.problem(f"start_task refused by a running driver ({where})")

    def new_update(self, driver: Any, task: str, state: int) -> tuple[str, Any]:
        tag = f"u{len(self.made_updates)}.{self.tick()}"
        if driver.start() is RUNNING:
            self.made_updates[tag] = Made(self.tick(), trio.current_time(), task)
        return tag, status(task, state, tag)

    def send_update(self, driver: Any, task: str, state: int, where: str) -> None:
        before = driver.start()
        _, update = self.new_update(driver, task, state)
        returned = driver.send_status_update(update)
        if returned is not before:
            self.problem(f"send_status_update returned {returned.name}, the driver was "
                         f"{before.name} ({where})")

    async def update(self, driver: Any, task: str | None, step: Update, where: str) -> None:
        if task is None or len(self.made_updates) >= MAX_UPDATES:
            return
        state = mesos_pb2.TASK_FINISHED if step.terminal else mesos_pb2.TASK_RUNNING
        if step.wait == "no":
            self.send_update(driver, task, state, where)
            return
        tag, update = self.new_update(driver, task, state)
        accepted = Awaited("update", tag, where, trio.current_time())
        if not await self.awaiting(accepted, driver.update(update)):
            return
        if step.wait == "acked":
            acked = Awaited("acknowledged", tag, where, trio.current_time(), uuid=accepted.uuid)
            await self.awaiting(acked, driver.wait_acknowledged(accepted.uuid))

    async def awaiting(self, record: Awaited, awaitable: Any) -> bool:
        """Await a driver method, recording how it ended; True if it returned."""
        self.awaits.append(record)
        try:
            result = await awaitable
        except ALLOWED_ERRORS as exc:
            record.outcome = type(exc).__name__
            return False
        except trio.Cancelled:
            record.outcome = "cancelled"
            raise
        finally:
            record.end = trio.current_time()
        record.outcome = "ok"
        if isinstance(result, bytes):
            record.uuid = result
        return True

    async def message(self, driver: Any, step: Message, where: str) -> None:
        tag = f"m{len(self.made_messages)}.{self.tick()}"
        before = driver.start()
        if before is RUNNING:
            self.made_messages.append((self.tick(), tag))
        if not step.wait:
            returned = driver.send_framework_message(tag.encode())
            if returned is not before:
                self.problem(f"send_framework_message returned {returned.name}, the driver was "
                             f"{before.name} ({where})")
            return
        await self.awaiting(
            Awaited("message", tag, where, trio.current_time()), driver.message(tag.encode())
        )

    async def work(self, driver: Any, step: Work, task: str) -> None:
        span = Span(f"work of {task}", trio.current_time())
        self.spans.append(span)
        try:
            await self.run_code(driver, step.steps, task, f"work of {task}")
        except trio.Cancelled:
            if step.killed_on_cancel:
                self.send_update(driver, task, mesos_pb2.TASK_KILLED, f"work of {task}, killed")
            raise
        finally:
            span.end = trio.current_time()

    # -- the agent ---------------------------------------------------------

    async def agent_script(self) -> None:
        for _ in range(self.p.launches):
            with contextlib.suppress(NotSubscribedError):
                await self.agent_step(Launch())
        for delay, step in self.p.agent:
            await trio.sleep(delay)
            with contextlib.suppress(NotSubscribedError):
                await self.agent_step(step)

    async def agent_step(self, step: AgentStep) -> None:
        agent = self.agent
        assert agent is not None
        now = trio.current_time()
        if isinstance(step, Launch):
            if agent.subscribed:
                task = f"t{len(self.launched)}"
                self.launched.append(task)
                await agent.launch(make_task(task))
        elif isinstance(step, Kill):
            if self.launched:
                await agent.kill(self.launched[step.index % len(self.launched)])
        elif isinstance(step, FrameworkMessages):
            for _ in range(step.count):
                await agent.message(b"to the executor")
        elif isinstance(step, DropStream):
            if agent.subscribed:
                self.breaks.append((self.tick(), now, "stream dropped"))
                await agent.drop_stream()
        elif isinstance(step, Restart):
            self.breaks.append((self.tick(), now, "agent restarted"))
            await agent.restart(step.down, step.recovering)
        elif isinstance(step, FailNext):
            kinds = {"any": None, "UPDATE": [Call.UPDATE], "MESSAGE": [Call.MESSAGE]}
            agent.fail_next(step.n, step.code, f"failed on purpose ({step.code})",
                            calls=kinds[step.calls])
        elif isinstance(step, AckAll):
            await agent.ack_all()
        elif isinstance(step, Shutdown):
            await agent.shutdown()
        else:
            await agent.stall()

    def observe(self, item: RecordedCall | SentEvent) -> None:
        assert self.agent is not None
        stamp = self.tick()
        now = trio.current_time()
        if isinstance(item, RecordedCall):
            call = item.call
            if call is None:  # answered before decoding (503 while recovering)
                try:
                    call = Call.FromString(item.request_body)
                except Exception:
                    return
            if call.type != Call.SUBSCRIBE:
                return
            self.subscribe_answers.append((stamp, now, item.status_code))
            if item.status_code == 200 and self.agent.last_subscribe is item.call:
                self.carried[self.agent.subscriptions] = [
                    u.status.message for u in call.subscribe.unacknowledged_updates
                ]
        elif item.delivered and item.event is not None:
            if item.type == Event.SUBSCRIBED:
                self.starts.append((stamp, now))
                self.subscribed_stamp[item.subscription] = stamp
            elif item.type == Event.SHUTDOWN:
                self.shutdowns.append((stamp, now))
                if item.subscription == 0:  # a terminating executor's stream: SHUTDOWN first
                    self.starts.append((stamp, now))
            elif item.type == Event.ACKNOWLEDGED:
                self.acks.append((stamp, item.event.acknowledged.uuid))

    # -- the wire ----------------------------------------------------------

    def tapped_send(self, tap: Tap, data: bytes) -> None:
        stamp = self.tick()
        if not tap.sent:
            tap.first_byte = stamp
        tap.sent += data
        while (message := _split_http(tap.sent)) is not None:
            call = Call.FromString(message[1])
            tap.requests.append(Request(tap.first_byte, tap, len(tap.requests), call))
            tap.first_byte = stamp
            if call.type == Call.SUBSCRIBE:
                tap.event_stream = True
                for update in call.subscribe.unacknowledged_updates:
                    self.uuid_tags[update.status.uuid] = update.status.message
            elif call.type == Call.UPDATE:
                self.uuid_tags[call.update.status.uuid] = call.update.status.message

    def tapped_receive(self, tap: Tap, data: bytes) -> None:
        if tap.event_stream or not data:
            return
        stamp = self.tick()
        tap.received += data
        while (message := _split_http(tap.received)) is not None:
            head, body = message
            tap.answers.append(Answer(stamp, int(head.split(b" ", 2)[1]), body))


# --------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------


def leaves(exc: BaseException | None) -> list[BaseException]:
    if exc is None:
        return []
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def retried(code: int, body: bytes) -> bool:
    """Answers after which a call is sent again (the agent did not take it)."""
    return code >= 500 or code == 404 or (code == 403 and b"not subscribed" in body)


def loss_decisions(run: Run) -> tuple[list[tuple[float, str]], list[float]]:
    """When the agent is lost for good at the latest, from the agent's side.

    Returns (decisions, ambiguous): a decision is (time, why); ``ambiguous``
    holds times where a re-SUBSCRIBE and the recovery deadline coincide.
    """
    p = run.p
    decisions: list[tuple[float, str]] = []
    ambiguous: list[float] = []
    if not run.starts:
        return decisions, ambiguous
    first = run.starts[0][0]
    timeline = sorted([(s, t, "") for s, t in run.starts] + list(run.breaks))
    subscribed = False
    outage: tuple[int, float, str] | None = None
    for stamp, t, why in timeline:
        if not why:  # a stream began
            subscribed = True
            outage = None
            continue
        if stamp < first or not subscribed:
            continue
        subscribed = False
        if not p.checkpoint:
            decisions.append((t, f"{why} at {t:g} (checkpointing off)"))
        elif outage is None:
            outage = (stamp, t, why)
            deadline = t + p.recovery_timeout
            again = [s_t for s, s_t in run.starts if s > stamp]
            if again and abs(again[0] - deadline) <= EPS:
                ambiguous.append(deadline)
            elif not again or again[0] > deadline:
                decisions.append(
                    (deadline, f"{why} at {t:g}, no SUBSCRIBED within the recovery timeout")
                )
    for stamp, t, code in run.subscribe_answers:
        if stamp > first and 400 <= code < 500 and code != 404:
            decisions.append((t, f"re-SUBSCRIBE refused with {code} at {t:g}"))
    return decisions, ambiguous


def check(run: Run) -> list[str]:
    problems = list(run.problems)
    if run.hung:
        return [*problems, f"the driver did not end within {HORIZON:g} virtual seconds"]
    for leaf in leaves(run.outcome):
        chain: BaseException | None = leaf
        while chain is not None:
            if isinstance(chain, TrioMesosInternalError) or type(chain).__name__.startswith("_"):
                problems.append(f"{type(chain).__name__} in what came out: {chain!r}")
            chain = chain.__cause__ or chain.__context__
    if not run.entered:
        return problems + check_entry(run)
    return (
        problems
        + check_end(run)
        + check_exceptions(run)
        + check_user_code(run)
        + check_updates(run)
        + check_messages(run)
    )


def check_entry(run: Run) -> list[str]:
    """The block never ran: the first connection failed (end-table row 6), or cancelled."""
    p = run.p
    exit_time = run.exit_time
    assert exit_time is not None
    if run.cancelled_outside:
        if p.cancel_at is None or abs(exit_time - p.cancel_at) > EPS:
            return [f"cancelled from outside at {p.cancel_at}, left at {exit_time:g}"]
        return [] if run.outcome is None else [f"cancelled entry raised {run.outcome!r}"]
    problems = []
    # A checkpointing executor outlasts the 503s unless its recovery timeout is shorter.
    recovers = p.recovery_timeout > RECOVERING + p.backoff_max + EPS
    if p.start == "ok" or (p.start == "recovering" and p.checkpoint and recovers):
        problems.append(f"the block never ran although the agent answered: {run.outcome!r}")
    if not isinstance(run.outcome, AgentUnavailableError):
        problems.append(f"a failed first connection raised {run.outcome!r}, "
                        "not AgentUnavailableError")
    earliest, latest = {
        "refused": (0.0, 0.0),
        "silent": (p.call_timeout, p.call_timeout),
        "recovering": (RECOVERING, RECOVERING + DEFAULT_BACKOFF_MAX),
    }.get(p.start, (0.0, math.inf))
    if p.start == "recovering" and p.checkpoint:
        earliest = latest = p.recovery_timeout  # the recovery deadline of the first 503
    if not earliest - EPS <= exit_time <= latest + EPS:
        problems.append(f"the first connection ({p.start}) failed at {exit_time:g}, "
                        f"not within [{earliest:g}, {latest:g}]")
    return problems


def check_end(run: Run) -> list[str]:
    """The end comes by the earliest bound of what happened, with the right status."""
    p = run.p
    end = run.end_time
    if end is None:
        return ["join() never returned"]
    problems = []
    assert run.entry_time is not None
    entry_by = {"ok": 0.0, "recovering": RECOVERING + p.backoff_max}.get(p.start, -1.0)
    if run.entry_time > entry_by + EPS:
        problems.append(f"the block began at {run.entry_time:g} ({p.start} start)")
    losses, ambiguous = loss_decisions(run)
    immediate = [(a.time, f"abort() by {a.where}") for a in run.aborts if a.before is RUNNING]
    immediate += [(r.time, f"{r.exc}: raised") for r in run.raised if r.before is RUNNING]
    bounds = list(immediate)
    bounds += [
        (s.time + p.stop_timeout, f"stop() by {s.where} at {s.time:g}")
        for s in run.stops
        if s.before is RUNNING
    ]
    bounds += [(t + p.grace, f"SHUTDOWN at {t:g}") for _, t in run.shutdowns]
    bounds += [(t + p.grace, why) for t, why in losses]
    if p.cancel_at is not None:
        bounds.append((p.cancel_at, "cancellation from outside"))
    latest, why = min(bounds, default=(math.inf, "nothing"))
    run.bound = why
    if end > latest + EPS:
        problems.append(f"the driver ended at {end:g}, after {latest:g}, the bound of {why}")
    earliest = min(
        [t for t, _ in immediate]
        + [s.time for s in run.stops if s.before is RUNNING]
        + [t for _, t in run.shutdowns]
        + [t for t, _ in losses]
        + ambiguous
        + ([] if p.cancel_at is None else [p.cancel_at]),
        default=math.inf,
    )
    if end < earliest - EPS:
        problems.append(f"the driver ended at {end:g} before anything asked for an end "
                        f"(first trigger at {earliest:g})")
    assert run.exit_time is not None
    if run.exit_time > end + EPS:
        problems.append(f"the async with was left at {run.exit_time:g}, after the end at {end:g}")

    # the final status
    status = run.joined
    stopping = [s.time for s in run.stops if s.before is RUNNING and s.returned is not ABORTED]
    stopping += [t for _, t in run.shutdowns]
    lost = [t for t, _ in losses] + [s.time for s in run.stops
                                     if s.before is RUNNING and s.returned is ABORTED]
    first_stop, first_loss = min(stopping, default=math.inf), min(lost, default=math.inf)
    allowed = set()
    if immediate:
        allowed.add(ABORTED)
    else:
        if first_stop <= end + EPS and first_stop <= first_loss + EPS:
            allowed.add(STOPPED)
        if first_loss <= end + EPS and first_loss <= first_stop + EPS:
            allowed.add(ABORTED)
        if any(t <= end + EPS for t in ambiguous):
            allowed.add(ABORTED)
        if p.cancel_at is not None and abs(end - p.cancel_at) <= EPS:
            allowed.add(ABORTED)
    if status not in allowed:
        problems.append(f"the driver ended {status}, expected one of "
                        f"{sorted(s.name for s in allowed)}")
    only_loss = not immediate and not (p.cancel_at is not None and abs(end - p.cancel_at) <= EPS)
    if status is ABORTED and only_loss and not isinstance(run.final[3], AgentUnavailableError):
        problems.append(f"ABORTED as the agent was lost, but driver.error is {run.final[3]!r}")
    for s in run.stops:
        if s.before is RUNNING and s.returned is ABORTED:
            if not any(t <= s.time + EPS for t in [*[t for t, _ in losses], *ambiguous]):
                problems.append(f"stop() at {s.time:g} returned ABORTED; the agent was not lost")
            if abs(end - s.time) > EPS:
                problems.append(f"stop() after the loss did not end the driver at once ({end:g})")
        if s.before is not RUNNING and s.returned not in (None, s.before):
            problems.append(f"stop() after the end returned {s.returned}, not {s.before}")
    for a in run.aborts:
        expected = ABORTED if a.before is RUNNING else a.before
        if a.returned is not expected:
            problems.append(f"abort() at {a.time:g} returned {a.returned}, not {expected}")

    # join(), status and statistics agree
    names = {STOPPED: "stopped", ABORTED: "aborted"}
    start_status, stats_status, stats_state, _error = run.final
    if not (status is start_status is stats_status) or names.get(status) != stats_state:
        problems.append(f"join() {status}, start() {start_status}, statistics() "
                        f"{stats_status} / {stats_state!r} disagree")
    return problems


def check_exceptions(run: Run) -> list[str]:
    """What user code raised comes out as itself (several: a group of exactly those)."""
    raised = [r.exc for r in run.raised]
    outcome = run.outcome
    if len(raised) == 1:
        if outcome is not raised[0]:
            return [f"{raised[0]!r} was raised, {outcome!r} came out"]
        return []
    if raised:
        got = sorted(map(id, leaves(outcome)))
        if not isinstance(outcome, BaseExceptionGroup) or got != sorted(map(id, raised)):
            return [f"{raised!r} were raised, {outcome!r} came out"]
        return []
    if outcome is not None:
        return [f"nothing was raised, but {outcome!r} came out"]
    return []


def check_user_code(run: Run) -> list[str]:
    """Nothing the driver runs outlives its end; no waiter outlives it; results are true."""
    assert run.agent is not None and run.end_time is not None
    end = run.end_time
    problems = []
    for span in run.spans:
        if span.end is None or span.end > end + EPS:
            problems.append(f"{span.what} (from {span.start:g}) ran past the end at {end:g}")
    arrived = {u.message for u in run.agent.updates()}
    acked = {uuid for _, uuid in run.acks}
    for w in run.awaits:
        if w.end is None or w.end > max(w.start, end) + EPS:
            problems.append(f"await {w.what}({w.tag}) by {w.where} from {w.start:g}: "
                            f"{w.outcome} at {w.end}, the driver ended at {end:g}")
        if w.outcome == "ok":
            if w.what == "update" and w.tag not in arrived:
                problems.append(f"update({w.tag}) returned; the agent never got it")
            if w.what == "acknowledged" and w.uuid not in acked:
                problems.append(f"wait_acknowledged({w.tag}) returned; no ACK was sent")
            if w.what == "message" and w.tag.encode() not in run.agent.messages:
                problems.append(f"message({w.tag}) returned; the agent never got it")
    return problems


def _answer(request: Request) -> Answer | None:
    answers = request.tap.answers
    return answers[request.index] if request.index < len(answers) else None


def check_updates(run: Run) -> list[str]:
    """UPDATE calls and SUBSCRIBE lists against what was made, accepted and acknowledged."""
    assert run.agent is not None
    problems = []
    requests = sorted((r for tap in run.taps for r in tap.requests), key=lambda r: r.stamp)
    accepted: dict[str, int] = {}
    rejected: dict[str, int] = {}
    for request in requests:
        if request.call.type != Call.UPDATE:
            continue
        tag = request.call.update.status.message
        answer = _answer(request)
        if answer is None:
            continue
        if 200 <= answer.code < 300:
            accepted.setdefault(tag, answer.stamp)
        elif not retried(answer.code, answer.body):
            rejected.setdefault(tag, answer.stamp)
    carried: dict[str, int] = {}
    for serial, tags in run.carried.items():
        delivered = run.subscribed_stamp.get(serial)
        if delivered is not None:
            for tag in tags:
                carried.setdefault(tag, delivered)
    acked: dict[str, int] = {}
    for stamp, uuid in run.acks:
        if uuid in run.uuid_tags:
            acked.setdefault(run.uuid_tags[uuid], stamp)
    made = sorted(run.made_updates.items(), key=lambda item: item[1].stamp)

    for request in requests:
        if request.call.type == Call.UPDATE:
            tag = request.call.update.status.message
            if tag not in run.made_updates:
                problems.append(f"UPDATE {tag} was never made (or made after the end)")
            if accepted.get(tag, math.inf) < request.stamp:
                problems.append(f"UPDATE {tag} sent again after the driver read its 202")
            if carried.get(tag, math.inf) < request.stamp:
                problems.append(f"UPDATE {tag} sent after a SUBSCRIBED that carried it")
        elif request.call.type == Call.SUBSCRIBE:
            listed = [u.status.message for u in request.call.subscribe.unacknowledged_updates]
            sigma = request.stamp
            expected = [
                tag
                for tag, m in made
                if m.stamp < sigma
                and acked.get(tag, math.inf) > sigma
                and rejected.get(tag, math.inf) > sigma
            ]
            if listed != expected:
                problems.append(f"a SUBSCRIBE listed {listed}, the unacknowledged were {expected}")

    # per task, the agent gets the updates in the order they were made, none left out
    first_arrivals: dict[str, list[str]] = {}
    for update in run.agent.updates():
        if update.source != mesos_pb2.TaskStatus.SOURCE_EXECUTOR:
            continue
        seen = first_arrivals.setdefault(update.task_id.value, [])
        if update.message not in seen:
            seen.append(update.message)
    for task, seen in first_arrivals.items():
        order = [tag for tag, m in made if m.task == task and tag not in rejected]
        if seen != order[: len(seen)]:
            problems.append(f"task {task}: the agent got {seen}, made in the order {order}")
    return problems


def check_messages(run: Run) -> list[str]:
    """A MESSAGE is sent at most once and messages keep their order."""
    assert run.agent is not None
    problems = []
    order = {tag: i for i, (_, tag) in enumerate(run.made_messages)}
    got = [data.decode() for data in run.agent.messages]
    if len(set(got)) != len(got):
        problems.append(f"a message was accepted twice: {got}")
    positions = [order.get(tag, -1) for tag in got]
    if -1 in positions or positions != sorted(positions):
        problems.append(f"the agent got messages {got}; they were made in the order "
                        f"{[tag for _, tag in run.made_messages]}")
    sends: dict[str, list[Request]] = {}
    for tap in run.taps:
        for request in tap.requests:
            if request.call.type == Call.MESSAGE:
                sends.setdefault(request.call.message.data.decode(), []).append(request)
    for tag, requests in sends.items():
        requests.sort(key=lambda r: r.stamp)
        for request, following in itertools.pairwise(requests):
            answer = _answer(request)
            if answer is None or answer.stamp > following.stamp:
                problems.append(f"MESSAGE {tag} sent again without an answer to the last one")
            elif not retried(answer.code, answer.body):
                problems.append(f"MESSAGE {tag} sent again after {answer.code}")
    return problems


# --------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """The driver and the agent log every fault they see; hundreds of runs need no record."""
    logger = logging.getLogger("trio_mesos")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def summary(run: Run) -> str:
    return "\n".join([
        f"entered={run.entered} at {run.entry_time}, end={run.end_time} {run.joined}, "
        f"exit={run.exit_time}, outcome={run.outcome!r}, final={run.final}",
        f"stops={run.stops}",
        f"aborts={run.aborts}",
        f"raised={[(r.time, r.before, r.exc) for r in run.raised]}",
        f"breaks={run.breaks}",
        f"starts={run.starts}",
        f"shutdowns={run.shutdowns}",
        f"subscribe answers={run.subscribe_answers}",
        f"losses={loss_decisions(run)}",
    ])


def program(**changes: Any) -> Program:
    """A program with plain defaults, for the explicit examples."""
    values: dict[str, Any] = dict(
        checkpoint=False, grace_env=3.0, grace_info=None, ack="immediate", ack_delay=0.5,
        recovery_timeout=20.0, backoff_max=2.0, stop_timeout=4.0, call_timeout=30.0,
        start="ok", leave_after=20.0, cancel_at=None, seed=0, launches=1, agent=(),
        fibers=(), callbacks={},
    )
    values.update(changes)
    return Program(**values)


# Minimal programs of the driver bugs this test found (see the report of issue 12):
# a MESSAGE answered 503 is overtaken by the one pipelined behind it;
@example(program(agent=((0.0, FailNext(1, 503, "MESSAGE")),), fibers=((Message(), Message()),)))
# a callback that never returns stops the reading of the event stream once 16
# events wait, so SHUTDOWN and the loss of the agent go unnoticed.
@example(
    program(
        agent=((0.0, FrameworkMessages(20)), (0.0, Shutdown())),
        callbacks={"launch_task": ((Sleep(FOREVER),),)},
    )
)
@example(
    program(
        agent=((0.0, FrameworkMessages(20)), (0.0, DropStream())),
        callbacks={"launch_task": ((Sleep(FOREVER),),)},
    )
)
# FakeAgent.ack_all() raced a DELAYED ACK (the agent's bug, not the driver's).
@example(
    program(
        ack="delayed",
        launches=3,
        agent=((0.5, AckAll()),),
        fibers=((Update(wait="no", terminal=False),),),
        callbacks={"launch_task": ((Update(wait="no", terminal=False),),)},
    )
)
@given(programs)
def test_the_driver_keeps_its_invariants(program: Program) -> None:
    run = Run(program)
    with quiet_logs():
        trio.run(run.main, clock=trio.testing.MockClock(autojump_threshold=0))
    problems = check(run)
    note(summary(run))
    kind = run.bound.split(" at ")[0].split(" by ")[0]
    event(f"end: {run.joined and run.joined.name}, bound of {kind}")
    assert not problems, "\n".join(problems)
