"""``@record``: frozen value classes with ``__slots__``, without dataclass machinery.

What ``@dataclass(frozen=True, slots=True)`` gives the driver's many small
value classes (session inputs and actions, parsed events, HTTP responses),
made once at import by shared functions: ``dataclasses`` writes and
``exec``-compiles six methods and builds each class twice, which cost about
0.3 to 0.9 ms per class, a third of trio_mesos's own import time (the
"Performance, round 2" issue).

A record class gets:

* fields: its annotated class attributes not marked ``ClassVar``, after its
  record bases' fields; a class attribute of the same name is the default;
* ``__init__`` taking the fields positionally or by keyword;
* ``__repr__`` as a dataclass writes it, ``__match_args__``, ``__slots__``;
* frozen fields (assigning raises :class:`dataclasses.FrozenInstanceError`);
* with ``eq=True`` (the default), ``__eq__`` and ``__hash__`` over the fields
  (exactly the same class only); with ``eq=False``, identity;
* pickling and copying through ``__reduce__``.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError
from typing import TYPE_CHECKING, Any, TypeVar, overload

__all__ = ["record", "record_fields"]

T = TypeVar("T", bound=type)

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_: object) -> Callable[[Any], Any]:
        return lambda f: f


_set = object.__setattr__
_MISSING: Any = object()


@overload
def record(cls: T, /) -> T: ...
@overload
def record(*, eq: bool = True) -> Callable[[T], T]: ...


@dataclass_transform(frozen_default=True, eq_default=True)
def record(cls: T | None = None, /, *, eq: bool = True) -> T | Callable[[T], T]:
    """Make ``cls`` a frozen record (see the module docstring)."""

    def wrap(cls: T) -> T:
        return _build(cls, eq)

    return wrap if cls is None else wrap(cls)


def record_fields(obj: object) -> tuple[str, ...]:
    """The field names of a record class or instance, in order."""
    return getattr(obj, "__record_fields__", ())


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _build(cls: T, eq: bool) -> T:
    namespace = dict(cls.__dict__)
    own = tuple(
        name
        for name, annotation in namespace.get("__annotations__", {}).items()
        if not _is_classvar(annotation)
    )
    defaults: dict[str, Any] = dict(getattr(cls, "__record_defaults__", {}))
    for name in own:
        if name in namespace:
            defaults[name] = namespace.pop(name)
    fields = record_fields(cls) + own
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    namespace["__slots__"] = own
    namespace["__record_fields__"] = fields
    namespace["__record_defaults__"] = defaults
    namespace["__match_args__"] = fields
    namespace["__init__"] = _make_init(cls.__name__, fields, defaults)
    if eq:
        namespace["__eq__"] = _eq
        namespace["__hash__"] = _hash
    _install(namespace)
    new = type(cls)(cls.__name__, cls.__bases__, namespace)
    new.__qualname__ = cls.__qualname__
    return new


def _make_init(name: str, fields: tuple[str, ...], defaults: dict[str, Any]) -> Any:
    count = len(fields)

    def __init__(self: object, *args: Any, **kwargs: Any) -> None:
        if len(args) == count and not kwargs:
            for field, value in zip(fields, args, strict=True):
                _set(self, field, value)
            return
        if len(args) > count:
            raise TypeError(f"{name}() takes {count} arguments but {len(args)} were given")
        for field, value in zip(fields, args, strict=False):
            if field in kwargs:
                raise TypeError(f"{name}() got multiple values for argument '{field}'")
            _set(self, field, value)
        for field in fields[len(args) :]:
            value = kwargs.pop(field, _MISSING)
            if value is _MISSING:
                value = defaults.get(field, _MISSING)
                if value is _MISSING:
                    raise TypeError(f"{name}() missing required argument: '{field}'")
            _set(self, field, value)
        if kwargs:
            raise TypeError(f"{name}() got an unexpected keyword argument '{next(iter(kwargs))}'")

    return __init__


def _values(self: object) -> tuple[Any, ...]:
    return tuple(getattr(self, field) for field in self.__record_fields__)  # type: ignore[attr-defined]


def _eq(self: object, other: object) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: object) -> int:
    return hash(_values(self))


def _repr(self: object) -> str:
    inner = ", ".join(f"{field}={getattr(self, field)!r}" for field in self.__record_fields__)  # type: ignore[attr-defined]
    return f"{self.__class__.__qualname__}({inner})"


def _setattr(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _reduce(self: object) -> tuple[type, tuple[Any, ...]]:
    return self.__class__, _values(self)


def _install(namespace: dict[str, Any]) -> None:
    """The methods every record shares (a ``__repr__`` of the class's own stays)."""
    namespace.setdefault("__repr__", _repr)
    namespace["__setattr__"] = _setattr
    namespace["__delattr__"] = _delattr
    namespace["__reduce__"] = _reduce
