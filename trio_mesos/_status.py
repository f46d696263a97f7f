"""The legacy driver ``Status`` values (``mesos.Status`` in include/mesos/mesos.proto).

``start``, ``stop``, ``abort``, ``join``, ``run`` and the ``send_*`` methods
return one of these, as ``org.apache.mesos.ExecutorDriver`` does. The values
are the legacy numbers (there is no zero).
"""

from __future__ import annotations

import enum

__all__ = ["Status"]


class Status(enum.IntEnum):
    """State of an executor driver, as the seed ``ExecutorDriver`` reports it."""

    DRIVER_NOT_STARTED = 1
    DRIVER_RUNNING = 2
    DRIVER_ABORTED = 3
    DRIVER_STOPPED = 4
