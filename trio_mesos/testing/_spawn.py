"""Starting an executor program the way a Mesos agent does.

The process is started by the command executor's
:class:`~trio_mesos.command_executor.ProcessKeeper` (one implementation of
process spawning: shielded, stdin ``/dev/null``, a new session), with the
agent's environment only, in its sandbox, stdout and stderr to
``<sandbox>/stdout`` and ``<sandbox>/stderr`` (as the Mesos containerizer
does: ``src/slave/containerizer/mesos/launch.cpp``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import random
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import IO, Any, Final

import trio

from .._config import ExecutorConfig, format_duration
from ..v1 import mesos_pb2
from ._core import AgentCore
from ._rules import AGENT_PROCESS_ID, EXECUTOR_ENDPOINT, ExecutorState

__all__ = [
    "DEFAULT_PATH",
    "ExecutorProcess",
    "SpawningAgent",
    "open_executor_process",
    "sandbox_path",
]

logger = logging.getLogger("trio_mesos.testing.fake_agent")

#: Grace for killing and reaping a spawned executor on exit (real time).
_REAP_TIMEOUT: Final = 5.0

#: ``PATH`` in every executor environment: the Mesos containerizer's host
#: default (checked against a real 1.11 agent, ../shared/realmesos/README.md).
DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ExecutorProcess:
    """A running executor started by :meth:`FakeAgent.spawn_executor`.

    It runs in its own process group (session); leaving the
    ``spawn_executor`` block kills the whole group with SIGKILL.

    Attributes:
        pid: the executor's process id (also its process group id).
        sandbox: its sandbox folder (``MESOS_SANDBOX``, ``MESOS_DIRECTORY``,
            working directory); holds ``stdout`` and ``stderr``.
        argv: the command line.
        environment: the exact environment it was given.
    """

    def __init__(
        self,
        process: trio.Process,
        sandbox: pathlib.Path,
        argv: tuple[str, ...],
        environment: Mapping[str, str],
    ) -> None:
        self._process = process
        self.pid: int = process.pid
        self.sandbox = sandbox
        self.argv = argv
        self.environment = dict(environment)

    @property
    def stdout_path(self) -> pathlib.Path:
        """``<sandbox>/stdout``."""
        return self.sandbox / "stdout"

    @property
    def stderr_path(self) -> pathlib.Path:
        """``<sandbox>/stderr``."""
        return self.sandbox / "stderr"

    @property
    def returncode(self) -> int | None:
        """The exit status (negative signal number), or None while it runs."""
        return self._process.returncode

    async def wait(self) -> int:
        """Wait until the executor process exits; return its exit status.

        Cancelling the wait leaves the process alone.
        """
        return await self._process.wait()

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the executor's whole process group (no-op once it is empty)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def kill_group(self) -> None:
        """SIGKILL the whole process group, as the agent destroying the container."""
        self.signal_group(signal.SIGKILL)


def sandbox_path(
    work_dir: pathlib.Path, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> pathlib.Path:
    """The sandbox of a run under an agent's ``--work_dir`` (``paths::getExecutorRunPath``
    in ``src/slave/paths.cpp``)."""
    return (
        work_dir
        / "slaves"
        / agent_id
        / "frameworks"
        / framework_id
        / "executors"
        / executor_id
        / "runs"
        / container_id
    )


async def open_executor_process(
    argv: tuple[str, ...], env: Mapping[str, str], sandbox: pathlib.Path
) -> trio.Process:
    """Start ``argv`` in ``sandbox`` with exactly ``env``, in a new session."""
    # Lazy: only a test that spawns a process needs the command executor's code.
    from ..command_executor import ProcessKeeper

    stdout, stderr = _open_output_files(sandbox)
    with stdout, stderr:
        return await ProcessKeeper().spawn(
            argv, env=env, cwd=os.fspath(sandbox), stdout=stdout, stderr=stderr
        )


def _open_output_files(sandbox: pathlib.Path) -> tuple[IO[bytes], IO[bytes]]:
    stdout = open(sandbox / "stdout", "ab")  # noqa: SIM115 - closed by the caller
    try:
        stderr = open(sandbox / "stderr", "ab")  # noqa: SIM115
    except BaseException:
        stdout.close()
        raise
    return stdout, stderr


class SpawningAgent(AgentCore):
    """The agent's executor environment and executor processes (see FakeAgent)."""

    def executor_config(self, **overrides: Any) -> ExecutorConfig:
        """An :class:`~trio_mesos.ExecutorConfig` for an executor of this agent.

        The same values :meth:`executor_environment` gives (the recovery
        timeout and backoff only when checkpointing, else the defaults);
        ``agent_host``/``agent_port``/``agent_pid`` when listening on TCP,
        ``domain_socket`` when listening on a Unix socket, and the path
        ``/slave(1)/api/v1/executor`` in either case. ``overrides`` replace
        any field. Pure: no I/O.
        """
        checkpoint = bool(overrides.get("checkpoint", self.checkpoint))
        values: dict[str, Any] = {
            "framework_id": self.framework_id,
            "executor_id": self.executor_id,
            "agent_id": self.agent_id,
            "checkpoint": checkpoint,
            "shutdown_grace_period": self.shutdown_grace_period,
            "authentication_token": self.token,
        }
        if checkpoint:
            # Only checkpointing executors get these two variables.
            values["recovery_timeout"] = self.recovery_timeout
            values["subscription_backoff_max"] = self.reregistration_timeout
        if self._server.tcp_port is not None:
            values["agent_host"] = "127.0.0.1"
            values["agent_port"] = self._server.tcp_port
            values["agent_pid"] = f"{AGENT_PROCESS_ID}@127.0.0.1:{self._server.tcp_port}"
            values["agent_path"] = f"/{AGENT_PROCESS_ID}{EXECUTOR_ENDPOINT}"
        if self._server.unix_path is not None:
            values["domain_socket"] = self._server.unix_path
            values["agent_path"] = f"/{AGENT_PROCESS_ID}{EXECUTOR_ENDPOINT}"
        values.update(overrides)
        return ExecutorConfig(**values)

    def driver_options(self, *, seed: int = 0, **overrides: Any) -> dict[str, Any]:
        """The keyword arguments of :func:`~trio_mesos.open_executor_driver` that
        connect a driver to this agent over in-memory streams::

            async with trio_mesos.open_executor_driver(MyExecutor(), **agent.driver_options()):
                ...

        ``config`` is :meth:`executor_config` (``overrides`` replace its
        fields), ``open_stream`` is :meth:`connect` (no network, so virtual
        time works), ``rng`` a ``random.Random(seed)`` for a reproducible
        reconnect backoff. Pure: no I/O.
        """
        return {
            "config": self.executor_config(**overrides),
            "open_stream": self.connect,
            "rng": random.Random(seed),
        }

    def executor_environment(
        self, sandbox: str | os.PathLike[str], *, checkpoint: bool | None = None
    ) -> dict[str, str]:
        """Exactly the environment a real agent gives an executor of this agent.

        The variables of PROTOCOL.md §3.9 as a Mesos 1.11 agent sets them
        (../shared/realmesos/README.md), pointing at the TCP listener, plus
        ``MESOS_EXECUTOR_AUTHENTICATION_TOKEN`` when a token is set and
        ``MESOS_DOMAIN_SOCKET`` when listening on a Unix socket.

        Args:
            sandbox: the sandbox path (``MESOS_DIRECTORY`` and ``MESOS_SANDBOX``).
            checkpoint: overrides ``MESOS_CHECKPOINT`` (and the two variables
                that come with it); None = this agent's setting.

        Raises:
            RuntimeError: the agent is not listening on TCP (:meth:`listen_tcp`).
        """
        if self._server.tcp_port is None:
            raise RuntimeError("executor_environment() needs a TCP listener: call listen_tcp()")
        endpoint = f"127.0.0.1:{self._server.tcp_port}"
        directory = os.fspath(sandbox)
        checkpointing = self.checkpoint if checkpoint is None else checkpoint
        env = {
            "LIBPROCESS_IP": "127.0.0.1",
            "LIBPROCESS_PORT": "0",
            "MESOS_AGENT_ENDPOINT": endpoint,
            "MESOS_SLAVE_PID": f"{AGENT_PROCESS_ID}@{endpoint}",
            "MESOS_SLAVE_ID": self.agent_id,
            "MESOS_FRAMEWORK_ID": self.framework_id,
            "MESOS_EXECUTOR_ID": self.executor_id,
            "MESOS_DIRECTORY": directory,
            "MESOS_SANDBOX": directory,
            "MESOS_CHECKPOINT": "1" if checkpointing else "0",
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": format_duration(self.shutdown_grace_period),
            "MESOS_HTTP_COMMAND_EXECUTOR": "0",
            "PATH": DEFAULT_PATH,
        }
        if checkpointing:
            env["MESOS_RECOVERY_TIMEOUT"] = format_duration(self.recovery_timeout)
            env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = format_duration(self.reregistration_timeout)
        if self.token is not None:
            env["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"] = self.token
        if self._server.unix_path is not None:
            env["MESOS_DOMAIN_SOCKET"] = self._server.unix_path
        return env

    def _new_sandbox(self) -> pathlib.Path:
        if self._tmpdir is None:
            self._tmpdir = pathlib.Path(tempfile.mkdtemp(prefix="trio-mesos-fake-agent-"))
        ids = (self.agent_id, self.framework_id, self.executor_id, self.container_id)
        path = sandbox_path(self._tmpdir, *ids)
        path.mkdir(parents=True, exist_ok=False)
        return path

    def _relaunch_if_gone(self) -> None:
        if self._executor_state is ExecutorState.TERMINATED:
            self._executor_state = ExecutorState.REGISTERING
            self._framework_known = True
            self.container_id = str(uuid.uuid4())
            self._notify()

    @contextlib.asynccontextmanager
    async def spawn_executor(
        self,
        argv: Iterable[str],
        *,
        checkpoint: bool | None = None,
        sandbox: str | os.PathLike[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> AsyncIterator[ExecutorProcess]:
        """Start an executor process the way a real agent does (an async context manager).

        ``async with agent.spawn_executor([...]) as proc:`` starts ``argv`` with
        exactly :meth:`executor_environment` (nothing inherited; ``PATH`` is the
        agent's default), in ``sandbox`` (a fresh folder under a temporary
        directory when None; removed when the agent exits) as working
        directory, stdout and stderr to ``<sandbox>/stdout`` and
        ``<sandbox>/stderr``, in a new session (its own process group). It
        starts listening on TCP first if needed. An executor that the agent
        had destroyed is launched anew (new container id).

        Leaving the block SIGKILLs the whole process group and reaps the
        executor (bounded by a few seconds of real time, shielded). When the
        executor exits on its own, the agent treats its container as gone:
        tasks not yet terminal become TASK_FAILED (``REASON_EXECUTOR_TERMINATED``).

        Args:
            argv: program and arguments (the program is looked up in the
                agent's ``PATH`` unless it is a path).
            checkpoint: overrides ``MESOS_CHECKPOINT`` (None = the agent's).
            sandbox: an existing folder to use as sandbox.
            extra_env: more variables (like ``--executor_environment_variables``).
        """
        nursery = self._require_nursery()
        argv_tuple = tuple(argv)
        if not argv_tuple:
            raise ValueError("argv must not be empty")
        await self.listen_tcp()
        self._relaunch_if_gone()
        sandbox_path = self._new_sandbox() if sandbox is None else pathlib.Path(sandbox)
        env = self.executor_environment(sandbox_path, checkpoint=checkpoint)
        if extra_env:
            env.update(extra_env)
        self._executor_argv = argv_tuple
        process = await open_executor_process(argv_tuple, env, sandbox_path)
        handle = ExecutorProcess(process, sandbox_path, argv_tuple, env)
        self._processes.append(handle)
        nursery.start_soon(self._watch_process, handle)
        try:
            yield handle
        finally:
            handle.kill_group()
            with trio.move_on_after(_REAP_TIMEOUT, shield=True):
                await process.wait()
            with contextlib.suppress(ValueError):
                self._processes.remove(handle)

    async def _watch_process(self, handle: ExecutorProcess) -> None:
        code = await handle.wait()
        logger.info("executor process %d exited with %d", handle.pid, code)
        current = bool(self._processes) and self._processes[-1] is handle
        if current and self._executor_state is not ExecutorState.TERMINATED:
            self._terminate_executor(
                mesos_pb2.TASK_FAILED,
                mesos_pb2.TaskStatus.REASON_EXECUTOR_TERMINATED,
                "Executor terminated",
            )
