"""``mesos.interface.mesos_pb2`` under its old names, from Mesos v1's messages.

Every message and enum of ``mesos.v1`` (:mod:`trio_mesos.v1.mesos_pb2`):
``TaskStatus``, ``TaskID``, ``TaskInfo``, ``ExecutorInfo``, ``FrameworkInfo``,
``TASK_RUNNING``, ... ; the old names ``SlaveID`` and ``SlaveInfo`` for
``AgentID`` and ``AgentInfo``; and the driver ``Status`` values
``DRIVER_NOT_STARTED``, ``DRIVER_RUNNING``, ``DRIVER_ABORTED``,
``DRIVER_STOPPED`` (the numbers of the old ``mesos.Status``).

The fields are v1's: old field names are not available. Use ``agent_id``
for ``slave_id`` (``TaskInfo``, ``TaskStatus``), ``AgentInfo`` has no
``checkpoint`` (``SlaveInfo.checkpoint`` is v0 only), and ``TaskStatus``
takes no ``executor_id``/``uuid``/``timestamp``/``source`` from you (the
driver sets them). Messages of the scheduler side (``Offer``,
``Request``, ...) are v1's too.
"""

from ..._proto.mesos_pb2 import *  # noqa: F403 - the module's whole namespace
from ..._proto.mesos_pb2 import AgentID, AgentInfo
from ..._status import Status

SlaveID = AgentID
SlaveInfo = AgentInfo
DRIVER_NOT_STARTED = Status.DRIVER_NOT_STARTED
DRIVER_RUNNING = Status.DRIVER_RUNNING
DRIVER_ABORTED = Status.DRIVER_ABORTED
DRIVER_STOPPED = Status.DRIVER_STOPPED
