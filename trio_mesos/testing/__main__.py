"""``python -m trio_mesos.testing``: run an executor against a fake Mesos agent.

Starts a :class:`~trio_mesos.testing.FakeAgent` on 127.0.0.1, spawns the
executor command with exactly the environment a real agent gives, launches the
tasks given on the command line once it subscribed, and prints every call and
event as it happens, one line each::

    -> SUBSCRIBE (0 unacknowledged tasks, 0 updates) 200
    <- SUBSCRIBED
    <- LAUNCH task-1
    -> UPDATE task-1 TASK_RUNNING 202
    <- ACKNOWLEDGED task-1 6f0c...

Lines starting with ``#`` are the tool's own remarks. Once every task is
terminal (or after ``--shutdown-after``) it sends SHUTDOWN and waits for the
executor to exit (at most the shutdown grace period, then the agent kills it).

The command is read as the caller means it: the program is looked up in the
caller's ``PATH`` (the executor's own ``PATH`` is the agent's default), and
later arguments that name existing files relative to the caller's directory
are made absolute, since the executor runs in its sandbox.

Exit status: 0 when every task reached a terminal state reported by the
executor and the executor exited; 1 otherwise; 2 for usage errors; 3 when
``--timeout`` expired; 127 when the program cannot be found; 130 after Ctrl-C
(the executor is killed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import trio

from .._messages import is_terminal
from ..v1 import executor_pb2, mesos_pb2
from ._fake_agent import FakeAgent, RecordedCall, SentEvent

Call = executor_pb2.Call
Event = executor_pb2.Event

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_NOT_FOUND = 127
EXIT_INTERRUPTED = 130
PROG = "python -m trio_mesos.testing"


class CommandNotFound(Exception):
    """The executor program cannot be run; the message says what was looked up where."""


def resolve_command(argv: Sequence[str], *, path: str | None, cwd: str) -> list[str]:
    """``argv`` as the caller means it, for a process that starts in its sandbox.

    The program is looked up in ``path`` (the caller's ``PATH``) unless it
    names a file (has a ``/``), which is taken relative to ``cwd``; later
    arguments that name existing files or folders relative to ``cwd`` become
    absolute; the others are left alone.

    Raises:
        CommandNotFound: no executable program by that name.
    """
    program, *rest = argv
    if os.sep in program:
        found = os.path.normpath(os.path.join(cwd, program))
        if not (os.path.isfile(found) and os.access(found, os.X_OK)):
            raise CommandNotFound(f"cannot run {program!r}: no executable file {found}")
    else:
        which = shutil.which(program, path=path)
        if which is None:
            raise CommandNotFound(f"cannot run {program!r}: not found in PATH={path or ''}")
        found = os.path.normpath(os.path.join(cwd, which))

    def absolute(arg: str) -> str:
        full = os.path.join(cwd, arg)
        return full if not os.path.isabs(arg) and os.path.exists(full) else arg

    return [found, *(absolute(arg) for arg in rest)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Run a Mesos executor against a fake agent on 127.0.0.1 and print every "
            "call and event of the v1 executor HTTP API."
        ),
        epilog="Example: python -m trio_mesos.testing --task t1='echo hi' -- ./my-executor",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument(
        "--checkpoint", action="store_true", help="checkpointing framework (MESOS_CHECKPOINT=1)"
    )
    parser.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="NAME=SHELLCMD",
        help="a task whose command is SHELLCMD (run with sh -c); repeatable",
    )
    parser.add_argument("--group", action="store_true", help="launch all tasks in one LAUNCH_GROUP")
    parser.add_argument(
        "--kill",
        action="append",
        default=[],
        metavar="NAME",
        help="kill task NAME once it is running; repeatable",
    )
    parser.add_argument(
        "--message",
        action="append",
        default=[],
        metavar="TEXT",
        help="send a framework message after launching; repeatable",
    )
    parser.add_argument(
        "--shutdown-after",
        type=float,
        metavar="S",
        help="send SHUTDOWN S seconds after the executor subscribed, even if tasks still run",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=5.0,
        metavar="S",
        help="shutdown grace period (MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD), default 5",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="give up (and kill the executor) after S seconds, default 60",
    )
    parser.add_argument("executor", nargs="+", metavar="EXECUTOR ARGV", help="after --")
    return parser


def _tasks(specs: Sequence[str], agent_id: str) -> list[mesos_pb2.TaskInfo]:
    tasks = []
    for spec in specs:
        name, sep, command = spec.partition("=")
        if not sep or not name:
            raise ValueError(f"--task expects NAME=SHELLCMD, got {spec!r}")
        task = mesos_pb2.TaskInfo(name=name)
        task.task_id.value = name
        task.agent_id.value = agent_id
        for resource, value in (("cpus", 0.1), ("mem", 32.0)):
            entry = task.resources.add(name=resource, type=mesos_pb2.Value.SCALAR)
            entry.scalar.value = value
        task.command.shell = True
        task.command.value = command
        tasks.append(task)
    names = [t.task_id.value for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError("task names must be unique")
    return tasks


class _Printer:
    """Prints each RecordedCall and SentEvent as one line."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.start: float | None = None
        #: Set when the output went away (e.g. piped into ``head``).
        self.broken = False

    def _emit(self, text: str, fields: dict[str, Any]) -> None:
        line = json.dumps(fields) if self.as_json else text
        if self.broken:
            return
        try:
            print(line, file=self.out, flush=True)
        except BrokenPipeError:
            self.broken = True

    def note(self, text: str, **fields: Any) -> None:
        """Print a remark of the tool itself (``# ...``)."""
        self._emit(f"# {text}", {"note": text, **fields})

    def __call__(self, item: RecordedCall | SentEvent) -> None:
        now = trio.current_time()
        if self.start is None:
            self.start = now
        elapsed = round(item.time - self.start, 3)
        if isinstance(item, RecordedCall):
            self._call(item, elapsed)
        else:
            self._event(item, elapsed)

    def _call(self, item: RecordedCall, elapsed: float) -> None:
        call = item.call
        fields: dict[str, Any] = {"dir": "->", "time": elapsed, "status": item.status_code}
        if call is None or item.type is None:
            words = [item.method, item.path]
            fields.update(method=item.method, path=item.path)
        else:
            kind = Call.Type.Name(call.type)
            fields["type"] = kind
            words = [kind]
            if call.type == Call.SUBSCRIBE:
                tasks = len(call.subscribe.unacknowledged_tasks)
                updates = len(call.subscribe.unacknowledged_updates)
                words.append(f"({tasks} unacknowledged tasks, {updates} updates)")
                fields.update(unacknowledged_tasks=tasks, unacknowledged_updates=updates)
            elif call.type == Call.UPDATE:
                status = call.update.status
                state = mesos_pb2.TaskState.Name(status.state)
                words += [status.task_id.value, state]
                fields.update(task_id=status.task_id.value, state=state)
                if status.message:
                    words.append(json.dumps(status.message))
                    fields["message"] = status.message
            elif call.type == Call.MESSAGE:
                data = call.message.data.decode("utf-8", "replace")
                words.append(json.dumps(data))
                fields["data"] = data
        words.append(str(item.status_code))
        if item.status_code >= 400 and item.response_body:
            body = item.response_body.decode("utf-8", "replace")
            words.append(body)
            fields["body"] = body
        self._emit("-> " + " ".join(words), fields)

    def _event(self, item: SentEvent, elapsed: float) -> None:
        fields: dict[str, Any] = {"dir": "<-", "time": elapsed, "delivered": item.delivered}
        event = item.event
        if event is None:
            words = ["(raw)", repr(item.chunk[:60])]
            fields["raw"] = item.chunk.decode("latin-1")
        else:
            kind = Event.Type.Name(event.type)
            words = [kind]
            fields["type"] = kind
            if event.type == Event.LAUNCH:
                words.append(event.launch.task.task_id.value)
                fields["task_ids"] = [event.launch.task.task_id.value]
            elif event.type == Event.LAUNCH_GROUP:
                ids = [t.task_id.value for t in event.launch_group.task_group.tasks]
                words += ids
                fields["task_ids"] = ids
            elif event.type == Event.KILL:
                words.append(event.kill.task_id.value)
                fields["task_id"] = event.kill.task_id.value
            elif event.type == Event.ACKNOWLEDGED:
                ack = event.acknowledged
                words += [ack.task_id.value, ack.uuid.hex()]
                fields.update(task_id=ack.task_id.value, uuid=ack.uuid.hex())
            elif event.type == Event.MESSAGE:
                data = event.message.data.decode("utf-8", "replace")
                words.append(json.dumps(data))
                fields["data"] = data
        if not item.delivered:
            words.append("(lost)")
        self._emit("<- " + " ".join(words), fields)


def _reported_terminal(agent: FakeAgent, task_id: str) -> str | None:
    """The terminal state the executor reported for ``task_id``, or None."""
    for status in agent.updates(task_id):
        if status.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR and is_terminal(status.state):
            return mesos_pb2.TaskState.Name(status.state)
    return None


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    """The whole session; Ctrl-C (SIGINT) ends it with the executor killed."""
    printer = _Printer(out, args.json)
    outcome = EXIT_INTERRUPTED
    interrupted = False
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def interrupt() -> None:
                nonlocal interrupted
                async for _ in signals:
                    interrupted = True
                    nursery.cancel_scope.cancel()

            nursery.start_soon(interrupt)
            outcome = await _session(args, printer)
            nursery.cancel_scope.cancel()
    if interrupted:
        # Leaving spawn_executor's block killed the executor's process group.
        printer.note("interrupted: executor killed")
        return EXIT_INTERRUPTED
    return outcome


async def _session(args: argparse.Namespace, printer: _Printer) -> int:
    async with FakeAgent(checkpoint=args.checkpoint, shutdown_grace_period=args.grace) as agent:
        tasks = _tasks(args.task, agent.agent_id)
        agent.add_observer(printer)
        port = await agent.listen_tcp()
        printer.note(f"fake agent on 127.0.0.1:{port}", port=port)
        outcome = EXIT_TIMEOUT
        with trio.move_on_after(args.timeout):
            async with agent.spawn_executor(args.executor) as process:
                printer.note(
                    f"executor pid {process.pid}, sandbox {process.sandbox}",
                    pid=process.pid,
                    sandbox=str(process.sandbox),
                )
                outcome = await _drive(agent, process, tasks, args, printer)
                if outcome != EXIT_OK:
                    _print_stderr(process.stderr_path, printer)
        if outcome == EXIT_TIMEOUT:
            printer.note(f"timeout after {args.timeout}s: executor killed")
        for task in tasks:
            task_id = task.task_id.value
            state = agent.task_state(task_id)
            name = "never launched"
            if state is not None:
                name = mesos_pb2.TaskState.Name(state)  # type: ignore[arg-type]
            printer.note(f"task {task_id}: {name}", task_id=task_id, state=name)
        return outcome


def _print_stderr(path: Any, printer: _Printer) -> None:
    try:
        lines = path.read_text(errors="replace").splitlines()[-10:]
    except OSError:
        return
    for line in lines:
        printer.note(f"executor stderr: {line}")


async def _drive(
    agent: FakeAgent,
    process: Any,
    tasks: list[mesos_pb2.TaskInfo],
    args: argparse.Namespace,
    printer: _Printer,
) -> int:
    exited = trio.Event()
    task_ids = [t.task_id.value for t in tasks]

    async def watch_exit() -> None:
        code = await process.wait()
        printer.note(f"executor exited with status {code}", returncode=code)
        exited.set()

    async def first_of(*waits: Any) -> None:
        async with trio.open_nursery() as nursery:
            for wait in waits:

                async def run(wait: Any = wait) -> None:
                    await wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(run)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_exit)
        await first_of(agent.wait_subscribed, exited.wait)
        if agent.subscriptions and not exited.is_set():
            await _launch(agent, tasks, args, nursery)

            async def all_terminal() -> None:
                await agent.wait_terminal(*task_ids)

            async def shutdown_time() -> None:
                await trio.sleep(args.shutdown_after)

            waits: list[Any] = [exited.wait, all_terminal]
            if args.shutdown_after is not None:
                waits.append(shutdown_time)
            await first_of(*waits)
            if not exited.is_set() and agent.subscribed:
                await agent.shutdown()
        else:
            printer.note("executor exited before subscribing")
        # The agent destroys the executor after the grace period; a little more
        # for it to be reaped.
        with trio.move_on_after(args.grace + 1.0):
            await exited.wait()
        nursery.cancel_scope.cancel()
    if not exited.is_set():
        printer.note("executor did not exit")
        return EXIT_FAILED
    missing = [t for t in task_ids if _reported_terminal(agent, t) is None]
    if missing:
        printer.note(f"no terminal update from the executor for: {', '.join(missing)}")
        return EXIT_FAILED
    return EXIT_OK


async def _launch(
    agent: FakeAgent,
    tasks: list[mesos_pb2.TaskInfo],
    args: argparse.Namespace,
    nursery: trio.Nursery,
) -> None:
    if tasks and args.group:
        group = mesos_pb2.TaskGroupInfo()
        group.tasks.extend(tasks)
        await agent.launch_group(group)
    else:
        for task in tasks:
            await agent.launch(task)
    for text in args.message:
        await agent.message(text.encode())
    for name in args.kill:

        async def kill_when_running(name: str = name) -> None:
            await agent.wait_for_update(name, mesos_pb2.TASK_RUNNING)
            await agent.kill(name)

        nursery.start_soon(kill_when_running)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit status (see the module docstring)."""
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("timeout", "grace"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name} must be > 0")
    try:
        names = {t.task_id.value for t in _tasks(args.task, "check")}
    except ValueError as exc:
        parser.error(str(exc))
    unknown = sorted(set(args.kill) - names)
    if unknown:
        parser.error(f"--kill names unknown tasks: {', '.join(unknown)}")
    try:
        args.executor = resolve_command(args.executor, path=os.environ.get("PATH"), cwd=os.getcwd())
    except CommandNotFound as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    stream = out or sys.stdout
    try:
        return trio.run(_run, args, stream)
    except KeyboardInterrupt:  # before the signal receiver was installed
        return EXIT_INTERRUPTED
    finally:
        if out is None:
            _quiet_broken_stdout()


def _quiet_broken_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the final flush cannot fail."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
