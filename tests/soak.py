"""Soak under faults (issue 8): many updates, many tasks, a FakeAgent that misbehaves.

``python -m tests.soak --updates 100000 --tasks 1000 --seed 1234`` (``make soak``)
runs one executor driver against a :class:`~trio_mesos.testing.FakeAgent`
over memory streams in virtual time (``MockClock(autojump_threshold=0)``),
with checkpointing on, while the agent at random

* drops the event stream (EOF, as in an agent crash),
* restarts (connections refused, then a 503 phase, then re-subscription),
* fails calls with 500/502/503/504,
* accepts an UPDATE and drops the connection before its 202 (so the driver
  sends the same update again: a duplicate at the agent),
* duplicates, delays and withholds (then releases) acknowledgements.

The executor makes ``updates`` status updates spread over ``tasks`` tasks
(``TASK_RUNNING``, the last one of each task ``TASK_FINISHED``), keeping at
most ``window`` unacknowledged. At the end, with the faults over, every
withheld acknowledgement is released and the driver stops.

Checks (each failure is listed; the exit status is 1 if there is any):

* every update reached the agent, at least once, and every repeat is the same
  update (same uuid, same state and message) -- ``lost`` counts the missing;
* per task, the updates reached the agent in the order they were made (first
  arrivals), the terminal one last;
* nothing is left unacknowledged and the driver stops ``DRIVER_STOPPED``;
* memory is bounded: the ledger never holds more than ``window`` updates and
  is empty at the end (with ``--tracemalloc``, the driver's own allocations
  shrink back and the peak is reported);
* the driver is never stuck: some update or acknowledgement makes progress
  at least every ``STUCK_AFTER`` virtual seconds, and the whole run ends
  within a virtual-time bound.

Everything random comes from ``random.Random(seed)`` (the agent's, the
driver's backoff, the workload) and the clock is virtual, so a seed
reproduces a run. The seed is printed first, and in the final line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import random
import resource
import sys
import time
import tracemalloc
from collections import Counter
from typing import Any

import trio
import trio.testing

import trio_mesos
from trio_mesos import Status
from trio_mesos._recordio import encode_record
from trio_mesos.testing import AckPolicy, FakeAgent, NotSubscribedError
from trio_mesos.v1 import executor_pb2, mesos_pb2

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

__all__ = ["SoakResult", "main", "run_soak"]

UPDATE = executor_pb2.Call.UPDATE
RUNNING, FINISHED = mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED
#: Virtual seconds without any progress after which the driver counts as stuck:
#: far longer than any single fault (a restart, a call timeout, a withheld ACK).
STUCK_AFTER = 900.0
#: Longest an acknowledgement is withheld, in virtual seconds.
MAX_WITHHOLD = 60.0


@dataclasses.dataclass
class SoakResult:
    """What a soak run did and found."""

    seed: int
    updates: int
    tasks: int
    lost: int = 0
    out_of_order: int = 0
    changed_on_repeat: int = 0
    unacknowledged: int = -1
    final_status: str = ""
    duplicates: int = 0
    faults: Counter[str] = dataclasses.field(default_factory=Counter)
    reconnects: int = 0
    subscriptions: int = 0
    max_outstanding: int = 0
    virtual_seconds: float = 0.0
    wall_seconds: float = 0.0
    driver_growth: int | None = None
    traced_peak: int | None = None
    peak_rss_mib: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        faults = ", ".join(f"{n} {kind}" for kind, n in sorted(self.faults.items()))
        memory = ""
        if self.traced_peak is not None:
            memory = f", traced peak {self.traced_peak / 2**20:.1f} MiB"
            memory += f", driver growth {self.driver_growth or 0} B"
        return (
            f"soak: {self.updates} updates, {self.tasks} tasks, seed {self.seed}: "
            f"{self.lost} lost, {self.out_of_order} out of order, "
            f"{self.changed_on_repeat} changed on repeat, "
            f"{self.unacknowledged} unacknowledged, {self.final_status}; "
            f"{self.duplicates} duplicates at the agent, {self.reconnects} reconnects, "
            f"{self.subscriptions} subscriptions; faults: {faults or 'none'}; "
            f"max {self.max_outstanding} outstanding{memory}, "
            f"peak RSS {self.peak_rss_mib:.0f} MiB; "
            f"virtual {self.virtual_seconds:.0f} s, wall {self.wall_seconds:.1f} s"
        )


class _Executor(trio_mesos.Executor):
    """Counts acknowledgements; everything else is a no-op."""

    def __init__(self) -> None:
        self.launched: set[str] = set()
        self.acknowledged_count = 0
        self.last_ack_at = 0.0
        self.changed = trio.lowlevel.ParkingLot()
        self.shutdowns = 0
        self.errors: list[str] = []

    async def launch_task(self, driver: Any, task: mesos_pb2.TaskInfo) -> None:
        self.launched.add(task.task_id.value)
        self.changed.unpark_all()

    async def acknowledged(self, driver: Any, task_id: mesos_pb2.TaskID, uuid: bytes) -> None:
        self.acknowledged_count += 1
        self.last_ack_at = trio.current_time()
        self.changed.unpark_all()

    async def shutdown(self, driver: Any) -> None:
        self.shutdowns += 1

    async def error(self, driver: Any, message: str) -> None:
        self.errors.append(message)


def _task(task_id: str) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name=f"soak {task_id}")
    task.task_id.value = task_id
    task.agent_id.value = "fake-agent-S0"
    return task


def _status(task_id: str, seq: int, last: bool) -> mesos_pb2.TaskStatus:
    result = mesos_pb2.TaskStatus(state=FINISHED if last else RUNNING)
    result.task_id.value = task_id
    result.message = str(seq)
    return result


async def _drop_before_202(stream: trio.abc.Stream, reply: bytes) -> bool:
    # The agent has processed the UPDATE; the executor never hears about it.
    await trio.lowlevel.checkpoint()
    return False


class _Soak:
    def __init__(
        self,
        *,
        updates: int,
        tasks: int,
        seed: int,
        window: int,
        fault_every: int,
        trace: bool,
    ) -> None:
        self.result = SoakResult(seed=seed, updates=updates, tasks=tasks)
        self.n_updates = updates
        self.n_tasks = tasks
        self.window = window
        self.fault_every = fault_every
        self.trace = trace
        self.rng = random.Random(seed)
        self.agent_rng = random.Random(self.rng.getrandbits(64))
        self.driver_rng = random.Random(self.rng.getrandbits(64))
        self.executor = _Executor()
        self.made: dict[bytes, tuple[str, int, int, str]] = {}  # uuid -> task, seq, state, msg
        self.sent = 0
        self.update_calls = 0
        self.progress_at = 0.0
        self.progress = trio.lowlevel.ParkingLot()
        self.faults_over = False
        self.withheld: dict[bytes, float] = {}

    # -- the agent's side ------------------------------------------------------------

    def _observe(self, item: Any) -> None:
        if getattr(item, "type", None) == UPDATE and getattr(item, "status_code", 0) == 202:
            self.update_calls += 1
            self._made_progress()

    def _made_progress(self) -> None:
        self.progress_at = trio.current_time()
        self.progress.unpark_all()

    async def _acks(self, agent: FakeAgent) -> None:
        """Acknowledge what the agent accepted: mostly soon, some late, some twice."""
        rng = self.agent_rng
        while True:
            await trio.sleep(rng.choice([0.0, 0.0, 0.001, 0.01, 0.1, 0.5, 1.0]))
            now = trio.current_time()
            for task_id, key in agent.pending_acks:
                release_at = self.withheld.get(key)
                if release_at is None and not self.faults_over and rng.random() < 0.01:
                    self.withheld[key] = release_at = now + rng.uniform(1.0, MAX_WITHHOLD)
                    self.result.faults["withheld ACK"] += 1
                if release_at is not None and release_at > now and not self.faults_over:
                    continue
                self.withheld.pop(key, None)
                try:
                    delivered = await agent.ack(key)
                except (KeyError, NotSubscribedError):
                    continue
                if delivered and not self.faults_over and rng.random() < 0.02:
                    self.result.faults["duplicate ACK"] += 1
                    event = executor_pb2.Event(type=executor_pb2.Event.ACKNOWLEDGED)
                    event.acknowledged.task_id.value = task_id
                    event.acknowledged.uuid = key
                    with contextlib.suppress(NotSubscribedError):
                        await agent.inject(encode_record(event.SerializeToString()))

    async def _faults(self, agent: FakeAgent) -> None:
        """One fault every ``fault_every`` accepted UPDATE calls, on average."""
        rng = self.agent_rng
        kinds = [
            ("dropped stream", 3),
            ("restart", 1),
            ("5xx", 3),
            ("202 lost", 2),
        ]
        names = [k for k, _ in kinds]
        weights = [w for _, w in kinds]
        next_at = rng.randint(1, 2 * self.fault_every)
        while not self.faults_over:
            while self.update_calls < next_at and not self.faults_over:
                await self.progress.park()
            if self.faults_over:
                return
            next_at = self.update_calls + rng.randint(1, 2 * self.fault_every)
            # The agent's own records of every request and event are the
            # test's memory, not the driver's: keep them from growing.
            agent.calls.clear()
            agent.events.clear()
            kind = rng.choices(names, weights)[0]
            if kind == "dropped stream":
                try:
                    await agent.drop_stream()
                except NotSubscribedError:
                    continue
            elif kind == "restart":
                await agent.restart(down=rng.uniform(0.0, 3.0), recovering=rng.uniform(0.0, 2.0))
                await agent.wait_recovered()
            elif kind == "5xx":
                code = rng.choice([500, 502, 503, 504])
                agent.fail_next(rng.randint(1, 5), code, "soak fault", calls=[UPDATE])
            else:
                agent.hijack_next(1, _drop_before_202, calls=[UPDATE], process=True)
            self.result.faults[kind] += 1

    # -- the executor's side ---------------------------------------------------------

    async def _produce(self, driver: trio_mesos.ExecutorDriver) -> None:
        rng = random.Random(self.rng.getrandbits(64))
        per_task = [self.n_updates // self.n_tasks] * self.n_tasks
        for i in range(self.n_updates % self.n_tasks):
            per_task[i] += 1
        next_seq = [1] * self.n_tasks
        open_tasks = [i for i in range(self.n_tasks) if per_task[i] > 0]
        while open_tasks:
            while self.sent - self.executor.acknowledged_count >= self.window:
                await self.executor.changed.park()
            pick = rng.randrange(len(open_tasks))
            index = open_tasks[pick]
            seq = next_seq[index]
            last = seq == per_task[index]
            task_id = f"task-{index:05d}"
            status = _status(task_id, seq, last)
            driver.send_status_update(status)
            self.sent += 1
            outstanding = self.sent - self.executor.acknowledged_count
            self.result.max_outstanding = max(self.result.max_outstanding, outstanding)
            next_seq[index] += 1
            if last:
                open_tasks[pick] = open_tasks[-1]
                open_tasks.pop()
            if self.sent % 64 == 0:
                await trio.lowlevel.checkpoint()

    async def _watchdog(self) -> None:
        while True:
            last = max(self.progress_at, self.executor.last_ack_at)
            await trio.sleep_until(last + STUCK_AFTER)
            if (
                trio.current_time()
                >= max(self.progress_at, self.executor.last_ack_at) + STUCK_AFTER
            ):
                raise RuntimeError(
                    f"stuck: no progress for {STUCK_AFTER:g} virtual seconds "
                    f"({self.sent} sent, {self.executor.acknowledged_count} acknowledged)"
                )

    # -- the run ---------------------------------------------------------------------

    async def run(self) -> SoakResult:
        agent = FakeAgent(
            checkpoint=True,
            ack_policy=AckPolicy.MANUAL,
            reregistration_timeout=10.0,
            recovery_timeout=900.0,
        )
        async with agent, trio.open_nursery() as nursery:
            agent.add_observer(self._observe)
            config = agent.executor_config(subscription_backoff_max=2.0)
            start = trio.current_time()
            async with trio_mesos.open_executor_driver(
                self.executor,
                config=config,
                open_stream=agent.connect,
                rng=self.driver_rng,
                stop_timeout=60.0,
            ) as driver:
                # Launch every task before the faults start: the driver needs
                # the task to accept updates for it.
                for index in range(self.n_tasks):
                    await agent.launch(_task(f"task-{index:05d}"))
                while len(self.executor.launched) < self.n_tasks:
                    await self.executor.changed.park()
                if self.trace:
                    tracemalloc.start()
                    before = _driver_bytes(agent)
                self.progress_at = trio.current_time()
                nursery.start_soon(self._watchdog)
                nursery.start_soon(self._acks, agent)
                nursery.start_soon(self._faults, agent)
                await self._produce(driver)
                # The faults stop; every withheld ACK is released; drain.
                self.faults_over = True
                self.progress.unpark_all()
                while self.executor.acknowledged_count < self.sent:
                    await self.executor.changed.park()
                stats = driver.statistics()
                self.result.unacknowledged = stats.unacknowledged_updates
                self.result.reconnects = stats.reconnects
                self.result.subscriptions = stats.subscriptions
                if stats.unacknowledged_tasks:
                    self.result.problems.append(
                        f"{stats.unacknowledged_tasks} tasks still unacknowledged"
                    )
                if self.trace:
                    _, peak = tracemalloc.get_traced_memory()
                    self.result.traced_peak = peak
                    self.result.driver_growth = _driver_bytes(agent) - before
                    tracemalloc.stop()
                driver.stop()
                final = await driver.join()
            self.result.final_status = final.name
            self.result.virtual_seconds = trio.current_time() - start
            self._check(agent, final)
            nursery.cancel_scope.cancel()
        return self.result

    def _check(self, agent: FakeAgent, final: Status) -> None:
        result = self.result
        made = {}
        for status in agent.updates():
            if status.source != mesos_pb2.TaskStatus.SOURCE_EXECUTOR:
                result.problems.append(
                    f"the agent generated {mesos_pb2.TaskState.Name(status.state)} for "
                    f"{status.task_id.value}: {status.message}"
                )
                continue
            key = status.uuid
            seen = (status.task_id.value, status.state, status.message)
            if key in made:
                result.duplicates += 1
                if made[key] != seen:
                    result.changed_on_repeat += 1
                continue
            made[key] = seen
        if len(made) != self.sent:
            result.lost = self.sent - len(made)
        # Per task, first arrivals in order 1, 2, 3, ...
        expected: dict[str, int] = {}
        for task_id, _state, message in made.values():
            want = expected.get(task_id, 1)
            if int(message) != want:
                result.out_of_order += 1
            expected[task_id] = int(message) + 1
        arrived = sum(n - 1 for n in expected.values())
        result.lost = max(result.lost, self.n_updates - arrived)
        for task_id in expected:
            if agent.task_state(task_id) != FINISHED:
                result.problems.append(f"{task_id} is not FINISHED at the agent")
                break
        if result.lost:
            result.problems.append(f"{result.lost} updates lost")
        if result.out_of_order:
            result.problems.append(f"{result.out_of_order} updates out of order")
        if result.changed_on_repeat:
            result.problems.append(f"{result.changed_on_repeat} repeats differ")
        if result.unacknowledged:
            result.problems.append(f"{result.unacknowledged} updates unacknowledged")
        if final is not Status.DRIVER_STOPPED:
            result.problems.append(f"the driver ended {final.name}")
        if result.max_outstanding > self.window:
            result.problems.append(
                f"{result.max_outstanding} updates outstanding, more than {self.window}"
            )
        if self.executor.shutdowns:
            result.problems.append("the executor was shut down")


def _driver_bytes(agent: FakeAgent) -> int:
    """Bytes currently allocated by the driver's own modules.

    The FakeAgent's records (requests and events it keeps, some of them
    allocated by trio_mesos code) are cleared first: they are the test's
    memory, not the driver's.
    """
    agent.calls.clear()
    agent.events.clear()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, "*trio_mesos/_*.py")]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


def run_soak(
    *,
    updates: int,
    tasks: int,
    seed: int,
    window: int = 400,
    fault_every: int = 300,
    trace: bool = False,
    virtual_limit: float = math.inf,
) -> SoakResult:
    """Run one soak in virtual time; return what it found (never raises for a failed check)."""
    soak = _Soak(
        updates=updates,
        tasks=tasks,
        seed=seed,
        window=window,
        fault_every=fault_every,
        trace=trace,
    )
    clock = trio.testing.MockClock(autojump_threshold=0)
    started = time.perf_counter()
    # trio randomizes the order of runnable tasks (it reverses each batch at
    # random) with a generator of its own: seed it too, for a reproducible run.
    trio._core._run._r.seed(seed)

    async def bounded() -> SoakResult:
        with trio.fail_after(virtual_limit):
            return await soak.run()

    # The faults make the driver warn thousands of times: expected here, and
    # records kept by a log handler (pytest's) would count as driver memory.
    quiet = logging.getLogger("trio_mesos")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        result = trio.run(bounded, clock=clock)
    except (Exception, BaseExceptionGroup) as exc:  # a stuck or crashed run is a finding
        result = soak.result
        result.problems.append(f"the run failed: {exc!r}")
        if tracemalloc.is_tracing():
            tracemalloc.stop()
    finally:
        quiet.setLevel(level)
    result.wall_seconds = time.perf_counter() - started
    result.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--window", type=int, default=400, help="most unacknowledged updates")
    parser.add_argument("--fault-every", type=int, default=300, help="accepted UPDATEs per fault")
    parser.add_argument("--tracemalloc", action="store_true", help="measure memory (slower)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    print(f"soak: seed {seed} ({args.updates} updates across {args.tasks} tasks)", flush=True)
    result = run_soak(
        updates=args.updates,
        tasks=args.tasks,
        seed=seed,
        window=args.window,
        fault_every=args.fault_every,
        trace=args.tracemalloc,
    )
    for problem in result.problems:
        print(f"soak: FAILED: {problem}")
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
