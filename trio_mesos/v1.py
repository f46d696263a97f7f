"""The Mesos v1 protobuf messages, as trio_mesos speaks them on the wire.

This is the one public import path for the generated code::

    from trio_mesos.v1 import mesos_pb2, executor_pb2

    status = mesos_pb2.TaskStatus(
        task_id=task.task_id, state=mesos_pb2.TASK_RUNNING
    )

``mesos_pb2`` holds package ``mesos.v1`` (TaskInfo, TaskStatus, ExecutorInfo,
...); ``executor_pb2`` holds ``mesos.v1.executor`` (Call, Event). Both are
generated from ``proto/`` by ``scripts/gen_proto.py``; unknown fields (for
example the field 7 a real 1.11 agent sends in ``AgentInfo``) are kept and
re-serialized intact, as protobuf's Python runtime does for proto2.
"""

from ._proto import executor_pb2 as executor_pb2
from ._proto import mesos_pb2 as mesos_pb2

__all__ = ["executor_pb2", "mesos_pb2"]
