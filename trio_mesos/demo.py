"""``trio-mesos demo`` (and ``make demo``): the command executor at work, live.

What it does, in a few seconds and without a Mesos cluster:

1. starts a :class:`~trio_mesos.testing.FakeAgent` listening on 127.0.0.1,
   whose framework has the ``TASK_KILLING_STATE`` capability;
2. has it spawn the command executor (``python -m trio_mesos.command_executor
   --echo-messages``) as a real subprocess, with exactly the environment a
   Mesos agent gives an executor, in a temporary sandbox;
3. once the executor has subscribed, launches the sample tasks: ``hello``
   (succeeds; its greeting comes from ``CommandInfo.environment``), ``fail``
   (exits with status 3), ``stubborn`` (ignores SIGTERM; killed with a 1 s
   kill policy, so it gets SIGKILL), and a task group of two (one of them a
   ``shell=false`` command), and sends the executor a framework message,
   which it echoes back;
4. shows every task's state as the executor reports it -- a table redrawn in
   place when stdout is a terminal, else one line per change;
5. once every task has ended, sends SHUTDOWN, waits for the executor to exit
   by itself, and prints a summary with each task's output.

Exit status: 0 when every task ended in its expected state (reported by the
executor) and the executor exited with status 0; 1 otherwise (the executor's
last log lines are printed); 2 for a usage error.

It uses only public names of :mod:`trio_mesos`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import getpass
import math
import os
import pathlib
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TextIO

import trio

import trio_mesos
from trio_mesos.testing import ExecutorProcess, FakeAgent, RecordedCall, SentEvent
from trio_mesos.v1 import executor_pb2, mesos_pb2

__all__ = ["EXECUTOR_ARGV", "Sample", "main", "run_demo", "samples"]

Call = executor_pb2.Call
Event = executor_pb2.Event

#: The executor the demo runs (with the interpreter running the demo).
EXECUTOR_ARGV: tuple[str, ...] = (
    sys.executable,
    "-m",
    "trio_mesos.command_executor",
    "--echo-messages",
)
#: The framework message the demo sends (the executor echoes it).
MESSAGE = b"hello, executor"
SHUTDOWN_GRACE_PERIOD = 5.0
DEFAULT_TIMEOUT = 25.0


@dataclasses.dataclass
class Sample:
    """A sample task and what should become of it."""

    task: mesos_pb2.TaskInfo
    #: What the demo shows as the task's command.
    what: str
    #: The terminal state the executor should report.
    expected: int
    #: Launched in the one LAUNCH_GROUP (else with its own LAUNCH).
    group: bool = False
    #: Seconds after TASK_RUNNING at which the demo kills it; None: never.
    kill_after: float | None = None

    @property
    def task_id(self) -> str:
        return self.task.task_id.value


def _task(task_id: str, agent_id: str) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name=f"demo task {task_id}")
    task.task_id.value = task_id
    task.agent_id.value = agent_id
    for name, value in (("cpus", 0.1), ("mem", 32.0)):
        resource = task.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = value
    return task


def _shell(task_id: str, agent_id: str, command: str) -> mesos_pb2.TaskInfo:
    task = _task(task_id, agent_id)
    task.command.value = command
    return task


def samples(agent_id: str) -> list[Sample]:
    """The demo's tasks."""
    hello = _shell("hello", agent_id, 'echo "hello, $GREETING"; sleep 1')
    hello.command.environment.variables.add(name="GREETING", value="world")
    fail = _shell("fail", agent_id, "sleep 1; echo 'cannot go on' >&2; exit 3")
    stubborn = _shell("stubborn", agent_id, "trap '' TERM; echo 'SIGTERM? no.'; sleep 60")
    stubborn.kill_policy.grace_period.nanoseconds = 1_000_000_000
    fetch = _task("group-fetch", agent_id)
    fetch.command.shell = False
    fetch.command.value = "sleep"
    fetch.command.arguments.extend(["sleep", "1"])
    build = _shell("group-build", agent_id, "sleep 1.5; echo built")
    return [
        Sample(hello, 'echo "hello, $GREETING"', mesos_pb2.TASK_FINISHED),
        Sample(fail, "exit 3", mesos_pb2.TASK_FAILED),
        Sample(stubborn, "ignores SIGTERM; killed", mesos_pb2.TASK_KILLED, kill_after=0.5),
        Sample(fetch, "argv ['sleep', '1']", mesos_pb2.TASK_FINISHED, group=True),
        Sample(build, "sleep 1.5; echo built", mesos_pb2.TASK_FINISHED, group=True),
    ]


def _state_name(state: int) -> str:
    return mesos_pb2.TaskState.Name(state)  # type: ignore[arg-type]


def _short(state: int) -> str:
    return _state_name(state).removeprefix("TASK_")


@dataclasses.dataclass
class _Row:
    sample: Sample
    states: list[int] = dataclasses.field(default_factory=list)
    message: str = ""
    source_executor_terminal: int | None = None


class _Board:
    """What the demo shows: a table redrawn in place (live) or a line per change."""

    def __init__(self, out: TextIO, items: Sequence[Sample], live: bool) -> None:
        self.out = out
        self.live = live
        self.rows = {sample.task_id: _Row(sample) for sample in items}
        self.notes: list[str] = []
        self.status = "starting the executor"
        self.start = trio.current_time()
        self._drawn = 0

    def elapsed(self) -> float:
        return trio.current_time() - self.start

    def _color(self, text: str, state: int | None) -> str:
        if not self.live or state is None:
            return text
        codes: dict[int, str] = {
            mesos_pb2.TASK_FINISHED: "32",
            mesos_pb2.TASK_FAILED: "31",
            mesos_pb2.TASK_KILLED: "33",
            mesos_pb2.TASK_KILLING: "33",
            mesos_pb2.TASK_RUNNING: "36",
        }
        code = codes.get(state)
        return f"\x1b[{code}m{text}\x1b[0m" if code else text

    def _print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # -- what happened -------------------------------------------------------------------

    def observe(self, item: RecordedCall | SentEvent) -> None:
        """FakeAgent observer: every call and event as it happens."""
        if isinstance(item, RecordedCall):
            call = item.call
            if call is None:
                return
            if call.type == Call.SUBSCRIBE and item.status_code == 200:
                self.note("the executor subscribed")
            elif call.type == Call.UPDATE and item.status_code == 202:
                status = call.update.status
                self.task_state(status)
            elif call.type == Call.MESSAGE and item.status_code == 202:
                text = call.message.data.decode("utf-8", "replace")
                self.note(f"framework message from the executor: {text!r}")
        elif item.event is not None and item.delivered:
            event = item.event
            if event.type == Event.KILL:
                self.note(f"KILL {event.kill.task_id.value} sent")
            elif event.type == Event.SHUTDOWN:
                self.note("SHUTDOWN sent")
            elif event.type == Event.MESSAGE:
                text = event.message.data.decode("utf-8", "replace")
                self.note(f"framework message to the executor: {text!r}")

    def task_state(self, status: mesos_pb2.TaskStatus) -> None:
        row = self.rows.get(status.task_id.value)
        if row is None:
            return
        row.states.append(status.state)
        row.message = status.message
        if (
            trio_mesos.is_terminal(status.state)
            and status.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR
            and row.source_executor_terminal is None
        ):
            row.source_executor_terminal = status.state
        if self.live:
            self.draw()
        else:
            message = f"  ({status.message})" if status.message else ""
            self._print(
                f"{self.elapsed():6.2f}s  {row.sample.task_id:<12} "
                f"{_state_name(status.state)}{message}"
            )

    def note(self, text: str) -> None:
        if self.live:
            self.notes.append(f"{self.elapsed():6.2f}s  {text}")
            self.draw()
        else:
            self._print(f"{self.elapsed():6.2f}s  # {text}")

    def set_status(self, text: str) -> None:
        self.status = text
        if self.live:
            self.draw()

    # -- drawing ---------------------------------------------------------------------------

    def _table(self) -> list[str]:
        lines = [f"  {'task':<12} {'command':<26} {'states':<40} message"]
        for row in self.rows.values():
            states = " -> ".join(_short(s) for s in row.states) or "(launching)"
            last = row.states[-1] if row.states else None
            padded = f"{states:<40}"
            lines.append(
                f"  {row.sample.task_id:<12} {row.sample.what[:26]:<26} "
                f"{self._color(padded, last)} {row.message}"
            )
        return lines

    def draw(self) -> None:
        """Redraw the table in place (live mode only)."""
        if not self.live:
            return
        lines = [*self._table(), ""]
        lines += self.notes[-6:]
        lines.append(f"{self.elapsed():6.2f}s  {self.status}")
        erase = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self.out.write(erase + "\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)

    def finish(self) -> None:
        """Leave the live table as it is; later output goes below it."""
        self.draw()
        self._drawn = 0


async def _first_of(*waits: Callable[[], Awaitable[object]]) -> None:
    async with trio.open_nursery() as nursery:
        for wait in waits:

            async def run(wait: Callable[[], Awaitable[object]] = wait) -> None:
                await wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(run)


async def _drive(
    agent: FakeAgent, process: ExecutorProcess, items: Sequence[Sample], board: _Board
) -> int | None:
    """Launch, kill, shut down; return the executor's exit status (None: still running)."""
    exited = trio.Event()

    async def watch_exit() -> None:
        await process.wait()
        exited.set()

    async def kill_later(sample: Sample, delay: float) -> None:
        await agent.wait_for_update(sample.task_id, mesos_pb2.TASK_RUNNING)
        await trio.sleep(delay)
        await agent.kill(sample.task_id)

    async def tick() -> None:
        while True:
            await trio.sleep(0.25)
            board.draw()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_exit)
        if board.live:
            nursery.start_soon(tick)
        await _first_of(agent.wait_subscribed, exited.wait)
        if not exited.is_set():
            board.set_status("running the tasks")
            for sample in items:
                if not sample.group:
                    await agent.launch(sample.task)
            group = mesos_pb2.TaskGroupInfo()
            group.tasks.extend(s.task for s in items if s.group)
            if group.tasks:
                await agent.launch_group(group)
            for sample in items:
                if sample.kill_after is not None:
                    nursery.start_soon(kill_later, sample, sample.kill_after)
            await agent.message(MESSAGE)

            async def all_terminal() -> None:
                await agent.wait_terminal(*(s.task_id for s in items))

            await _first_of(all_terminal, exited.wait)
            if not exited.is_set():
                board.set_status("every task has ended: shutting the executor down")
                await agent.shutdown()
                with trio.move_on_after(SHUTDOWN_GRACE_PERIOD + 1.0):
                    await exited.wait()
        nursery.cancel_scope.cancel()
    if process.returncode is None:
        board.set_status("the executor is still running")
    else:
        board.set_status(f"the executor exited with status {process.returncode}")
    return process.returncode


def _read_tail(path: pathlib.Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def _summary(
    out: TextIO,
    board: _Board,
    returncode: int | None,
    outputs: dict[str, list[str]],
    executor_log: list[str],
    timed_out: bool,
) -> int:
    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    say()
    say(f"Summary after {board.elapsed():.1f} s")
    say(f"  {'task':<12} {'expected':<15} {'reported':<15}     states")
    bad = 0
    for row in board.rows.values():
        got = row.source_executor_terminal
        ok = got == row.sample.expected
        bad += not ok
        states = " -> ".join(_short(s) for s in row.states) or "-"
        say(
            f"  {row.sample.task_id:<12} {_state_name(row.sample.expected):<15} "
            f"{(_state_name(got) if got is not None else 'nothing'):<15} "
            f"{'ok  ' if ok else 'FAIL'} {states}"
        )
    for task_id, lines in outputs.items():
        for line in lines:
            say(f"  {task_id} output: {line}")
    if timed_out:
        say("  the demo timed out")
    if returncode is None:
        say("  the executor did not exit by itself")
    elif returncode == 0:
        say("  the executor exited with status 0 after SHUTDOWN")
    else:
        say(f"  the executor exited with status {returncode}")
    failed = bad or returncode != 0 or timed_out
    if failed:
        if executor_log:
            say("  the executor's last log lines:")
            for line in executor_log:
                say(f"    {line}")
        say(f"FAILED: {bad} task(s) did not end as expected" if bad else "FAILED")
        return 1
    say(f"Every task ended as expected ({len(board.rows)} tasks).")
    return 0


def _framework_info() -> mesos_pb2.FrameworkInfo:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "root"
    info = mesos_pb2.FrameworkInfo(user=user, name="trio-mesos demo")
    info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE)
    return info


async def run_demo(
    out: TextIO,
    *,
    live: bool = False,
    time_limit: float = DEFAULT_TIMEOUT,
    items: Sequence[Sample] | None = None,
    executor_argv: Sequence[str] = EXECUTOR_ARGV,
) -> int:
    """Run the demo, writing to ``out``; return the exit status (see the module docstring).

    ``items`` replaces the sample tasks (built for agent id ``demo-agent``).
    """
    agent_id = "demo-agent"
    tasks = list(items) if items is not None else samples(agent_id)
    print(
        "trio-mesos demo: the command executor (python -m trio_mesos.command_executor) runs "
        f"{len(tasks)} tasks under a fake Mesos agent",
        file=out,
        flush=True,
    )
    async with FakeAgent(
        agent_id=agent_id,
        executor_id="trio-mesos-demo",
        framework_info=_framework_info(),
        shutdown_grace_period=SHUTDOWN_GRACE_PERIOD,
    ) as agent:
        port = await agent.listen_tcp()
        board = _Board(out, tasks, live)
        returncode: int | None = None
        outputs: dict[str, list[str]] = {}
        executor_log: list[str] = []
        timed_out = True
        with trio.move_on_after(time_limit):
            async with agent.spawn_executor(executor_argv) as process:
                print(
                    f"fake agent on 127.0.0.1:{port}; executor pid {process.pid}; "
                    f"sandbox {process.sandbox}",
                    file=out,
                    flush=True,
                )
                remove = agent.add_observer(board.observe)
                board.draw()
                try:
                    returncode = await _drive(agent, process, tasks, board)
                    timed_out = False
                finally:
                    remove()
                    board.finish()
                    for sample in tasks:
                        for stream in ("stdout", "stderr"):
                            task_sandbox = process.sandbox / "tasks" / sample.task_id
                            lines = _read_tail(task_sandbox / stream, 3)
                            if lines:
                                outputs[f"{sample.task_id}.{stream}"] = lines
                    executor_log = _read_tail(process.stderr_path, 15)
        return _summary(out, board, returncode, outputs, executor_log, timed_out)


def main(argv: Sequence[str] | None = None) -> int:
    """``trio-mesos demo [--plain] [--timeout S]``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="trio-mesos demo",
        description="Run the command executor against a fake Mesos agent and show its tasks.",
    )
    parser.add_argument(
        "--plain", action="store_true", help="one line per state change, even on a terminal"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"give up after S seconds (default {DEFAULT_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        parser.error("--timeout must be a positive number")
    out = sys.stdout
    live = not args.plain and out.isatty() and os.environ.get("TERM", "dumb") != "dumb"
    try:
        return trio.run(functools.partial(run_demo, out, live=live, time_limit=args.timeout))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
