"""Local TCP ports that reach a pod's port through the API server (pods/portforward)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from kubedock._metrics import EXPOSED_CONNECTIONS
from kubedock.kube import ClusterBoundary, KubeError

from ._splice import serve_tunnels, tunnel

# Bytes a client may send before the pod first answers; beyond that a failed forward can
# no longer be retried transparently.
_REPLAY_LIMIT = 256 * 1024
_RETRY_FIRST, _RETRY_MAX = 0.1, 1.0


async def serve_port_forward(
    cluster: ClusterBoundary,
    pod: str,
    port: int,
    *,
    host: str = "127.0.0.1",
    host_port: int = 0,
    retry_seconds: float = 30.0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on `host:host_port` and forward every connection to `port` in `pod`.

    Starts with the bound port. A connection made before the pod listens, or while the API
    server cannot be reached, is held open and retried for up to `retry_seconds`, as if the
    pod had been slow to answer.
    """
    [listener] = await trio.open_tcp_listeners(host_port, host=host)
    bound = listener.socket.getsockname()[1]
    task_status.started(bound)
    opener = partial(cluster.open_port_forward, pod, port)
    await serve_tunnels(listener, partial(_forward, opener, retry_seconds),
                        f"port {bound} forwarded to pod {pod} port {port}")


async def _forward(
    opener: Callable[[], Awaitable[trio.abc.Stream]],
    retry_seconds: float,
    client: trio.abc.Stream,
) -> None:
    EXPOSED_CONNECTIONS.inc("port-forward")

    async def connect() -> trio.abc.Stream:
        deadline = trio.current_time() + retry_seconds
        try:
            first: trio.abc.Stream = await opener()
        except KubeError as exc:
            # The API server restarting as the client connects: retried like a reopen.
            first = _Failed(exc)
        return _RetryingUpstream(opener, first, deadline)

    await tunnel(client, connect)


class _RetryingUpstream(trio.abc.Stream):
    """A port-forward that is reopened while the pod refuses the connection.

    The kubelet reports a refused connection only after the websocket is open, so until
    the pod has sent its first byte, what the client sent is kept and replayed into each
    new forward (a failure to reopen, say while the API server restarts, is retried the
    same way). After the first byte, or past the deadline, errors reach the caller.
    """

    def __init__(
        self,
        opener: Callable[[], Awaitable[trio.abc.Stream]],
        first: trio.abc.Stream,
        deadline: float,
    ) -> None:
        self._opener = opener
        self._current = first
        self._deadline = deadline
        self._replay: bytearray | None = bytearray()  # None: settled, no more retries
        self._lock = trio.Lock()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        async with self._lock:
            if self._replay is not None:
                if len(self._replay) + len(data) > _REPLAY_LIMIT:
                    self._replay = None
                else:
                    self._replay += data
            try:
                await self._current.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                if self._replay is None:
                    raise
                # The failed forward is noticed and reopened by receive_some.

    async def wait_send_all_might_not_block(self) -> None:
        await self._current.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        delay = _RETRY_FIRST
        while True:
            try:
                data = await self._current.receive_some(max_bytes)
            except KubeError:
                # Refused (nothing listens yet), or the API server blinked while reopening.
                if self._replay is None or trio.current_time() + delay > self._deadline:
                    raise
                await trio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                await self._reopen()
                continue
            self._replay = None
            return bytes(data)

    async def _reopen(self) -> None:
        async with self._lock:
            await trio.aclose_forcefully(self._current)
            try:
                self._current = await self._opener()
            except KubeError as exc:
                self._current = _Failed(exc)
                return
            if self._replay:
                # A forward refused at once may be closed already: receive_some tells.
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._current.send_all(bytes(self._replay))

    async def aclose(self) -> None:
        await self._current.aclose()


class _Failed(trio.abc.Stream):
    """Stands in for a forward that could not be opened; reading reports why."""

    def __init__(self, error: KubeError) -> None:
        self._error = error

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        raise self._error

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        raise trio.BrokenResourceError

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
