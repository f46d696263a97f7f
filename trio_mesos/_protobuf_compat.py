"""What differs between the protobuf runtimes trio_mesos supports (5.27 to 7.x), in one place.

trio_mesos's generated code (``trio_mesos/_proto``, made by protoc 26.1; see
scripts/gen_proto.py) runs unchanged on protobuf 5.27 to 7.x. The one runtime
API the library uses that changed in that range is how a field says whether it
is repeated or required:

* protobuf 6.31 added the ``FieldDescriptor.is_repeated`` and ``is_required``
  properties and deprecated ``FieldDescriptor.label``;
* protobuf 7.0 removed ``label`` (and the ``LABEL_*`` constants).

Code in trio_mesos and its tests asks these two functions, never the
descriptor, so each runtime gets the spelling it has. This module is pure.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor

__all__ = ["is_repeated", "is_required"]

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
