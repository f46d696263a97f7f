"""How a task is started: the agent's launch flags, the command, the environment.

The flags are those of ``mesos-executor`` (``Flags`` in
``src/launcher/executor.cpp``, Mesos 1.11). What they mean there and here:

==============================  ===============================================
``--launcher_dir``              accepted; used by nothing here
``--task_command``              a JSON ``CommandInfo`` run instead of the task's
``--task_environment``          a JSON ``Environment`` set over the executor's
                                environment, below ``CommandInfo.environment``
``--working_directory``         the task's working directory
``--user``                      run the task as this user (needs root unless it
                                is the executor's user, else the task fails)
``--task_supplementary_groups`` comma-separated gids (needs root)
``--sandbox_directory``         accepted; only means something with ``--rootfs``
``--rootfs``                    not supported: the task fails, naming the flag
``--effective_capabilities``,   not supported (the task fails)
``--bounding_capabilities``
``--tty_slave_path``            not supported (the task fails)
``--task_launch_info``          ignored when it asks for nothing; with mounts,
                                file operations, pre-exec commands or
                                namespaces, not supported (the task fails)
==============================  ===============================================

The environment rule is ``launch`` of ``src/launcher/executor.cpp``: the
executor's own environment, then ``--task_environment``, then
``CommandInfo.environment`` (``SECRET`` variables skipped), then
``MESOS_ALLOCATION_ROLE`` (the role of the task's first resource). A task of
a group gets ``MESOS_CONTAINER_IP`` and ``MESOS_ALLOCATION_ROLE`` after its own
variables, as ``_launchGroup`` of ``src/launcher/default_executor.cpp`` adds them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from trio_mesos.v1 import mesos_pb2

__all__ = ["LaunchFlags", "add_launch_flags", "launch_flags_from_args", "task_command"]

TOKEN_VARIABLE = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"


class LaunchFlagError(ValueError):
    """A launch flag's value cannot be used (bad JSON, bad gid list)."""


@dataclasses.dataclass(frozen=True)
class LaunchFlags:
    """The agent's launch flags (see the module docstring)."""

    task_command: mesos_pb2.CommandInfo | None = None
    task_environment: mesos_pb2.Environment | None = None
    working_directory: str | None = None
    user: str | None = None
    supplementary_groups: tuple[int, ...] | None = None
    #: Flags naming a feature this executor cannot provide: flag -> value.
    unsupported: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def refusal(self) -> str | None:
        """Why a task cannot run as these flags ask, or None."""
        if self.unsupported:
            names = ", ".join(f"--{name}" for name in sorted(self.unsupported))
            return f"trio-mesos-executor does not support {names}: the task was not run"
        return None


_UNSUPPORTED = ("rootfs", "effective_capabilities", "bounding_capabilities", "tty_slave_path")
_IGNORED = ("launcher_dir", "sandbox_directory")


def add_launch_flags(parser: argparse.ArgumentParser) -> None:
    """Add the ``mesos-executor`` flags (both ``--a_b`` and ``--a-b`` spellings)."""
    names = (
        *_IGNORED,
        *_UNSUPPORTED,
        "task_command",
        "task_environment",
        "working_directory",
        "user",
        "task_supplementary_groups",
        "task_launch_info",
    )
    for name in names:
        parser.add_argument(
            f"--{name}", f"--{name.replace('_', '-')}", dest=name, help=argparse.SUPPRESS
        )


def _parse_json(flag: str, text: str, message: Any) -> Any:
    from google.protobuf import json_format  # lazy: only when the agent passes JSON

    try:
        return json_format.Parse(text, message)
    except (json_format.ParseError, ValueError) as exc:
        raise LaunchFlagError(f"--{flag}: not a JSON {type(message).__name__}: {exc}") from None


def launch_flags_from_args(args: argparse.Namespace) -> LaunchFlags:
    """The flags of a parsed command line.

    Raises:
        LaunchFlagError: a value cannot be parsed.
    """
    unsupported = {n: getattr(args, n) for n in _UNSUPPORTED if getattr(args, n) is not None}
    if args.task_launch_info is not None:
        import json  # lazy: only with this flag

        try:
            info = json.loads(args.task_launch_info)
        except ValueError as exc:
            raise LaunchFlagError(f"--task_launch_info: not JSON: {exc}") from None
        asks = ("mounts", "file_operations", "pre_exec_commands", "clone_namespaces")
        if not isinstance(info, dict) or any(info.get(key) for key in asks):
            unsupported["task_launch_info"] = args.task_launch_info
    groups = None
    if args.task_supplementary_groups is not None:
        try:
            groups = tuple(int(g) for g in args.task_supplementary_groups.split(",") if g)
        except ValueError:
            text = args.task_supplementary_groups
            raise LaunchFlagError(f"--task_supplementary_groups: not gids: {text!r}") from None
    command = environment = None
    if args.task_command is not None:
        command = _parse_json("task_command", args.task_command, mesos_pb2.CommandInfo())
    if args.task_environment is not None:
        environment = _parse_json(
            "task_environment", args.task_environment, mesos_pb2.Environment()
        )
    return LaunchFlags(
        task_command=command,
        task_environment=environment,
        working_directory=args.working_directory,
        user=args.user,
        supplementary_groups=groups,
        unsupported=unsupported,
    )


def task_command(
    task: mesos_pb2.TaskInfo, override: mesos_pb2.CommandInfo | None = None
) -> tuple[list[str], str, mesos_pb2.CommandInfo | None]:
    """The argv, the executable and the ``CommandInfo`` a task runs.

    ``override`` is ``--task_command``. Custom-executor mode: a task with no
    command but ``data`` runs ``/bin/sh -c <data>``.

    Raises:
        ValueError: the task has nothing to run, or its ``data`` is not UTF-8.
    """
    command = override
    if command is None and task.HasField("command") and task.command.HasField("value"):
        command = task.command
    if command is not None:
        if not command.HasField("value"):
            raise ValueError("the task's command has no value")
        if command.shell:  # the proto default is true
            return ["/bin/sh", "-c", command.value], "/bin/sh", command
        return (list(command.arguments) or [command.value]), command.value, command
    if task.data:
        try:
            text = task.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"TaskInfo.data is not a UTF-8 shell command: {exc}") from None
        return ["/bin/sh", "-c", text], "/bin/sh", None
    raise ValueError("the task has no command (TaskInfo.command.value) and no data to run")


def _set_variables(
    env: dict[str, str], environment: mesos_pb2.Environment, skipped: list[str]
) -> None:
    for variable in environment.variables:
        if variable.type == mesos_pb2.Environment.Variable.SECRET:
            skipped.append(variable.name)
            continue
        env[variable.name] = variable.value


def task_environment(
    base: Mapping[str, str],
    task: mesos_pb2.TaskInfo,
    command: mesos_pb2.CommandInfo | None,
    flags: LaunchFlags,
    *,
    sandbox: str,
    container_ip: str | None,
) -> tuple[dict[str, str], list[str]]:
    """The task's environment and the names of the secrets left out (see the module docstring).

    ``container_ip`` is given for tasks of a group (``MESOS_CONTAINER_IP``).
    """
    env = dict(base)
    env.pop(TOKEN_VARIABLE, None)
    env["MESOS_SANDBOX"] = sandbox
    skipped: list[str] = []
    if flags.task_environment is not None:
        _set_variables(env, flags.task_environment, skipped)
    if command is not None and command.HasField("environment"):
        _set_variables(env, command.environment, skipped)
    if container_ip is not None:
        env["MESOS_CONTAINER_IP"] = container_ip
    if task.resources:
        env["MESOS_ALLOCATION_ROLE"] = task.resources[0].allocation_info.role
    return env, skipped


def user_options(flags: LaunchFlags) -> tuple[dict[str, Any], str | None]:
    """``open_process`` options for ``--user`` and the groups; or why the task cannot run."""
    if flags.user is None and flags.supplementary_groups is None:
        return {}, None
    import pwd  # lazy: only with --user

    root = os.geteuid() == 0
    options: dict[str, Any] = {}
    if flags.user is not None:
        try:
            entry = pwd.getpwnam(flags.user)
        except KeyError:
            return {}, f"--user={flags.user}: no such user"
        if entry.pw_uid != os.geteuid():
            if not root:
                return {}, f"--user={flags.user}: switching user needs root"
            options = {
                "user": entry.pw_uid,
                "group": entry.pw_gid,
                "extra_groups": os.getgrouplist(entry.pw_name, entry.pw_gid),
            }
    if flags.supplementary_groups is not None:
        if not root:
            return {}, "--task_supplementary_groups needs root"
        options["extra_groups"] = list(flags.supplementary_groups)
    return options, None
