"""`Cluster`: the one object that talks to the Kubernetes API server."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, TypeVar

import httpx
import kr8s
import kr8s.asyncio
import trio

from kubedock import wire
from kubedock._metrics import KUBE_API_ERRORS

from ._channels import ExecChannel, PortForwardStream
from ._errors import (
    ClusterUnreachable,
    KubeError,
    NotFound,
    Unsupported,
    error_from_status,
)
from ._observe import ContainerObservation, observe
from ._ownership import PODS, Kind
from ._podspec import MAIN
from ._spdy import SpdyChannels, connect_exec, connect_port_forward
from ._watch import PodCallback, WatchHealth, follow, pod_name_of, report, watch_failure
from ._websocket import WebSocket, connect

log = logging.getLogger(__name__)

_IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_REQUEST_TIMEOUT = httpx.Timeout(30.0)
# Watches are re-opened now and then so a silently dead connection cannot stall them forever.
_WATCH_SECONDS = 240
# The API server sends a watch that allows bookmarks one about every minute (Kubernetes 1.34,
# with its watch cache, as by default): longer silence means a dead connection.
_WATCH_SILENCE_SECONDS = 90.0
_RETRY_FIRST, _RETRY_MAX = 0.5, 10.0
# A followed log says nothing while its container is quiet, and neither does a dead
# connection: a follow that hears nothing this long ends as `ClusterUnreachable`, which the
# engine's follow answers by resuming after its last line, on a new connection.
_FOLLOW_SILENCE_SECONDS = 60.0
# A pod name no one can create (it ends with '-'): probing its logs costs no object.
_PROBE_POD = "kubedock-capability-probe-"
# Answers to a SPDY upgrade from something that does not pass SPDY on (0: a non-SPDY switch),
# and 403: a role granting "get" alone lets a websocket through on clusters before 1.30.
_NO_SPDY = frozenset({0, 400, 403, 405, 426, 501})
_Session = TypeVar("_Session")

LogStream = Literal["Stdout", "Stderr"]


class Cluster:
    """One per server. Everything namespaced lives in `namespace`."""

    def __init__(self, api: Any, namespace: str, limiter: _RateLimiter | None) -> None:
        self._api = api
        self.namespace = namespace
        self._limiter = limiter
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
                f"cannot reach the Kubernetes API server: {_describe(exc)}"
            ) from exc
        except ValueError as exc:
            raise ClusterUnreachable(f"no usable Kubernetes credentials: {exc}") from exc
        limiter = _RateLimiter(qps, burst or max(1, math.ceil(qps))) if qps else None
        return cls(api, api.namespace, limiter)

    async def aclose(self) -> None:
        session = self._api._session
        if session is not None:
            await session.aclose()

    # -- pods -------------------------------------------------------------------------------

    async def create_pod(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a pod; the created object (its ``metadata.uid`` is what owners refer to)."""
        return await self.create_object(PODS, manifest)

    async def patch_pod(self, name: str, patch: Mapping[str, Any]) -> None:
        """Apply a strategic merge patch to a pod."""
        await self._merge_patch(f"pods/{name}", patch)

    async def add_ephemeral_container(self, pod: str, container: Mapping[str, Any]) -> None:
        """Add an ephemeral container to a pod; adding the same one again changes nothing."""
        await self._merge_patch(f"pods/{pod}/ephemeralcontainers",
                                {"spec": {"ephemeralContainers": [dict(container)]}})

    async def delete_pod(self, name: str, *, grace_seconds: int | None = None) -> bool:
        """Delete a pod; whether there was one (a pod that is already gone is fine)."""
        params = {} if grace_seconds is None else {"gracePeriodSeconds": str(max(0, grace_seconds))}
        try:
            async with self._request("DELETE", f"pods/{name}", params=params):
                return True
        except NotFound:
            return False

    async def delete_all(self, label_selector: str, *, grace_seconds: int | None = None) -> None:
        """Delete every pod matching the selector (list + delete: no deletecollection RBAC)."""
        async with self._request("GET", "pods", params={"labelSelector": label_selector}) as r:
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
            await self._merge_patch(f"pods/{name}/resize", patch)
        except NotFound as exc:
            if f'"{name}"' in exc.message:  # the pod is gone, not the subresource
                raise
            raise Unsupported("this cluster cannot resize pods in place (Kubernetes 1.33 "
                              "on can)", status=404) from exc

    # -- nodes (cluster-scoped: a ClusterRole grants these) ---------------------------------

    async def get_node(self, name: str) -> dict[str, Any]:
        async with self._request("GET", f"nodes/{name}", namespaced=False) as r:
            result: dict[str, Any] = r.json()
            return result

    async def node_summary(self, name: str) -> dict[str, Any]:
        """The kubelet's Summary API of node `name` (its pods' CPU, memory, network and disk
        use), through the API server's node proxy."""
        async with self._request("GET", f"nodes/{name}/proxy/stats/summary",
                                 namespaced=False) as r:
            result: dict[str, Any] = r.json()
            return result

    # -- any kind kubedock creates (see _ownership) -----------------------------------------

    async def list_objects(self, kind: Kind, label_selector: str) -> list[dict[str, Any]]:
        async with self._request("GET", kind.plural, version=kind.version,
                                 params={"labelSelector": label_selector}) as r:
            return list(r.json().get("items") or ())

    async def get_object(self, kind: Kind, name: str) -> dict[str, Any]:
        async with self._request("GET", f"{kind.plural}/{name}", version=kind.version) as r:
            result: dict[str, Any] = r.json()
            return result

    async def create_object(self, kind: Kind, manifest: Mapping[str, Any]) -> dict[str, Any]:
        async with self._request("POST", kind.plural, version=kind.version,
                                 json=dict(manifest)) as r:
            result: dict[str, Any] = r.json()
            return result

    async def replace_object(self, kind: Kind, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """PUT; with ``metadata.resourceVersion`` set, `Conflict` if it changed meanwhile."""
        name = manifest["metadata"]["name"]
        async with self._request("PUT", f"{kind.plural}/{name}", version=kind.version,
                                 json=dict(manifest)) as r:
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
            async with self._request("DELETE", f"{kind.plural}/{name}", version=kind.version,
                                     json=body):
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
        """Report every change of the selected pods to `on_change`, forever.

        Starts (task_status, with the watch's `WatchHealth`) once the current pods have been
        reported; a refusal of that first listing is raised. Afterwards the API server may
        drop, expire the resource version (410), refuse or be unreachable for a while: the
        watch logs each distinct failure once, retries with backoff, lists again, reports pods
        that vanished meanwhile as deleted, and carries on. Events it cannot read are skipped.
        """
        known: dict[str, Mapping[str, Any]] = {}
        health = WatchHealth()
        try:
            version: str | None = await self._relist(label_selector, on_change, known)
        except KubeError as exc:
            raise type(exc)(watch_failure("list", exc, self.namespace),
                            status=exc.status, reason=exc.reason) from exc
        task_status.started(health)
        delay = _RETRY_FIRST
        while True:
            action: Literal["list", "watch"] = "watch"
            try:
                if version is None:
                    action = "list"
                    version = await self._relist(label_selector, on_change, known)
                    action = "watch"
                version = await self._watch_once(label_selector, version, on_change, known,
                                                 health)
                delay = _RETRY_FIRST
            except Exception as exc:
                # Whatever the failure, the engine must not go blind for good: retry.
                health.failed(watch_failure(action, exc, self.namespace),
                              unexpected=not isinstance(exc, KubeError))
                version = None
                await trio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    async def _relist(
        self,
        label_selector: str,
        on_change: PodCallback,
        known: dict[str, Mapping[str, Any]],
    ) -> str:
        async with self._request("GET", "pods", params={"labelSelector": label_selector}) as r:
            listing = r.json()
        current = {}
        for item in listing.get("items") or ():
            name = pod_name_of(item)
            if name is None:
                log.warning("pod watch: skipped a pod without a name in a listing: %.200r", item)
            else:
                current[name] = item
        for name in known.keys() - current.keys():
            report(on_change, known.pop(name), True)
        for name, pod in current.items():
            known[name] = pod
            report(on_change, pod, False)
        return str(listing["metadata"]["resourceVersion"])

    async def _watch_once(
        self,
        label_selector: str,
        version: str,
        on_change: PodCallback,
        known: dict[str, Mapping[str, Any]],
        health: WatchHealth,
    ) -> str | None:
        """One watch connection; the version to resume from, None to relist."""
        params = {
            "labelSelector": label_selector,
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(_WATCH_SECONDS),
        }
        timeout = httpx.Timeout(30.0, read=_WATCH_SILENCE_SECONDS)
        async with self._request(
            "GET", "pods", params=params, stream=True, http_timeout=timeout
        ) as r:
            health.working()
            lines = r.aiter_lines()
            try:
                return await follow(lines, version, on_change, known, health)
            finally:
                await _unwind(lines)

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
        async with self._request(
            "GET", f"pods/{pod}/log", params=params, stream=True, http_timeout=timeout
        ) as response:
            chunks = response.aiter_bytes()
            try:
                yield chunks
            finally:
                await _unwind(chunks)

    async def split_streams_supported(self) -> bool:
        """Whether `logs(stream=...)` really separates stdout and stderr on this cluster.

        With the feature on, the API server validates the `stream` option before looking
        for the pod (and refuses it next to tailLines); with it off, it drops the option.
        So a request for a pod that cannot exist tells the two apart: 4xx-invalid vs 404.
        """
        if self._split_streams is None:
            params = {"container": MAIN, "stream": "Stderr", "tailLines": "1"}
            try:
                async with self._request("GET", f"pods/{_PROBE_POD}/log", params=params):
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
            socket = await self._websocket(resource, params, wire.CHANNEL_SUBPROTOCOLS)
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
        socket = await self._websocket(f"pods/{pod}/attach", params, wire.CHANNEL_SUBPROTOCOLS)
        channel = ExecChannel(socket)
        try:
            yield channel
        finally:
            await channel.aclose()

    async def open_port_forward(self, pod: str, port: int) -> PortForwardStream:
        """A stream to `port` inside the pod; the caller closes it."""
        resource = f"pods/{pod}/portforward"
        socket = await self._over_spdy(
            partial(connect_port_forward, path=self._path(resource), port=port),
            partial(self._websocket, resource, [("ports", str(port))],
                    (wire.PORTFORWARD_SUBPROTOCOL,)))
        return PortForwardStream(socket, port)

    # -- plumbing ---------------------------------------------------------------------------

    async def _merge_patch(self, resource: str, patch: Mapping[str, Any]) -> None:
        async with self._request(
            "PATCH",
            resource,
            content=json.dumps(patch).encode(),
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        ):
            pass

    def _path(self, resource: str) -> str:
        return f"/api/v1/namespaces/{self.namespace}/{resource}"

    async def _websocket(
        self, resource: str, params: Sequence[tuple[str, str]], subprotocols: Sequence[str]
    ) -> WebSocket:
        return await self._streaming(
            partial(connect, path=self._path(resource), params=params, subprotocols=subprotocols))

    async def _spdy_exec(self, resource: str, params: list[tuple[str, str]], stdin: bool,
                         stdout: bool, stderr: bool) -> WebSocket | SpdyChannels:
        return await self._over_spdy(
            partial(connect_exec, path=self._path(resource), params=params, stdin=stdin,
                    stdout=stdout, stderr=stderr),
            partial(self._websocket, resource, params, wire.CHANNEL_SUBPROTOCOLS))

    async def _over_spdy(self, connect: Callable[[Any], Awaitable[SpdyChannels]],
                         fallback: Callable[[], Awaitable[WebSocket]]
                         ) -> WebSocket | SpdyChannels:
        """A session over SPDY (faster, see `kube._spdy`), else over a websocket where
        something between kubedock and the API server does not pass SPDY on."""
        try:
            return await self._streaming(connect)
        except (ClusterUnreachable, NotFound):
            raise
        except KubeError as exc:
            if exc.status not in _NO_SPDY:
                raise
            log.info("SPDY refused (%s), using a websocket", exc)
        return await fallback()

    async def _streaming(self, connect: Callable[[Any], Awaitable[_Session]]) -> _Session:
        if self._limiter is not None:
            await self._limiter.acquire()
        try:
            return await connect(self._api.auth)
        except KubeError as exc:
            if exc.status != 401:
                raise
        # Short-lived credentials (exec plugins, projected tokens) may just have expired.
        await self._api.auth.reauthenticate()
        return await connect(self._api.auth)

    @contextlib.asynccontextmanager
    async def _request(
        self,
        method: str,
        resource: str,
        *,
        params: Mapping[str, str] | None = None,
        version: str = "v1",
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        http_timeout: httpx.Timeout = _REQUEST_TIMEOUT,
        namespaced: bool = True,
    ) -> AsyncIterator[httpx.Response]:
        if self._limiter is not None:
            await self._limiter.acquire()
        kwargs: dict[str, Any] = {"params": params or {}, "timeout": http_timeout}
        if json is not None:
            kwargs["json"] = json
        if content is not None:
            kwargs["content"] = content
        if headers is not None:
            kwargs["headers"] = dict(headers)
        # Statuses are read here, not by kr8s: on a 401 or 403 kr8s replaces its HTTP client,
        # closing the connections of every request in flight (a refused watch would break the
        # starts running beside it). A 403 is final; a 401 (an expired token) is retried once.
        try:
            for attempt in itertools.count(1):
                async with self._api.call_api(
                    method, version=version,
                    namespace=self.namespace if namespaced else None, url=resource,
                    stream=stream, raise_for_status=False, **kwargs,
                ) as response:
                    if response.status_code == 401 and attempt == 1:
                        pass  # reauthenticated below, once the response is closed
                    elif response.is_error:
                        await response.aread()
                        raise error_from_status(response.status_code, response.content)
                    else:
                        yield response
                        return
                await self._reauthenticate()
        except (httpx.TransportError, kr8s.APITimeoutError) as exc:
            KUBE_API_ERRORS.inc("0")
            raise ClusterUnreachable(
                f"Kubernetes API server unreachable: {_describe(exc)}"
            ) from exc


    async def _reauthenticate(self) -> None:
        """Fresh credentials (exec plugins, projected service account tokens expire), put into
        the HTTP client in place, so requests in flight keep their connections."""
        auth = self._api.auth
        await auth.reauthenticate()
        session = self._api._session
        if session is not None and auth.token:
            session.headers["Authorization"] = f"Bearer {auth.token}"


def _stream_params(
    stdin: bool, stdout: bool, stderr: bool, tty: bool, container: str
) -> list[tuple[str, str]]:
    # The API server wants at least one stream, and no separate stderr next to a TTY.
    stderr = stderr and not tty
    stdout = stdout or not (stdin or stderr)
    flags = {"stdin": stdin, "stdout": stdout, "stderr": stderr, "tty": tty}
    return [("container", container)] + [(k, "true" if v else "false") for k, v in flags.items()]


async def _unwind(chunks: AsyncIterator[Any]) -> None:
    """Finish a partly read httpx stream.

    Its chunks come from nested async generators; dropping them half-way makes trio warn
    about each one. A read in a cancelled scope unwinds them all with the Cancelled.
    """
    with trio.CancelScope() as scope:
        scope.cancel()
        with contextlib.suppress(StopAsyncIteration, httpx.HTTPError):
            while True:
                await anext(chunks)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


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


class _RateLimiter:
    """A token bucket: `qps` requests per second on average, `burst` at once."""

    def __init__(self, qps: float, burst: int) -> None:
        self._qps = qps
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated: float | None = None
        self._lock = trio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = trio.current_time()
            if self._updated is not None:
                self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._qps)
            self._updated = now
            if self._tokens < 1:
                await trio.sleep((1 - self._tokens) / self._qps)
                self._tokens = 1.0
                self._updated = trio.current_time()
            self._tokens -= 1
