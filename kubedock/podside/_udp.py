"""The pod's end of a UDP port that kubedock exposes over a byte stream (`toolbox udp-relay`).

Kubernetes' port-forward carries TCP only. So the relay listens on a free TCP port of the pod
(on 127.0.0.1), writes that port on stdout, and takes kubedock's one connection to it, which
kubedock makes through a port-forward (measured faster than carrying the frames on the exec
session's stdin and stdout: see `tests/bench/udp_bench.py` and the README). On that connection
come the datagrams of every client, framed with the client's address (`kubedock.wire`'s
datagram frames). They are sent on to 127.0.0.1:PORT from one socket per client, so that the
server sees each client as its own peer, as it would behind Docker's proxy; what the server
answers on a client's socket is framed back with that client's address. Quiet clients are
forgotten and their number is bounded (`wire.PEER_IDLE_SECONDS`, `wire.MAX_PEERS`). The relay
ends with its connection.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from kubedock import wire

_READ = 256 * 1024
_ACCEPT_SECONDS = 60.0


def run_udp_relay(port: int) -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(_ACCEPT_SECONDS)
        print(listener.getsockname()[1], flush=True)
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            print(f"kubedock toolbox: nobody came for the relay of UDP port {port}",
                  file=sys.stderr)
            return 1
    with connection:
        connection.setblocking(True)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        relay_datagrams(port, connection.fileno(), connection.fileno())
    return 0


def relay_datagrams(port: int, source: int, sink: int, *,
                    idle_seconds: float = wire.PEER_IDLE_SECONDS,
                    max_peers: int = wire.MAX_PEERS,
                    clock: Callable[[], float] = time.monotonic) -> None:
    """Relay frames read from `source` to 127.0.0.1:`port` and answers to `sink` until
    `source` ends."""
    with _Relay(port, source, sink, idle_seconds, max_peers, clock) as relay:
        relay.run()


class _Relay:
    def __init__(self, port: int, source: int, sink: int, idle_seconds: float, max_peers: int,
                 clock: Callable[[], float]) -> None:
        self._target = ("127.0.0.1", port)
        self._source, self._sink = source, sink
        self._idle = idle_seconds
        self._max = max_peers
        self._clock = clock
        # Least recently active first: peer → (its socket, when it was last active).
        self._peers: OrderedDict[tuple[str, int], tuple[socket.socket, float]] = OrderedDict()
        self._selector = selectors.DefaultSelector()
        self._selector.register(source, selectors.EVENT_READ)
        self._answers = bytearray()  # framed, written once per round: fewer, larger messages

    def __enter__(self) -> _Relay:
        return self

    def __exit__(self, *_: object) -> None:
        while self._peers:
            self._forget(next(iter(self._peers)))
        self._selector.close()

    def run(self) -> None:
        decoder = wire.DatagramDecoder()
        while True:
            for key, _ in self._selector.select(self._until_next_expiry()):
                if key.fileobj != self._source:
                    self._answer(key.data)
                    continue
                data = os.read(self._source, _READ)
                if not data:
                    return
                for datagram in decoder.feed(data):
                    self._send(datagram)
            if self._answers:
                _write_all(self._sink, self._answers)
                self._answers.clear()
            self._expire()

    def _send(self, datagram: wire.Datagram) -> None:
        sock = self._socket(datagram.peer)
        # Nothing listens yet, or a full buffer: as on a network, the datagram is lost.
        with contextlib.suppress(OSError):
            sock.send(datagram.payload)

    def _answer(self, peer: tuple[str, int]) -> None:
        sock, _ = self._peers[peer]
        while len(self._answers) < _READ:
            try:
                payload = sock.recv(wire.MAX_DATAGRAM)
            except BlockingIOError:
                break
            except OSError:  # refused: an earlier datagram found nobody listening
                return
            self._touch(peer, sock)
            self._answers += wire.encode_datagram(peer, payload)

    def _until_next_expiry(self) -> float | None:
        for _, last in self._peers.values():
            return max(0.0, last + self._idle - self._clock())
        return None

    def _expire(self) -> None:
        now = self._clock()
        while self._peers:
            peer, (_, last) = next(iter(self._peers.items()))
            if last + self._idle > now:
                break
            self._forget(peer)

    def _socket(self, peer: tuple[str, int]) -> socket.socket:
        known = self._peers.get(peer)
        if known is not None:
            self._touch(peer, known[0])
            return known[0]
        while len(self._peers) >= self._max:
            self._forget(next(iter(self._peers)))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(self._target)
        self._selector.register(sock, selectors.EVENT_READ, peer)
        self._touch(peer, sock)
        return sock

    def _touch(self, peer: tuple[str, int], sock: socket.socket) -> None:
        self._peers[peer] = (sock, self._clock())
        self._peers.move_to_end(peer)

    def _forget(self, peer: tuple[str, int]) -> None:
        sock, _ = self._peers.pop(peer)
        self._selector.unregister(sock)
        sock.close()


def _write_all(fd: int, data: bytes | bytearray) -> None:
    with memoryview(data) as view:
        while view:
            view = view[os.write(fd, view):]


def run_echo(port: int) -> int:
    """Answer every datagram on UDP `port` with itself, and echo every TCP connection to
    `port`: one server for tests and benchmarks of both (no test image has a UDP one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
            socket.create_server(("0.0.0.0", port)) as tcp:
        udp.bind(("0.0.0.0", port))
        threading.Thread(target=_accept_echoes, args=(tcp,), daemon=True).start()
        while True:
            payload, peer = udp.recvfrom(wire.MAX_DATAGRAM)
            udp.sendto(payload, peer)


def _accept_echoes(listener: socket.socket) -> None:
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=_echo_stream, args=(connection,), daemon=True).start()


def _echo_stream(connection: socket.socket) -> None:
    with connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := connection.recv(_READ):
            connection.sendall(data)
