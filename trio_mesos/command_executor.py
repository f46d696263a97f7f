"""The command executor: runs each task's command, as Mesos's own executors do.

Run it as ``python -m trio_mesos.command_executor`` or with the console script
``trio-mesos-executor``. It stands in for both of Mesos's built-in executors:

* **the command executor** (``mesos-executor``): one ``LAUNCH`` of a task
  whose executor id is the task id;
* **the default executor** (``mesos-default-executor``): ``LAUNCH_GROUP``
  with N tasks;
* and it serves as a **custom executor** (``ExecutorInfo.type = CUSTOM``,
  any number of ``LAUNCH`` events).

It is written only on the public API of :mod:`trio_mesos`
(:func:`~trio_mesos.open_executor_driver`, :class:`~trio_mesos.Executor`,
:mod:`trio_mesos.v1`), so it is also an example of a complete executor.

Command line::

    trio-mesos-executor [--echo-messages] [--exit-when-done | --stay-up] [-v | -q]

The ``--launcher_dir=DIR`` argument a Mesos agent passes to its executors is
accepted and ignored; other unknown arguments are ignored with a warning.

What a task runs
----------------
* ``TaskInfo.command`` with Mesos's semantics: ``shell`` (the default, also
  when unset) runs ``/bin/sh -c <value>``; ``shell=false`` executes ``value``
  (looked up in the task's ``PATH`` when it has no ``/``) with argv =
  ``arguments``, so ``arguments[0]`` is argv[0], as in Mesos (argv =
  ``[value]`` when ``arguments`` is empty).
* **Custom-executor mode**: a task without ``command`` but with ``data`` runs
  ``/bin/sh -c <data decoded as UTF-8>`` (Mesos refuses tasks that have both
  an executor and a command, so the realmesos harness's ``custom`` mode sends
  the shell command this way). A task with neither fails (``TASK_FAILED``).
* Environment: the executor's own environment, minus
  ``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``, with the ``VALUE`` variables of
  ``CommandInfo.environment`` set over it. ``SECRET`` variables are skipped
  with a warning (no secret resolver here).
* Working directory: the sandbox (``MESOS_SANDBOX``, else
  ``MESOS_DIRECTORY``, else the executor's working directory).
* Each task runs in its own session and process group (``setsid``), so a
  signal reaches the task and every process it started.
* Output: stdout and stderr of task ``T`` go to ``<sandbox>/T.stdout`` and
  ``<sandbox>/T.stderr`` (characters other than letters, digits, ``.``,
  ``_`` and ``-`` in the task id become ``_``). The sandbox's own ``stdout``
  and ``stderr`` are the executor's (its log goes to stderr), as the agent
  set them up; per-task files keep the tasks of a group apart.
* Not supported: ``CommandInfo.uris`` (no fetcher; a warning),
  ``CommandInfo.user``, containers, health checks and checks,
  ``max_completion_time``.

Task states
-----------
``TASK_STARTING`` when the LAUNCH arrives, ``TASK_RUNNING`` once the process
runs, then exactly one terminal state: ``TASK_FINISHED`` (exit status 0),
``TASK_FAILED`` (the message says ``Command exited with status N`` or
``Command terminated by signal SIGX``, or why the command could not start)
or ``TASK_KILLED`` after a kill. A task's updates reach the agent in this
order: the driver sends each one after the previous one was accepted.
When the leader of a task's process group ends, whatever else still runs in
the group is SIGKILLed (as the Mesos launcher destroys a container).

Kill
----
KILL sends ``TASK_KILLING`` first if the framework has the
``TASK_KILLING_STATE`` capability (and the task is running), then SIGTERM to
the task's process group, and SIGKILL to the group once the grace period has
passed if the task has not ended; then ``TASK_KILLED``. The grace period is
the KILL's own ``kill_policy``, else the task's ``kill_policy``, else 3 s. A
second KILL may only make an escalation already in progress come sooner.

Shutdown
--------
SHUTDOWN kills every task the same way, but the SIGKILL comes at the latest
``G - 1 - min(1, (G - 1) / 2)`` seconds after the SHUTDOWN, where ``G`` is the
shutdown grace period (``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD``, or the
``ExecutorInfo``'s when shorter): 3 s for the default 5 s. The driver ends
``G - 1`` s after the SHUTDOWN at the latest, so the remaining time is for the
``TASK_KILLED`` updates and their acknowledgements; the executor exits 0 once
they are acknowledged, well before the agent would kill it. The same bounded
kill happens when the driver ends for any other reason (agent lost without
checkpointing, recovery timeout), and on SIGTERM or SIGINT to the executor (a
second signal aborts at once); tasks are never left behind.

Framework messages
------------------
Logged. With ``--echo-messages`` every framework message is also sent back to
the framework, byte for byte (a diagnostic; the realmesos conformance harness
relies on it).

When it exits
-------------
It stays up until SHUTDOWN or until the driver's recovery rules end it, with
one exception: **the single-task command-executor case**. When a ``LAUNCH``
brings a task whose id equals the executor id (``MESOS_EXECUTOR_ID``), the
executor was started by the agent for that one command task -- the agent
gives every command task its own executor with executor id = task id -- and,
as Mesos's command executor does, it exits once that task is terminal and the
terminal update is acknowledged. This signal was chosen because it holds for
every Mesos command task, whereas ``MESOS_HTTP_COMMAND_EXECUTOR`` only says
whether the agent was started with ``--http_command_executor`` (it is ``0`` for
every kind of executor on a default agent). ``--exit-when-done`` makes it exit
once every task is done and acknowledged whatever the ids (as Mesos's default
executor does); ``--stay-up`` keeps it up until SHUTDOWN even in the
single-task case.

Exit status: 0 after SHUTDOWN or when done; 1 when the driver aborted (agent
unreachable or lost, recovery timeout, a SUBSCRIBE refused) with the reason on
stderr; 2 when the environment is invalid (the ConfigError text on stderr) or
the command line is wrong.

Logging goes to stderr; it is configured in :func:`main` only, never at import.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Final

import trio

import trio_mesos
from trio_mesos.v1 import mesos_pb2

__all__ = [
    "DEFAULT_KILL_GRACE_PERIOD",
    "EXIT_ABORTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandExecutor",
    "main",
]

log = logging.getLogger(__name__)

#: Grace between SIGTERM and SIGKILL when neither the KILL nor the task has a kill policy.
DEFAULT_KILL_GRACE_PERIOD: Final = 3.0
#: The driver ends this long before the shutdown grace period runs out.
DRIVER_SHUTDOWN_MARGIN: Final = 1.0
#: After SIGKILL, how long to wait for a task's process before giving it up.
SIGKILL_REAP_TIMEOUT: Final = 2.0
TOKEN_VARIABLE: Final = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"

EXIT_OK: Final = 0
EXIT_ABORTED: Final = 1
EXIT_USAGE: Final = 2

_UNSAFE_FILE_CHARACTERS: Final = re.compile(r"[^A-Za-z0-9._-]")


def output_file_name(task_id: str, stream: str) -> str:
    """``<task id>.<stream>`` with unsafe characters replaced: ``web/1`` -> ``web_1.stdout``."""
    return f"{_UNSAFE_FILE_CHARACTERS.sub('_', task_id)}.{stream}"


def task_command(task: mesos_pb2.TaskInfo) -> tuple[list[str], str]:
    """The argv and the executable a task runs (see the module docstring).

    Raises:
        ValueError: the task has nothing to run, or its ``data`` is not UTF-8.
    """
    if task.HasField("command") and task.command.HasField("value"):
        command = task.command
        if command.shell:  # the proto default is true
            return ["/bin/sh", "-c", command.value], "/bin/sh"
        return (list(command.arguments) or [command.value]), command.value
    if task.data:
        try:
            text = task.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"TaskInfo.data is not a UTF-8 shell command: {exc}") from None
        return ["/bin/sh", "-c", text], "/bin/sh"
    raise ValueError("the task has no command (TaskInfo.command.value) and no data to run")


def describe_exit(returncode: int) -> str:
    """``Command exited with status 7`` or ``Command terminated by signal SIGKILL``."""
    if returncode >= 0:
        return f"Command exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"{-returncode}"
    return f"Command terminated by signal {name}"


@dataclasses.dataclass(eq=False)
class _TaskRun:
    """What the executor knows about one task."""

    info: mesos_pb2.TaskInfo
    process: trio.Process | None = None
    running_sent: bool = False
    killing_sent: bool = False
    #: A kill is under way (KILL, SHUTDOWN or the executor's end).
    kill_requested: bool = False
    #: When the escalation sends SIGKILL (trio time); only ever moves earlier.
    sigkill_at: float = math.inf
    terminal_state: int | None = None
    #: Set whenever ``sigkill_at`` moves.
    changed: trio.Event = dataclasses.field(default_factory=trio.Event)
    #: Set once the task's work has ended.
    finished: trio.Event = dataclasses.field(default_factory=trio.Event)

    @property
    def task_id(self) -> str:
        return self.info.task_id.value

    def kill_by(self, deadline: float) -> None:
        """Make the SIGKILL come no later than ``deadline``."""
        if deadline < self.sigkill_at:
            self.sigkill_at = deadline
            self.changed.set()


class CommandExecutor(trio_mesos.Executor):
    """The executor callbacks of the command executor (see the module docstring).

    Args:
        echo_messages: send every framework message back to the framework.
        exit_when_done: True: end the driver once every task is terminal and
            acknowledged; False: never by itself; None (default): only in the
            single-task command-executor case (a LAUNCH of the task whose id
            is the executor id).
        environ: the environment the tasks' environments start from
            (default: ``os.environ`` at launch time). The authentication
            token is always removed.
        default_kill_grace_period: seconds from SIGTERM to SIGKILL when no
            kill policy says otherwise.
    """

    def __init__(
        self,
        *,
        echo_messages: bool = False,
        exit_when_done: bool | None = None,
        environ: Mapping[str, str] | None = None,
        default_kill_grace_period: float = DEFAULT_KILL_GRACE_PERIOD,
    ) -> None:
        self.echo_messages = echo_messages
        self.exit_when_done = exit_when_done
        self.environ = None if environ is None else dict(environ)
        self.default_kill_grace_period = default_kill_grace_period
        self._runs: dict[str, _TaskRun] = {}
        self._single_task = False
        self._stop_at: float | None = None
        self._stopping = False

    # -- information ---------------------------------------------------------------

    def terminal_state(self, task_id: str) -> int | None:
        """The terminal state reported for ``task_id``, or None (not ended, or unknown)."""
        run = self._runs.get(task_id)
        return None if run is None else run.terminal_state

    @property
    def terminating(self) -> bool:
        """Whether the executor is killing all tasks (SHUTDOWN, end of the driver, signal)."""
        return self._stop_at is not None

    def sandbox(self, driver: trio_mesos.ExecutorDriver) -> str:
        """The tasks' working directory and where their output files go."""
        config = driver.config
        return config.sandbox or config.directory or os.getcwd()

    def task_environment(self, task: mesos_pb2.TaskInfo) -> dict[str, str]:
        """The environment ``task`` runs with (see the module docstring)."""
        env = dict(os.environ if self.environ is None else self.environ)
        env.pop(TOKEN_VARIABLE, None)
        if task.HasField("command") and task.command.HasField("environment"):
            for variable in task.command.environment.variables:
                if variable.type == mesos_pb2.Environment.Variable.SECRET:
                    log.warning(
                        "task %s: environment variable %s is a secret; secrets are not "
                        "supported, so it is not set",
                        task.task_id.value,
                        variable.name,
                    )
                    continue
                env[variable.name] = variable.value
        return env

    # -- callbacks -----------------------------------------------------------------

    async def registered(
        self,
        driver: trio_mesos.ExecutorDriver,
        executor_info: mesos_pb2.ExecutorInfo,
        framework_info: mesos_pb2.FrameworkInfo,
        agent_info: mesos_pb2.AgentInfo,
    ) -> None:
        log.info(
            "registered with agent %s (%s) for framework %s",
            agent_info.id.value,
            agent_info.hostname,
            framework_info.name or driver.config.framework_id,
        )

    async def reregistered(
        self, driver: trio_mesos.ExecutorDriver, agent_info: mesos_pb2.AgentInfo
    ) -> None:
        log.info("re-registered with agent %s", agent_info.id.value)

    async def disconnected(self, driver: trio_mesos.ExecutorDriver) -> None:
        log.warning("disconnected from the agent; the tasks keep running")

    async def launch_task(
        self, driver: trio_mesos.ExecutorDriver, task: mesos_pb2.TaskInfo
    ) -> None:
        if (
            self.exit_when_done is None
            and not self._runs
            and task.task_id.value == driver.config.executor_id
        ):
            self._single_task = True
            log.info(
                "single-task command executor (executor id = task id): exiting once the "
                "task is done"
            )
        self._launch(driver, task)

    async def launch_task_group(
        self, driver: trio_mesos.ExecutorDriver, task_group: mesos_pb2.TaskGroupInfo
    ) -> None:
        log.info("LAUNCH_GROUP with %d task(s)", len(task_group.tasks))
        for task in task_group.tasks:
            self._launch(driver, task)

    async def kill_task(
        self,
        driver: trio_mesos.ExecutorDriver,
        task_id: mesos_pb2.TaskID,
        kill_policy: mesos_pb2.KillPolicy | None,
    ) -> None:
        run = self._runs.get(task_id.value)
        if run is None:
            log.warning("KILL for unknown task %s: ignored", task_id.value)
            return
        if run.terminal_state is not None:
            log.info("KILL for task %s, which has already ended: ignored", task_id.value)
            return
        grace = self._grace_period(run.info, kill_policy)
        deadline = trio.current_time() + grace
        if run.kill_requested:
            log.info("KILL again for task %s: SIGKILL in %.3g s at the latest", run.task_id, grace)
        else:
            log.info("KILL for task %s (grace period %.3g s)", run.task_id, grace)
            run.kill_requested = True
        # The driver cancels the task's work when this returns; its
        # cancellation handler (_kill) carries out the escalation.
        run.kill_by(deadline)

    async def acknowledged(
        self, driver: trio_mesos.ExecutorDriver, task_id: str, uuid: bytes
    ) -> None:
        if self._stopping or self.terminating:
            return
        exit_when_done = self._single_task if self.exit_when_done is None else self.exit_when_done
        if not exit_when_done or not self._runs:
            return
        if any(run.terminal_state is None for run in self._runs.values()):
            return
        if driver.statistics().unacknowledged_updates:
            return
        log.info("every task is done and acknowledged: exiting")
        self._stopping = True
        driver.stop()

    async def framework_message(self, driver: trio_mesos.ExecutorDriver, data: bytes) -> None:
        if self.echo_messages:
            log.info("framework message (%d bytes): echoing it back", len(data))
            driver.send_framework_message(data)
        else:
            log.info("framework message (%d bytes) ignored", len(data))

    async def shutdown(self, driver: trio_mesos.ExecutorDriver) -> None:
        log.info("shutting down: killing %d task(s)", self._live_count())
        self.begin_termination(driver)

    async def error(self, driver: trio_mesos.ExecutorDriver, message: str) -> None:
        log.error("error from the agent: %s", message)

    # -- termination ---------------------------------------------------------------

    def shutdown_kill_budget(self, driver: trio_mesos.ExecutorDriver) -> float:
        """Seconds from SHUTDOWN to the latest SIGKILL (see the module docstring)."""
        grace = driver.config.shutdown_grace_period
        info = driver.executor_info
        if info is not None and info.HasField("shutdown_grace_period"):
            grace = min(grace, info.shutdown_grace_period.nanoseconds / 1e9)
        driver_end = max(0.0, grace - DRIVER_SHUTDOWN_MARGIN)
        return driver_end - min(1.0, driver_end / 2)

    def begin_termination(self, driver: trio_mesos.ExecutorDriver) -> float:
        """Start killing every task with the shutdown bound; return the SIGKILL deadline.

        Idempotent: the deadline is fixed by the first call. Cancels the work of
        tasks still running (their cancellation handlers kill them) and makes
        escalations already under way end by the deadline.
        """
        if self._stop_at is None:
            self._stop_at = trio.current_time() + self.shutdown_kill_budget(driver)
        for run in self._runs.values():
            if run.terminal_state is None:
                run.kill_by(self._stop_at)
                driver.cancel_task(run.task_id)
        return self._stop_at

    async def wait_tasks_done(self) -> None:
        """Wait until the work of every task launched so far has ended."""
        for run in list(self._runs.values()):
            await run.finished.wait()

    def _live_count(self) -> int:
        return sum(run.terminal_state is None for run in self._runs.values())

    # -- the tasks -------------------------------------------------------------------

    def _grace_period(
        self, task: mesos_pb2.TaskInfo, kill_policy: mesos_pb2.KillPolicy | None
    ) -> float:
        policies = [kill_policy]
        if task.HasField("kill_policy"):
            policies.append(task.kill_policy)
        for policy in policies:
            if policy is not None and policy.HasField("grace_period"):
                return max(0.0, policy.grace_period.nanoseconds / 1e9)
        return self.default_kill_grace_period

    def _send(
        self,
        driver: trio_mesos.ExecutorDriver,
        run: _TaskRun,
        state: int,
        message: str | None = None,
    ) -> None:
        if run.terminal_state is not None:
            return
        status = mesos_pb2.TaskStatus(state=state)  # type: ignore[arg-type]
        status.task_id.CopyFrom(run.info.task_id)
        if message:
            status.message = message
        if trio_mesos.is_terminal(state):
            run.terminal_state = state
        log.info(
            "task %s: %s%s",
            run.task_id,
            mesos_pb2.TaskState.Name(state),  # type: ignore[arg-type]
            f" ({message})" if message else "",
        )
        driver.send_status_update(status)

    def _launch(self, driver: trio_mesos.ExecutorDriver, task: mesos_pb2.TaskInfo) -> None:
        task_id = task.task_id.value
        if task_id in self._runs:
            log.warning("task %s was launched already: LAUNCH ignored", task_id)
            return
        run = _TaskRun(info=task)
        self._runs[task_id] = run
        if self.terminating:
            run.finished.set()
            self._send(driver, run, mesos_pb2.TASK_KILLED, "The executor is shutting down")
            return
        self._send(driver, run, mesos_pb2.TASK_STARTING)
        driver.start_task(task_id, self._run_task, driver, run)

    async def _run_task(self, driver: trio_mesos.ExecutorDriver, run: _TaskRun) -> None:
        try:
            await self._run_command(driver, run)
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await self._kill(driver, run)
            raise
        finally:
            run.finished.set()

    async def _run_command(self, driver: trio_mesos.ExecutorDriver, run: _TaskRun) -> None:
        task = run.info
        try:
            argv, executable = task_command(task)
        except ValueError as exc:
            self._send(driver, run, mesos_pb2.TASK_FAILED, str(exc))
            return
        if task.HasField("command") and task.command.uris:
            log.warning("task %s: CommandInfo.uris are not fetched (no fetcher)", run.task_id)
        env = self.task_environment(task)
        cwd = self.sandbox(driver)
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            # Shielded: a process that was started must be known, to be killed.
            with trio.CancelScope(shield=True):
                process = await _spawn(argv, executable, env, cwd, run.task_id)
        except OSError as exc:
            self._send(driver, run, mesos_pb2.TASK_FAILED, f"Failed to launch the command: {exc}")
            return
        run.process = process
        log.info("task %s: pid %d, argv %r", run.task_id, process.pid, argv)
        run.running_sent = True
        self._send(driver, run, mesos_pb2.TASK_RUNNING)
        returncode = await process.wait()
        _signal_group(run, signal.SIGKILL)  # leftovers of the task's process group
        if run.kill_requested:
            self._send(driver, run, mesos_pb2.TASK_KILLED, describe_exit(returncode))
        elif returncode == 0:
            self._send(driver, run, mesos_pb2.TASK_FINISHED, describe_exit(returncode))
        else:
            self._send(driver, run, mesos_pb2.TASK_FAILED, describe_exit(returncode))

    async def _kill(self, driver: trio_mesos.ExecutorDriver, run: _TaskRun) -> None:
        """The escalation, run shielded when the task's work is cancelled."""
        if run.terminal_state is not None:
            return
        if not run.kill_requested:
            # Cancelled without a KILL: SHUTDOWN, the driver's end, or a signal.
            run.kill_requested = True
            run.kill_by(trio.current_time() + self._grace_period(run.info, None))
            run.kill_by(self.begin_termination(driver))
        elif self._stop_at is not None:
            run.kill_by(self._stop_at)
        process = run.process
        if process is None:
            self._send(driver, run, mesos_pb2.TASK_KILLED, "Killed before the command started")
            return
        if (
            run.running_sent
            and not run.killing_sent
            and process.returncode is None
            and _has_killing_capability(driver)
        ):
            run.killing_sent = True
            self._send(driver, run, mesos_pb2.TASK_KILLING)
        log.info(
            "task %s: SIGTERM to process group %d (SIGKILL in %.3g s)",
            run.task_id,
            process.pid,
            max(0.0, run.sigkill_at - trio.current_time()),
        )
        _signal_group(run, signal.SIGTERM)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._escalate, run, nursery.cancel_scope)
            nursery.start_soon(self._shrink_when_driver_ends, driver, run)
            await process.wait()
            nursery.cancel_scope.cancel()
        _signal_group(run, signal.SIGKILL)  # leftovers of the task's process group
        if process.returncode is None:
            message = "The command did not exit after SIGKILL"
        else:
            message = describe_exit(process.returncode)
        self._send(driver, run, mesos_pb2.TASK_KILLED, message)

    async def _escalate(self, run: _TaskRun, done: trio.CancelScope) -> None:
        while trio.current_time() < run.sigkill_at:
            run.changed = trio.Event()
            with trio.move_on_at(run.sigkill_at):
                await run.changed.wait()
        log.info("task %s: grace period over, SIGKILL to its process group", run.task_id)
        _signal_group(run, signal.SIGKILL)
        await trio.sleep(SIGKILL_REAP_TIMEOUT)
        log.error("task %s: still there %g s after SIGKILL; giving up", run.task_id,
                  SIGKILL_REAP_TIMEOUT)
        done.cancel()

    async def _shrink_when_driver_ends(
        self, driver: trio_mesos.ExecutorDriver, run: _TaskRun
    ) -> None:
        # An escalation must not outlive the driver by more than the shutdown bound.
        await driver.join()
        run.kill_by(self.begin_termination(driver))


def _has_killing_capability(driver: trio_mesos.ExecutorDriver) -> bool:
    info = driver.framework_info
    wanted = mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE
    return info is not None and any(c.type == wanted for c in info.capabilities)


def _signal_group(run: _TaskRun, signum: int) -> None:
    if run.process is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(run.process.pid, signum)


def _open_output(cwd: str, task_id: str) -> tuple[IO[bytes], IO[bytes]]:
    stdout = open(os.path.join(cwd, output_file_name(task_id, "stdout")), "ab")  # noqa: SIM115
    try:
        stderr = open(os.path.join(cwd, output_file_name(task_id, "stderr")), "ab")  # noqa: SIM115
    except BaseException:
        stdout.close()
        raise
    return stdout, stderr


async def _spawn(
    argv: list[str], executable: str, env: dict[str, str], cwd: str, task_id: str
) -> trio.Process:
    stdout, stderr = _open_output(cwd, task_id)
    try:
        return await trio.lowlevel.open_process(
            argv,
            executable=executable,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    finally:
        stdout.close()
        stderr.close()


# ------------------------------------------------------------------------------------
# The program
# ------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-mesos-executor",
        description=(
            "A Mesos command executor on trio_mesos: runs each task's CommandInfo (LAUNCH or "
            "LAUNCH_GROUP), reports its states, honours KILL and SHUTDOWN. Reads its "
            "configuration from the MESOS_* environment the agent provides."
        ),
    )
    parser.add_argument(
        "--echo-messages",
        action="store_true",
        help="send every framework message back to the framework (a diagnostic)",
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--exit-when-done",
        dest="exit_when_done",
        action="store_const",
        const=True,
        default=None,
        help="exit once every task is done and acknowledged (default: only when the "
        "executor id is the id of its one task, as for Mesos command tasks)",
    )
    when.add_argument(
        "--stay-up",
        dest="exit_when_done",
        action="store_const",
        const=False,
        help="never exit by itself; only SHUTDOWN or the loss of the agent end it",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    # What the agent passes to mesos-executor / mesos-default-executor.
    parser.add_argument("--launcher_dir", "--launcher-dir", help=argparse.SUPPRESS)
    return parser


async def serve(
    executor: CommandExecutor, config: trio_mesos.ExecutorConfig
) -> tuple[trio_mesos.Status, BaseException | None]:
    """Run ``executor`` until the driver ends; return its final status and error.

    SIGTERM and SIGINT kill the tasks (as SHUTDOWN does) and then stop the
    driver; a second signal aborts it.

    Raises:
        AgentUnavailableError: the agent could not be reached or refused SUBSCRIBE.
    """
    async with trio_mesos.open_executor_driver(executor, config=config) as driver:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_handle_signals, executor, driver)
            status = await driver.join()
            nursery.cancel_scope.cancel()
    return status, driver.error


async def _handle_signals(executor: CommandExecutor, driver: trio_mesos.ExecutorDriver) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.warning("%s: killing the tasks, then exiting", signal.Signals(signum).name)
            executor.begin_termination(driver)
            break
        async with trio.open_nursery() as nursery:

            async def stop_when_done() -> None:
                await executor.wait_tasks_done()
                driver.stop()

            nursery.start_soon(stop_when_done)
            async for signum in signals:
                log.warning("%s again: aborting", signal.Signals(signum).name)
                driver.abort()
                break


def main(argv: Sequence[str] | None = None) -> int:
    """The ``trio-mesos-executor`` program; returns the exit status."""
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(name)s[%(process)d] %(levelname)s: %(message)s",
    )
    for extra in unknown:
        log.warning("ignoring unknown argument %r", extra)
    try:
        config = trio_mesos.ExecutorConfig.from_environ(os.environ)
    except trio_mesos.ConfigError as exc:
        print(f"trio-mesos-executor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # The tasks must not inherit the secret (the C++ library does the same).
    os.environ.pop(TOKEN_VARIABLE, None)
    executor = CommandExecutor(
        echo_messages=args.echo_messages,
        exit_when_done=args.exit_when_done,
        environ=dict(os.environ),
    )
    log.info(
        "trio-mesos-executor %s: executor %s of framework %s, agent at %s",
        trio_mesos.__version__,
        config.executor_id,
        config.framework_id,
        config.agent_url(),
    )
    try:
        status, error = trio.run(serve, executor, config)
    except trio_mesos.AgentUnavailableError as exc:
        print(f"trio-mesos-executor: cannot work with the agent: {exc}", file=sys.stderr)
        return EXIT_ABORTED
    if status is trio_mesos.Status.DRIVER_STOPPED:
        return EXIT_OK
    reason = f": {error}" if error is not None else ""
    print(f"trio-mesos-executor: the executor driver aborted{reason}", file=sys.stderr)
    return EXIT_ABORTED


if __name__ == "__main__":
    sys.exit(main())
