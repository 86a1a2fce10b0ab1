"""SPDY/3.1 frames, byte for byte, and the decoder on input cut anywhere."""

import os
import random
import struct
import zlib

import pytest

from kubedock import wire


def control(kind: int, flags: int, body: bytes, version: int = 3) -> bytes:
    return struct.pack("!HHI", 0x8000 | version, kind, flags << 24 | len(body)) + body


def header_pairs(block: bytes) -> list[tuple[bytes, bytes]]:
    (count,), offset, pairs = struct.unpack_from("!I", block), 4, []
    for _ in range(count):
        fields = []
        for _ in range(2):
            (length,) = struct.unpack_from("!I", block, offset)
            fields.append(block[offset + 4:offset + 4 + length])
            offset += 4 + length
        pairs.append((fields[0], fields[1]))
    assert offset == len(block)
    return pairs


def test_header_blocks_share_one_zlib_stream_flushed_per_block() -> None:
    encoder = wire.HeaderEncoder()
    first = encoder.encode([("streamType", "error")])
    second = encoder.encode([("streamtype", "stdout"), ("port", "80")])
    reader = zlib.decompressobj()
    # Each block is complete on its own: the reader needs nothing of the next.
    assert header_pairs(reader.decompress(first)) == [(b"streamtype", b"error")]
    assert header_pairs(reader.decompress(second)) == [
        (b"streamtype", b"stdout"), (b"port", b"80")]


def test_syn_stream_layout() -> None:
    frame = wire.encode_syn_stream(3, b"BLOCK")
    assert frame == control(1, 0, struct.pack("!IIH", 3, 0, 0) + b"BLOCK")


def test_data_head_layout_and_limit() -> None:
    assert wire.encode_data_head(5, 10) == struct.pack("!II", 5, 10)
    assert wire.encode_data_head(5, 0, fin=True) == struct.pack("!II", 5, 1 << 24)
    assert wire.encode_data_head(1, (1 << 24) - 1)[4:] == b"\x00\xff\xff\xff"
    with pytest.raises(ValueError):
        wire.encode_data_head(1, 1 << 24)


def test_ping_and_goaway_layout() -> None:
    assert wire.encode_ping(7) == control(6, 0, struct.pack("!I", 7))
    assert wire.encode_goaway() == control(7, 0, struct.pack("!II", 0, 0))


def test_rst_stream_settings_and_window_update_layout() -> None:
    assert wire.encode_rst_stream(3) == control(3, 0, struct.pack("!II", 3, 5))
    assert wire.encode_rst_stream(5, 3) == control(3, 0, struct.pack("!II", 5, 3))
    # One entry: flags 0, id 7 (INITIAL_WINDOW_SIZE), then the value.
    assert wire.encode_settings(1 << 20) == control(
        4, 0, struct.pack("!I", 1) + b"\x00\x00\x00\x07" + struct.pack("!I", 1 << 20))
    assert wire.encode_window_update(0, 65536) == control(9, 0, struct.pack("!II", 0, 65536))
    assert wire.encode_window_update(7, 1) == control(9, 0, struct.pack("!II", 7, 1))
    for delta in (0, 1 << 31):
        with pytest.raises(ValueError):
            wire.encode_window_update(1, delta)


def test_control_frames_become_events() -> None:
    decoder = wire.SpdyFrameDecoder()
    stream = b"".join((
        control(2, 0, struct.pack("!I", 1) + b"compressed headers, never read"),
        control(2, 1, struct.pack("!I", 3) + b"hdr"),  # a reply that also ends the stream
        control(4, 0, struct.pack("!II", 1, 0x01000007) + b"\x00\x00\x00\x01"),  # SETTINGS
        control(9, 0, struct.pack("!II", 1, 1000)),  # WINDOW_UPDATE
        control(6, 0, struct.pack("!I", 2)),
        control(3, 0, struct.pack("!II", 5, 5)),
        control(99, 0, b"unknown types are ignored"),
        control(7, 0, struct.pack("!II", 7, 0)),
    ))
    assert decoder.receive(stream) == [
        wire.StreamData(3, b"", True), wire.Ping(2), wire.StreamReset(5, 5), wire.GoAway(7, 0),
    ]


@pytest.mark.parametrize("frame", [
    control(1, 0, struct.pack("!IIH", 2, 0, 0)),  # the server opening a stream
    control(6, 0, struct.pack("!I", 1), version=2),
    control(3, 0, b"\x00\x00"),  # too short
])
def test_malformed_control_frames(frame: bytes) -> None:
    with pytest.raises(wire.WireFormatError):
        wire.SpdyFrameDecoder().receive(frame)


def test_an_oversized_control_frame_is_refused_before_it_is_buffered() -> None:
    with pytest.raises(wire.WireFormatError):
        wire.SpdyFrameDecoder().receive(struct.pack("!HHI", 0x8003, 8, 2 << 20))


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 32 * 1024, 256 * 1024 - 1, 256 * 1024 + 1,
                                  (1 << 24) - 1])
def test_data_comes_out_byte_exact_whatever_the_cuts(size: int) -> None:
    data = os.urandom(size)
    pieces = [data[start:start + 70_000] for start in range(0, size, 70_000)] or [b""]
    stream = b"".join(wire.encode_data_head(5, len(piece), fin=index == len(pieces) - 1) + piece
                      for index, piece in enumerate(pieces))
    stream += control(6, 0, struct.pack("!I", 4))
    chance = random.Random(size)
    decoder, events, offset = wire.SpdyFrameDecoder(), [], 0
    while offset < len(stream):
        step = chance.choice([1, 3, 8, 4096, 300_000])
        events += decoder.receive(stream[offset:offset + step])
        offset += step
    assert events[-1] == wire.Ping(4)
    data_events = events[:-1]
    assert all(isinstance(event, wire.StreamData) and event.stream_id == 5
               for event in data_events)
    assert b"".join(event.data for event in data_events) == data  # type: ignore[union-attr]
    assert [event.fin for event in data_events] == [  # type: ignore[union-attr]
        False] * (len(data_events) - 1) + [True]


def test_upgrade_request_and_answers() -> None:
    upgrade = wire.Upgrade("POST", "api:6443", "/x?a=b", [(b"upgrade", b"SPDY/3.1")])
    assert upgrade.request.startswith(b"POST /x?a=b HTTP/1.1\r\nhost: api:6443\r\n")
    assert upgrade.receive(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\n") is None
    switched = upgrade.receive(b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\nrest")
    assert switched == wire.Switched(
        {b"upgrade": b"SPDY/3.1", b"x-stream-protocol-version": b"v4.channel.k8s.io"}, b"rest")
    refused = wire.Upgrade("POST", "api", "/", [])
    answer = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"
    assert refused.receive(answer) == wire.Rejected(403, b"no")
