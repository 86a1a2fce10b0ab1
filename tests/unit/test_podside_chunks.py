"""The chunk framing of a served archive, byte for byte, and the pod's end of its connection."""

from __future__ import annotations

import os
import socket
import threading
from contextlib import redirect_stdout

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubedock.podside import chunks


def _encode(pieces: list[bytes]) -> bytes:
    return b"".join(chunks.chunk_head(len(piece)) + piece for piece in pieces
                    if piece) + chunks.END_OF_CHUNKS


def test_a_chunk_is_its_length_then_its_bytes() -> None:
    assert chunks.chunk_head(3) == b"\x00\x00\x00\x03"
    assert chunks.END_OF_CHUNKS == b"\x00\x00\x00\x00"
    decoder = chunks.ChunkDecoder()
    assert [bytes(piece) for piece in decoder.receive(b"\x00\x00\x00\x03abc")] == [b"abc"]
    assert not decoder.ended
    assert decoder.receive(chunks.END_OF_CHUNKS) == []
    assert decoder.ended


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


def test_empty_and_one_byte_archives() -> None:
    for data in (b"", b"x"):
        decoder = chunks.ChunkDecoder()
        assert b"".join(decoder.receive(_encode([data]))) == data
        assert decoder.ended


def test_malformed_framing_is_refused() -> None:
    with pytest.raises(chunks.FramingError, match="after the end"):
        chunks.ChunkDecoder().receive(chunks.END_OF_CHUNKS + b"x")
    with pytest.raises(chunks.FramingError, match="at most"):
        chunks.ChunkDecoder().receive((chunks.MAX_CHUNK + 1).to_bytes(4, "big"))
    for size in (0, chunks.MAX_CHUNK + 1):
        with pytest.raises(ValueError):
            chunks.chunk_head(size)


def _serve_in_thread(work: object) -> tuple[threading.Thread, int, bytes, list[BaseException]]:
    """`chunks.serve(work)` in a thread; the port and token it announced."""
    read, write = os.pipe()
    failures: list[BaseException] = []

    def run() -> None:
        with open(write, "w") as announce:
            try:
                with redirect_stdout(announce):
                    chunks.serve(work)  # type: ignore[arg-type]
            except BaseException as error:
                failures.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    with open(read) as announced:
        port, token = announced.readline().split()
    return thread, int(port), token.encode(), failures


def test_served_archive_comes_whole_through_the_connection() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)

    def work(connection: socket.socket) -> None:
        writer = chunks.ChunkWriter(connection)
        writer.write(data[:1000])
        writer.write(data[1000:])
        writer.close()

    thread, port, token, failures = _serve_in_thread(work)
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(token + b"\n")
        assert connection.recv(1) == chunks.READY
        decoder, back = chunks.ChunkDecoder(), bytearray()
        while not decoder.ended:
            back.extend(b"".join(decoder.receive(connection.recv(65536))))
    thread.join()
    assert not failures
    assert bytes(back) == data


def test_a_connection_without_the_token_gets_nothing_and_ends_the_listener() -> None:
    worked = []
    thread, port, token, failures = _serve_in_thread(worked.append)
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(b"0" * len(token) + b"\n")
        assert connection.recv(1) == b""
    thread.join()
    assert not worked
    assert isinstance(failures[0], ConnectionRefusedError)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port)).close()
