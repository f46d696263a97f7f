"""What a scheduler sends to run tasks under a trio_mesos executor.

Shown on the "Running on a real Mesos cluster" page; tests/test_docs.py builds
each message and checks that it is complete (``IsInitialized``).
"""

from trio_mesos.v1 import mesos_pb2


def sleep_executor_info(framework_id: str) -> mesos_pb2.ExecutorInfo:
    """A custom executor: the quickstart's program, fetched into the sandbox."""
    info = mesos_pb2.ExecutorInfo(
        type=mesos_pb2.ExecutorInfo.CUSTOM,
        name="sleep executor (trio_mesos)",
    )
    info.executor_id.value = "sleep-executor-1"
    info.framework_id.value = framework_id
    # The agent runs this with /bin/sh -c in the sandbox, with its own
    # environment only (PATH is the host's default path).
    info.command.value = "exec python3 quickstart.py"
    info.command.uris.add(value="https://example.org/executors/quickstart.py")
    # Variables the agent does not pass on by itself, e.g. for TLS to the agent:
    for name, value in (
        ("LIBPROCESS_SSL_ENABLED", "true"),
        ("LIBPROCESS_SSL_CA_FILE", "/etc/mesos/ssl/ca.pem"),
    ):
        info.command.environment.variables.add(
            name=name, value=value, type=mesos_pb2.Environment.Variable.VALUE
        )
    # The executor's MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD:
    info.shutdown_grace_period.nanoseconds = 10 * 1_000_000_000
    for name, amount in (("cpus", 0.1), ("mem", 64.0)):
        resource = info.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = amount
    return info


def sleep_task(
    task_id: str, agent_id: str, executor: mesos_pb2.ExecutorInfo
) -> mesos_pb2.TaskInfo:
    """A task for that executor: ``data`` is how long it sleeps."""
    task = mesos_pb2.TaskInfo(name=f"sleep {task_id}", data=b"30")
    task.task_id.value = task_id
    task.agent_id.value = agent_id
    task.executor.CopyFrom(executor)  # a task has an executor or a command, not both
    task.kill_policy.grace_period.nanoseconds = 3 * 1_000_000_000
    for name, amount in (("cpus", 1.0), ("mem", 128.0)):
        resource = task.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = amount
    return task


def command_executor_info(framework_id: str) -> mesos_pb2.ExecutorInfo:
    """trio_mesos's command executor as a custom executor: runs each task's command."""
    info = mesos_pb2.ExecutorInfo(type=mesos_pb2.ExecutorInfo.CUSTOM, name="trio-mesos-executor")
    info.executor_id.value = "commands-1"
    info.framework_id.value = framework_id
    info.command.value = "exec trio-mesos-executor --exit-when-done"
    return info


def command_task(
    task_id: str, agent_id: str, executor: mesos_pb2.ExecutorInfo
) -> mesos_pb2.TaskInfo:
    """A shell command for that executor. A task with an executor may not have a
    ``command`` too, so in this custom mode the command executor runs ``data``."""
    task = mesos_pb2.TaskInfo(name=f"command {task_id}", data=b"echo hello; sleep 5")
    task.task_id.value = task_id
    task.agent_id.value = agent_id
    task.executor.CopyFrom(executor)
    for name, amount in (("cpus", 0.5), ("mem", 32.0)):
        resource = task.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = amount
    return task
