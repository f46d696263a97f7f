"""Coverage-guided fuzzing with atheris (``make fuzz``); the Hypothesis properties are the CI part.

Targets (``--target``):

* ``events`` (default): bytes, split at fuzzer-chosen points, through the
  RecordIO decoder (fuzzer-chosen ``max_record_size``) and every record
  through ``parse_event`` in both media types. Only ``RemoteProtocolError``
  may come out; after the decoder reports ``NEED_DATA`` it never holds more
  than ``max(max_record_size, 20)`` bytes.
* ``driver``: the bytes are the agent's whole answer to SUBSCRIBE, from the
  minimal server of tests/io/test_hostile.py, in virtual time: the driver
  ends with ``AgentUnavailableError`` or ``DRIVER_ABORTED``/``DRIVER_STOPPED``,
  never anything else, never hangs.

Run: ``python -m tests.fuzz_atheris [--target driver] [libFuzzer flags, e.g.
-max_total_time=60 corpus_dir]`` from the repository root.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports(include=["trio_mesos", "h11"]):
    from trio_mesos._errors import RemoteProtocolError
    from trio_mesos._messages import ContentType, parse_event
    from trio_mesos._recordio import NEED_DATA, RecordIODecoder


def fuzz_events(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    max_size = provider.ConsumeIntInRange(0, 4096)
    content_type = ContentType.JSON if provider.ConsumeBool() else ContentType.PROTOBUF
    cuts = sorted(provider.ConsumeIntListInRange(4, 0, 1 << 16))
    stream = provider.ConsumeBytes(provider.remaining_bytes())
    decoder = RecordIODecoder(max_size)
    start = 0
    try:
        for cut in [*cuts, len(stream)]:
            cut = min(max(cut, start), len(stream))
            if cut > start:
                decoder.receive_data(stream[start:cut])
                start = cut
            while (record := decoder.next_record()) is not NEED_DATA:
                assert len(record) <= max_size
                with contextlib.suppress(RemoteProtocolError):
                    parse_event(record, content_type)
            assert decoder.buffered <= max(max_size, 20), decoder.buffered
        decoder.receive_data(b"")
        decoder.next_record()
    except RemoteProtocolError:
        pass


def fuzz_driver(data: bytes) -> None:
    import trio
    import trio.testing

    from tests.io.test_hostile import _drive_fuzzed_agent

    provider = atheris.FuzzedDataProvider(data)
    hang = provider.ConsumeBool()
    checkpoint = provider.ConsumeBool()
    answer = provider.ConsumeBytes(provider.remaining_bytes())
    clock = trio.testing.MockClock(autojump_threshold=0)
    outcome = trio.run(_drive_fuzzed_agent, [answer], hang, checkpoint, clock=clock)
    assert outcome in ("aborted", "stopped", "unavailable"), outcome


def main() -> None:
    argv = list(sys.argv)
    target = "events"
    if "--target" in argv:
        at = argv.index("--target")
        target = argv[at + 1]
        del argv[at : at + 2]
    if target == "driver":
        import logging

        logging.disable(logging.CRITICAL)
        atheris.Setup(argv, fuzz_driver)
    else:
        atheris.Setup(argv, fuzz_events)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
