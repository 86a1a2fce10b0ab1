"""Kubernetes' port-forward websocket (`v4.channel.k8s.io` on the portforward subresource).

For the i-th requested port, channel 2i carries data and channel 2i+1 error text. The server's
first message on every channel is the port number (2 bytes, little endian), not data.
"""

from collections.abc import Sequence

import attrs

from ._errors import WireFormatError

PORTFORWARD_SUBPROTOCOL = "v4.channel.k8s.io"


@attrs.frozen
class PortData:
    port: int
    data: memoryview  # of the message, without the channel's prefix; compares like bytes


@attrs.frozen
class PortError:
    port: int
    message: str


PortForwardEvent = PortData | PortError


class PortForwardChannels:
    """The channel bookkeeping of one port-forward websocket."""

    def __init__(self, ports: Sequence[int]) -> None:
        if len(set(ports)) != len(ports):
            raise ValueError(f"ports must be distinct: {list(ports)}")
        if not 0 < len(ports) <= 128 or not all(0 < port < 65536 for port in ports):
            raise ValueError(f"bad ports for a port-forward: {list(ports)}")
        self._ports = tuple(ports)
        self._announced = [False] * (2 * len(ports))

    @property
    def query(self) -> list[tuple[str, str]]:
        """The query parameters that request these ports, in channel order."""
        return [("ports", str(port)) for port in self._ports]

    def receive(self, message: bytes) -> PortForwardEvent | None:
        """Decode one binary message from the server; None when it carried nothing."""
        if not message:
            raise WireFormatError("empty port-forward message")
        channel, payload = message[0], memoryview(message)[1:]
        if channel >= len(self._announced):
            raise WireFormatError(f"unexpected port-forward channel {channel}")
        port = self._ports[channel // 2]
        if not self._announced[channel]:
            if len(payload) < 2 or int.from_bytes(payload[:2], "little") != port:
                raise WireFormatError(f"channel {channel} did not announce port {port}")
            self._announced[channel] = True
            payload = payload[2:]
        if not payload:
            return None
        if channel % 2:
            return PortError(port, bytes(payload).decode(errors="replace"))
        return PortData(port, payload)

    def encode(self, port: int, data: bytes | bytearray | memoryview) -> bytes:
        """A message that sends `data` to `port` in the pod."""
        try:
            index = self._ports.index(port)
        except ValueError:
            raise ValueError(f"port {port} was not requested") from None
        return bytes([2 * index]) + data
