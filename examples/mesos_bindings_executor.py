"""An executor written for the old Mesos Python bindings, on trio_mesos: only the imports changed.

Classic style: a thread per task, protobuf messages, ``driver.run()`` as the
exit status. Each task runs the shell command carried as text in
``TaskInfo.data`` (how ../shared/realmesos's custom mode sends it). Under the
bindings the imports read::

    from mesos.interface import mesos_pb2
    from mesos import interface, native

Framework messages are answered with ``echo: <message>``.
"""

import logging
import os
import signal
import subprocess
import sys
import threading

from trio_mesos.compat.mesos import interface, native
from trio_mesos.compat.mesos.interface import mesos_pb2


class ShellExecutor(interface.Executor):
    def __init__(self):
        self.lock = threading.Lock()
        self.processes = {}  # task id -> Popen
        self.killed = set()
        self.threads = []

    def launchTask(self, driver, task):
        thread = threading.Thread(target=self.run_task, args=(driver, task))
        self.threads.append(thread)
        thread.start()

    def run_task(self, driver, task):
        task_id = task.task_id.value
        send_update(driver, task_id, mesos_pb2.TASK_RUNNING)
        with self.lock:
            if task_id in self.killed:
                process = None
            else:
                command = task.data.decode("utf-8")
                process = subprocess.Popen(["/bin/sh", "-c", command], start_new_session=True)
                self.processes[task_id] = process
        code = process.wait() if process is not None else None
        with self.lock:
            killed = task_id in self.killed
        if killed:
            send_update(driver, task_id, mesos_pb2.TASK_KILLED, "killed")
        elif code == 0:
            send_update(driver, task_id, mesos_pb2.TASK_FINISHED, "exit status 0")
        else:
            send_update(driver, task_id, mesos_pb2.TASK_FAILED, f"exit status {code}")

    def killTask(self, driver, taskId):
        with self.lock:
            self.killed.add(taskId.value)
            process = self.processes.get(taskId.value)
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)

    def frameworkMessage(self, driver, message):
        driver.sendFrameworkMessage(b"echo: " + message)

    def shutdown(self, driver):
        with self.lock:
            task_ids = list(self.processes)
        for task_id in task_ids:
            self.killTask(driver, mesos_pb2.TaskID(value=task_id))
        for thread in self.threads:
            thread.join(timeout=2)
        driver.stop()


def send_update(driver, task_id, state, message=""):
    update = mesos_pb2.TaskStatus()
    update.task_id.value = task_id
    update.state = state
    update.message = message
    driver.sendStatusUpdate(update)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    driver = native.MesosExecutorDriver(ShellExecutor())
    sys.exit(0 if driver.run() == mesos_pb2.DRIVER_STOPPED else 1)
