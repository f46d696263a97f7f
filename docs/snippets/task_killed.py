"""Task work that reports one terminal state: TASK_KILLED when cancelled.

Shown on the "Cancellation semantics" page; the project's test suite runs
it against the FakeAgent (tests/test_docs.py), so the page cannot go stale.
Each task runs the command line in its ``data``, e.g. ``b"sleep 60"``.
"""

import shlex

import trio

import trio_mesos
from trio_mesos.v1 import mesos_pb2


class CommandExecutor(trio_mesos.Executor):
    async def launch_task(self, driver, task):
        driver.start_task(task.task_id.value, run_command, driver, task)


async def run_command(driver, task):
    def report(state, message):
        driver.send_status_update(mesos_pb2.TaskStatus(
            task_id=task.task_id, state=state, message=message))

    argv = shlex.split(task.data.decode())
    report(mesos_pb2.TASK_RUNNING, shlex.join(argv))
    # The terminal state. It says KILLED until the command has ended by
    # itself: when the work is cancelled, no line below changes it.
    state, message = mesos_pb2.TASK_KILLED, "killed"
    try:
        done = await trio.run_process(argv, check=False)
        if done.returncode == 0:
            state, message = mesos_pb2.TASK_FINISHED, "exit status 0"
        else:
            state = mesos_pb2.TASK_FAILED
            message = f"exit status {done.returncode}"
    except Exception as exc:  # no such program, ...; never a cancellation
        state = mesos_pb2.TASK_FAILED
        message = f"cannot run {task.data!r}: {exc}"
    finally:
        # Runs however the work ends. A cancellation comes out of
        # run_process as a *group* of trio.Cancelled, which an
        # `except trio.Cancelled:` clause would miss. Nothing here
        # swallows the cancellation: it goes on after the report.
        report(state, message)
