"""A client's HTTP/1.1 connection upgrade (`101 Switching Protocols`), over h11.

Both of the API server's streaming protocols begin this way: the websocket and SPDY/3.1.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import h11

from ._errors import WireFormatError

_REJECTION_BODY_LIMIT = 64 * 1024


@attrs.frozen
class Switched:
    """The server switched protocols; `trailing` is what it sent after its answer."""

    headers: dict[bytes, bytes]  # lower-case names
    trailing: bytes


@attrs.frozen
class Rejected:
    """The server answered with an ordinary HTTP response."""

    status: int
    body: bytes


class Upgrade:
    """The request (`request`, to send first) and a reader of the answer."""

    def __init__(self, method: str, host: str, target: str,
                 headers: Sequence[tuple[bytes, bytes]]) -> None:
        self._connection = h11.Connection(h11.CLIENT)
        self.request = self._connection.send(h11.Request(
            method=method, target=target, headers=[(b"host", host.encode()), *headers],
        )) or b""
        self.request += self._connection.send(h11.EndOfMessage()) or b""
        self._rejected: int | None = None
        self._body = bytearray()

    def receive(self, data: bytes) -> Switched | Rejected | None:
        """Feed what the server sent (b"" at its end); the outcome once it is known."""
        self._connection.receive_data(data)
        while True:
            try:
                event = self._connection.next_event()
            except h11.RemoteProtocolError as error:
                raise WireFormatError(f"bad handshake answer: {error}") from None
            if event is h11.NEED_DATA:
                if not data:
                    raise WireFormatError("the server closed the connection in the handshake")
                return None
            if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                trailing, _ = self._connection.trailing_data
                return Switched({name.lower(): value for name, value in event.headers},
                                bytes(trailing))
            if isinstance(event, h11.Response):
                self._rejected = event.status_code
            elif isinstance(event, h11.Data):
                self._body += event.data[:_REJECTION_BODY_LIMIT - len(self._body)]
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                if self._rejected is None:
                    raise WireFormatError("the handshake ended without an answer")
                return Rejected(self._rejected, bytes(self._body))
