"""The one mapping from engine and cluster failures to Docker error answers."""

from __future__ import annotations

from .. import engine, kube


class DockerError(Exception):
    """An error answer: ``{"message": ...}`` with a status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> DockerError:
    return DockerError(400, message)


_ENGINE_STATUS: list[tuple[type[engine.EngineError], int]] = [
    (engine.NotFound, 404),
    (engine.Conflict, 409),
    (engine.Forbidden, 403),
    (engine.NotModified, 304),
    (engine.InvalidParameter, 400),
    (engine.Unsupported, 501),
    (engine.StartFailed, 500),
]


def docker_error(error: Exception) -> DockerError:
    """Translate an exception from below the API layer; anything unknown is a 500."""
    if isinstance(error, ExceptionGroup):
        # Tasks run side by side (a copy's upload and its reader): the first failure says why.
        return docker_error(error.exceptions[0])
    if isinstance(error, DockerError):
        return error
    if isinstance(error, engine.EngineError):
        for kind, status in _ENGINE_STATUS:
            if isinstance(error, kind):
                return DockerError(status, error.message)
        return DockerError(500, error.message)
    if isinstance(error, kube.Unsupported):
        return DockerError(501, error.message)
    if isinstance(error, kube.ClusterUnreachable):
        # The cluster's requests say so themselves: said once is enough.
        reason = error.message.removeprefix("Kubernetes API server unreachable: ")
        return DockerError(503, f"Kubernetes API unreachable: {reason}")
    if isinstance(error, kube.KubeError):
        status = {403: 403, 404: 404, 409: 409, 422: 400}.get(error.status, 500)
        return DockerError(status, f"kubernetes: {error.message}")
    return DockerError(500, f"internal error: {type(error).__name__}: {error}")
