"""TLS for the websocket streams, handing back everything a read decrypted.

`trio.SSLStream.receive_some` returns one TLS record (16 KiB at most) per call, so a stream
of 100 MB costs thousands of trips through its locks and the scheduler and as many trips
through every layer above. This stream reads what the socket has (up to 256 KiB) and
decrypts all the records in it at once. It is a client's TLS only: no renegotiation
(TLS 1.3 has none), no close_notify wait (the API server's streams end with the socket).
"""

from __future__ import annotations

import ssl

import trio

_RAW_RECEIVE = 256 * 1024
_READ = 1024 * 1024


class TlsStream(trio.abc.Stream):
    def __init__(self, transport: trio.SocketStream, context: ssl.SSLContext,
                 server_hostname: str, session: ssl.SSLSession | None = None) -> None:
        """`session`: one of an earlier connection to the same server, to resume."""
        self._transport = transport
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing,
                                     server_hostname=server_hostname, session=session)
        self._send_lock = trio.StrictFIFOLock()
        self._pending = b""  # decrypted, beyond a reader's max_bytes
        self._eof = False

    @property
    def context(self) -> ssl.SSLContext:
        return self._ssl.context

    @property
    def session(self) -> ssl.SSLSession | None:
        """What a later connection can resume (TLS 1.3 sends it after the handshake)."""
        return self._ssl.session

    async def do_handshake(self) -> None:
        """Raises `trio.BrokenResourceError` or `ssl.SSLError` when it fails."""
        while True:
            try:
                self._ssl.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
        await self._flush()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            self._ssl.write(data)
        await self._flush()

    async def wait_send_all_might_not_block(self) -> None:
        await self._transport.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """All the decrypted bytes at hand (at most `max_bytes`), reading once when none are;
        b"" at the end."""
        if self._pending or self._eof:
            await trio.lowlevel.checkpoint()
        while not self._pending and not self._eof:
            self._pending = self._decrypt()
            # Reading may have answered the server (TLS 1.3 key updates). A sender that holds
            # the lock sends that too once its own write is out; waiting for it here would
            # deadlock a sender blocked until this side reads.
            if self._outgoing.pending and not self._send_lock.locked():
                await self._flush()
            if not self._pending and not self._eof:
                await self._fill()
        if max_bytes is None or max_bytes >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    def _decrypt(self) -> bytes:
        chunks = []
        try:
            while chunk := self._ssl.read(_READ):
                chunks.append(chunk)
            self._eof = True  # the peer's close_notify
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            # A peer may end with or without close_notify; the websocket's own close frame
            # tells a complete session from a cut one.
            self._eof = True
        except ssl.SSLError as exc:
            raise trio.BrokenResourceError(f"TLS failed: {exc}") from exc
        return b"".join(chunks)

    async def _fill(self) -> None:
        data = await self._transport.receive_some(_RAW_RECEIVE)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def _flush(self) -> None:
        # Whoever holds the lock sends everything encrypted so far, in order, including what
        # was encrypted while it was sending.
        async with self._send_lock:
            while self._outgoing.pending:
                await self._transport.send_all(self._outgoing.read())

    async def aclose(self) -> None:
        await self._transport.aclose()
