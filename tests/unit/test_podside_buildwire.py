"""The framing of a build sandbox session, byte for byte."""

from __future__ import annotations

import pytest

from kubedock.podside import buildwire


def test_frames_come_out_of_a_stream_cut_anywhere() -> None:
    stream = (buildwire.frame(buildwire.OUTPUT, b"hi\n") + buildwire.frame(buildwire.ERROR, b"")
              + buildwire.frame(buildwire.END, b"127"))
    assert stream == b"o\x00\x00\x00\x03hi\ne\x00\x00\x00\x00x\x00\x00\x00\x03127"
    for cut in range(len(stream) + 1):
        reader = buildwire.FrameReader()
        frames = []
        for part in (stream[:cut], stream[cut:]):
            reader.feed(part)
            while (frame := reader.next()) is not None:
                frames.append(frame)
        assert frames == [(b"o", b"hi\n"), (b"e", b""), (b"x", b"127")]


def test_unknown_frame_kind_is_refused() -> None:
    reader = buildwire.FrameReader()
    reader.feed(b"z\x00\x00\x00\x00")
    with pytest.raises(buildwire.SessionError):
        reader.next()


def test_requests_and_ends() -> None:
    assert buildwire.request("run", argv=["sh"], env=[["A", "1"]]) == (
        b'{"op":"run","argv":["sh"],"env":[["A","1"]]}\n')
    assert buildwire.parse_request(b'{"op":"reset"}\n') == {"op": "reset"}
    assert buildwire.end_status(b"126") == 126
    for malformed in (b"{", b"[]", b'{"op": 1}'):
        with pytest.raises(buildwire.SessionError):
            buildwire.parse_request(malformed)
    with pytest.raises(buildwire.SessionError):
        buildwire.end_status(b"x")
