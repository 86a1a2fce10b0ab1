"""Docker endpoints kubedock does not serve, answered 501 with their name instead of a 404.

Only requests no route took come here, so an endpoint implemented later simply wins; its entry
below then goes away.
"""

from __future__ import annotations

import re

import attrs


@attrs.frozen
class _Endpoint:
    method: str
    path: str  # Docker's spelling: "/containers/{id}/pause"
    why: str
    pattern: re.Pattern[str]

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


def _endpoints(why: str, *names: str, slashed_names: bool = False) -> list[_Endpoint]:
    """`slashed_names`: a `{name}` may hold slashes (image and plugin references)."""
    parameters = {"{id}": "[^/]+", "{name}": ".+" if slashed_names else "[^/]+"}
    endpoints = []
    for name in names:
        method, _, path = name.partition(" ")
        pattern = re.escape(path)
        for parameter, expression in parameters.items():
            pattern = pattern.replace(re.escape(parameter), expression)
        endpoints.append(_Endpoint(method, path, why, re.compile(pattern)))
    return endpoints


_ENDPOINTS: tuple[_Endpoint, ...] = tuple([
    *_endpoints("a pod cannot be paused",
                "POST /containers/{id}/pause", "POST /containers/{id}/unpause"),
    *_endpoints("kubedock cannot read a pod's filesystem as layers",
                "POST /commit", "GET /containers/{id}/changes", "GET /containers/{id}/export"),
    *_endpoints("attach with POST /containers/{id}/attach instead",
                "GET /containers/{id}/attach/ws"),
    *_endpoints("cluster volumes are swarm's", "PUT /volumes/{name}"),
    *_endpoints("kubedock builds with Docker's classic builder, without BuildKit sessions",
                "POST /build/cancel", "POST /session", "POST /grpc"),
    *_endpoints("the cluster's nodes pull images; kubedock keeps no image store",
                "GET /images/{name}/history", "GET /images/search", "POST /auth",
                "GET /distribution/{name}/json", slashed_names=True),
    *_endpoints("kubedock has no plugins",
                "GET /plugins", "GET /plugins/privileges", "POST /plugins/pull",
                "POST /plugins/create", "GET /plugins/{name}/json", "DELETE /plugins/{name}",
                "POST /plugins/{name}/enable", "POST /plugins/{name}/disable",
                "POST /plugins/{name}/upgrade", "POST /plugins/{name}/push",
                "POST /plugins/{name}/set", slashed_names=True),
    *_endpoints("kubedock is not a swarm node",
                "GET /swarm", "POST /swarm/init", "POST /swarm/join", "POST /swarm/leave",
                "POST /swarm/update", "GET /swarm/unlockkey", "POST /swarm/unlock",
                "GET /nodes", "GET /nodes/{id}", "DELETE /nodes/{id}", "POST /nodes/{id}/update",
                "GET /services", "POST /services/create", "GET /services/{id}",
                "DELETE /services/{id}", "POST /services/{id}/update",
                "GET /services/{id}/logs", "GET /tasks", "GET /tasks/{id}",
                "GET /tasks/{id}/logs", "GET /secrets", "POST /secrets/create",
                "GET /secrets/{id}", "DELETE /secrets/{id}", "POST /secrets/{id}/update",
                "GET /configs", "POST /configs/create", "GET /configs/{id}",
                "DELETE /configs/{id}", "POST /configs/{id}/update"),
])


def unimplemented(method: str, path: str) -> str | None:
    """The 501 message for a Docker endpoint kubedock lacks; None for a path Docker lacks."""
    for endpoint in _ENDPOINTS:
        if endpoint.method == method and endpoint.pattern.fullmatch(path):
            return f"{endpoint.name} is not supported by kubedock: {endpoint.why}"
    return None
