"""Quickstart: a complete Mesos executor, and a rehearsal of it against the FakeAgent.

Under a Mesos agent (the agent's environment says where it is)::

    python quickstart.py

Without a cluster, against the fake agent of ``trio_mesos.testing``::

    python quickstart.py --rehearse

The documentation's quickstart page shows this file, and the test suite runs
the rehearsal (tests/test_docs.py), so the page cannot go stale.
"""

import sys

import trio

import trio_mesos
from trio_mesos.v1 import mesos_pb2

# -- the executor --------------------------------------------------------------


class SleepExecutor(trio_mesos.Executor):
    """Each task sleeps for the seconds given in its ``data`` (default 1), then finishes."""

    async def launch_task(self, driver, task):
        # Callbacks run one at a time and should return quickly: the task's
        # work runs beside them, in a cancel scope the driver manages.
        driver.start_task(task.task_id.value, self.run_task, driver, task)

    async def run_task(self, driver, task):
        def report(state, message=""):
            # Never blocks: the driver sends the update, retries it until the
            # agent accepts it, and keeps it until the agent acknowledges it.
            status = mesos_pb2.TaskStatus(task_id=task.task_id, state=state, message=message)
            driver.send_status_update(status)

        report(mesos_pb2.TASK_RUNNING)
        try:
            seconds = float(task.data or b"1")
        except ValueError:
            report(mesos_pb2.TASK_FAILED, f"data must be a number of seconds, not {task.data!r}")
            return
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            # KILL (after kill_task returns) or SHUTDOWN cancelled the work.
            report(mesos_pb2.TASK_KILLED, "killed")
            raise
        report(mesos_pb2.TASK_FINISHED, f"slept {seconds:g} s")


def main():
    """Run the executor under a real agent; exit 0 if the driver stopped cleanly."""
    status = trio.run(trio_mesos.run_executor, SleepExecutor())
    return 0 if status == trio_mesos.Status.DRIVER_STOPPED else 1


# -- a rehearsal against the FakeAgent -----------------------------------------


def make_task(task_id, seconds):
    """A TaskInfo as a scheduler would send it (the FakeAgent fills in agent_id)."""
    task = mesos_pb2.TaskInfo(name=task_id, data=str(seconds).encode())
    task.task_id.value = task_id
    return task


async def rehearse():
    """Launch two tasks, kill one, shut the executor down; return the agent's updates."""
    from trio_mesos.testing import FakeAgent

    async with FakeAgent() as agent:
        async with trio_mesos.open_executor_driver(
            SleepExecutor(), config=agent.executor_config(), open_stream=agent.connect
        ) as driver:
            await agent.launch(make_task("nap", seconds=2))
            await agent.launch(make_task("forever", seconds=3600))
            await agent.wait_for_update("nap", mesos_pb2.TASK_FINISHED)
            await agent.kill("forever")
            await agent.wait_for_update("forever", mesos_pb2.TASK_KILLED)
            await agent.shutdown()  # what an agent does to end an executor
            status = await driver.join()
        assert status == trio_mesos.Status.DRIVER_STOPPED
        return agent.updates()


if __name__ == "__main__":
    if sys.argv[1:] == ["--rehearse"]:
        for update in trio.run(rehearse):
            state = mesos_pb2.TaskState.Name(update.state)
            print(f"{update.task_id.value:8} {state:14} {update.message}")
    else:
        sys.exit(main())
