"""The Mesos agent's JSON, both ways: how it writes events and how it reads calls.

Theory of operation
-------------------
The agent does not use protobuf's own JSON mapping. Its writer (stout's
``JSON::Protobuf`` streaming writer, ``3rdparty/stout/include/stout/protobuf.hpp``)
and its reader (stout's ``protobuf::parse`` over picojson) have their own
rules, which executors see on the wire. This module re-implements both from
those rules so the fake agent's bytes and error texts match a real agent's:

Writer (:func:`write_json`):

* compact, fields in ``.proto`` declaration order, proto field names;
* repeated fields only when non-empty; singular fields when set **or** when
  they carry an explicit ``[default = ...]`` and are not deprecated (so
  ``FrameworkInfo.failover_timeout: 0.0`` and ``checkpoint: false`` appear
  even when unset, while ``FrameworkInfo.role`` and ``Resource.role``, which
  are deprecated upstream, never do);
* enums by name, bytes as standard base64, integers (64-bit too) as JSON
  numbers, doubles as C's ``%#.15g`` with trailing zeros trimmed (``32.0``,
  ``0.1``, ``1795797877.18974``);
* strings escaped as picojson does (Mesos' copy does not escape ``/``);
* unknown fields are not written.

Reader (:func:`parse_json_call`):

* picojson parses the first JSON value and ignores what follows it; a syntax
  error reads ``syntax error at line N near: <rest of the line>``;
* the top level must be an object (``Expecting a JSON object``);
* object members are visited in sorted key order (a ``std::map``); unknown
  names are ignored; ``null`` means unset;
* per value type: ``Not expecting a JSON <kind> for field '<name>'`` on a type
  mismatch; an unknown enum name leaves an optional field unset (``Failed to
  find enum for '<name>'`` on a required one); bytes must be base64
  (``Failed to base64 decode bytes field '<name>': Invalid character 'c'``);
  numeric and boolean fields also take their value as a string;
  a JSON object given for a repeated message field adds one element;
* finally ``Missing required fields: a, b.c`` when required fields are unset.

Known approximations (the tests name them): the position picojson reports in
a syntax error (we use Python's), the texts after ``Failed to parse '<s>' as a
JSON number`` and base64 errors other than an invalid character.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from .._protobuf_compat import is_repeated, is_required
from ..v1 import executor_pb2

__all__ = [
    "DEPRECATED_WITH_DEFAULT",
    "CallParseError",
    "format_double",
    "parse_json_call",
    "parse_protobuf_call",
    "write_json",
]

#: Fields that are deprecated upstream and carry an explicit default: the
#: agent's writer skips them when unset. Our ``.proto`` files do not carry the
#: ``deprecated`` option, so the list lives here.
DEPRECATED_WITH_DEFAULT: Final = frozenset(
    {
        ("mesos.v1.FrameworkInfo", "role"),
        ("mesos.v1.Resource", "role"),
    }
)


class CallParseError(Exception):
    """The body is not a Call the agent can read; ``str()`` is the agent's 400 body."""


# --------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------

_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _json_string(text: str) -> str:
    out = ['"']
    for ch in text:
        escaped = _ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_double(value: float) -> str:
    """Format a double the way stout's JSON writer does.

    ``snprintf("%#.15g")`` and then every trailing ``0`` trimmed, with a ``0``
    added back after a bare ``.``. The trim also eats zeros of an exponent
    (``1e+20`` prints as ``1.00000000000000e+2``): that is the agent's bug,
    reproduced on purpose.
    """
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = ("%#.15g" % value).rstrip("0")  # noqa: UP031 - C's format, on purpose
    return text + "0" if text.endswith(".") else text


def _scalar(field: Any, value: Any) -> str:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE or kind == FieldDescriptor.TYPE_GROUP:
        return _message(value)
    if kind == FieldDescriptor.TYPE_ENUM:
        enum_value = field.enum_type.values_by_number.get(value)
        return _json_string(enum_value.name) if enum_value is not None else str(int(value))
    if kind == FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if kind == FieldDescriptor.TYPE_STRING:
        return _json_string(value)
    if kind == FieldDescriptor.TYPE_BYTES:
        return _json_string(base64.b64encode(value).decode("ascii"))
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return format_double(float(value))
    return str(int(value))


def _is_map(field: Any) -> bool:
    message_type = field.message_type
    return message_type is not None and message_type.GetOptions().map_entry


def _message(message: Message) -> str:
    descriptor: Any = message.DESCRIPTOR
    parts: list[str] = []
    for field in descriptor.fields:
        name = field.name
        if is_repeated(field):
            values = getattr(message, name)
            if not len(values):
                continue
            if _is_map(field):
                value_field = field.message_type.fields_by_name["value"]
                items = [
                    f"{_json_string(str(key))}:{_scalar(value_field, values[key])}"
                    for key in values
                ]
                parts.append(f"{_json_string(name)}:{{{','.join(items)}}}")
            else:
                items = [_scalar(field, item) for item in values]
                parts.append(f"{_json_string(name)}:[{','.join(items)}]")
            continue
        if not message.HasField(name) and (
            not field.has_default_value or (descriptor.full_name, name) in DEPRECATED_WITH_DEFAULT
        ):
            continue
        parts.append(f"{_json_string(name)}:{_scalar(field, getattr(message, name))}")
    return "{" + ",".join(parts) + "}"


def write_json(message: Message) -> bytes:
    """Serialize ``message`` exactly as the Mesos agent's JSON writer does."""
    return _message(message).encode("utf-8")


# --------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------


class _JSONSyntaxError(Exception):
    pass


def _reject_constant(name: str) -> Any:
    # picojson knows no NaN / Infinity literals.
    raise ValueError(name)


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_WHITESPACE: Final = re.compile(r"[ \t\r\n]*")


def _picojson_error(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    rest = text[pos:].split("\n", 1)[0]
    near = "".join(ch for ch in rest if ch >= " ")
    return f"syntax error at line {line} near: {near}"


def _parse_json(body: bytes) -> Any:
    """Parse the first JSON value of ``body`` (trailing bytes are ignored, as picojson)."""
    text = body.decode("utf-8", errors="surrogateescape")
    start = _WHITESPACE.match(text, 0)
    index = start.end() if start else 0
    try:
        value, _end = _DECODER.raw_decode(text, index)
    except json.JSONDecodeError as exc:
        raise _JSONSyntaxError(_picojson_error(text, exc.pos)) from None
    except (ValueError, RecursionError):
        raise _JSONSyntaxError(_picojson_error(text, index)) from None
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_B64_ALPHABET: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _stout_base64_decode(text: str) -> bytes:
    # stout reads up to the first '=' and refuses any other non-alphabet byte.
    data = text.split("=", 1)[0]
    for ch in data:
        if ch not in _B64_ALPHABET:
            raise ValueError(f"Invalid character '{ch}'")
    if len(data) % 4 == 1:
        raise ValueError("Invalid length")
    return base64.b64decode(data + "=" * (-len(data) % 4))


_NUMBER_TEXT: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

_INTEGER_TYPES: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_FLOAT_TYPES: Final = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})


def _store(message: Message, field: Any, value: Any) -> None:
    if is_repeated(field):
        getattr(message, field.name).append(value)
    else:
        setattr(message, field.name, value)


def _apply(message: Message, field: Any, value: Any) -> None:
    """Apply one JSON value to one field (stout's ``Parser`` visitor)."""
    name = field.name
    kind = field.type
    if value is None:
        return
    if isinstance(value, list):
        if not is_repeated(field):
            raise CallParseError(f"Not expecting a JSON array for field '{name}'")
        for item in value:
            _apply(message, field, item)
        return
    if isinstance(value, dict):
        if kind != FieldDescriptor.TYPE_MESSAGE:
            raise CallParseError(f"Not expecting a JSON object for field '{name}'")
        if is_repeated(field):
            child = getattr(message, name).add()
        else:
            child = getattr(message, name)
            child.SetInParent()
        _apply_object(child, value)
        return
    if isinstance(value, bool):
        if kind != FieldDescriptor.TYPE_BOOL:
            raise CallParseError(f"Not expecting a JSON boolean for field '{name}'")
        _store(message, field, value)
        return
    if isinstance(value, int | float):
        _apply_number(message, field, value)
        return
    # A string.
    assert isinstance(value, str)
    if kind == FieldDescriptor.TYPE_STRING:
        _store(message, field, value)
    elif kind == FieldDescriptor.TYPE_BYTES:
        try:
            decoded = _stout_base64_decode(value)
        except ValueError as exc:
            raise CallParseError(f"Failed to base64 decode bytes field '{name}': {exc}") from None
        _store(message, field, decoded)
    elif kind == FieldDescriptor.TYPE_ENUM:
        enum_value = field.enum_type.values_by_name.get(value)
        if enum_value is None:
            if is_required(field):
                raise CallParseError(f"Failed to find enum for '{value}'")
            return
        _store(message, field, enum_value.number)
    elif kind in _FLOAT_TYPES and value in ("Infinity", "-Infinity"):
        _store(message, field, math.inf if value == "Infinity" else -math.inf)
    elif kind in _FLOAT_TYPES or kind in _INTEGER_TYPES:
        if not _NUMBER_TEXT.fullmatch(value):
            raise CallParseError(
                f"Failed to parse '{value}' as a JSON number for field '{name}': "
                f"syntax error at line 1 near: {value}"
            )
        number: int | float = float(value) if any(c in value for c in ".eE") else int(value)
        _apply_number(message, field, number)
    elif kind == FieldDescriptor.TYPE_BOOL:
        if value not in ("true", "false"):
            raise CallParseError(
                f"Failed to parse '{value}' as a JSON boolean for field '{name}': "
                f"syntax error at line 1 near: {value}"
            )
        _store(message, field, value == "true")
    else:
        raise CallParseError(f"Not expecting a JSON string for field '{name}'")


def _apply_number(message: Message, field: Any, value: float) -> None:
    kind = field.type
    if kind in _FLOAT_TYPES:
        _store(message, field, float(value))
    elif kind in _INTEGER_TYPES:
        try:
            _store(message, field, int(value))
        except (ValueError, TypeError, OverflowError) as exc:
            raise CallParseError(f"Number out of range for field '{field.name}': {exc}") from None
    else:
        raise CallParseError(f"Not expecting a JSON number for field '{field.name}'")


def _apply_object(message: Message, document: dict[str, Any]) -> None:
    descriptor: Any = message.DESCRIPTOR
    fields = descriptor.fields_by_name
    for key in sorted(document):
        field = fields.get(key)
        if field is not None:
            _apply(message, field, document[key])


def _initialization_errors(message: Message) -> str:
    find: Callable[[], list[str]] = getattr(message, "FindInitializationErrors")  # noqa: B009
    return ", ".join(find())


def parse_json_call(body: bytes) -> executor_pb2.Call:
    """Read a JSON request body as the agent does.

    Raises:
        CallParseError: with the agent's 400 body text.
    """
    try:
        document = _parse_json(body)
    except _JSONSyntaxError as exc:
        raise CallParseError(f"Failed to parse body into JSON: {exc}") from None
    call = executor_pb2.Call()
    prefix = "Failed to convert JSON into Call protobuf: "
    if not isinstance(document, dict):
        raise CallParseError(prefix + "Expecting a JSON object")
    try:
        _apply_object(call, document)
    except CallParseError as exc:
        raise CallParseError(prefix + str(exc)) from None
    except (ValueError, TypeError) as exc:  # e.g. a string that is not valid UTF-8
        raise CallParseError(prefix + str(exc)) from None
    if not call.IsInitialized():
        raise CallParseError(prefix + "Missing required fields: " + _initialization_errors(call))
    return call


def parse_protobuf_call(body: bytes) -> executor_pb2.Call:
    """Read a protobuf request body as the agent does (``ParseFromString``).

    Raises:
        CallParseError: ``Failed to parse body into Call protobuf``.
    """
    call = executor_pb2.Call()
    try:
        call.ParseFromString(body)
    except Exception:  # DecodeError, or a RuntimeWarning-free upb error
        raise CallParseError("Failed to parse body into Call protobuf") from None
    if not call.IsInitialized():
        raise CallParseError("Failed to parse body into Call protobuf")
    return call
