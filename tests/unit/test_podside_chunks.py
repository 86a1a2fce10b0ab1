"""The chunk framing of build layers and served archives, byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubedock.podside import chunks


def _encode(pieces: list[bytes]) -> bytes:
    return b"".join(chunks.chunked(piece) for piece in pieces) + chunks.END_OF_CHUNKS


def test_a_chunk_is_its_length_then_its_bytes() -> None:
    assert chunks.chunk_head(3) == b"\x00\x00\x00\x03"
    assert chunks.chunked(b"abc") == b"\x00\x00\x00\x03abc"
    assert chunks.chunked(b"") == b""
    assert chunks.END_OF_CHUNKS == b"\x00\x00\x00\x00"
    assert chunks.HEAD_SIZE == 4
    assert chunks.chunk_size(b"\x00\x01\x00\x00") == 65536
    assert chunks.chunk_size(chunks.END_OF_CHUNKS) == 0
    decoder = chunks.ChunkDecoder()
    assert [bytes(piece) for piece in decoder.receive(b"\x00\x00\x00\x03abc")] == [b"abc"]
    assert not decoder.ended
    assert decoder.receive(chunks.END_OF_CHUNKS) == []
    assert decoder.ended


def test_data_larger_than_a_chunk_go_as_several(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "MAX_CHUNK", 4)
    assert chunks.chunked(memoryview(b"abcdefghij")) == (
        b"\x00\x00\x00\x04abcd\x00\x00\x00\x04efgh\x00\x00\x00\x02ij")


@given(st.lists(st.binary(max_size=300), max_size=8), st.lists(st.integers(0, 2000), max_size=6))
def test_data_come_out_whole_from_a_stream_cut_anywhere(pieces: list[bytes],
                                                         cuts: list[int]) -> None:
    stream = _encode(pieces)
    decoder = chunks.ChunkDecoder()
    out = bytearray()
    start = 0
    for cut in [*sorted(min(cut, len(stream)) for cut in cuts), len(stream)]:
        out.extend(b"".join(decoder.receive(stream[start:cut])))
        start = cut
    assert bytes(out) == b"".join(pieces)
    assert decoder.ended


def test_empty_and_one_byte_streams() -> None:
    for data in (b"", b"x"):
        decoder = chunks.ChunkDecoder()
        assert b"".join(decoder.receive(_encode([data]))) == data
        assert decoder.ended


def test_malformed_framing_is_refused() -> None:
    with pytest.raises(chunks.FramingError, match="after the end"):
        chunks.ChunkDecoder().receive(chunks.END_OF_CHUNKS + b"x")
    too_large = (chunks.MAX_CHUNK + 1).to_bytes(4, "big")
    with pytest.raises(chunks.FramingError, match="at most"):
        chunks.ChunkDecoder().receive(too_large)
    with pytest.raises(chunks.FramingError, match="at most"):
        chunks.chunk_size(too_large)
    for size in (0, chunks.MAX_CHUNK + 1):
        with pytest.raises(ValueError):
            chunks.chunk_head(size)
