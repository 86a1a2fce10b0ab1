"""UDP datagrams carried over a byte stream, each with the peer it came from or goes to.

kubedock's UDP relay (`kubedock toolbox udp-relay`) and the listener that exposes a UDP port
speak it over one stream per port. A frame is

    family   1 byte   4 or 6
    address  4 or 16 bytes, the peer's IP address
    port     2 bytes, big endian, the peer's port
    length   2 bytes, big endian, the payload's length
    payload

The peer is the client's address: datagrams from the client carry it into the pod, and the
pod's replies carry it back, so that each reaches the client that asked. Both ends keep a socket
per peer; they forget a peer quiet for `PEER_IDLE_SECONDS` (as long as Docker's proxy waits) and
remember `MAX_PEERS` at most, the longest quiet going first.
"""

import ipaddress
import struct
from typing import NamedTuple

from ._errors import WireFormatError

_FAMILIES = {4: 4, 6: 16}  # family byte → address size
_PORT_AND_LENGTH = struct.Struct(">HH")
MAX_DATAGRAM = 65535
PEER_IDLE_SECONDS = 90.0
MAX_PEERS = 1024


class Datagram(NamedTuple):
    peer: tuple[str, int]
    payload: bytes


def encode_datagram(peer: tuple[str, int], payload: bytes | bytearray | memoryview) -> bytes:
    """The frame of `payload` from or to `peer` (host, port); ValueError if it cannot be one."""
    host, port = peer
    address = ipaddress.ip_address(host)
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"bad port {port}")
    if len(payload) > MAX_DATAGRAM:
        raise ValueError(f"a datagram holds at most {MAX_DATAGRAM} bytes, not {len(payload)}")
    return (bytes([address.version]) + address.packed
            + _PORT_AND_LENGTH.pack(port, len(payload)) + payload)


class DatagramDecoder:
    """Splits a stream of frames, fed in arbitrary pieces, back into datagrams."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """How many bytes of an incomplete frame are buffered (non-zero at EOF: truncated)."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Datagram]:
        self._buffer += data
        datagrams: list[Datagram] = []
        start = 0
        buffer = self._buffer
        while len(buffer) - start >= 1:
            family = buffer[start]
            size = _FAMILIES.get(family)
            if size is None:
                raise WireFormatError(f"bad address family {family} in a datagram frame")
            header_end = start + 1 + size + _PORT_AND_LENGTH.size
            if len(buffer) < header_end:
                break
            port, length = _PORT_AND_LENGTH.unpack_from(buffer, header_end - _PORT_AND_LENGTH.size)
            end = header_end + length
            if len(buffer) < end:
                break
            host = str(ipaddress.ip_address(bytes(buffer[start + 1 : start + 1 + size])))
            datagrams.append(Datagram((host, port), bytes(buffer[header_end:end])))
            start = end
        del buffer[:start]
        return datagrams
