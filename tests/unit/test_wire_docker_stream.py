import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubedock.wire import Stream, StreamDemuxer, WireFormatError, frame


def test_frame_matches_the_engine_bytes() -> None:
    assert frame(Stream.STDOUT, b"out\n") == b"\x01\x00\x00\x00\x00\x00\x00\x04out\n"
    assert frame(Stream.STDERR, b"err\n") == b"\x02\x00\x00\x00\x00\x00\x00\x04err\n"
    assert frame(Stream.STDIN, b"x" * 256) == b"\x00\x00\x00\x00\x00\x00\x01\x00" + b"x" * 256


def test_empty_payload_needs_no_frame() -> None:
    assert frame(Stream.STDOUT, b"") == b""


def test_demuxer_handles_split_headers_and_skips_empty_frames() -> None:
    wire = frame(Stream.STDOUT, b"hello") + b"\x02\x00\x00\x00\x00\x00\x00\x00"
    wire += frame(Stream.STDERR, b"oops")
    demuxer = StreamDemuxer()
    chunks = [demuxer.feed(wire[i : i + 1]) for i in range(len(wire))]
    assert [frame for chunk in chunks for frame in chunk] == [
        (Stream.STDOUT, b"hello"),
        (Stream.STDERR, b"oops"),
    ]
    assert demuxer.pending == 0


def test_demuxer_reports_a_truncated_frame() -> None:
    demuxer = StreamDemuxer()
    assert demuxer.feed(frame(Stream.STDOUT, b"hello")[:-1]) == []
    assert demuxer.pending == 12


@pytest.mark.parametrize(
    "header",
    [
        b"\x03\x00\x00\x00\x00\x00\x00\x01",  # systemerr is never valid from us
        b"\x01\x00\x01\x00\x00\x00\x00\x01",  # padding must be zero
        b"1a\r\nhell",  # a chunked body read as frames
    ],
)
def test_demuxer_rejects_bad_headers(header: bytes) -> None:
    with pytest.raises(WireFormatError):
        StreamDemuxer().feed(header + b"x")


frames = st.lists(st.tuples(st.sampled_from(Stream), st.binary(min_size=1, max_size=300)))


@given(frames, st.lists(st.integers(min_value=1, max_value=50)))
def test_round_trip_with_any_split(
    sent: list[tuple[Stream, bytes]], piece_sizes: list[int]
) -> None:
    wire = b"".join(frame(stream, payload) for stream, payload in sent)
    demuxer = StreamDemuxer()
    received, offset = [], 0
    for size in [*piece_sizes, len(wire)]:
        received += demuxer.feed(wire[offset : offset + size])
        offset += size
    assert received == sent
    assert demuxer.pending == 0


@given(st.binary(max_size=100))
def test_garbage_raises_only_wire_format_error(garbage: bytes) -> None:
    with contextlib.suppress(WireFormatError):
        StreamDemuxer().feed(garbage)
