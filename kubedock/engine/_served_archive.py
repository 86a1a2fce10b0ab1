"""Archives out of a pod over a direct connection to kubedock's program there.

`kubedock archive get PATH --serve` listens on the pod's loopback and announces a port and a
one-time token on its stdout (`podside.chunks`); kubedock reaches that port through a
port-forward, which brings the tar faster than an exec's stdout (see the README's byte
paths), and the exec session only reports the result. Whatever stands in the way before the
first byte of the archive (a program from before `--serve`, a port-forward refused) leaves
the caller to copy the usual way, over the exec session. Archives into a pod gained nothing
measurable this way and keep the exec's stdin.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
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
    """Whether an archive of `size` bytes (None: not known, a directory) goes over a
    connection."""
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
