"""The command executor: does what Mesos's own command and default executors do.

Run it as ``python -m trio_mesos.command_executor`` or with the console script
``trio-mesos-executor``. It is written only on the public API of
:mod:`trio_mesos` (:func:`~trio_mesos.open_executor_driver`,
:class:`~trio_mesos.Executor`, :mod:`trio_mesos.v1`), so it is also an example
of a complete executor. The rules come from Mesos 1.11's
``src/launcher/executor.cpp`` (``mesos-executor``),
``src/launcher/default_executor.cpp`` (``mesos-default-executor``) and
``src/checks/``; each module here names the file of each rule.

Command line::

    trio-mesos-executor [--echo-messages] [--exit-when-done | --stay-up]
                        [--terminal-ack-timeout SECONDS] [-v | -q] [AGENT FLAGS]

The flags the agent passes to ``mesos-executor`` (``--launcher_dir``,
``--task_command``, ``--task_environment``, ``--working_directory``, ``--user``,
``--rootfs``, ...) are accepted; the docstring of its ``_launch`` module says
what each does. Other unknown arguments are ignored with a warning.

Modes (decided from the ``ExecutorInfo`` in SUBSCRIBED)
-------------------------------------------------------
* **command** (``mesos-executor``): the ``ExecutorInfo`` has no type, as the
  agent makes it for a task with a ``command`` and no executor (or the first
  LAUNCH brings the task whose id is the executor id). One task: a second
  LAUNCH ends that task ``TASK_FAILED`` ("Attempted to run multiple tasks
  using a "command" executor"); a LAUNCH_GROUP shuts the executor down. The
  task runs in the sandbox (or ``--working_directory``) and its output goes to
  the sandbox's ``stdout`` and ``stderr``.
* **default** (``mesos-default-executor``): ``ExecutorInfo.type`` DEFAULT.
  LAUNCH_GROUP runs a group; a plain LAUNCH shuts the executor down. A task
  that ends ``TASK_FAILED`` or ``TASK_KILLED`` kills the rest of its group
  (3 s grace, as Mesos). Each task runs in ``tasks/<task id>/`` (its
  ``MESOS_SANDBOX``) with its output in ``tasks/<task id>/stdout|stderr``.
* **custom**: any other ``ExecutorInfo``: any number of LAUNCH and
  LAUNCH_GROUP (group rules as above). A task without ``command`` but with
  ``data`` runs ``/bin/sh -c <data as UTF-8>`` (Mesos refuses tasks with both
  an executor and a command, so the realmesos harness's ``custom`` mode sends
  the shell command this way).

What a task runs
----------------
``TaskInfo.command`` (or ``--task_command``) with Mesos's semantics: ``shell``
(the default) runs ``/bin/sh -c <value>``; ``shell=false`` executes ``value``
(looked up in ``PATH`` when it has no ``/``) with argv = ``arguments``.
Environment: the executor's, minus ``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``,
with ``MESOS_SANDBOX`` set to the task's sandbox, then ``--task_environment``,
then ``CommandInfo.environment`` (``SECRET`` variables are skipped with a
warning), then ``MESOS_ALLOCATION_ROLE`` (and ``MESOS_CONTAINER_IP`` for tasks
of a group). Each task starts in its own session (``setsid``).
``CommandInfo.uris`` are not fetched (a warning); containers are not supported.

Task states and messages
------------------------
``TASK_STARTING`` at LAUNCH, ``TASK_RUNNING`` once the process runs, then one
terminal state: ``TASK_FINISHED`` (exit 0), ``TASK_FAILED`` or ``TASK_KILLED``,
with Mesos's message: ``Command exited with status 7``, ``Command terminated
with signal Terminated`` (the ``strsignal`` text). Updates of a task reach the
agent in order.

Health checks, checks, max_completion_time
------------------------------------------
``TaskInfo.health_check`` (COMMAND, HTTP, TCP) is run and counted as Mesos's
health checker does: ``healthy=true`` updates on the first success and the
first after failures, ``healthy=false`` on each counted failure, and after
``consecutive_failures`` the task is killed with its kill policy; its terminal
update carries ``healthy=false``. ``TaskInfo.check`` puts ``check_status`` on
every update and sends an update when the result changes.
``max_completion_time`` kills the task with no grace and no ``TASK_KILLING``;
it ends ``TASK_FAILED`` with ``REASON_MAX_COMPLETION_TIME_REACHED``. Checks
stop when the task is killed or ends.

Kill
----
``TASK_KILLING`` first if the framework has the ``TASK_KILLING_STATE``
capability (not for ``max_completion_time``), then SIGTERM to the task's
processes, SIGKILL once the grace period has passed, then ``TASK_KILLED``.
The grace period is the KILL's ``kill_policy``, else the task's, else 3 s. A
later KILL's grace counts from the first KILL and may only bring the SIGKILL
sooner (the default executor ignores a later KILL, as Mesos's does).

No process left behind
----------------------
The program makes itself a child subreaper (Linux), so a task's orphans
stay its descendants; when a task ends or is killed, every process of the task
(its process group and session, its descendants, and descendants of the
executor whose environment has the task's ``MESOS_SANDBOX``: this catches a
grandchild that called ``setsid``) is killed. Orphans are reaped without ever
taking the exit status of a process the executor waits for. Not on Linux:
signals reach the task's process group only, so a process of a task that
called ``setsid`` can outlive it.

Shutdown
--------
SHUTDOWN kills every task the same way, but the SIGKILL comes at the latest
``G - 1 - min(1, (G - 1) / 2)`` seconds after the SHUTDOWN, where ``G`` is the
shutdown grace period (``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD``, or the
``ExecutorInfo``'s when shorter): 3 s for the default 5 s. The driver ends
``G - 1`` s after the SHUTDOWN at the latest. The same bounded kill happens when
the driver ends for any other reason, and on SIGTERM or SIGINT to the executor
(a second signal aborts at once).

Framework messages
------------------
Logged. With ``--echo-messages`` every framework message is also sent back to
the framework, byte for byte (a diagnostic; the realmesos conformance harness
relies on it).

When it exits
-------------
The command and default modes exit once every task is terminal and every
update acknowledged, as Mesos's executors do; the custom mode stays up until
SHUTDOWN. ``--exit-when-done`` makes every mode exit when done, ``--stay-up``
none. When exiting by itself, the fail-safe of Mesos's executors applies:
``--terminal-ack-timeout`` (60 s) after the last terminal update it exits even
without the acknowledgement (status 1 in command mode, with "Did not receive
ACK for the terminal status update from the agent"; 0 in the others).

Exit status: 0 after SHUTDOWN or when done; 1 when the driver aborted (agent
unreachable or lost, recovery timeout, a SUBSCRIBE refused) with the reason on
stderr; 2 for a configuration error, with one line on stderr: an invalid
environment or launch flag, or a TLS file found unusable when connecting.

Logging goes to stderr; it is configured in :func:`main` only, never at import.
"""

from __future__ import annotations

from ._executor import DEFAULT_KILL_GRACE_PERIOD as DEFAULT_KILL_GRACE_PERIOD
from ._executor import DEFAULT_TERMINAL_ACK_TIMEOUT as DEFAULT_TERMINAL_ACK_TIMEOUT
from ._executor import MULTIPLE_TASKS_MESSAGE as MULTIPLE_TASKS_MESSAGE
from ._executor import CommandExecutor as CommandExecutor
from ._launch import LaunchFlags as LaunchFlags
from ._processes import ProcessKeeper as ProcessKeeper
from ._processes import describe_exit as describe_exit
from ._program import EXIT_ABORTED as EXIT_ABORTED
from ._program import EXIT_OK as EXIT_OK
from ._program import EXIT_USAGE as EXIT_USAGE
from ._program import main as main
from ._program import serve as serve
from ._tasks import Mode as Mode
from ._tasks import task_directory_name as task_directory_name

__all__ = [
    "DEFAULT_KILL_GRACE_PERIOD",
    "DEFAULT_TERMINAL_ACK_TIMEOUT",
    "EXIT_ABORTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MULTIPLE_TASKS_MESSAGE",
    "CommandExecutor",
    "LaunchFlags",
    "Mode",
    "ProcessKeeper",
    "describe_exit",
    "main",
    "serve",
    "task_directory_name",
]
