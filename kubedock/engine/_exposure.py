"""Port exposure: a running container's ports published on kubedock's host, by reverse proxy
or port-forward (UDP ones through kubedock's relay in the pod), or as the pod's own IP and
ports."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

import trio

from .. import kube
from .._config import ExposeMode
from ..expose import serve_port_forward, serve_reverse_proxy, serve_udp_proxy, serve_udp_relay
from ._adopt import PORTS, ports_annotation
from ._errors import StartFailed
from ._records import Container, PublishedPort, is_running

log = logging.getLogger(__name__)


class Exposure:
    """Publishes containers' ports as `mode` says, on `host` unless a binding names another
    address; the listeners run in `nursery` until the container's exposure scope is cancelled.

    `offline` says whether a container has no network to reach its ports through;
    `udp_relay` opens a stream to the relay of a container's UDP port in its pod (port-forward
    carries TCP only).
    """

    def __init__(self, cluster: kube.ClusterBoundary, nursery: trio.Nursery, mode: ExposeMode,
                 host: str, offline: Callable[[Container], bool],
                 udp_relay: Callable[[Container, int],
                                     AbstractAsyncContextManager[trio.abc.Stream]]) -> None:
        self._cluster = cluster
        self._udp_relay = udp_relay
        self._nursery = nursery
        self._mode = mode
        self._host = host
        self._offline = offline

    async def publish(self, container: Container,
                      previous: tuple[PublishedPort, ...] = ()) -> None:
        """Publish the container's ports; on the host ports of `previous` where it has one
        (re-adopted containers keep their ports)."""
        ports = container.config.ports
        if not ports or self._offline(container):  # as with Docker: nothing to reach
            return
        if self._mode == "pod-ip":
            assert container.pod_ip is not None
            container.published = tuple(
                PublishedPort(port, container.pod_ip, port.port) for port in ports
            )
            return
        scope = trio.CancelScope()
        try:
            published = await self._nursery.start(self._serve, container, scope,
                                                  previous)
        except* StartFailed as failure:
            raise failure.exceptions[0] from None
        if is_running(container):
            container.exposure, container.published = scope, published
        else:  # it exited meanwhile
            scope.cancel()

    async def _serve(
        self, container: Container, scope: trio.CancelScope, previous: tuple[PublishedPort, ...],
        *, task_status: trio.TaskStatus[tuple[PublishedPort, ...]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        assert container.pod_name is not None and container.pod_ip is not None
        # The listeners handle their connections' failures themselves; a listener that fails to
        # bind fails the start, which is where the client can see it.
        with scope:
            async with trio.open_nursery() as nursery:
                published = []
                for port in container.config.ports:
                    bindings = container.config.port_bindings.get(port) or ()
                    earlier = [p.host_port for p in previous if p.port == port]
                    for binding in bindings or (None,):
                        host_ip = (binding.host_ip if binding else "") or self._host
                        host_port = (binding.host_port if binding else 0) or (
                            earlier.pop(0) if earlier else 0)
                        serve = self._server(container, port)
                        try:
                            bound = await nursery.start(
                                partial(serve, host=host_ip, host_port=host_port)
                            )
                        except OSError as error:
                            raise StartFailed(
                                "driver failed programming external connectivity on endpoint "
                                f"{container.name}",
                                f"Bind for {host_ip}:{host_port} failed: {error.strerror}",
                            ) from error
                        published.append(PublishedPort(port, host_ip, bound))
                task_status.started(tuple(published))

    def _server(self, container: Container, port: kube.PortSpec) -> Callable[..., Any]:
        assert container.pod_name is not None and container.pod_ip is not None
        if self._mode == "port-forward" and port.protocol == "udp":
            return partial(serve_udp_relay, partial(self._udp_relay, container, port.port))
        if self._mode == "port-forward":
            return partial(serve_port_forward, self._cluster, container.pod_name, port.port)
        if port.protocol == "udp":
            return partial(serve_udp_proxy, container.pod_ip, port.port)
        return partial(serve_reverse_proxy, container.pod_ip, port.port)

    async def keep_published(self, container: Container) -> None:
        """Note the host ports on the pod, for a restarted kubedock to publish them again."""
        if self._mode == "pod-ip" or not container.published or container.pod_name is None:
            return
        ports = ports_annotation(container.published)
        try:
            await self._cluster.patch_pod(container.pod_name,
                                         {"metadata": {"annotations": {PORTS: ports}}})
        except kube.KubeError as error:
            log.warning("pod %s does not keep its published ports: %s",
                        container.pod_name, error)
