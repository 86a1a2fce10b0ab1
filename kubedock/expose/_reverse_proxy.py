"""Local TCP ports that reach a pod's port directly (kubedock runs inside the cluster)."""

from __future__ import annotations

from functools import partial

import trio

from kubedock._metrics import EXPOSED_CONNECTIONS

from ._splice import serve_tunnels, tunnel

_RETRY_FIRST, _RETRY_MAX = 0.1, 1.0


async def serve_reverse_proxy(
    pod_ip: str,
    port: int,
    *,
    host: str = "127.0.0.1",
    host_port: int = 0,
    retry_seconds: float = 30.0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on `host:host_port` and connect every client to `pod_ip:port`.

    Starts with the bound port. While the pod refuses connections (still starting), each
    connect is retried for up to `retry_seconds`.
    """
    [listener] = await trio.open_tcp_listeners(host_port, host=host)
    bound = listener.socket.getsockname()[1]
    task_status.started(bound)
    await serve_tunnels(listener, partial(_proxy, pod_ip, port, retry_seconds),
                        f"port {bound} proxied to {pod_ip}:{port}")


async def _proxy(pod_ip: str, port: int, retry_seconds: float, client: trio.SocketStream) -> None:
    EXPOSED_CONNECTIONS.inc("reverse-proxy")

    async def connect() -> trio.abc.Stream:
        deadline = trio.current_time() + retry_seconds
        delay = _RETRY_FIRST
        while True:
            try:
                return await trio.open_tcp_stream(pod_ip, port)
            except OSError:
                if trio.current_time() + delay > deadline:
                    raise
            await trio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)

    await tunnel(client, connect)
