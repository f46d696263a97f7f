"""Drop-in shims for executors written for older Python Mesos libraries.

* :mod:`trio_mesos.compat.pymesos`: pymesos 0.3.15's ``Executor`` and
  ``MesosExecutorDriver`` (dict messages);
* :mod:`trio_mesos.compat.mesos`: the old Mesos Python bindings
  (``mesos.interface``, ``mesos.native``, ``mesos.executor``, and
  ``mesos.interface.mesos_pb2``; protobuf messages).

Both run :func:`trio_mesos.open_executor_driver` in a background thread and
the executor's callbacks on a worker thread; see docs/migration.rst. Nothing
is imported until a shim is.
"""
