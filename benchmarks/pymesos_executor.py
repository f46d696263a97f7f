"""The no-op executor of the benchmarks, on pymesos 0.3.15 (run in its own venv).

Same behaviour as ``trio_executor.py``: ``BENCH_UPDATES`` updates per task,
the first carrying ``time.monotonic()`` at ``launchTask`` entry. pymesos only
speaks JSON.
"""

import os
import time

from pymesos import Executor, MesosExecutorDriver

UPDATES = int(os.environ.get("BENCH_UPDATES", "10"))


class NoOp(Executor):
    def launchTask(self, driver, task):
        entered = time.monotonic()
        tid = task["task_id"]["value"]
        for i in range(UPDATES):
            status = {
                "task_id": {"value": tid},
                "state": "TASK_FINISHED" if i == UPDATES - 1 else "TASK_RUNNING",
            }
            if i == 0:
                status["message"] = repr(entered)
            driver.sendStatusUpdate(status)


if __name__ == "__main__":
    MesosExecutorDriver(NoOp()).run()
