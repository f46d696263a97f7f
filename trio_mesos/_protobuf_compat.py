"""What differs between the protobuf runtimes trio_mesos supports (5.27 to 7.x), in one place.

trio_mesos's generated code (``trio_mesos/_proto``, made by protoc 26.1; see
scripts/gen_proto.py) runs unchanged on protobuf 5.27 to 7.x. The one runtime
API the library uses that changed in that range is how a field says whether it
is repeated or required:

* protobuf 6.31 added the ``FieldDescriptor.is_repeated`` and ``is_required``
  properties and deprecated ``FieldDescriptor.label``;
* protobuf 7.0 removed ``label`` (and the ``LABEL_*`` constants).

Code in trio_mesos and its tests asks these two functions, never the
descriptor, so each runtime gets the spelling it has.

The generated modules also build their messages through this module, in
:data:`POOL`, a descriptor pool of trio_mesos's own rather than protobuf's
process-wide default pool, where another package's copy of the Mesos protos
would clash with them (docs/installation.rst, "Other copies of the Mesos
protos"). This module is pure.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pool, symbol_database
from google.protobuf.descriptor import FieldDescriptor, FileDescriptor
from google.protobuf.internal import builder

__all__ = ["POOL", "build_messages", "is_repeated", "is_required"]

#: The descriptor pool that holds mesos/v1/mesos.proto and executor.proto.
POOL = descriptor_pool.DescriptorPool()

# A plain bool (not an ``if hasattr(...)`` mypy could narrow): with protobuf 7's
# stubs either branch below would otherwise read as unreachable.
_HAS_LABEL_PROPERTIES: bool = hasattr(FieldDescriptor, "is_repeated")
# protobuf < 6.31 only: descriptor.proto's FieldDescriptorProto.Label numbers.
_LABEL_REQUIRED = 2
_LABEL_REPEATED = 3


def is_repeated(field: FieldDescriptor) -> bool:
    """True if ``field`` is a repeated (or map) field."""
    if _HAS_LABEL_PROPERTIES:
        return bool(field.is_repeated)
    return bool(getattr(field, "label") == _LABEL_REPEATED)  # noqa: B009


def is_required(field: FieldDescriptor) -> bool:
    """True if ``field`` is a proto2 ``required`` field."""
    if _HAS_LABEL_PROPERTIES:
        return bool(field.is_required)
    return bool(getattr(field, "label") == _LABEL_REQUIRED)  # noqa: B009


def build_messages(file: FileDescriptor, module_name: str, module: dict[str, Any]) -> None:
    """protobuf's ``builder.BuildTopDescriptorsAndMessages``, registering in :data:`POOL` only.

    With the pure-Python runtime (``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``)
    protobuf's builder also adds every message to its default symbol database,
    hence to the default pool, where another copy of the Mesos protos clashes.
    It does so through its module-level ``_sym_db`` (protobuf 5.27 to 7.x), which
    points at a database over POOL for the time of the call. (The upb runtime
    registers nothing there; a builder without ``_sym_db`` is called as it is.)
    """
    default = getattr(builder, "_sym_db", None)
    if default is not None:
        setattr(builder, "_sym_db", symbol_database.SymbolDatabase(pool=POOL))  # noqa: B010
    try:
        builder.BuildTopDescriptorsAndMessages(file, module_name, module)
    finally:
        if default is not None:
            setattr(builder, "_sym_db", default)  # noqa: B010
