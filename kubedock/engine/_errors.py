"""The engine's errors: few and precise; the API layer maps each to a Docker status code."""

from __future__ import annotations


class EngineError(Exception):
    """Base class; the message is what the Docker client shows to its user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(EngineError):
    pass


class NoSuchContainer(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such container: {ref}")


class NoSuchImage(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such image: {ref}")


class NoSuchExec(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such exec instance: {ref}")


class NoSuchNetwork(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"network {ref} not found")


class Conflict(EngineError):
    pass


class Forbidden(EngineError):
    """Docker refuses the operation on this object as it is (a predefined or busy network)."""


class NotModified(EngineError):
    pass


class InvalidParameter(EngineError):
    pass


class Unsupported(EngineError):
    """A valid Docker option that kubedock cannot honour; refused rather than ignored."""


class StartFailed(EngineError):
    """The pod can never run; carries the cluster's reason."""

    def __init__(self, reason: str, message: str | None) -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason


class TimedOut(EngineError):
    """The cluster did not do in time what kubedock asked of it (or did not say so)."""


class ImageUnavailable(NotFound):
    """The registry has no such repository or tag, or refuses it (Docker's text)."""


class RegistryUnreachable(EngineError):
    """No answer came from the registry: the node may still pull, or have, the image."""


class PullFailed(EngineError):
    """The registry answered, but not with a usable image."""
