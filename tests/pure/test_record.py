"""trio_mesos._record: frozen value classes without dataclass machinery."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import ClassVar

import pytest

from trio_mesos._record import record, record_fields


@record
class Base:
    kind: ClassVar[int]


@record
class Point(Base):
    x: int
    label: str = "origin"
    kind: ClassVar[int] = 3


@record
class Tagged(Point):
    tag: bytes = b""


@record(eq=False)
class Box:
    content: object


def test_fields_defaults_and_class_variables() -> None:
    assert record_fields(Point) == ("x", "label")
    assert record_fields(Tagged(1)) == ("x", "label", "tag")
    assert Point.__match_args__ == ("x", "label")
    assert Point(1) == Point(1, "origin") == Point(x=1, label="origin")
    assert Point.kind == Point(1).kind == 3
    assert not hasattr(Point(1), "__dict__")


def test_repr_is_a_dataclass_repr() -> None:
    assert repr(Point(1, "a")) == "Point(x=1, label='a')"
    assert repr(Tagged(2, tag=b"t")) == "Tagged(x=2, label='origin', tag=b't')"


def test_eq_and_hash_over_the_fields_of_the_same_class_only() -> None:
    assert Point(1) != Point(2)
    assert Point(1) != Tagged(1)
    assert hash(Point(1, "a")) == hash(Point(1, "a"))
    assert len({Point(1), Point(1), Point(2)}) == 2
    assert Box(1) != Box(1)
    box = Box(1)
    assert box == box


def test_frozen() -> None:
    point = Point(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del point.x  # type: ignore[misc]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing required argument: 'x'"),
        ((1, "a", 3), {}, "takes 2 arguments but 3 were given"),
        ((1,), {"x": 2}, "multiple values for argument 'x'"),
        ((1,), {"y": 2}, "unexpected keyword argument 'y'"),
    ],
)
def test_bad_arguments_raise_type_error(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Point(*args, **kwargs)


def test_match_pickle_and_copy() -> None:
    point = Tagged(1, "a", b"t")
    match point:
        case Point(x, label):
            assert (x, label) == (1, "a")
        case _:  # pragma: no cover
            pytest.fail("no match")
    assert pickle.loads(pickle.dumps(point)) == point
    assert copy.deepcopy(point) == point
    assert copy.copy(point) == point
