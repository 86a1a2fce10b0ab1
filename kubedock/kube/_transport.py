"""The connection to the API server: requests and upgraded sessions (websocket, SPDY) under
kubedock's rate limit, with credentials renewed as they expire and error statuses raised as
`KubeError`s."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import httpx
import kr8s
import trio

from kubedock._metrics import KUBE_API_ERRORS

from ._errors import ClusterUnreachable, KubeError, NotFound, error_from_status
from ._spdy import SpdyChannels
from ._spdy_mux import MuxedForward
from ._websocket import WebSocket, connect

log = logging.getLogger(__name__)

_REQUEST_TIMEOUT = httpx.Timeout(30.0)
# Answers to a SPDY upgrade from something that does not pass SPDY on (0: a non-SPDY switch),
# and 403: a role granting "get" alone lets a websocket through on clusters before 1.30.
_NO_SPDY = frozenset({0, 400, 403, 405, 426, 501})
_Session = TypeVar("_Session")
_Spdy = TypeVar("_Spdy", SpdyChannels, MuxedForward)


class Transport:
    """One per `Cluster`: `api` is its kr8s API, `namespace` where resources' paths lead."""

    def __init__(self, api: Any, namespace: str, limiter: RateLimiter | None) -> None:
        self._api = api
        self.namespace = namespace
        self._limiter = limiter

    async def aclose(self) -> None:
        session = self._api._session
        if session is not None:
            await session.aclose()

    def path(self, resource: str) -> str:
        return f"/api/v1/namespaces/{self.namespace}/{resource}"

    async def merge_patch(self, resource: str, patch: Mapping[str, Any]) -> None:
        async with self.request(
            "PATCH",
            resource,
            content=json.dumps(patch).encode(),
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        ):
            pass

    async def websocket(
        self, resource: str, params: Sequence[tuple[str, str]], subprotocols: Sequence[str]
    ) -> WebSocket:
        return await self._streaming(
            partial(connect, path=self.path(resource), params=params, subprotocols=subprotocols))

    async def over_spdy(self, connect: Callable[[Any], Awaitable[_Spdy]],
                        fallback: Callable[[], Awaitable[WebSocket]]
                        ) -> WebSocket | _Spdy:
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
    async def request(
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
                f"Kubernetes API server unreachable: {describe(exc)}"
            ) from exc

    async def _reauthenticate(self) -> None:
        """Fresh credentials (exec plugins, projected service account tokens expire), put into
        the HTTP client in place, so requests in flight keep their connections."""
        auth = self._api.auth
        await auth.reauthenticate()
        session = self._api._session
        if session is not None and auth.token:
            session.headers["Authorization"] = f"Bearer {auth.token}"


async def unwind(chunks: AsyncIterator[Any]) -> None:
    """Finish a partly read httpx stream.

    Its chunks come from nested async generators; dropping them half-way makes trio warn
    about each one. A read in a cancelled scope unwinds them all with the Cancelled.
    """
    with trio.CancelScope() as scope:
        scope.cancel()
        with contextlib.suppress(StopAsyncIteration, httpx.HTTPError):
            while True:
                await anext(chunks)


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class RateLimiter:
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
