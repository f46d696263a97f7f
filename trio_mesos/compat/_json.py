"""Messages as pymesos passes them: dicts in the agent's own JSON shape.

pymesos reads the agent's JSON events and hands ``json.loads`` of each part
to the callbacks. The agent's writer is not protobuf's JSON mapping: it is
stout's streaming ``JSON::Protobuf`` writer
(``3rdparty/stout/include/stout/protobuf.hpp`` in apache/mesos), whose rules
this module follows to build the same dicts straight from a message:

* proto field names (``task_id``, not ``taskId``), in declaration order;
* repeated fields only when non-empty, maps as objects;
* singular fields when set, or when they have an explicit ``[default = ...]``
  and are not deprecated upstream;
* enums by name, bytes as standard base64, integers (64-bit too) as numbers,
  doubles as the number C's ``%#.15g`` prints with trailing zeros trimmed
  (an exponent's zeros too: the agent's quirk, kept).

The FakeAgent's byte writer (:mod:`trio_mesos.testing`) follows the same
rules; a test checks that these dicts equal ``json.loads`` of its bytes.

The other way, :func:`status_from_dict` reads a status update given as such
a dict (enum names, base64 ``data``) into a ``TaskStatus``.
"""

from __future__ import annotations

import base64
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from .._errors import LocalProtocolError
from .._proto import mesos_pb2
from .._protobuf_compat import is_repeated

__all__ = ["message_to_dict", "status_from_dict"]

#: Deprecated upstream with an explicit default: the agent's writer skips them
#: when unset (our ``.proto`` files do not carry the ``deprecated`` option).
_DEPRECATED_WITH_DEFAULT: Final = frozenset(
    {("mesos.v1.FrameworkInfo", "role"), ("mesos.v1.Resource", "role")}
)
_MESSAGE_TYPES: Final = (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP)
_FLOAT_TYPES: Final = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)


def _double(value: float) -> float:
    text = ("%#.15g" % value).rstrip("0")  # noqa: UP031 - C's format, on purpose
    return float(text + "0" if text.endswith(".") else text)


def _value(field: Any, value: Any) -> Any:
    kind = field.type
    if kind in _MESSAGE_TYPES:
        return message_to_dict(value)
    if kind == FieldDescriptor.TYPE_ENUM:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else int(value)
    if kind == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if kind in _FLOAT_TYPES:
        return _double(float(value))
    if kind in (FieldDescriptor.TYPE_BOOL, FieldDescriptor.TYPE_STRING):
        return value
    return int(value)


def message_to_dict(message: Message) -> dict[str, Any]:
    """``message`` as ``json.loads`` of what the Mesos agent writes for it."""
    descriptor: Any = message.DESCRIPTOR
    result: dict[str, Any] = {}
    for field in descriptor.fields:
        name = field.name
        if is_repeated(field):
            values = getattr(message, name)
            if not len(values):
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                result[name] = {str(key): _value(value_field, values[key]) for key in values}
            else:
                result[name] = [_value(field, item) for item in values]
            continue
        if not message.HasField(name) and (
            not field.has_default_value
            or (descriptor.full_name, name) in _DEPRECATED_WITH_DEFAULT
        ):
            continue
        result[name] = _value(field, getattr(message, name))
    return result


def status_from_dict(status: dict[str, Any]) -> mesos_pb2.TaskStatus:
    """A ``TaskStatus`` from a dict in the agent's JSON shape (not modified).

    Raises:
        LocalProtocolError: the dict is not a ``TaskStatus`` (an unknown
            state name, ``data`` not base64, a missing ``task_id``, ...).
    """
    from google.protobuf import json_format  # only executors that use dicts need it

    message = mesos_pb2.TaskStatus()
    try:
        json_format.ParseDict(status, message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise LocalProtocolError(f"not a TaskStatus: {exc}") from None
    missing: list[str] = message.FindInitializationErrors()  # type: ignore[attr-defined]
    if missing:
        raise LocalProtocolError(f"not a TaskStatus: missing {', '.join(missing)}")
    return message
