"""A complete Mesos executor: runs each task for three seconds and reports it finished."""

import trio

import trio_mesos
from trio_mesos.v1 import mesos_pb2


class HelloExecutor(trio_mesos.Executor):
    async def launch_task(self, driver, task):
        driver.start_task(task.task_id.value, self.run, driver, task)

    async def run(self, driver, task):
        for state in (mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED):
            driver.send_status_update(mesos_pb2.TaskStatus(task_id=task.task_id, state=state))
            await trio.sleep(3)


if __name__ == "__main__":
    trio.run(trio_mesos.run_executor, HelloExecutor())
