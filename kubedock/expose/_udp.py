"""Local UDP ports that reach a pod's UDP port.

Through the API server (port-forward mode): Kubernetes' port-forward carries TCP only, so the
datagrams of every client travel framed with the client's address (`wire`'s datagram frames)
over one byte stream to kubedock's relay in the pod (`kubedock toolbox udp-relay`), which sends
them on from one socket per client and frames the answers back. The stream is opened when the
first datagram arrives, so a container whose UDP port is never used costs nothing; what comes
meanwhile waits in a bounded queue (beyond it, datagrams are dropped, as a network would).

Straight to the pod IP (reverse-proxy mode): one socket per client towards the pod, so the
server sees each client as its own peer and its answers go back to the client that asked.

Either way, quiet clients are forgotten and their number is bounded, as in the relay
(`wire.PEER_IDLE_SECONDS`, `wire.MAX_PEERS`).
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial

import trio

from kubedock import wire
from kubedock._metrics import EXPOSED_BYTES, EXPOSED_CONNECTIONS

log = logging.getLogger(__name__)

_QUEUED = 1024  # datagrams waiting for the stream to the relay
_BATCH = 256 * 1024  # bytes of frames sent to the relay in one write
_RETRY_FIRST, _RETRY_MAX = 0.1, 5.0

RelayOpener = Callable[[], AbstractAsyncContextManager[trio.abc.Stream]]
Peer = tuple[str, int]


async def _bind(host: str, host_port: int) -> trio.socket.SocketType:
    family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
    sock = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
    try:
        await sock.bind((host, host_port))
    except OSError:
        sock.close()
        raise
    return sock


async def serve_udp_relay(
    open_relay: RelayOpener,
    *,
    host: str = "127.0.0.1",
    host_port: int = 0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on UDP `host:host_port` and carry every datagram over streams `open_relay`
    opens to the pod's relay, the relay's answers back. Starts with the bound port."""
    with await _bind(host, host_port) as sock:
        task_status.started(sock.getsockname()[1])
        queued, queue = trio.open_memory_channel[wire.Datagram](_QUEUED)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_relay_sessions, open_relay, sock, queue)
            while True:
                payload, source = await sock.recvfrom(wire.MAX_DATAGRAM)
                # When the relay falls behind, it is lost, as on a congested network.
                with contextlib.suppress(trio.WouldBlock):
                    queued.send_nowait(wire.Datagram(source[:2], payload))


async def _relay_sessions(open_relay: RelayOpener, sock: trio.socket.SocketType,
                          queue: trio.MemoryReceiveChannel[wire.Datagram]) -> None:
    """One stream to the relay after another, each opened when a datagram waits for one.

    A stream that fails (the toolbox refused, the API server gone) is logged and ends; the
    next datagram opens another, after a growing pause.
    """
    delay = _RETRY_FIRST
    while True:
        first = await queue.receive()
        EXPOSED_CONNECTIONS.inc("udp-relay")
        try:
            async with open_relay() as stream, trio.open_nursery() as nursery:
                delay = _RETRY_FIRST
                nursery.start_soon(_answers, stream, sock, nursery.cancel_scope)
                await _requests(first, queue, stream)
        except Exception:
            log.warning("UDP port %s: the stream to the relay in the pod failed",
                        sock.getsockname()[1], exc_info=True)
            await trio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)


async def _requests(first: wire.Datagram, queue: trio.MemoryReceiveChannel[wire.Datagram],
                    stream: trio.abc.Stream) -> None:
    pending: wire.Datagram | None = first
    while True:
        if pending is None:
            pending = await queue.receive()
        # What has queued up meanwhile goes in the same write.
        batch = bytearray(wire.encode_datagram(*pending))
        while len(batch) < _BATCH:
            try:
                batch += wire.encode_datagram(*queue.receive_nowait())
            except trio.WouldBlock:
                break
        pending = None
        await stream.send_all(batch)
        EXPOSED_BYTES.inc("in", amount=len(batch))


async def _answers(stream: trio.abc.Stream, sock: trio.socket.SocketType,
                   session: trio.CancelScope) -> None:
    decoder = wire.DatagramDecoder()
    while data := await stream.receive_some():
        for answer in decoder.feed(data):
            await _send_to(sock, answer.payload, answer.peer)
    log.info("UDP port %s: the relay in the pod ended", sock.getsockname()[1])
    session.cancel()


async def _send_to(sock: trio.socket.SocketType, payload: bytes, peer: Peer) -> None:
    try:
        await sock.sendto(payload, peer)
    except OSError:
        return  # the client went away: its answer is lost, as on a network
    EXPOSED_BYTES.inc("out", amount=len(payload))


async def serve_udp_proxy(
    pod_ip: str,
    port: int,
    *,
    host: str = "127.0.0.1",
    host_port: int = 0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on UDP `host:host_port` and send every datagram on to `pod_ip:port` from one
    socket per client; answers go back to the client. Starts with the bound port."""
    with await _bind(host, host_port) as sock:
        task_status.started(sock.getsockname()[1])
        # Least recently active first: client → the socket that speaks for it and its scope.
        peers: OrderedDict[Peer, tuple[trio.socket.SocketType, trio.CancelScope]] = OrderedDict()
        async with trio.open_nursery() as nursery:
            while True:
                payload, source = await sock.recvfrom(wire.MAX_DATAGRAM)
                peer: Peer = source[:2]
                if peer not in peers:
                    while len(peers) >= wire.MAX_PEERS:
                        _, (_, scope) = peers.popitem(last=False)
                        scope.cancel()
                    try:
                        peers[peer] = await nursery.start(
                            partial(_speak_for, sock, peer, pod_ip, port, peers))
                    except OSError:
                        continue  # no route to the pod (any more): lost
                upstream, scope = peers[peer]
                peers.move_to_end(peer)
                scope.deadline = trio.current_time() + wire.PEER_IDLE_SECONDS
                try:
                    await upstream.send(payload)
                except OSError:
                    continue  # refused by the pod (nothing listens yet): lost
                EXPOSED_BYTES.inc("in", amount=len(payload))


async def _speak_for(
    sock: trio.socket.SocketType, peer: Peer, pod_ip: str, port: int,
    peers: OrderedDict[Peer, tuple[trio.socket.SocketType, trio.CancelScope]],
    *, task_status: trio.TaskStatus[tuple[trio.socket.SocketType, trio.CancelScope]],
) -> None:
    EXPOSED_CONNECTIONS.inc("reverse-proxy")
    family = trio.socket.AF_INET6 if ":" in pod_ip else trio.socket.AF_INET
    with trio.socket.socket(family, trio.socket.SOCK_DGRAM) as upstream, \
            trio.CancelScope() as scope:
        await upstream.connect((pod_ip, port))
        task_status.started((upstream, scope))
        try:
            while True:
                try:
                    payload = await upstream.recv(wire.MAX_DATAGRAM)
                except OSError:
                    continue  # refused: an earlier datagram found nobody listening
                scope.deadline = trio.current_time() + wire.PEER_IDLE_SECONDS
                await _send_to(sock, payload, peer)
        finally:
            if peers.get(peer, (None, None))[1] is scope:
                del peers[peer]
