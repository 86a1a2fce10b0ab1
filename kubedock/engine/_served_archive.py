"""Archives over a connection to kubedock's program in a pod, instead of the exec's stdin
and stdout.

`kubedock archive get|put PATH --serve` announces a port and a one-time token on its stdout
(`podside.served`). kubedock connects to that port at the pod's address where the pod
network lets it (`PodNetwork`; then no API server, kubelet or container runtime relays the
bytes), else through a port-forward (the kubelet relays them faster than an exec's pipes),
presents the token and carries the tar as chunks; the exec session only reports the
result. Whatever stands in the way before the first byte of the archive (a program from
before `--serve`, a connection refused) leaves the caller to copy the usual way, over the
exec session.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Literal

import attrs
import trio

from .. import kube
from .._config import PodNetworkMode
from ..podside import chunks
from ..podside import served as program

log = logging.getLogger(__name__)

# Below this an archive costs less over the exec than the connection's setup saves.
SERVED_FROM = 1024 * 1024
CONNECT_SECONDS = 0.5
# How long kubedock keeps away from a pod network that failed it before trying again.
RETRY_SECONDS = 600
_ANNOUNCE_SECONDS = 10
_READY_SECONDS = 5
_RECEIVE = 1024 * 1024

Connect = Callable[[str, int], Awaitable[trio.abc.Stream]]


async def open_tcp(address: str, port: int) -> trio.abc.Stream:
    """A TCP connection to `address` (an IP literal), its failures as the socket says them
    (trio's `open_tcp_stream` folds them into one)."""
    family = trio.socket.AF_INET6 if ":" in address else trio.socket.AF_INET
    sock = trio.socket.socket(family, trio.socket.SOCK_STREAM)
    try:
        await sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


class PodNetwork:
    """Whether kubedock connects to pods at their addresses.

    With "auto" it does unless a try failed within `RETRY_SECONDS`: a connection not made
    within `CONNECT_SECONDS`, no route, or a peer that does not answer as kubedock's program
    does makes kubedock keep to port-forwards for that long, so that a network that keeps
    kubedock out costs that wait once, not with every copy. A refused connection (the pod
    answered) says nothing against the network and is not remembered.
    """

    def __init__(self, mode: PodNetworkMode = "auto", *, connect: Connect = open_tcp) -> None:
        self._mode = mode
        self._connect = connect
        self._avoided_until = -math.inf

    def address(self, pod_ip: str | None) -> str | None:
        """The address to reach a pod of `pod_ip` at, if kubedock tries the pod network."""
        if self._mode == "never" or trio.current_time() < self._avoided_until:
            return None
        return pod_ip

    async def open(self, address: str, port: int, token: bytes) -> trio.abc.Stream:
        """A connection to the program's `port` at `address`, which took `token`."""
        try:
            with trio.fail_after(CONNECT_SECONDS):
                stream = await self._connect(address, port)
        except ConnectionRefusedError as error:
            raise _Refused(f"{address}:{port} refused the connection") from error
        except (OSError, trio.TooSlowError) as error:
            self._avoid(f"{address}:{port}: {error or 'no answer'}")
            raise _Refused(f"cannot connect to {address}:{port}") from error
        try:
            await _present(stream, token)
        except (_Refused, trio.BrokenResourceError) as error:
            await stream.aclose()
            self._avoid(f"{address}:{port}: {error or 'the connection broke'}")
            raise _Refused(f"{address}:{port} did not take the connection") from error
        except BaseException:
            await stream.aclose()
            raise
        return stream

    def _avoid(self, why: str) -> None:
        self._avoided_until = trio.current_time() + RETRY_SECONDS
        log.warning("the pod network does not reach kubedock's program (%s): archives go "
                    "through port-forwards for %d s", why, RETRY_SECONDS)


@attrs.frozen
class Connection:
    channel: kube.ExecChannel  # the program's exec session: its stderr and exit status
    stream: trio.abc.Stream
    route: Literal["pod network", "port-forward"]
    stat: bytes = b""  # the path's stat line, with `--with-stat`


def worth_serving(size: int | None) -> bool:
    """Whether an archive of `size` bytes (None: not known, a directory) goes over a
    connection."""
    return size is None or size >= SERVED_FROM


def serve_args(address: str | None) -> list[str]:
    """The arguments that make `kubedock archive` serve, at `address` too if not None."""
    return ["--serve", "--pod-network"] if address is not None else ["--serve"]


@contextlib.asynccontextmanager
async def served(cluster: kube.ClusterBoundary, network: PodNetwork, pod: str,
                 address: str | None,
                 session: AbstractAsyncContextManager[kube.ExecChannel], *,
                 with_stat: bool = False) -> AsyncIterator[Connection | None]:
    """The connection to the program `session` runs (with `serve_args(address)`, and
    `--with-stat` if `with_stat`), ready for the archive: at `address` if it is not None and
    the program can be reached there, else through a port-forward; None if there is none to
    be had."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            channel = await stack.enter_async_context(session)
            stat, port, token = await _announcement(channel, with_stat)
            stream: trio.abc.Stream | None = None
            route: Literal["pod network", "port-forward"] = "pod network"
            if address is not None:
                try:
                    stream = await network.open(address, port, token)
                except _Refused as why:
                    log.info("copying over a port-forward to pod %s: %s", pod, why)
            if stream is None:
                route, stream = "port-forward", await _forwarded(cluster, pod, port, token)
            stack.push_async_callback(stream.aclose)
        except (_Refused, kube.KubeError, trio.BrokenResourceError) as why:
            log.info("copying over the exec session of pod %s: %s", pod, why)
        else:
            yield Connection(channel, stream, route, stat)
            return
    yield None


async def receive(connection: Connection) -> AsyncIterator[bytes]:
    """The archive's bytes as they come, until its end; then the program's exit."""
    decoder = chunks.ChunkDecoder()
    while not decoder.ended:
        data = await connection.stream.receive_some(_RECEIVE)
        if not data:
            raise kube.ClusterUnreachable("the connection to the pod ended inside the archive")
        try:
            pieces = decoder.receive(data)
        except chunks.FramingError as error:
            raise kube.KubeError(f"malformed archive from the pod: {error}") from None
        if pieces:
            yield b"".join(pieces)


async def send(connection: Connection,
               produce: Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[None]],
               errors: bytearray) -> None:
    """`produce(send)`, each piece going to the program as chunks, then the end of the
    chunks; the program's stderr goes into `errors` until it ends, having read the tar to
    its end or failed on the way (which stops the sending)."""
    async def send_chunks(data: bytes) -> None:
        await connection.stream.send_all(chunks.chunked(data))

    async def collect(sending: trio.CancelScope) -> None:
        while (message := await connection.channel.receive()) is not None:
            errors.extend(message[1][-4096:])
        sending.cancel()

    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as sending:
            nursery.start_soon(collect, sending)
            try:
                await produce(send_chunks)
                await connection.stream.send_all(chunks.END_OF_CHUNKS)
            except* (trio.BrokenResourceError, kube.KubeError):
                pass  # The program stopped reading: its exit status, collected next, says why.
            await trio.sleep_forever()  # until the program ends
    if connection.channel.exit_code is None:
        raise kube.ClusterUnreachable(
            "copying into the container broke off: the exec session ended without a status "
            f"({connection.channel.status_message or 'no reason given'})")


class _Refused(Exception):
    pass


async def _announcement(channel: kube.ExecChannel, with_stat: bool
                        ) -> tuple[bytes, int, bytes]:
    """The stat line (with `with_stat`; else empty), the port and the token the program
    says on its stdout."""
    lines = 2 if with_stat else 1
    said = b""
    with trio.move_on_after(_ANNOUNCE_SECONDS):
        while said.count(b"\n") < lines and len(said) < 200 * lines:
            message = await channel.receive()
            if message is None:
                break
            said += message[1]
    *stat, announced = said.split(b"\n")[:lines] if said.count(b"\n") >= lines else [b""]
    port, _, token = announced.strip().partition(b" ")
    if not port.isdigit() or not token:
        raise _Refused(f"no listener announced: {said[-200:]!r} "
                       f"{channel.status_message or ''}".strip())
    return b"".join(stat), int(port), token


async def _forwarded(cluster: kube.ClusterBoundary, pod: str, port: int, token: bytes
                     ) -> trio.abc.Stream:
    stream = await cluster.open_port_forward(pod, port)
    try:
        await _present(stream, token)
    except BaseException:
        await stream.aclose()
        raise
    return stream


async def _present(stream: trio.abc.Stream, token: bytes) -> None:
    """Say `token` on `stream` and wait for the program to take the connection."""
    await stream.send_all(token + b"\n")
    answer = b""
    with trio.move_on_after(_READY_SECONDS):
        while len(answer) < len(program.READY):
            got = await stream.receive_some(len(program.READY) - len(answer))
            if not got:
                break
            answer += got
    if answer != program.READY:
        raise _Refused("the program did not take the connection")
