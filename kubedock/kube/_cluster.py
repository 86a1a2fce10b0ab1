"""`Cluster`: the one object that talks to the Kubernetes API server.

Its requests and sessions go through its `Transport`; the pod watch's loop is `_pod_watch`'s.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

import httpx
import kr8s
import kr8s.asyncio
import trio

from kubedock import wire

from . import _pod_watch
from ._channels import ExecChannel, PortForwardStream
from ._errors import (
    ClusterUnreachable,
    KubeError,
    NotFound,
    Unsupported,
)
from ._observe import ContainerObservation, observe
from ._ownership import PODS, Kind
from ._podspec import MAIN
from ._spdy import SpdyChannels, connect_exec, connect_port_forwards
from ._spdy_mux import MuxedForward, SpdySessions
from ._transport import RateLimiter, Transport, describe, unwind
from ._watch import PodCallback, WatchHealth
from ._websocket import WebSocket

log = logging.getLogger(__name__)

_IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# A followed log says nothing while its container is quiet, and neither does a dead
# connection: a follow that hears nothing this long ends as `ClusterUnreachable`, which the
# engine's follow answers by resuming after its last line, on a new connection.
_FOLLOW_SILENCE_SECONDS = 60.0
# A pod name no one can create (it ends with '-'): probing its logs costs no object.
_PROBE_POD = "kubedock-capability-probe-"

LogStream = Literal["Stdout", "Stderr"]


class Cluster:
    """One per server. Everything namespaced lives in `namespace`."""

    def __init__(self, api: Any, namespace: str, limiter: RateLimiter | None) -> None:
        self._transport = Transport(api, namespace, limiter)
        self._spdy_forwards = SpdySessions()  # one connection per pod for its port-forwards
        self.namespace = namespace
        self._split_streams: bool | None = None

    @classmethod
    async def connect(
        cls,
        *,
        kubeconfig: str | None = None,
        namespace: str | None = None,
        qps: float | None = None,
        burst: int | None = None,
    ) -> Cluster:
        """Credentials: `kubeconfig`, else $KUBECONFIG, else ~/.kube/config, else in-cluster.

        Namespace: `namespace`, else the pod's own (in-cluster), else the kubeconfig
        context's, else "default".
        """
        namespace = namespace or _in_cluster_namespace()
        try:
            # Built directly rather than through kr8s.asyncio.api(): that factory caches per
            # asyncio loop, which under trio collapses to one key shared by every trio.run().
            api = await kr8s.asyncio.Api(
                bypass_factory=True, kubeconfig=kubeconfig, namespace=namespace
            )
        except (httpx.TransportError, kr8s.APITimeoutError, OSError) as exc:
            raise ClusterUnreachable(
                f"cannot reach the Kubernetes API server: {describe(exc)}"
            ) from exc
        except ValueError as exc:
            raise ClusterUnreachable(f"no usable Kubernetes credentials: {exc}") from exc
        limiter = RateLimiter(qps, burst or max(1, math.ceil(qps))) if qps else None
        return cls(api, api.namespace, limiter)

    async def aclose(self) -> None:
        await self._spdy_forwards.aclose()
        await self._transport.aclose()

    # -- pods -------------------------------------------------------------------------------

    async def create_pod(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a pod; the created object (its ``metadata.uid`` is what owners refer to)."""
        return await self.create_object(PODS, manifest)

    async def patch_pod(self, name: str, patch: Mapping[str, Any]) -> None:
        """Apply a strategic merge patch to a pod."""
        await self._transport.merge_patch(f"pods/{name}", patch)

    async def add_ephemeral_container(self, pod: str, container: Mapping[str, Any]) -> None:
        """Add an ephemeral container to a pod; adding the same one again changes nothing."""
        await self._transport.merge_patch(f"pods/{pod}/ephemeralcontainers",
                                          {"spec": {"ephemeralContainers": [dict(container)]}})

    async def delete_pod(self, name: str, *, grace_seconds: int | None = None) -> bool:
        """Delete a pod; whether there was one (a pod that is already gone is fine)."""
        params = {} if grace_seconds is None else {"gracePeriodSeconds": str(max(0, grace_seconds))}
        try:
            async with self._transport.request("DELETE", f"pods/{name}", params=params):
                return True
        except NotFound:
            return False

    async def delete_all(self, label_selector: str, *, grace_seconds: int | None = None) -> None:
        """Delete every pod matching the selector (list + delete: no deletecollection RBAC)."""
        async with self._transport.request("GET", "pods",
                                           params={"labelSelector": label_selector}) as r:
            names = [item["metadata"]["name"] for item in r.json().get("items") or ()]
        failures: list[KubeError] = []

        async def delete(name: str) -> None:
            try:
                await self.delete_pod(name, grace_seconds=grace_seconds)
            except KubeError as exc:
                failures.append(exc)

        # Concurrent, but failing like one call would: with the first error, after trying all.
        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(delete, name)
        if failures:
            raise failures[0]

    async def resize_pod(self, name: str, patch: Mapping[str, Any]) -> None:
        """Change a running pod's CPU and memory in place (the ``resize`` subresource,
        Kubernetes 1.33 on); `Unsupported` where the cluster has no such subresource."""
        try:
            await self._transport.merge_patch(f"pods/{name}/resize", patch)
        except NotFound as exc:
            if f'"{name}"' in exc.message:  # the pod is gone, not the subresource
                raise
            raise Unsupported("this cluster cannot resize pods in place (Kubernetes 1.33 "
                              "on can)", status=404) from exc

    # -- nodes (cluster-scoped: a ClusterRole grants these) ---------------------------------

    async def get_node(self, name: str) -> dict[str, Any]:
        async with self._transport.request("GET", f"nodes/{name}", namespaced=False) as r:
            result: dict[str, Any] = r.json()
            return result

    async def node_summary(self, name: str) -> dict[str, Any]:
        """The kubelet's Summary API of node `name` (its pods' CPU, memory, network and disk
        use), through the API server's node proxy."""
        async with self._transport.request("GET", f"nodes/{name}/proxy/stats/summary",
                                           namespaced=False) as r:
            result: dict[str, Any] = r.json()
            return result

    # -- any kind kubedock creates (see _ownership) -----------------------------------------

    async def list_objects(self, kind: Kind, label_selector: str) -> list[dict[str, Any]]:
        async with self._transport.request("GET", kind.plural, version=kind.version,
                                           params={"labelSelector": label_selector}) as r:
            return list(r.json().get("items") or ())

    async def get_object(self, kind: Kind, name: str) -> dict[str, Any]:
        async with self._transport.request("GET", f"{kind.plural}/{name}",
                                           version=kind.version) as r:
            result: dict[str, Any] = r.json()
            return result

    async def create_object(self, kind: Kind, manifest: Mapping[str, Any]) -> dict[str, Any]:
        async with self._transport.request("POST", kind.plural, version=kind.version,
                                           json=dict(manifest)) as r:
            result: dict[str, Any] = r.json()
            return result

    async def replace_object(self, kind: Kind, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """PUT; with ``metadata.resourceVersion`` set, `Conflict` if it changed meanwhile."""
        name = manifest["metadata"]["name"]
        async with self._transport.request("PUT", f"{kind.plural}/{name}",
                                           version=kind.version, json=dict(manifest)) as r:
            result: dict[str, Any] = r.json()
            return result

    async def delete_object(
        self, kind: Kind, name: str, *, grace_seconds: int | None = None,
        resource_version: str | None = None,
    ) -> None:
        """Delete; gone already is fine. With `resource_version`, only that exact version
        (`Conflict` otherwise)."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = max(0, grace_seconds)
        if resource_version is not None:
            body["preconditions"] = {"resourceVersion": resource_version}
        with contextlib.suppress(NotFound):
            async with self._transport.request("DELETE", f"{kind.plural}/{name}",
                                               version=kind.version, json=body):
                pass

    async def watch_pods(
        self,
        label_selector: str,
        on_change: Callable[[ContainerObservation], None],
        *,
        task_status: trio.TaskStatus[WatchHealth] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """`watch_pod_documents`, each pod read as its main container's observation."""

        def on_pod(pod: Mapping[str, Any], deleted: bool) -> None:
            on_change(observe(pod, deleted=deleted))

        await self.watch_pod_documents(label_selector, on_pod, task_status=task_status)

    async def watch_pod_documents(
        self,
        label_selector: str,
        on_change: PodCallback,
        *,
        task_status: trio.TaskStatus[WatchHealth] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Report every change of the selected pods to `on_change`, forever (see
        `_pod_watch.watch_pod_documents`: it starts once the current pods are reported)."""
        await _pod_watch.watch_pod_documents(self._transport, label_selector, on_change,
                                             task_status=task_status)

    # -- logs -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def logs(
        self,
        pod: str,
        *,
        follow: bool = False,
        timestamps: bool = False,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        since_time: datetime | None = None,
        stream: LogStream | None = None,
        container: str = MAIN,
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """The log of one container, as raw chunks.

        `stream` selects stdout or stderr alone (Kubernetes' PodLogsQuerySplitStreams; see
        `split_streams_supported`); Kubernetes refuses `tail_lines` together with it, and so
        does this (`Unsupported`). A follow that hears nothing for a minute raises
        `ClusterUnreachable`, silent container or dead connection alike.
        """
        if stream is not None and tail_lines is not None:
            raise Unsupported("Kubernetes cannot tail a single log stream (stdout or stderr)")
        params: dict[str, str] = {"container": container}
        if follow:
            params["follow"] = "true"
        if timestamps:
            params["timestamps"] = "true"
        if tail_lines is not None:
            params["tailLines"] = str(max(0, tail_lines))
        if since_seconds is not None:
            params["sinceSeconds"] = str(max(1, since_seconds))
        if since_time is not None:
            params["sinceTime"] = _rfc3339(since_time)
        if stream is not None:
            params["stream"] = stream
        timeout = httpx.Timeout(30.0, read=_FOLLOW_SILENCE_SECONDS if follow else 30.0)
        async with self._transport.request(
            "GET", f"pods/{pod}/log", params=params, stream=True, http_timeout=timeout
        ) as response:
            chunks = response.aiter_bytes()
            try:
                yield chunks
            finally:
                await unwind(chunks)

    async def split_streams_supported(self) -> bool:
        """Whether `logs(stream=...)` really separates stdout and stderr on this cluster.

        With the feature on, the API server validates the `stream` option before looking
        for the pod (and refuses it next to tailLines); with it off, it drops the option.
        So a request for a pod that cannot exist tells the two apart: 4xx-invalid vs 404.
        """
        if self._split_streams is None:
            params = {"container": MAIN, "stream": "Stderr", "tailLines": "1"}
            try:
                async with self._transport.request("GET", f"pods/{_PROBE_POD}/log", params=params):
                    pass
            except NotFound:
                self._split_streams = False
            except KubeError as exc:
                self._split_streams = exc.status in (400, 422)
            else:
                self._split_streams = False
        return self._split_streams

    # -- exec, attach, port-forward ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def exec(
        self,
        pod: str,
        argv: Sequence[str],
        *,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        tty: bool = False,
        container: str = MAIN,
    ) -> AsyncIterator[ExecChannel]:
        """Run `argv` in a container. With a TTY, stderr is merged into stdout."""
        if not argv:
            raise Unsupported("exec needs a command")
        params = [*_stream_params(stdin, stdout, stderr, tty, container)]
        params.extend(("command", arg) for arg in argv)
        resource = f"pods/{pod}/exec"
        socket: WebSocket | SpdyChannels
        if tty:
            socket = await self._transport.websocket(resource, params, wire.CHANNEL_SUBPROTOCOLS)
        else:
            socket = await self._spdy_exec(resource, params, stdin, stdout, stderr)
        channel = ExecChannel(socket)
        try:
            yield channel
        finally:
            await channel.aclose()

    @contextlib.asynccontextmanager
    async def attach(
        self,
        pod: str,
        *,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        tty: bool = False,
        container: str = MAIN,
    ) -> AsyncIterator[ExecChannel]:
        """Attach to the main process. It ends when the process exits (no exit code here:
        take that from the pod watch)."""
        params = _stream_params(stdin, stdout, stderr, tty, container)
        socket = await self._transport.websocket(f"pods/{pod}/attach", params,
                                                 wire.CHANNEL_SUBPROTOCOLS)
        channel = ExecChannel(socket)
        try:
            yield channel
        finally:
            await channel.aclose()

    async def open_port_forward(self, pod: str, port: int) -> PortForwardStream:
        """A stream to `port` inside the pod; the caller closes it."""
        resource = f"pods/{pod}/portforward"
        transport = self._transport
        path = transport.path(resource)

        async def forward(auth: Any) -> MuxedForward:
            return await self._spdy_forwards.open_forward(
                path, port, partial(connect_port_forwards, auth, path))

        socket = await transport.over_spdy(
            forward,
            partial(transport.websocket, resource, [("ports", str(port))],
                    (wire.PORTFORWARD_SUBPROTOCOL,)))
        return PortForwardStream(socket, port)

    async def _spdy_exec(self, resource: str, params: list[tuple[str, str]], stdin: bool,
                         stdout: bool, stderr: bool) -> WebSocket | SpdyChannels:
        transport = self._transport
        return await transport.over_spdy(
            partial(connect_exec, path=transport.path(resource), params=params, stdin=stdin,
                    stdout=stdout, stderr=stderr),
            partial(transport.websocket, resource, params, wire.CHANNEL_SUBPROTOCOLS))


def _stream_params(
    stdin: bool, stdout: bool, stderr: bool, tty: bool, container: str
) -> list[tuple[str, str]]:
    # The API server wants at least one stream, and no separate stderr next to a TTY.
    stderr = stderr and not tty
    stdout = stdout or not (stdin or stderr)
    flags = {"stdin": stdin, "stdout": stdout, "stderr": stderr, "tty": tty}
    return [("container", container)] + [(k, "true" if v else "false") for k, v in flags.items()]


def _in_cluster_namespace() -> str | None:
    try:
        with open(_IN_CLUSTER_NAMESPACE) as file:
            return file.read().strip() or None
    except OSError:
        return None


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
