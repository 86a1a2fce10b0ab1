import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubedock.wire import PortData, PortError, PortForwardChannels, WireFormatError


def test_port_announcements_are_stripped() -> None:
    channels = PortForwardChannels([6379, 8080])
    assert channels.query == [("ports", "6379"), ("ports", "8080")]
    assert channels.receive(b"\x00\xeb\x18") is None
    assert channels.receive(b"\x01\xeb\x18") is None
    assert channels.receive(b"\x02\x90\x1f") is None
    assert channels.receive(b"\x00+PONG\r\n") == PortData(6379, b"+PONG\r\n")
    assert channels.receive(b"\x00\xeb\x18") == PortData(6379, b"\xeb\x18")
    assert channels.receive(b"\x03\x90\x1fconnection refused") == PortError(
        8080, "connection refused"
    )


def test_encode_addresses_the_data_channel() -> None:
    channels = PortForwardChannels([6379, 8080])
    assert channels.encode(6379, b"PING\r\n") == b"\x00PING\r\n"
    assert channels.encode(8080, b"GET") == b"\x02GET"
    with pytest.raises(ValueError):
        channels.encode(1, b"")


@pytest.mark.parametrize(
    "message",
    [b"", b"\x04\xeb\x18", b"\x00\x8b", b"\x00\xec\x18", b"\x01\x00\x00x"],
)
def test_malformed_messages(message: bytes) -> None:
    with pytest.raises(WireFormatError):
        PortForwardChannels([6379, 8080]).receive(message)


@pytest.mark.parametrize("ports", [[], [80, 80], [0], [65536]])
def test_bad_port_lists(ports: list[int]) -> None:
    with pytest.raises(ValueError):
        PortForwardChannels(ports)


ports = st.lists(st.integers(min_value=1, max_value=65535), min_size=1, max_size=5, unique=True)


@given(ports, st.data())
def test_round_trip(requested: list[int], data: st.DataObject) -> None:
    channels = PortForwardChannels(requested)
    for channel, port in enumerate(p for p in requested for _ in range(2)):
        assert channels.receive(bytes([channel]) + port.to_bytes(2, "little")) is None
    for index, port in enumerate(requested):
        payload = data.draw(st.binary(min_size=1))
        assert channels.receive(channels.encode(port, payload)) == PortData(port, payload)
        text = data.draw(st.text(min_size=1))
        assert channels.receive(bytes([2 * index + 1]) + text.encode()) == PortError(port, text)


@given(ports, st.lists(st.binary(max_size=20)))
def test_garbage_raises_only_wire_format_error(requested: list[int], messages: list[bytes]) -> None:
    channels = PortForwardChannels(requested)
    for message in messages:
        with contextlib.suppress(WireFormatError):
            channels.receive(message)
