"""``mesos.executor``: the import path of ``MesosExecutorDriver`` in newer Mesos examples."""

from .native import MesosExecutorDriver as MesosExecutorDriver

__all__ = ["MesosExecutorDriver"]
