"""Fuzzing the event path (issue 8): RecordIO decoder and event parsing together.

tests/pure/test_recordio.py and test_messages.py already feed each of the two
arbitrary bytes. These properties go further: real event streams (both media
types) are *mutated* -- bits flipped, bytes inserted, deleted, cut, length
digits rewritten -- and fed through the decoder and ``parse_event`` the way the
driver does, in arbitrary splits:

* only :class:`~trio_mesos.RemoteProtocolError` ever comes out;
* every record before the first damaged byte still comes out, and parses to
  the event that was sent;
* memory stays bounded: once the decoder asks for more data it never holds
  more than ``max(max_record_size, 20)`` bytes, whatever the input, and a
  huge advertised length is refused from its prefix without allocating.
"""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.event_checks import check_parsed_event
from tests.strategies import byte_splits, events
from trio_mesos import RemoteProtocolError
from trio_mesos._messages import (
    ContentType,
    encode_message,
    parse_event,
)
from trio_mesos._recordio import NEED_DATA, RecordIODecoder, encode_record
from trio_mesos.testing._agent_json import write_json
from trio_mesos.v1 import executor_pb2

#: Longest RecordIO length prefix (an unsigned 64-bit integer in decimal).
MAX_DIGITS = 20

content_types = st.sampled_from(list(ContentType))


def encode_event(event: executor_pb2.Event, content_type: ContentType) -> bytes:
    """A record for ``event`` that parses back to it.

    (``write_json``, the FakeAgent's copy of the agent's JSON writer, prints
    doubles with 15 digits as Mesos does, so an extreme one such as
    ``1.7976931348623157e308`` comes back as infinity and is refused: it is
    used only for the mutation test below, where any outcome is fine.)
    """
    return encode_message(event, content_type)


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> tuple[bytes, int]:
    """``data`` damaged 1-4 times; also the offset of the first damaged byte."""
    buf = bytearray(data)
    first = len(buf)
    for _ in range(draw(st.integers(1, 4))):
        if not buf:
            break
        at = draw(st.integers(0, len(buf) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete", "cut", "digit", "newline"]))
        if op == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif op == "delete":
            del buf[at : at + draw(st.integers(1, 12))]
        elif op == "cut":
            del buf[at:]
        elif op == "digit":
            buf[at] = ord(draw(st.sampled_from("0123456789")))
        else:
            buf[at] = ord("\n")
        first = min(first, at)
    return bytes(buf), first


def feed(
    chunks: list[bytes], content_type: ContentType, max_record_size: int
) -> tuple[list[bytes], list[object], RemoteProtocolError | None]:
    """What the driver does with the stream: records, parsed events, the error if any."""
    decoder = RecordIODecoder(max_record_size)
    records: list[bytes] = []
    parsed: list[object] = []
    try:
        for piece in [*chunks, b""]:
            decoder.receive_data(piece)
            while (record := decoder.next_record()) is not NEED_DATA:
                assert len(record) <= max_record_size
                records.append(record)
                parsed.append(parse_event(record, content_type))
            # Memory bound: waiting for data, the decoder holds less than one
            # record of the largest allowed size, or a partial length prefix.
            assert decoder.buffered <= max(max_record_size, MAX_DIGITS)
    except RemoteProtocolError as exc:
        return records, parsed, exc
    return records, parsed, None


@given(st.data(), st.lists(events(), min_size=1, max_size=5), content_types)
def test_mutated_event_streams_give_events_or_a_remote_protocol_error(
    data: st.DataObject, sent: list[executor_pb2.Event], content_type: ContentType
) -> None:
    records = [encode_event(event, content_type) for event in sent]
    stream = b"".join(encode_record(record) for record in records)
    damaged, first = data.draw(mutations(stream))
    chunks = data.draw(byte_splits(damaged))
    got, parsed, _error = feed(chunks, content_type, max_record_size=1 << 16)
    # Anything but RemoteProtocolError (or an assertion) escaped feed() and failed;
    # each record that parsed gave the event its bytes carry.
    for record, event in zip(got, parsed, strict=False):
        check_parsed_event(event, record, content_type)
    # Records wholly before the first damaged byte are intact.
    end = 0
    for record in records:
        end += len(encode_record(record))
        if end > first:
            break
        assert got and got.pop(0) == record


@given(st.data(), st.lists(events(), min_size=1, max_size=4), content_types)
def test_undamaged_streams_in_any_split_parse_to_what_was_sent(
    data: st.DataObject, sent: list[executor_pb2.Event], content_type: ContentType
) -> None:
    # The baseline of the property above (and a test of its harness).
    records = [encode_event(event, content_type) for event in sent]
    stream = b"".join(encode_record(record) for record in records)
    got, parsed, error = feed(data.draw(byte_splits(stream)), content_type, 1 << 16)
    assert error is None
    assert got == records
    assert [type(p) for p in parsed] == [type(parse_event(r, content_type)) for r in records]


@given(events(), st.data())
def test_mutated_protobuf_events_parse_or_raise_remote_protocol_error(
    event: executor_pb2.Event, data: st.DataObject
) -> None:
    damaged, _ = data.draw(mutations(event.SerializeToString()))
    try:
        parsed = parse_event(damaged, ContentType.PROTOBUF)
    except RemoteProtocolError:
        return
    check_parsed_event(parsed, damaged, ContentType.PROTOBUF)


@given(events(), st.data(), st.booleans())
def test_mutated_json_events_parse_or_raise_remote_protocol_error(
    event: executor_pb2.Event, data: st.DataObject, agent_writer: bool
) -> None:
    text = write_json(event) if agent_writer else encode_message(event, ContentType.JSON)
    damaged, _ = data.draw(mutations(text))
    try:
        parsed = parse_event(damaged, ContentType.JSON)
    except RemoteProtocolError:
        return
    check_parsed_event(parsed, damaged, ContentType.JSON)


@given(st.data(), st.binary(max_size=400), st.integers(0, 64))
def test_the_decoder_never_holds_more_than_one_allowed_record(
    data: st.DataObject, garbage: bytes, max_record_size: int
) -> None:
    # Arbitrary bytes in arbitrary splits: the buffered bound holds after each
    # piece (checked inside feed), whatever comes out.
    feed(data.draw(byte_splits(garbage)), ContentType.PROTOBUF, max_record_size)


@given(st.integers(0, 2**64 - 1), st.integers(0, 1 << 20), st.binary(max_size=64))
def test_a_length_prefix_is_checked_before_any_byte_of_the_record_is_kept(
    advertised: int, max_record_size: int, tail: bytes
) -> None:
    decoder = RecordIODecoder(max_record_size)
    decoder.receive_data(b"%d\n" % advertised + tail)
    if advertised > max_record_size:
        with pytest.raises(RemoteProtocolError, match="exceeds the maximum"):
            decoder.next_record()
    else:
        result = decoder.next_record()
        if len(tail) < advertised:
            assert result is NEED_DATA
            assert decoder.buffered == len(tail)
        else:
            assert result == tail[:advertised]


@pytest.mark.parametrize(
    ("advertised", "max_record_size"),
    [
        (2**64 - 1, 1024),  # the largest uint64, a small limit: refused at once
        (10**19, 64 * 1024 * 1024),  # far over the default limit
        (60 * 1024 * 1024, 64 * 1024 * 1024),  # allowed, but only 16 bytes ever come
    ],
)
def test_a_huge_advertised_length_allocates_nothing(advertised: int, max_record_size: int) -> None:
    tracemalloc.start()
    try:
        decoder = RecordIODecoder(max_record_size)
        decoder.receive_data(b"%d\n" % advertised)
        decoder.receive_data(b"x" * 16)
        try:
            assert decoder.next_record() is NEED_DATA
        except RemoteProtocolError:
            assert advertised > max_record_size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"{peak} bytes allocated for a {advertised}-byte claim"
