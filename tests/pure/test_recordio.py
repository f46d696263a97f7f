"""RecordIODecoder / encode_record: the RecordIO framing of the event stream.

Every case is fed whole, one byte at a time, in two halves, and with trailing
bytes that must be left for the next record (h11's ``tr()``), then in
arbitrary Hypothesis splits (STYLE.md §3.7).
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import byte_splits, split
from trio_mesos._errors import RemoteProtocolError
from trio_mesos._recordio import (
    DEFAULT_MAX_RECORD_SIZE,
    NEED_DATA,
    RecordIODecoder,
    encode_record,
)

# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------


def drain(decoder: RecordIODecoder, into: list[bytes] | None = None) -> list[bytes]:
    """Append every record the decoder can give now to ``into`` (stops at NEED_DATA).

    Records pulled before an error stay in ``into``.
    """
    records = [] if into is None else into
    while True:
        record = decoder.next_record()
        if record is NEED_DATA:
            return records
        assert isinstance(record, bytes)
        records.append(record)


def decode(
    chunks: Iterable[bytes], *, eof: bool = True, max_record_size: int = DEFAULT_MAX_RECORD_SIZE
) -> tuple[list[bytes], RemoteProtocolError | None]:
    """Feed ``chunks`` (then EOF), pulling records after every chunk.

    Returns the records yielded and the error that stopped the stream (or None).
    """
    decoder = RecordIODecoder(max_record_size=max_record_size)
    records: list[bytes] = []
    try:
        for chunk in chunks:
            decoder.receive_data(chunk)
            drain(decoder, records)
        if eof:
            decoder.receive_data(b"")
            drain(decoder, records)
            assert decoder.at_eof
    except RemoteProtocolError as exc:
        return records, exc
    return records, None


def bytewise(data: bytes) -> list[bytes]:
    return split(data, range(len(data)))


def halves(data: bytes) -> list[bytes]:
    return split(data, [len(data) // 2])


#: The three fixed ways every input is fed (plus Hypothesis splits below).
FEEDS = {
    "whole": lambda data: [data],
    "bytewise": bytewise,
    "halves": halves,
}


# ----------------------------------------------------------------------------
# mesos/mesos-go api/v1/lib/recordio/reader_test.go TestReadFrame, case by case,
# with MaxMessageSize(22). mesos-go's errors are ErrorUnderrun (stream ended too
# early), ErrorBadSize (length prefix not a number or too long) and
# ErrorOversizedFrame; ours are all RemoteProtocolError, raised after the same
# records that mesos-go yields before its error.
#
# Deliberate difference: mesos-go skips zero-length frames ("0\n" yields
# nothing); we yield them as b"" like the reference decoder in stout's
# recordio.hpp ("a length of 0 yields an empty record", PROTOCOL.md §1.4).
# ----------------------------------------------------------------------------

MESOS_GO_MAX = 22

MESOS_GO_CASES = [
    # (input, records we yield, whether we raise), each with mesos-go's expectation
    pytest.param(b"", [], False, id="empty"),  # mesos-go: [] ok
    pytest.param(b"a", [], True, id="a"),  # mesos-go: [] underrun
    # mesos-go: [] bad size ("21 digits is too large for frame size")
    pytest.param(b"a" * 21, [], True, id="21-a"),
    pytest.param(b"1" * 21, [], True, id="21-digits"),  # mesos-go: [] bad size
    pytest.param(b"a\n", [], True, id="a-newline"),  # mesos-go: [] bad size
    # mesos-go: [] ok (it skips the empty frame; we yield it)
    pytest.param(b"0\n", [b""], False, id="zero"),
    # mesos-go: [] ok (20 digits, the most a uint64 needs; empty frame skipped there, yielded here)
    pytest.param(b"0" * 20 + b"\n", [b""], False, id="20-zeros"),
    pytest.param(b"0" * 21 + b"\n", [], True, id="21-zeros"),  # mesos-go: [] bad size
    # mesos-go: [] ok (three empty frames skipped there, yielded here)
    pytest.param(b"0\n0\n0\n", [b"", b"", b""], False, id="three-zeros"),
    pytest.param(b"1\n", [], True, id="1-no-data"),  # mesos-go: [] underrun
    pytest.param(b"1\na", [b"a"], False, id="1-a"),  # mesos-go: ["a"] ok
    pytest.param(b"2\na", [], True, id="2-a"),  # mesos-go: [] underrun
    pytest.param(b"1\na1\nb1\nc", [b"a", b"b", b"c"], False, id="a-b-c"),  # mesos-go: a, b, c ok
    pytest.param(b"5\nabcde", [b"abcde"], False, id="abcde"),  # mesos-go: ["abcde"] ok
    # mesos-go: ["abcde", "fgh"] ok
    pytest.param(b"5\nabcde3\nfgh", [b"abcde", b"fgh"], False, id="abcde-fgh"),
    # mesos-go: ["abcde"] then underrun
    pytest.param(b"5\nabcde5\nfgh", [b"abcde"], True, id="abcde-short"),
    # mesos-go: [] oversized ("23 exceeds max of 22")
    pytest.param(b"23\n", [], True, id="23-oversized"),
]


@pytest.mark.parametrize("feed", FEEDS.values(), ids=FEEDS.keys())
@pytest.mark.parametrize(("data", "expected", "fails"), MESOS_GO_CASES)
def test_mesos_go_read_frame_table(feed, data, expected, fails):
    records, error = decode(feed(data), max_record_size=MESOS_GO_MAX)
    assert records == expected
    if fails:
        assert isinstance(error, RemoteProtocolError)
    else:
        assert error is None


@pytest.mark.parametrize(("data", "expected", "fails"), MESOS_GO_CASES)
def test_mesos_go_table_leaves_trailing_bytes(data, expected, fails):
    # h11's tr(): the bytes of the next record stay buffered, untouched, and
    # come out once complete.
    if fails:
        return
    decoder = RecordIODecoder(max_record_size=MESOS_GO_MAX)
    decoder.receive_data(data + b"8\ntrail")
    assert drain(decoder) == expected
    assert decoder.next_record() is NEED_DATA
    decoder.receive_data(b"ing")
    assert drain(decoder) == [b"trailing"]
    decoder.receive_data(b"")
    assert decoder.next_record() is NEED_DATA
    assert decoder.at_eof
    assert decoder.buffered == 0


def test_mesos_go_table_errors_without_eof_where_mesos_go_says_bad_size():
    # The malformed-prefix and oversized cases need no EOF to be detected.
    for data in [b"a", b"a" * 21, b"1" * 21, b"a\n", b"0" * 21 + b"\n", b"23\n"]:
        _, error = decode([data], eof=False, max_record_size=MESOS_GO_MAX)
        assert isinstance(error, RemoteProtocolError), data


def test_mesos_go_example():
    # mesos-go's Example(): "6\nhello 0\n6\nworld!" -> ["hello ", "world!"]
    # (mesos-go prints [hello  world!] since it skips the empty record).
    for feed in FEEDS.values():
        assert decode(feed(b"6\nhello 0\n6\nworld!")) == ([b"hello ", b"", b"world!"], None)


# ----------------------------------------------------------------------------
# PROTOCOL.md §1.4 framing vectors (stout's encoder + the agent's JSON writer)
# ----------------------------------------------------------------------------

STOUT_VECTORS = [
    (b"5\nhello6\nworld!", [b"hello", b"world!"]),
    (b'20\n{"type":"HEARTBEAT"}', [b'{"type":"HEARTBEAT"}']),
    (b'19\n{"type":"SHUTDOWN"}', [b'{"type":"SHUTDOWN"}']),
]


@pytest.mark.parametrize("feed", FEEDS.values(), ids=FEEDS.keys())
@pytest.mark.parametrize(("data", "records"), STOUT_VECTORS)
def test_stout_vectors_decode(feed, data, records):
    assert decode(feed(data)) == (records, None)


@pytest.mark.parametrize(("data", "records"), STOUT_VECTORS)
def test_stout_vectors_encode(data, records):
    assert b"".join(encode_record(r) for r in records) == data


def test_encode_record():
    assert encode_record(b"") == b"0\n"
    assert encode_record(b"\n") == b"1\n\n"
    assert encode_record(b"x" * 1234) == b"1234\n" + b"x" * 1234


# ----------------------------------------------------------------------------
# Properties
# ----------------------------------------------------------------------------

record_lists = st.lists(st.binary(max_size=300), max_size=8)


@given(st.data(), record_lists)
def test_any_split_of_encoded_records_decodes_to_the_records(data, records):
    stream = b"".join(encode_record(r) for r in records)
    chunks = data.draw(byte_splits(stream))
    assert b"".join(chunks) == stream
    assert decode(chunks) == (records, None)


@given(st.data(), record_lists, st.binary(max_size=30))
def test_records_before_any_garbage_come_out_intact(data, records, garbage):
    stream = b"".join(encode_record(r) for r in records)
    chunks = data.draw(byte_splits(stream + garbage))
    decoded, _ = decode(chunks)
    # Whatever the garbage does (more records, an error), it cannot eat a good record.
    assert decoded[: len(records)] == records


@given(st.data(), st.binary(max_size=200), st.integers(0, 100))
def test_arbitrary_bytes_give_records_or_remote_protocol_error(data, garbage, max_size):
    chunks = data.draw(byte_splits(garbage))
    decoder = RecordIODecoder(max_record_size=max_size)
    consumed = 0  # a lower bound: "007\n" re-encodes shorter
    error = None
    try:
        for chunk in chunks:
            decoder.receive_data(chunk)
            for record in drain(decoder):
                assert len(record) <= max_size
                consumed += len(encode_record(record))
        decoder.receive_data(b"")
        drain(decoder)
    except RemoteProtocolError as exc:
        error = exc
    # Anything else (IndexError, ValueError, ...) propagates and fails the test.
    if error is not None:
        assert error.offset is not None
        assert consumed <= error.offset <= len(garbage)


@given(st.data(), st.binary(min_size=1, max_size=60))
def test_after_an_error_the_decoder_stays_failed(data, garbage):
    chunks = data.draw(byte_splits(b"x" + garbage))  # "x" is never a valid start
    decoder = RecordIODecoder()
    decoder.receive_data(chunks[0])
    with pytest.raises(RemoteProtocolError) as first:
        decoder.next_record()
    for chunk in chunks[1:]:
        decoder.receive_data(chunk)
        with pytest.raises(RemoteProtocolError) as again:
            decoder.next_record()
        assert again.value is first.value
    decoder.receive_data(encode_record(b"fine"))
    decoder.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as again:
        decoder.next_record()
    assert again.value is first.value


@given(st.data(), st.binary(max_size=50), st.integers(0, 10))
def test_a_valid_stream_cut_short_raises_at_eof(data, record, cut):
    encoded = encode_record(record)
    # Keep at least one byte, drop at least one: always inside the record.
    truncated = encoded[: max(1, len(encoded) - 1 - cut)]
    records, error = decode(data.draw(byte_splits(truncated)))
    assert records == []
    assert isinstance(error, RemoteProtocolError)
    assert "stream ended" in str(error)


@given(st.integers(11, 10**25))
def test_oversized_record_rejected_on_its_length_line_alone(size):
    decoder = RecordIODecoder(max_record_size=10)
    decoder.receive_data(b"%d\n" % size)
    # No EOF, no body: the length line alone is enough.
    with pytest.raises(RemoteProtocolError):
        decoder.next_record()


# ----------------------------------------------------------------------------
# Limits
# ----------------------------------------------------------------------------


def test_oversized_record_rejected_without_its_body():
    decoder = RecordIODecoder(max_record_size=10)
    decoder.receive_data(b"1000\n")
    with pytest.raises(RemoteProtocolError) as excinfo:
        decoder.next_record()
    message = str(excinfo.value)
    assert "1000" in message
    assert "10 bytes" in message
    assert excinfo.value.offset == 0


def test_oversized_record_rejected_after_good_ones():
    decoder = RecordIODecoder(max_record_size=10)
    decoder.receive_data(b"2\nok10\n0123456789")
    assert drain(decoder) == [b"ok", b"0123456789"]
    decoder.receive_data(b"11\n")
    with pytest.raises(RemoteProtocolError) as excinfo:
        decoder.next_record()
    assert excinfo.value.offset == len(b"2\nok10\n0123456789")


def test_max_record_size_boundary():
    for feed in FEEDS.values():
        assert decode(feed(b"3\nabc"), max_record_size=3) == ([b"abc"], None)
        records, error = decode(feed(b"3\nabc"), max_record_size=2)
        assert records == []
        assert isinstance(error, RemoteProtocolError)


def test_max_record_size_zero_allows_only_empty_records():
    assert decode([b"0\n0\n"], max_record_size=0) == ([b"", b""], None)
    assert isinstance(decode([b"1\nx"], max_record_size=0)[1], RemoteProtocolError)


def test_default_max_record_size():
    assert RecordIODecoder().max_record_size == DEFAULT_MAX_RECORD_SIZE
    decoder = RecordIODecoder()
    decoder.receive_data(b"%d\n" % DEFAULT_MAX_RECORD_SIZE)
    assert decoder.next_record() is NEED_DATA  # allowed: waits for the body
    decoder = RecordIODecoder()
    decoder.receive_data(b"%d\n" % (DEFAULT_MAX_RECORD_SIZE + 1))
    with pytest.raises(RemoteProtocolError):
        decoder.next_record()


def test_uint64_max_length_is_a_length_not_a_format_error():
    # 20 digits is the most a uint64 needs: a size error, not a syntax one.
    decoder = RecordIODecoder()
    decoder.receive_data(b"18446744073709551615\n")
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        decoder.next_record()


def test_negative_max_record_size_is_refused():
    with pytest.raises(ValueError, match="max_record_size"):
        RecordIODecoder(max_record_size=-1)


# ----------------------------------------------------------------------------
# Error messages: what and where
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("feed", FEEDS.values(), ids=FEEDS.keys())
@pytest.mark.parametrize(
    ("data", "records", "what", "offset"),
    [
        # a non-digit in the second record's length line, 7 bytes in
        (b"5\nhelloX\n", [b"hello"], "non-digit", 7),
        (b"3\nabc12a\n", [b"abc"], "non-digit", 7),
        (b"-1\n", [], "non-digit", 0),
        (b" 1\nx", [], "non-digit", 0),
        (b"1 \nx", [], "non-digit", 1),
        (b"5\nhello\n", [b"hello"], "empty", 7),
        (b"\n", [], "empty", 0),
        (b"5\nhello99\n", [b"hello"], "exceeds", 7),
        (b"2\nab" + b"1" * 21, [b"ab"], "20 digits", 4),
        # truncated at EOF: in the length line, then in the body
        (b"5\nhello12", [b"hello"], "stream ended inside a RecordIO length prefix", 7),
        (b"5\nhello4\nab", [b"hello"], "stream ended inside a RecordIO record: 2 of 4", 9),
    ],
)
def test_error_says_what_and_where(feed, data, records, what, offset):
    decoded, error = decode(feed(data), max_record_size=50)
    assert decoded == records
    assert error is not None
    assert what in str(error)
    assert error.offset == offset
    assert f"at byte {offset}" in str(error)


def test_overlong_prefix_message_does_not_depend_on_the_split():
    # Regression: fed in one piece, 21 zeros + "\n" used to be reported as a
    # "non-digit byte b'\\n'" at byte 21.
    whole = decode([b"0" * 21 + b"\n"])[1]
    bytewise_error = decode(bytewise(b"0" * 21 + b"\n"))[1]
    assert whole is not None
    assert bytewise_error is not None
    assert "20 digits" in str(bytewise_error)
    assert str(whole) == str(bytewise_error)


# ----------------------------------------------------------------------------
# EOF handling
# ----------------------------------------------------------------------------


def test_receive_data_after_eof_raises_runtime_error():
    decoder = RecordIODecoder()
    decoder.receive_data(b"1\na")
    decoder.receive_data(b"")
    with pytest.raises(RuntimeError):
        decoder.receive_data(b"2\nbc")
    assert drain(decoder) == [b"a"]


def test_eof_can_be_signalled_twice():
    decoder = RecordIODecoder()
    decoder.receive_data(b"")
    decoder.receive_data(b"")
    assert decoder.at_eof
    assert decoder.next_record() is NEED_DATA


@pytest.mark.parametrize("data", [b"1", b"12", b"1\n", b"5\nabc", b"0\n3\n"])
def test_truncated_at_eof_raises(data):
    decoder = RecordIODecoder()
    decoder.receive_data(data)
    records = drain(decoder)  # nothing wrong yet: it may still come
    decoder.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="stream ended"):
        decoder.next_record()
    assert records == ([b""] if data.startswith(b"0\n") else [])


def test_clean_eof_between_records():
    decoder = RecordIODecoder()
    decoder.receive_data(b"1\na")
    decoder.receive_data(b"")
    assert decoder.next_record() == b"a"
    assert decoder.next_record() is NEED_DATA
    assert decoder.next_record() is NEED_DATA
    assert decoder.at_eof


def test_buffered_counts_unreturned_bytes():
    decoder = RecordIODecoder()
    assert decoder.buffered == 0
    decoder.receive_data(b"5\nab")
    assert decoder.buffered == 4
    assert decoder.next_record() is NEED_DATA
    decoder.receive_data(b"cde")
    assert decoder.next_record() == b"abcde"
    assert decoder.buffered == 0


def test_mid_record_says_whether_a_record_has_started() -> None:
    decoder = RecordIODecoder()
    assert not decoder.mid_record
    decoder.receive_data(b"5")
    assert decoder.mid_record  # a length prefix in progress
    decoder.receive_data(b"\n")
    assert decoder.next_record() is NEED_DATA
    assert decoder.mid_record and decoder.buffered == 0  # header read, no body yet
    decoder.receive_data(b"hello")
    assert decoder.next_record() == b"hello"
    assert not decoder.mid_record
