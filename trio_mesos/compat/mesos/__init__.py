"""The old Mesos Python bindings (``mesos.interface`` + ``mesos.native``), on trio_mesos.

Change only the imports of a classic executor::

    from trio_mesos.compat.mesos import interface, native
    from trio_mesos.compat.mesos.interface import mesos_pb2

``interface.Executor`` has the bindings' callbacks, ``native.MesosExecutorDriver``
(also ``trio_mesos.compat.mesos.executor.MesosExecutorDriver``, the path newer
Mesos examples use) the driver, and ``mesos_pb2`` the executor-facing messages
and enums under their old names. The messages are Mesos v1's: see
:mod:`trio_mesos.compat.mesos.mesos_pb2` for the names that differ.
"""
