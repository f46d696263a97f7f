"""RecordIO framing of the executor event stream: an incremental decoder and an encoder.

Theory of operation
-------------------
The SUBSCRIBE response body is a RecordIO stream (Mesos ``docs/recordio.md``)::

    records     = *record
    record      = record-size LF record-data
    record-size = 1*DIGIT            ; an unsigned 64-bit integer
    record-data = record-size(OCTET)

The agent writes ``decimal(len) + "\\n" + bytes`` per event and nothing else;
HTTP chunk boundaries carry no meaning (intermediaries may re-chunk), so the
decoder accepts the bytes in any split.

The decoder has h11's shape: :meth:`RecordIODecoder.receive_data` only stores
bytes (``b""`` means the stream ended) and :meth:`RecordIODecoder.next_record`
returns one record, or :data:`NEED_DATA` when more bytes are needed. A
violation raises :class:`~trio_mesos.RemoteProtocolError` naming what was
wrong and at which stream offset; the decoder then stays failed (every later
call raises the same error). An oversized record is rejected as soon as its
length has been read, before any of its bytes are buffered.

Zero-length records are valid (the reference decoder yields them; the agent
never sends one, since every event has at least a ``type``).
"""

from __future__ import annotations

import enum
from typing import Final, Literal

from ._errors import RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_RECORD_SIZE",
    "NEED_DATA",
    "NeedData",
    "RecordIODecoder",
    "encode_record",
]

#: Largest record accepted by default: 64 MiB. Real events are small (a
#: LAUNCH_GROUP of many tasks with large ``data`` is the largest case, and the
#: master refuses messages over its own limits long before this); the bound
#: only exists so a hostile or broken stream cannot make us buffer unboundedly.
DEFAULT_MAX_RECORD_SIZE: Final = 64 * 1024 * 1024

# record-size is an unsigned 64-bit integer: at most 20 decimal digits
# (18446744073709551615). Leading zeros count, as in mesos-go's reader.
_MAX_SIZE_DIGITS: Final = 20
_DIGITS: Final = frozenset(b"0123456789")


class NeedData(enum.Enum):
    """Type of the :data:`NEED_DATA` sentinel."""

    NEED_DATA = "NEED_DATA"


#: Returned by :meth:`RecordIODecoder.next_record` when no complete record is buffered.
NEED_DATA: Final = NeedData.NEED_DATA


def encode_record(record: bytes) -> bytes:
    """Frame one record: ``decimal(len(record)) + b"\\n" + record``."""
    return b"%d\n%s" % (len(record), record)


class RecordIODecoder:
    """Incremental RecordIO decoder (no I/O; feed it bytes, take records out).

    Args:
        max_record_size: largest record length accepted, in bytes. A length
            prefix above it raises :class:`~trio_mesos.RemoteProtocolError` at
            once. Defaults to :data:`DEFAULT_MAX_RECORD_SIZE`.
    """

    def __init__(self, max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> None:
        if max_record_size < 0:
            raise ValueError(f"max_record_size must be >= 0, not {max_record_size}")
        self.max_record_size = max_record_size
        self._buffer = bytearray()
        # Stream offset of self._buffer[0]: for error messages.
        self._offset = 0
        # Length of the record whose header has been read, or None while
        # waiting for a header.
        self._pending: int | None = None
        self._eof = False
        self._error: RemoteProtocolError | None = None

    @property
    def at_eof(self) -> bool:
        """Whether the end of the stream has been received (``receive_data(b"")``)."""
        return self._eof

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned in a record."""
        return len(self._buffer)

    @property
    def mid_record(self) -> bool:
        """Whether part of a record (its length prefix, at least) has been received."""
        return self._pending is not None or bool(self._buffer)

    def receive_data(self, data: bytes) -> None:
        """Store received bytes; ``b""`` means the stream ended.

        Raises:
            RuntimeError: if data arrives after the end of the stream.
        """
        if data:
            if self._eof:
                raise RuntimeError("received data after the end of the stream")
            self._buffer += data
        else:
            self._eof = True

    def next_record(self) -> bytes | Literal[NeedData.NEED_DATA]:
        """Return the next complete record, or :data:`NEED_DATA`.

        At the end of the stream, :data:`NEED_DATA` means "no more records";
        check :attr:`at_eof` to tell the two apart.

        Raises:
            RemoteProtocolError: malformed or over-long length prefix, a record
                larger than ``max_record_size``, or a stream that ended in the
                middle of a record. The decoder stays failed afterwards.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._next_record()
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    def _fail(self, msg: str, at: int = 0) -> RemoteProtocolError:
        return RemoteProtocolError(msg, offset=self._offset + at)

    def _next_record(self) -> bytes | Literal[NeedData.NEED_DATA]:
        buf = self._buffer
        if self._pending is None:
            newline = buf.find(b"\n", 0, _MAX_SIZE_DIGITS + 1)
            header = buf[: _MAX_SIZE_DIGITS + 1] if newline < 0 else buf[:newline]
            for i, byte in enumerate(header):
                if byte not in _DIGITS:
                    raise self._fail(
                        f"RecordIO length prefix has a non-digit byte {bytes([byte])!r}", i
                    )
            if newline < 0:
                if len(buf) > _MAX_SIZE_DIGITS:
                    raise self._fail(
                        f"RecordIO length prefix is longer than {_MAX_SIZE_DIGITS} digits"
                    )
                if self._eof and buf:
                    raise self._fail("stream ended inside a RecordIO length prefix")
                return NEED_DATA
            if newline == 0:
                raise self._fail("RecordIO length prefix is empty")
            size = int(header)
            if size > self.max_record_size:
                raise self._fail(
                    f"RecordIO record of {size} bytes exceeds the maximum of "
                    f"{self.max_record_size} bytes"
                )
            del buf[: newline + 1]
            self._offset += newline + 1
            self._pending = size
        size = self._pending
        if len(buf) < size:
            if self._eof:
                raise self._fail(
                    f"stream ended inside a RecordIO record: {len(buf)} of {size} bytes received"
                )
            return NEED_DATA
        record = bytes(buf[:size])
        del buf[:size]
        self._offset += size
        self._pending = None
        return record
