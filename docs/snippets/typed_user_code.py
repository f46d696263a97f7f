"""What a type checker sees of trio_mesos's messages (docs/installation.rst, "Type checking").

``make lint`` runs ``mypy --strict`` on this file. Fields have their types from
trio_mesos's own stubs; what messages inherit from protobuf (``SerializeToString``,
``ParseFromString``, ``CopyFrom``...) is typed only with protobuf's stubs installed
(``pip install 'trio-mesos[typing]'``): without them it is ``Any``, and the last
check below fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trio_mesos.v1 import mesos_pb2

if TYPE_CHECKING:
    from typing_extensions import assert_type


def running(task_id: str) -> mesos_pb2.TaskStatus:
    status = mesos_pb2.TaskStatus(state=mesos_pb2.TASK_RUNNING)
    status.task_id.value = task_id
    if TYPE_CHECKING:
        assert_type(status.task_id.value, str)
        assert_type(status.state, mesos_pb2.TaskState.ValueType)
        assert_type(status.SerializeToString(), bytes)
    return status
