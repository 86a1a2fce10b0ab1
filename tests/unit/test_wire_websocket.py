"""Websocket framing and handshake, byte for byte against wsproto as the independent peer."""

import itertools
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
)

from kubedock import wire


def naive_mask(data: bytes, key: bytes) -> bytes:
    return bytes(byte ^ key[index % 4] for index, byte in enumerate(data))


def open_server() -> WSConnection:
    """A wsproto server that has accepted a connection (its frames to us are unmasked)."""
    handshake = wire.ClientHandshake("api:443", "/x", ["v4.channel.k8s.io"], [], os.urandom(16))
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(handshake.request)
    [request] = server.events()
    assert isinstance(request, Request)
    outcome = handshake.receive(server.send(AcceptConnection(subprotocol="v4.channel.k8s.io")))
    assert outcome == wire.Accepted("v4.channel.k8s.io", b"")
    return server


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(point % (len(data) + 1) for point in points)})
    return [data[start:end] for start, end in itertools.pairwise(edges)]


@given(st.binary(max_size=600), st.binary(min_size=4, max_size=4))
def test_mask_is_the_repeated_key_xor(data: bytes, key: bytes) -> None:
    assert wire.mask(data, key) == naive_mask(data, key)
    assert wire.mask(wire.mask(data, key), key) == data


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 1 << 20])
def test_frames_of_every_length_form_reach_the_server_intact(size: int) -> None:
    server = open_server()
    payload = os.urandom(size)
    key = os.urandom(4)
    frame = wire.encode_frame(wire.Opcode.BINARY, memoryview(payload), key)
    head = {True: 2, size >= 126: 4, size >= 65536: 10}[True]
    assert frame[head:head + 4] == key
    assert frame[head + 4:] == naive_mask(payload, key)
    server.receive_data(frame)
    [message] = server.events()
    assert isinstance(message, BytesMessage) and message.message_finished
    assert bytes(message.data) == payload


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=5),
       st.lists(st.integers(min_value=0), max_size=8))
def test_frames_cut_anywhere_reach_the_server_as_sent(payloads: list[bytes],
                                                      points: list[int]) -> None:
    server = open_server()
    stream = b"".join(wire.encode_frame(wire.Opcode.BINARY, payload, os.urandom(4))
                      for payload in payloads)
    received: list[bytes] = []
    for piece in cut(stream, points):
        server.receive_data(piece)
        received.extend(bytes(event.data) for event in server.events()
                        if isinstance(event, BytesMessage))
    assert b"".join(received) == b"".join(payloads)


@settings(max_examples=50)
@given(st.lists(st.tuples(st.binary(max_size=70000), st.booleans()), min_size=1, max_size=4),
       st.lists(st.integers(min_value=0), max_size=10))
def test_server_frames_cut_anywhere_decode_to_whole_messages(
        fragments: list[tuple[bytes, bool]], points: list[int]) -> None:
    server = open_server()
    stream = b""
    for index, (data, with_ping) in enumerate(fragments):
        finished = index == len(fragments) - 1
        stream += server.send(BytesMessage(data=data, message_finished=finished))
        if with_ping and not finished:
            stream += server.send(Ping(payload=b"between"))  # legal between fragments
    stream += server.send(BytesMessage(data=b"next"))
    decoder = wire.MessageDecoder()
    messages = [message for piece in cut(stream, points) for message in decoder.receive(piece)]
    pings = sum(with_ping for _, with_ping in fragments[:-1])
    assert messages == [wire.Message(wire.Opcode.PING, b"between")] * pings + [
        wire.Message(wire.Opcode.BINARY, b"".join(data for data, _ in fragments)),
        wire.Message(wire.Opcode.BINARY, b"next"),
    ]


def test_control_frames_and_close() -> None:
    server = open_server()
    stream = (server.send(Ping(payload=b"p")) + server.send(Pong(payload=b"q"))
              + server.send(CloseConnection(code=1001, reason="going away")))
    decoder = wire.MessageDecoder()
    ping, pong, close = decoder.receive(stream)
    assert ping == wire.Message(wire.Opcode.PING, b"p")
    assert pong == wire.Message(wire.Opcode.PONG, b"q")
    assert close.opcode == wire.Opcode.CLOSE
    assert wire.decode_close(close.data) == (1001, "going away")
    assert wire.decode_close(b"") == (1005, "")


def test_our_close_and_pong_frames_are_what_the_server_expects() -> None:
    server = open_server()
    server.receive_data(wire.encode_frame(wire.Opcode.PING, b"hi", os.urandom(4)))
    server.receive_data(wire.encode_frame(wire.Opcode.CLOSE, wire.encode_close(1000, "bye"),
                                          os.urandom(4)))
    ping, close = server.events()
    assert isinstance(ping, Ping) and ping.payload == b"hi"
    assert isinstance(close, CloseConnection) and (close.code, close.reason) == (1000, "bye")


@pytest.mark.parametrize(("frame", "complaint"), [
    (b"\x82\x81abcd\x00", "masked"),
    (b"\xc2\x00", "reserved"),
    (b"\x83\x00", "opcode"),
    (b"\x80\x00", "continuation"),
    (b"\x02\x01a\x82\x00", "before the fragmented one ended"),
    (b"\x09\x00", "control"),
    (b"\x89\x7e\x00\x7e" + b"x" * 126, "control"),
    (b"\x82\x7f" + struct.pack("!Q", 1 << 40), "larger than"),
    (b"\x88\x01\x00", None),
])
def test_malformed_server_frames_are_refused(frame: bytes, complaint: str | None) -> None:
    decoder = wire.MessageDecoder(max_message=1 << 20)
    if complaint is None:
        [close] = decoder.receive(frame)
        with pytest.raises(wire.WireFormatError):
            wire.decode_close(close.data)
        return
    with pytest.raises(wire.WireFormatError, match=complaint):
        decoder.receive(frame)


def test_a_rejected_handshake_gives_the_status_and_body() -> None:
    handshake = wire.ClientHandshake("api:443", "/x", ["v4.channel.k8s.io"],
                                     [(b"authorization", b"Bearer t")], os.urandom(16))
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(handshake.request)
    [request] = server.events()
    assert isinstance(request, Request)
    assert (b"authorization", b"Bearer t") in request.extra_headers
    answer = server.send(RejectConnection(status_code=403, has_body=True,
                                          headers=[(b"content-length", b"6")]))
    answer += server.send(RejectData(data=b"denied", body_finished=True))
    assert handshake.receive(answer[:10]) is None
    assert handshake.receive(answer[10:]) == wire.Rejected(403, b"denied")


def test_frames_right_behind_the_handshake_answer_are_kept() -> None:
    handshake = wire.ClientHandshake("api:443", "/x", [], [], os.urandom(16))
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(handshake.request)
    list(server.events())
    answer = server.send(AcceptConnection()) + server.send(BytesMessage(data=b"\x01early"))
    outcome = handshake.receive(answer)
    assert isinstance(outcome, wire.Accepted) and outcome.subprotocol is None
    assert wire.MessageDecoder().receive(outcome.trailing) == [
        wire.Message(wire.Opcode.BINARY, b"\x01early")]


@pytest.mark.parametrize(("headers", "complaint"), [
    (b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: nope\r\n", "Accept"),
    (b"Upgrade: h2c\r\nConnection: Upgrade\r\n", "other than websocket"),
])
def test_a_bad_switch_is_refused(headers: bytes, complaint: str) -> None:
    handshake = wire.ClientHandshake("api:443", "/x", [], [], os.urandom(16))
    with pytest.raises(wire.WireFormatError, match=complaint):
        handshake.receive(b"HTTP/1.1 101 Switching Protocols\r\n" + headers + b"\r\n")


def test_a_subprotocol_not_offered_is_refused() -> None:
    handshake = wire.ClientHandshake("api:443", "/x", ["v5.channel.k8s.io"], [], os.urandom(16))
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(handshake.request)
    list(server.events())
    answer = server.send(AcceptConnection(subprotocol="v5.channel.k8s.io"))
    answer = answer.replace(b"v5.channel", b"v4.channel")
    with pytest.raises(wire.WireFormatError, match="not offered"):
        handshake.receive(answer)


def test_a_connection_closed_in_the_handshake_is_an_error() -> None:
    handshake = wire.ClientHandshake("api:443", "/x", [], [], os.urandom(16))
    assert handshake.receive(b"HTTP/1.1 1") is None
    with pytest.raises(wire.WireFormatError):
        handshake.receive(b"")
