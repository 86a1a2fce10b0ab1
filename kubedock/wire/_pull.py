"""The NDJSON lines of an image pull (`POST /images/create`)."""

import json
from typing import Any

import attrs

from ._errors import WireFormatError


@attrs.frozen
class PullProgress:
    status: str
    id: str | None = None
    progress_detail: dict[str, int] | None = None
    """`{"current": .., "total": ..}`; Testcontainers' pull watchdog wants it on heartbeats."""


@attrs.frozen
class PullFailure:
    message: str


def progress_line(progress: PullProgress) -> bytes:
    document: dict[str, Any] = {"status": progress.status}
    if progress.progress_detail is not None:
        document["progressDetail"] = progress.progress_detail
    if progress.id is not None:
        document["id"] = progress.id
    return _line(document)


def final_status_line(image: str, *, downloaded: bool) -> bytes:
    """The last line of a successful pull, which docker-java checks for."""
    if downloaded:
        return progress_line(PullProgress(f"Status: Downloaded newer image for {image}"))
    return progress_line(PullProgress(f"Status: Image is up to date for {image}"))


def failure_line(failure: PullFailure) -> bytes:
    """Reports a pull that failed after the 200 response had started."""
    return _line({"errorDetail": {"message": failure.message}, "error": failure.message})


def decode_pull_line(line: bytes) -> PullProgress | PullFailure:
    try:
        document = json.loads(line)
    except ValueError as error:
        raise WireFormatError(f"pull line is not JSON: {line!r}") from error
    if not isinstance(document, dict):
        raise WireFormatError(f"pull line is not an object: {line!r}")
    if "error" in document:
        return _decode_failure(document)
    status, id_, detail = document.get("status"), document.get("id"), document.get("progressDetail")
    if not isinstance(status, str) or not isinstance(id_, str | None):
        raise WireFormatError(f"bad pull progress line {line!r}")
    if detail is not None and not (
        isinstance(detail, dict)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in detail.values())
    ):
        raise WireFormatError(f"bad pull progress detail {line!r}")
    return PullProgress(status, id_, detail)


def _decode_failure(document: dict[str, Any]) -> PullFailure:
    detail = document.get("errorDetail")
    message = detail.get("message") if isinstance(detail, dict) else document["error"]
    if not isinstance(message, str):
        raise WireFormatError(f"bad pull error line {document!r}")
    return PullFailure(message)


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"
