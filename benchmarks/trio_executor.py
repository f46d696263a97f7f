"""The no-op executor of the benchmarks, on trio_mesos.

Each ``launch_task`` queues ``BENCH_UPDATES`` updates (TASK_RUNNING ...,
TASK_FINISHED); the first carries ``time.monotonic()`` at entry in its
``message`` (the bench agent computes the dispatch latency from it).
``BENCH_CONTENT_TYPE`` is ``protobuf`` (default) or ``json``.
"""

import os
import time

import trio

import trio_mesos
from trio_mesos.v1 import mesos_pb2

UPDATES = int(os.environ.get("BENCH_UPDATES", "10"))
TASK_RUNNING = mesos_pb2.TASK_RUNNING
TASK_FINISHED = mesos_pb2.TASK_FINISHED


class NoOp(trio_mesos.Executor):
    async def launch_task(self, driver, task):  # type: ignore[no-untyped-def]
        entered = time.monotonic()
        for i in range(UPDATES):
            status = mesos_pb2.TaskStatus(
                state=TASK_FINISHED if i == UPDATES - 1 else TASK_RUNNING
            )
            status.task_id.CopyFrom(task.task_id)
            if i == 0:
                status.message = repr(entered)
            driver.send_status_update(status)


def main() -> None:
    ct = os.environ.get("BENCH_CONTENT_TYPE", "protobuf")
    content_type = trio_mesos.ContentType.JSON if ct == "json" else trio_mesos.ContentType.PROTOBUF
    trio.run(lambda: trio_mesos.run_executor(NoOp(), content_type=content_type))


if __name__ == "__main__":
    main()
