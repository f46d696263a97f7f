"""The executor callbacks: tasks, kills, checks, groups, shutdown, when to exit.

Which Mesos executor it behaves as (:class:`Mode`) is decided at SUBSCRIBED
from the ``ExecutorInfo`` the agent sends; the rules of each mode come from
``src/launcher/executor.cpp`` (COMMAND) and ``src/launcher/default_executor.cpp``
(DEFAULT) of Mesos 1.11, as the docstrings below say rule by rule.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Mapping
from typing import Final

import trio

import trio_mesos
from trio_mesos.v1 import mesos_pb2

from ._checks import Probe, ProbeResult, run_checks
from ._health import CheckTracker, HealthCounter
from ._launch import LaunchFlags, task_command, task_environment, user_options
from ._processes import ProcessKeeper, describe_exit
from ._tasks import Mode, TaskRun, has_killing_capability, only_cancelled, task_directory_name

__all__ = ["DEFAULT_KILL_GRACE_PERIOD", "DEFAULT_TERMINAL_ACK_TIMEOUT", "CommandExecutor", "Mode"]

log = logging.getLogger("trio_mesos.command_executor")
Reason = mesos_pb2.TaskStatus.Reason

#: Grace between SIGTERM and SIGKILL when no kill policy says otherwise (both Mesos executors).
DEFAULT_KILL_GRACE_PERIOD: Final = 3.0
#: The fail-safe: exit this long after the last terminal update if it is not acknowledged.
DEFAULT_TERMINAL_ACK_TIMEOUT: Final = 60.0
#: The driver ends this long before the shutdown grace period runs out.
DRIVER_SHUTDOWN_MARGIN: Final = 1.0
#: After SIGKILL, how long to wait for a task's process before giving it up.
SIGKILL_REAP_TIMEOUT: Final = 2.0
#: Ids of the executor's own work (the driver runs work per task id).
_FAILSAFE_WORK: Final = "trio-mesos-executor:fail-safe"
_SHUTDOWN_WORK: Final = "trio-mesos-executor:shutdown"
MULTIPLE_TASKS_MESSAGE: Final = 'Attempted to run multiple tasks using a "command" executor'


class CommandExecutor(trio_mesos.Executor):
    """The executor callbacks of ``trio-mesos-executor`` (see the package docstring).

    Args:
        echo_messages: send every framework message back to the framework.
        exit_when_done: True: end the driver once every task is terminal and
            acknowledged; False: never by itself; None (default): as the Mesos
            executor of the :class:`Mode` does (COMMAND and DEFAULT exit, CUSTOM
            does not).
        environ: the environment tasks start from (default: ``os.environ``
            at launch time). The authentication token is always removed.
        default_kill_grace_period: seconds from SIGTERM to SIGKILL when no
            kill policy says otherwise.
        launch_flags: the agent's ``mesos-executor`` flags.
        terminal_ack_timeout: the fail-safe of both Mesos executors: when
            exiting by itself, exit this long after the last terminal update
            even if it was never acknowledged (COMMAND: status 1).
        keeper: starts and cleans up processes (the program passes one that
            reaps orphans, having made itself a subreaper).
        kill_group_on_failure: a task of a group that ends ``TASK_FAILED`` or
            ``TASK_KILLED`` kills the rest of the group, as Mesos's default
            executor does (False: the others keep running).
    """

    def __init__(
        self,
        *,
        echo_messages: bool = False,
        exit_when_done: bool | None = None,
        environ: Mapping[str, str] | None = None,
        default_kill_grace_period: float = DEFAULT_KILL_GRACE_PERIOD,
        launch_flags: LaunchFlags | None = None,
        terminal_ack_timeout: float = DEFAULT_TERMINAL_ACK_TIMEOUT,
        keeper: ProcessKeeper | None = None,
        kill_group_on_failure: bool = True,
    ) -> None:
        self.echo_messages = echo_messages
        self.exit_when_done = exit_when_done
        self.environ = None if environ is None else dict(environ)
        self.default_kill_grace_period = default_kill_grace_period
        self.launch_flags = launch_flags or LaunchFlags()
        self.terminal_ack_timeout = terminal_ack_timeout
        self.keeper = keeper or ProcessKeeper()
        self.kill_group_on_failure = kill_group_on_failure
        self.mode = Mode.CUSTOM
        #: Set when the executor ends the driver itself with a status of its own.
        self.exit_status: int | None = None
        self.exit_message: str | None = None
        self._runs: dict[str, TaskRun] = {}
        self._stop_at: float | None = None
        self._stopping = False
        #: The default executor's ``unhealthy``: a task was killed by its health check.
        self._unhealthy = False
        self._ip: str | None = None

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
        """The executor's sandbox: where the command task runs and ``tasks/`` is."""
        config = driver.config
        return config.sandbox or config.directory or os.getcwd()

    def _base_environment(self) -> dict[str, str]:
        return dict(os.environ if self.environ is None else self.environ)

    # -- callbacks -----------------------------------------------------------------

    async def registered(
        self,
        driver: trio_mesos.ExecutorDriver,
        executor_info: mesos_pb2.ExecutorInfo,
        framework_info: mesos_pb2.FrameworkInfo,
        agent_info: mesos_pb2.AgentInfo,
    ) -> None:
        if not executor_info.HasField("type") or executor_info.type == executor_info.UNKNOWN:
            self.mode = Mode.COMMAND
        elif executor_info.type == executor_info.DEFAULT:
            self.mode = Mode.DEFAULT
        log.info(
            "registered with agent %s (%s) for framework %s, as a %s executor",
            agent_info.id.value,
            agent_info.hostname,
            framework_info.name or driver.config.framework_id,
            self.mode.value,
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
            self.mode is Mode.CUSTOM
            and not self._runs
            and (task.task_id.value == driver.config.executor_id)
        ):
            log.info("the task's id is the executor id: acting as a command executor")
            self.mode = Mode.COMMAND
        if self.mode is Mode.DEFAULT:
            # default_executor.cpp, received(): LAUNCH is not supported -> shutdown().
            log.error("LAUNCH is not supported by a default executor: shutting down")
            self._shut_down_by_itself(driver)
            return
        if self.mode is Mode.COMMAND and self._runs:
            # executor.cpp, launch(): one task per command executor.
            run = self._new_run(driver, task, None)
            run.finished.set()
            self._send(driver, run, mesos_pb2.TASK_FAILED, MULTIPLE_TASKS_MESSAGE)
            return
        self._launch(driver, self._new_run(driver, task, None))

    async def launch_task_group(
        self, driver: trio_mesos.ExecutorDriver, task_group: mesos_pb2.TaskGroupInfo
    ) -> None:
        if self.mode is Mode.COMMAND:
            # executor.cpp, received(): LAUNCH_GROUP is not supported -> shutdown().
            log.error("LAUNCH_GROUP is not supported by a command executor: shutting down")
            self._shut_down_by_itself(driver)
            return
        log.info("LAUNCH_GROUP with %d task(s)", len(task_group.tasks))
        ids = tuple(task.task_id.value for task in task_group.tasks)
        runs = [self._new_run(driver, task, ids) for task in task_group.tasks]
        for run in runs:
            self._launch(driver, run)

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
        if run.kill_requested and self.mode is Mode.DEFAULT:
            # default_executor.cpp, killTask(): a task being killed ignores a new KILL.
            log.info("KILL again for task %s: ignored (it is being killed)", run.task_id)
            return
        # The driver cancels the task's work when this returns; its
        # cancellation handler (_kill) carries out the escalation.
        self._request_kill(run, self._grace_period(run.info, kill_policy))

    async def acknowledged(
        self, driver: trio_mesos.ExecutorDriver, task_id: str, uuid: bytes
    ) -> None:
        if self._all_done(driver):
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

    # -- when to exit ------------------------------------------------------------------

    def _exits_by_itself(self) -> bool:
        if self.exit_when_done is not None:
            return self.exit_when_done
        return self.mode is not Mode.CUSTOM

    def _all_done(self, driver: trio_mesos.ExecutorDriver) -> bool:
        return (
            not (self._stopping or self.terminating)
            and self._exits_by_itself()
            and bool(self._runs)
            and self._live_count() == 0
            and not driver.statistics().unacknowledged_updates
        )

    async def _fail_safe(self, driver: trio_mesos.ExecutorDriver) -> None:
        """Exit even without the ACK of the last terminal update.

        ``reaped``/``selfTerminate`` of ``src/launcher/executor.cpp`` (60 s,
        exit status 1, "Did not receive ACK for the terminal status update
        from the agent") and ``_shutdown`` of ``src/launcher/default_executor.cpp``
        (60 s, then terminate: status 0).
        """
        await trio.sleep(self.terminal_ack_timeout)
        if self._stopping or self.terminating or self._live_count():
            return
        if self.mode is Mode.COMMAND:
            self.exit_status = 1
            self.exit_message = "Did not receive ACK for the terminal status update from the agent"
        else:
            self.exit_status = 0
            self.exit_message = None
        log.error(
            "no acknowledgement %g s after the last terminal update: exiting",
            self.terminal_ack_timeout,
        )
        self._stopping = True
        driver.abort()

    def _shut_down_by_itself(self, driver: trio_mesos.ExecutorDriver) -> None:
        """``shutdown()`` of the Mesos executors: kill every task, then exit."""

        async def shut_down() -> None:
            self.begin_termination(driver)
            await self.wait_tasks_done()
            self._stopping = True
            driver.stop()

        if not self._stopping and not self.terminating:
            driver.start_task(_SHUTDOWN_WORK, shut_down)

    # -- termination ---------------------------------------------------------------

    def shutdown_kill_budget(self, driver: trio_mesos.ExecutorDriver) -> float:
        """Seconds from SHUTDOWN to the latest SIGKILL (see the package docstring)."""
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

    def _new_run(
        self,
        driver: trio_mesos.ExecutorDriver,
        task: mesos_pb2.TaskInfo,
        group: tuple[str, ...] | None,
    ) -> TaskRun:
        sandbox = self.sandbox(driver)
        command_task = self.mode is Mode.COMMAND
        if not command_task:
            sandbox = os.path.join(sandbox, "tasks", task_directory_name(task.task_id.value))
        cwd = (command_task and self.launch_flags.working_directory) or sandbox
        return TaskRun(info=task, sandbox=sandbox, cwd=cwd, group=group, command_task=command_task)

    def _grace_period(
        self, task: mesos_pb2.TaskInfo, kill_policy: mesos_pb2.KillPolicy | None
    ) -> float:
        """The KILL's policy, else the task's, else 3 s (``kill`` in ``executor.cpp``)."""
        policies = [kill_policy]
        if task.HasField("kill_policy"):
            policies.append(task.kill_policy)
        for policy in policies:
            if policy is not None and policy.HasField("grace_period"):
                return max(0.0, policy.grace_period.nanoseconds / 1e9)
        return self.default_kill_grace_period

    def _request_kill(self, run: TaskRun, grace: float) -> None:
        """Begin (or hasten) a kill: SIGKILL ``grace`` after the *first* kill began.

        ``kill(taskId, gracePeriod)`` in ``src/launcher/executor.cpp``: a later
        kill may only bring the escalation forward, and its grace counts from
        the first kill (``killGracePeriodStart``).
        """
        now = trio.current_time()
        if run.kill_started is None:
            run.kill_started = now
            run.kill_requested = True
            log.info("killing task %s (grace period %.3g s)", run.task_id, grace)
        else:
            log.info("kill again for task %s: grace %.3g s from the first kill", run.task_id, grace)
        run.kill_by(run.kill_started + grace)

    def _send(
        self,
        driver: trio_mesos.ExecutorDriver,
        run: TaskRun,
        state: int,
        message: str | None = None,
        reason: int | None = None,
    ) -> None:
        """A state update made from scratch (``createTaskStatus`` of both executors)."""
        if run.terminal_state is not None:
            return
        terminal = trio_mesos.is_terminal(state)
        unhealthy = run.killed_by_health or (self.mode is Mode.DEFAULT and self._unhealthy)
        status = run.state_status(state, message, reason, unhealthy=terminal and unhealthy)
        log.info(
            "task %s: %s%s",
            run.task_id,
            mesos_pb2.TaskState.Name(state),  # type: ignore[arg-type]
            f" ({message})" if message else "",
        )
        self._forward(driver, run, status)
        if terminal:
            run.terminal_state = state
            self._after_terminal(driver, run, state)

    def _forward(
        self, driver: trio_mesos.ExecutorDriver, run: TaskRun, status: mesos_pb2.TaskStatus
    ) -> None:
        run.last_status = status
        driver.send_status_update(status)

    def _send_copy(
        self,
        driver: trio_mesos.ExecutorDriver,
        run: TaskRun,
        reason: int,
        *,
        healthy: bool | None = None,
        check_status: mesos_pb2.CheckStatusInfo | None = None,
    ) -> None:
        """``taskHealthUpdated``/``taskCheckUpdated``: the last update again, amended.

        Not once the task is being killed or has ended (``killed || terminated``).
        """
        status = run.amended_status(reason, healthy=healthy, check_status=check_status)
        if status is not None:
            self._forward(driver, run, status)

    def _after_terminal(self, driver: trio_mesos.ExecutorDriver, run: TaskRun, state: int) -> None:
        if (
            run.group is not None
            and self.kill_group_on_failure
            and state in (mesos_pb2.TASK_FAILED, mesos_pb2.TASK_KILLED)
            and not self.terminating
            and not run.killing_group
        ):
            self._kill_group(driver, run)
        # Not while shutting down: the driver's SHUTDOWN waits for every task's work.
        if self._exits_by_itself() and not (
            self._live_count() or self._stopping or self.terminating
        ):
            driver.start_task(_FAILSAFE_WORK, self._fail_safe, driver)

    def _kill_group(self, driver: trio_mesos.ExecutorDriver, run: TaskRun) -> None:
        """The default executor's restart policy (``waited`` in ``default_executor.cpp``).

        A task of a group that ends FAILED or KILLED kills the group's other
        live tasks, each with the default 3 s grace (Mesos passes no kill
        policy here), unless they are being killed already.
        """
        assert run.group is not None
        log.info("task %s ended: killing the rest of its group", run.task_id)
        run.killing_group = True
        for task_id in run.group:
            sibling = self._runs.get(task_id)
            if sibling is None or sibling is run or sibling.terminal_state is not None:
                continue
            sibling.killing_group = True
            if not sibling.kill_requested:
                self._request_kill(sibling, self.default_kill_grace_period)
                driver.cancel_task(task_id)

    def _launch(self, driver: trio_mesos.ExecutorDriver, run: TaskRun) -> None:
        task_id = run.task_id
        if task_id in self._runs:
            log.warning("task %s was launched already: LAUNCH ignored", task_id)
            return
        self._runs[task_id] = run
        if self.terminating or self._stopping:
            run.finished.set()
            self._send(driver, run, mesos_pb2.TASK_KILLED, "The executor is shutting down")
            return
        self._send(driver, run, mesos_pb2.TASK_STARTING)
        driver.start_task(task_id, self._run_task, driver, run)

    async def _run_task(self, driver: trio_mesos.ExecutorDriver, run: TaskRun) -> None:
        try:
            await self._run_command(driver, run)
        except BaseException as exc:
            # Cancelled, or a nursery's group of Cancelled: the task is being killed.
            if only_cancelled(exc):
                with trio.CancelScope(shield=True):
                    await self._kill(driver, run)
            raise
        finally:
            run.finished.set()

    def _refuse(self, driver: trio_mesos.ExecutorDriver, run: TaskRun, why: str) -> None:
        self._send(driver, run, mesos_pb2.TASK_FAILED, why, Reason.REASON_COMMAND_EXECUTOR_FAILED)

    async def _run_command(self, driver: trio_mesos.ExecutorDriver, run: TaskRun) -> None:
        task = run.info
        flags = self.launch_flags
        refusal = flags.refusal()
        if refusal is not None:
            self._refuse(driver, run, refusal)
            return
        try:
            argv, executable, command = task_command(task, flags.task_command)
        except ValueError as exc:
            self._send(driver, run, mesos_pb2.TASK_FAILED, str(exc))
            return
        options, refusal = user_options(flags)
        if refusal is not None:
            self._refuse(driver, run, refusal)
            return
        if command is not None and command.uris:
            log.warning("task %s: CommandInfo.uris are not fetched (no fetcher)", run.task_id)
        env, secrets = task_environment(
            self._base_environment(),
            task,
            command,
            flags,
            sandbox=run.sandbox,
            container_ip=None if run.group is None else self._container_ip(),
        )
        for name in secrets:
            log.warning("task %s: %s is a secret; secrets are not supported", run.task_id, name)
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            stdout, stderr = run.open_output()
            try:
                process = await self.keeper.spawn(
                    argv,
                    executable=executable,
                    env=env,
                    cwd=run.cwd,
                    stdout=stdout,
                    stderr=stderr,
                    **options,
                )
            finally:
                for file in (stdout, stderr):
                    if file is not None:
                        file.close()
        except OSError as exc:
            self._send(driver, run, mesos_pb2.TASK_FAILED, f"Failed to launch the command: {exc}")
            return
        run.process = process
        log.info("task %s: pid %d, argv %r", run.task_id, process.pid, argv)
        run.running_sent = True
        self._send(driver, run, mesos_pb2.TASK_RUNNING)
        async with trio.open_nursery() as nursery:
            self._start_checks(driver, run, nursery)
            limit = task.max_completion_time.nanoseconds
            if limit > 0:
                nursery.start_soon(self._completion_timer, driver, run, limit / 1e9)
            returncode = await process.wait()
            nursery.cancel_scope.cancel()  # checks stop when the task ends (``reaped``)
        self.keeper.forget(process)
        await self.keeper.kill_leftovers(process.pid, run.sandbox)
        if run.kill_requested:
            self._send(driver, run, *run.killed_outcome(returncode))
        elif returncode == 0:
            self._send(driver, run, mesos_pb2.TASK_FINISHED, describe_exit(returncode))
        else:
            self._send(driver, run, mesos_pb2.TASK_FAILED, describe_exit(returncode))

    def _container_ip(self) -> str:
        """``MESOS_CONTAINER_IP``: libprocess's own IP (``LIBPROCESS_IP``, else the host's)."""
        if self._ip is None:
            self._ip = self._base_environment().get("LIBPROCESS_IP") or ""
            if not self._ip:
                try:
                    self._ip = socket.gethostbyname(socket.gethostname())
                except OSError:
                    self._ip = "127.0.0.1"
        return self._ip

    # -- checks, health checks, max_completion_time ---------------------------------------

    def _start_checks(
        self, driver: trio_mesos.ExecutorDriver, run: TaskRun, nursery: trio.Nursery
    ) -> None:
        task = run.info
        base = self._base_environment()
        if task.HasField("check"):
            probe = Probe.from_check(task.check)
            problem = probe.validate()
            if problem:
                log.error("task %s: failed to create checker: %s", run.task_id, problem)
            else:
                tracker = CheckTracker(probe.check_type)

                async def on_check(result: ProbeResult) -> None:
                    changed = tracker.result(result)
                    if changed is not None:
                        self._send_copy(
                            driver,
                            run,
                            Reason.REASON_TASK_CHECK_STATUS_UPDATED,
                            check_status=changed,
                        )

                nursery.start_soon(run_checks, probe, base, self.keeper, on_check)
        if task.HasField("health_check"):
            health = task.health_check
            probe = Probe.from_health_check(health)
            problem = probe.validate()
            if problem:
                log.error("task %s: failed to create health checker: %s", run.task_id, problem)
                return
            counter = HealthCounter(
                health.consecutive_failures, health.grace_period_seconds, trio.current_time()
            )

            async def on_health(result: ProbeResult) -> None:
                verdict = counter.result(result, trio.current_time())
                if verdict is None:
                    log.info("task %s: health check failure ignored (grace period)", run.task_id)
                    return
                self._send_copy(
                    driver,
                    run,
                    Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED,
                    healthy=verdict.healthy,
                )
                if verdict.kill and not run.kill_requested:
                    log.warning(
                        "task %s: health check failed %d times in a row: killing it",
                        run.task_id,
                        verdict.consecutive_failures,
                    )
                    run.killed_by_health = True
                    self._unhealthy = True
                    self._request_kill(run, self._grace_period(run.info, None))
                    driver.cancel_task(run.task_id)

            nursery.start_soon(run_checks, probe, base, self.keeper, on_health)

    async def _completion_timer(
        self, driver: trio_mesos.ExecutorDriver, run: TaskRun, seconds: float
    ) -> None:
        """``taskCompletionTimeout`` (``executor.cpp``): kill with no grace, end TASK_FAILED.

        A kill that began earlier cancels the timer (the task's work, and this
        with it, is cancelled by then).
        """
        await trio.sleep(seconds)
        if run.kill_requested:
            return
        log.warning("task %s exceeded its max_completion_time of %g s", run.task_id, seconds)
        run.killed_by_completion = True
        self._request_kill(run, 0.0)
        driver.cancel_task(run.task_id)

    # -- killing -------------------------------------------------------------------------

    async def _kill(self, driver: trio_mesos.ExecutorDriver, run: TaskRun) -> None:
        """The escalation, run shielded when the task's work is cancelled."""
        if run.terminal_state is not None:
            return
        if not run.kill_requested:
            # Cancelled without a kill: SHUTDOWN, the driver's end, or a signal.
            self._request_kill(run, self._grace_period(run.info, None))
            run.kill_by(self.begin_termination(driver))
        elif self._stop_at is not None:
            run.kill_by(self._stop_at)
        process = run.process
        if process is None:
            state, _, reason = run.killed_outcome(None)
            self._send(driver, run, state, "Killed before the command started", reason)
            return
        if (
            run.running_sent
            and not run.killing_sent
            and not run.killed_by_completion
            and process.returncode is None
            and has_killing_capability(driver.framework_info)
        ):
            run.killing_sent = True
            self._send(driver, run, mesos_pb2.TASK_KILLING)
        log.info(
            "task %s: SIGTERM to its processes (SIGKILL in %.3g s)",
            run.task_id,
            max(0.0, run.sigkill_at - trio.current_time()),
        )
        self.keeper.signal_task(process.pid, run.sandbox, signal.SIGTERM)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._escalate, run, nursery.cancel_scope)
            nursery.start_soon(self._shrink_when_driver_ends, driver, run)
            await process.wait()
            nursery.cancel_scope.cancel()
        self.keeper.forget(process)
        await self.keeper.kill_leftovers(process.pid, run.sandbox)
        self._send(driver, run, *run.killed_outcome(process.returncode))

    async def _escalate(self, run: TaskRun, done: trio.CancelScope) -> None:
        while trio.current_time() < run.sigkill_at:
            run.changed = trio.Event()
            with trio.move_on_at(run.sigkill_at):
                await run.changed.wait()
        log.info("task %s: grace period over, SIGKILL to its processes", run.task_id)
        assert run.process is not None
        self.keeper.signal_task(run.process.pid, run.sandbox, signal.SIGKILL)
        await trio.sleep(SIGKILL_REAP_TIMEOUT)
        log.error(
            "task %s: still there %g s after SIGKILL; giving up", run.task_id, SIGKILL_REAP_TIMEOUT
        )
        done.cancel()

    async def _shrink_when_driver_ends(
        self, driver: trio_mesos.ExecutorDriver, run: TaskRun
    ) -> None:
        # An escalation must not outlive the driver by more than the shutdown bound.
        await driver.join()
        run.kill_by(self.begin_termination(driver))
