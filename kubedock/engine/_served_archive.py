"""Archives over a direct connection to kubedock's program in a pod.

`kubedock archive get|put PATH --serve` listens on the pod's loopback and announces a port
and a one-time token on its stdout (`podside.chunks`); kubedock reaches that port through a
port-forward, which the kubelet relays faster than an exec's stdin and stdout (see the
README's byte paths), and the exec session only reports the result. Whatever stands in the
way before the first byte of the archive (a program from before `--serve`, a port-forward
refused) leaves the caller to copy the usual way, over the exec session.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import attrs
import trio

from .. import kube
from ..podside import chunks

log = logging.getLogger(__name__)

# Below this an archive costs less over the exec than the connection's setup saves.
SERVED_FROM = 1024 * 1024
_ANNOUNCE_SECONDS = 10


@attrs.frozen
class Connection:
    channel: kube.ExecChannel  # the program's exec session: its stderr and exit status
    stream: kube.PortForwardStream


def worth_serving(size: int | None) -> bool:
    """Whether an archive of `size` bytes (None: not known) goes over a connection."""
    return size is None or size >= SERVED_FROM


@contextlib.asynccontextmanager
async def served(cluster: kube.ClusterBoundary, pod: str,
                 session: AbstractAsyncContextManager[kube.ExecChannel]
                 ) -> AsyncIterator[Connection | None]:
    """The connection to the program `session` runs (with `--serve`), ready for the
    archive; None if there is none to be had."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            channel = await stack.enter_async_context(session)
            port, token = await _announcement(channel)
            stream = await cluster.open_port_forward(pod, port)
            stack.push_async_callback(stream.aclose)
            await stream.send_all(token + b"\n")
            if await _receive_exactly(stream, len(chunks.READY)) != chunks.READY:
                raise _Refused("the program did not take the connection")
        except (_Refused, kube.KubeError, trio.BrokenResourceError) as why:
            log.info("copying over the exec session of pod %s: %s", pod, why)
        else:
            yield Connection(channel, stream)
            return
    yield None


async def receive(connection: Connection) -> AsyncIterator[bytes]:
    """The archive's bytes as they come, until its end; then the program's exit."""
    decoder = chunks.ChunkDecoder()
    while not decoder.ended:
        data = await connection.stream.receive_some()
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
    """`produce(send)`, each piece going to the program, then the end of the archive; and
    the program's stderr into `errors` until it ends. The program may end first: having
    read the tar to its end, or failing."""
    async def send_chunks(data: bytes) -> None:
        with memoryview(data) as view:
            for start in range(0, len(view), chunks.MAX_CHUNK):
                piece = view[start : start + chunks.MAX_CHUNK]
                await connection.stream.send_all(b"".join((chunks.chunk_head(len(piece)),
                                                           piece)))

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
            except (trio.BrokenResourceError, kube.KubeError):
                # The connection broke: the program's exit status, collected next, says why.
                if connection.channel.exit_code is None:
                    raise
            await trio.sleep_forever()
    if connection.channel.exit_code is None:
        raise kube.ClusterUnreachable(
            "copying into the container broke off: the exec session ended without a status "
            f"({connection.channel.status_message or 'no reason given'})")


class _Refused(Exception):
    pass


async def _announcement(channel: kube.ExecChannel) -> tuple[int, bytes]:
    said = b""
    with trio.move_on_after(_ANNOUNCE_SECONDS):
        while b"\n" not in said and len(said) < 200:
            message = await channel.receive()
            if message is None:
                break
            said += message[1]
    port, _, token = said.partition(b"\n")[0].strip().partition(b" ")
    if not port.isdigit() or not token:
        raise _Refused(f"no listener announced: {said[-200:]!r} "
                       f"{channel.status_message or ''}".strip())
    return int(port), token


async def _receive_exactly(stream: kube.PortForwardStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        got = await stream.receive_some(size - len(data))
        if not got:
            break
        data += got
    return data
