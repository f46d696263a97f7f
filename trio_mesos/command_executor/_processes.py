"""Processes: spawning, exit messages, finding and killing what is left of a task.

Rules from Mesos 1.11:

* ``describe_exit``: ``"Command " + WSTRINGIFY(status)`` in
  ``src/launcher/executor.cpp`` (``reaped``) and
  ``src/launcher/default_executor.cpp`` (``waited``); ``WSTRINGIFY``
  (``src/common/status_utils.hpp``) says ``exited with status N`` or
  ``terminated with signal <strsignal text>``.
* Signals reach the task's *process tree*, its process groups and sessions
  (``os::killtree(pid, signal, groups=true, sessions=true)`` in
  ``src/launcher/executor.cpp``, ``kill`` and ``escalated``). Mesos then has the
  agent destroy the container (cgroups) so that nothing survives; without
  cgroups we make the executor a **child subreaper** (Linux ``prctl
  PR_SET_CHILD_SUBREAPER``): a task's orphans (a daemon that double-forked,
  a grandchild that called ``setsid``) are re-parented to the executor
  instead of init, so they stay findable as its descendants, and they are
  killed when their task ends or is killed.

How a leftover is attributed to a task (:func:`task_members`): any process in
the task's process group or session (the task's leader started both), and any
descendant of the executor that is in the task's process tree or whose
environment (``/proc/<pid>/environ``, fixed at its ``exec``) has the task's
``MESOS_SANDBOX``. Each task runs with its own ``MESOS_SANDBOX`` (the command
executor's one task with the executor's own), which is what finds a ``setsid``
grandchild after its parent is gone. Reaping re-parented orphans never steals
the exit status of a process this executor waits for: only pids that this
program did not start are reaped (:meth:`ProcessKeeper.reap_orphans`).

Not Linux: no subreaper and no ``/proc``; signals reach the task's process
group only, so a task's process that calls ``setsid`` may outlive it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, Final, NamedTuple

import trio

__all__ = [
    "ProcessKeeper",
    "describe_exit",
    "set_child_subreaper",
    "task_members",
]

log = logging.getLogger("trio_mesos.command_executor")

_PR_SET_CHILD_SUBREAPER: Final = 36
#: After SIGKILL, how long to wait for a leftover to be reaped.
_LEFTOVER_REAP_TIMEOUT: Final = 1.0


def describe_exit(returncode: int) -> str:
    """Mesos's ``"Command " + WSTRINGIFY(status)``.

    ``Command exited with status 7``, ``Command terminated with signal Killed``.
    """
    if returncode >= 0:
        return f"Command exited with status {returncode}"
    signum = -returncode
    try:
        text = signal.strsignal(signum)
    except ValueError:
        text = None
    return f"Command terminated with signal {text or f'Unknown signal {signum}'}"


def set_child_subreaper() -> bool:
    """Make this process a child subreaper (Linux); False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # lazy: only the program needs it, once

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        return False
    return bool(result == 0)


class _Stat(NamedTuple):
    ppid: int
    pgrp: int
    session: int
    zombie: bool


def _read_stat(pid: int) -> _Stat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    fields = data.rsplit(b")", 1)[-1].split()
    try:
        return _Stat(int(fields[1]), int(fields[2]), int(fields[3]), fields[0] in (b"Z", b"X"))
    except (IndexError, ValueError):
        return None


def _process_table() -> dict[int, _Stat]:
    table: dict[int, _Stat] = {}
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if name.isdigit():
                stat = _read_stat(int(name))
                if stat is not None:
                    table[int(name)] = stat
    return table


def _environ_has(pid: int, entry: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            return entry in file.read().split(b"\0")
    except OSError:
        return False


def _descends_from(pid: int, ancestor: int, table: Mapping[int, _Stat]) -> bool:
    seen = 0
    while pid in table and seen < 4096:
        pid = table[pid].ppid
        if pid == ancestor:
            return True
        seen += 1
    return False


def task_members(
    leader: int | None, sandbox: str | None, *, exclude: Iterable[int] = ()
) -> set[int]:
    """The live processes of a task (see the module docstring); Linux only, else empty.

    Args:
        leader: the pid the task was started as (its group and session id).
        sandbox: the task's ``MESOS_SANDBOX``.
        exclude: pids never to count (the executor's own helper processes).
    """
    if not sys.platform.startswith("linux"):
        return set()
    me = os.getpid()
    table = _process_table()
    excluded = set(exclude) | {me}
    marker = f"MESOS_SANDBOX={sandbox}".encode() if sandbox else None
    members = set()
    for pid, stat in table.items():
        if pid in excluded or stat.zombie:
            continue
        # The task's group and session are its own (the leader called setsid).
        own_group = leader is not None and leader in (pid, stat.pgrp, stat.session)
        if own_group or (
            _descends_from(pid, me, table)
            and (
                (leader is not None and _descends_from(pid, leader, table))
                or (marker is not None and _environ_has(pid, marker))
            )
        ):
            members.add(pid)
    return members


def signal_pids(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class ProcessKeeper:
    """Starts this program's processes and cleans up after tasks.

    It knows every pid it started and has not seen reaped, so that
    :meth:`reap_orphans` (enabled with ``reap_orphans=True``, in the program
    only: a library user's other children are not ours to reap) only ever
    reaps re-parented orphans. The reaper does nothing while a spawn is under
    way, since trio forks in a worker thread and the pid is known only afterwards.
    """

    def __init__(self, *, reap_orphans: bool = False) -> None:
        self.reap_orphans_enabled = reap_orphans
        self._own: set[int] = set()
        self._spawning = 0

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        executable: str | None = None,
        env: Mapping[str, str],
        cwd: str | None,
        stdout: IO[bytes] | int | None,
        stderr: IO[bytes] | int | None,
        new_session: bool = True,
        **options: Any,
    ) -> trio.Process:
        """Start a process (stdin ``/dev/null``); shielded, so a started process is never lost.

        Raises:
            OSError: it could not be started.
        """
        self._spawning += 1
        try:
            with trio.CancelScope(shield=True):
                process = await trio.lowlevel.open_process(
                    list(argv),
                    executable=executable,
                    env=dict(env),
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=new_session,
                    **options,
                )
            self._own.add(process.pid)
        finally:
            self._spawning -= 1
        return process

    def forget(self, process: trio.Process) -> None:
        """``process`` was reaped by trio (its ``wait()`` returned)."""
        if process.returncode is not None:
            self._own.discard(process.pid)

    def reap_orphans(self) -> int:
        """Reap exited children that this program did not start; return how many."""
        if not self.reap_orphans_enabled or self._spawning or not sys.platform.startswith("linux"):
            return 0
        me = os.getpid()
        reaped = 0
        for pid, stat in _process_table().items():
            if stat.ppid != me or not stat.zombie or pid in self._own:
                continue
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    reaped += 1
        return reaped

    async def kill_leftovers(self, leader: int | None, sandbox: str | None) -> set[int]:
        """SIGKILL what is left of a task; wait (bounded) until it is gone; return the pids."""
        if leader is not None:
            signal_group(leader, signal.SIGKILL)
        members = task_members(leader, sandbox, exclude=self._own)
        if not members:
            return members
        log.info("killing %d leftover process(es) of a task: %s", len(members), sorted(members))
        signal_pids(members, signal.SIGKILL)
        with trio.move_on_after(_LEFTOVER_REAP_TIMEOUT):
            while True:
                self.reap_orphans()
                if not task_members(leader, sandbox, exclude=self._own) & members:
                    break
                await trio.sleep(0.02)
        return members

    def signal_task(self, leader: int, sandbox: str | None, signum: int) -> None:
        """``signum`` to the task's group and every process of the task."""
        signal_group(leader, signum)
        signal_pids(task_members(leader, sandbox, exclude=self._own), signum)


def same_file(fd: int, path: str) -> bool:
    """Whether file descriptor ``fd`` is open on ``path``."""
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
