import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubedock.wire import MAX_DATAGRAM, Datagram, DatagramDecoder, WireFormatError, encode_datagram


def test_an_ipv4_frame_byte_for_byte() -> None:
    assert encode_datagram(("10.1.2.3", 53), b"hi") == (
        b"\x04" + b"\x0a\x01\x02\x03" + b"\x00\x35" + b"\x00\x02" + b"hi")


def test_an_ipv6_frame_byte_for_byte() -> None:
    assert encode_datagram(("::1", 0xFFFF), b"") == (
        b"\x06" + b"\x00" * 15 + b"\x01" + b"\xff\xff" + b"\x00\x00")


def test_frames_split_anywhere_decode_to_the_datagrams_in_order() -> None:
    stream = (encode_datagram(("127.0.0.1", 40000), b"first")
              + encode_datagram(("fe80::2", 5), b"")
              + encode_datagram(("192.168.0.9", 1), b"x" * 300))
    decoder = DatagramDecoder()
    found = [d for i in range(len(stream)) for d in decoder.feed(stream[i : i + 1])]
    assert found == [Datagram(("127.0.0.1", 40000), b"first"), Datagram(("fe80::2", 5), b""),
                     Datagram(("192.168.0.9", 1), b"x" * 300)]
    assert decoder.pending == 0


def test_a_truncated_frame_stays_pending() -> None:
    decoder = DatagramDecoder()
    assert decoder.feed(encode_datagram(("10.0.0.1", 9), b"abc")[:-1]) == []
    assert decoder.pending == 11


def test_an_unknown_family_is_malformed() -> None:
    with pytest.raises(WireFormatError, match="family 5"):
        DatagramDecoder().feed(b"\x05" + b"\x00" * 12)


@pytest.mark.parametrize("peer, payload", [
    (("not-an-address", 1), b""),
    (("10.0.0.1", 65536), b""),
    (("10.0.0.1", 1), b"x" * (MAX_DATAGRAM + 1)),
])
def test_what_no_frame_can_carry_is_refused(peer: tuple[str, int], payload: bytes) -> None:
    with pytest.raises(ValueError):
        encode_datagram(peer, payload)


@given(st.lists(st.tuples(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
                          st.integers(0, 0xFFFF), st.binary(max_size=2000)), max_size=8),
       st.integers(1, 64))
def test_round_trip_in_any_chunking(datagrams: list[tuple[object, int, bytes]],
                                    chunk: int) -> None:
    expected = [Datagram((str(address), port), payload) for address, port, payload in datagrams]
    stream = b"".join(encode_datagram(d.peer, d.payload) for d in expected)
    decoder = DatagramDecoder()
    found = [d for i in range(0, len(stream), chunk) for d in decoder.feed(stream[i : i + chunk])]
    assert found == expected
    assert decoder.pending == 0
