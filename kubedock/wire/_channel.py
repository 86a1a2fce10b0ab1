"""Kubernetes' exec/attach websocket channels (`v4.channel.k8s.io`, `v5.channel.k8s.io`).

Every binary message starts with one byte naming its channel; the rest is the payload.
"""

import enum
import json
from typing import Any

import attrs

from ._errors import WireFormatError

CHANNEL_SUBPROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


class Channel(enum.IntEnum):
    STDIN = 0
    STDOUT = 1
    STDERR = 2
    ERROR = 3
    RESIZE = 4
    CLOSE = 255
    """v5 only: the payload names the channel to close (half-closing stdin)."""


@attrs.frozen
class ChannelData:
    """Bytes on a data channel. Kubernetes may open a channel with an empty message."""

    channel: Channel
    data: bytes


@attrs.frozen
class ExitStatus:
    """The Status object that ends an exec or attach session."""

    exit_code: int
    message: str
    start_failure: str | None = None
    """Why the command could not be started, as Docker reports it; None when it ran."""


@attrs.frozen
class ChannelClosed:
    channel: Channel


ChannelMessage = ChannelData | ExitStatus | ChannelClosed


def encode_stdin(data: bytes | bytearray | memoryview) -> bytes:
    return bytes([Channel.STDIN]) + data


def encode_resize(width: int, height: int) -> bytes:
    size = json.dumps({"Width": width, "Height": height}, separators=(",", ":"))
    return bytes([Channel.RESIZE]) + size.encode()


def encode_close_stdin() -> bytes:
    """Half-close stdin; only `v5.channel.k8s.io` understands this."""
    return bytes([Channel.CLOSE, Channel.STDIN])


def decode_channel_message(message: bytes) -> ChannelMessage:
    """Decode one binary message sent by the API server."""
    if not message:
        raise WireFormatError("empty channel message")
    channel, payload = message[0], message[1:]
    if channel in (Channel.STDIN, Channel.STDOUT, Channel.STDERR):
        return ChannelData(Channel(channel), payload)
    if channel == Channel.ERROR:
        if not payload:
            return ChannelData(Channel.ERROR, b"")
        status = _load_status(payload)
        return ExitStatus(exit_code_from_status(payload), _status_message(status),
                          _start_failure(status))
    if channel == Channel.CLOSE:
        if len(payload) != 1 or payload[0] not in Channel._value2member_map_:
            raise WireFormatError(f"bad close message {message!r}")
        return ChannelClosed(Channel(payload[0]))
    raise WireFormatError(f"unexpected channel {channel}")


# A failure without an exit code means the command never ran, which Docker reports with 126
# (a missing executable included, unlike a shell's 127) and the runtime's explanation.
_CANNOT_EXECUTE_EXIT_CODE = 126
# The kubelet puts its own words before the runtime's; Docker shows the runtime's alone.
_RUNTIME_FAILURE = "OCI runtime exec failed"


def exit_code_from_status(status_json: bytes) -> int:
    """The exit code a Status object (channel 3) reports.

    `Success` is 0; `NonZeroExitCode` carries the code in its `ExitCode` cause; any other failure
    means the command could not be started: 126.
    """
    status = _load_status(status_json)
    if status.get("status") == "Success":
        return 0
    if status.get("status") != "Failure":
        raise WireFormatError(f"unknown exec status {status.get('status')!r}")
    if status.get("reason") == "NonZeroExitCode":
        return _exit_code_cause(status)
    return _CANNOT_EXECUTE_EXIT_CODE


def _start_failure(status: dict[str, Any]) -> str | None:
    if status.get("status") != "Failure" or status.get("reason") == "NonZeroExitCode":
        return None
    message = _status_message(status)
    start = message.find(_RUNTIME_FAILURE)
    return message[start:] if start >= 0 else message or "the command could not be started"


def _load_status(status_json: bytes) -> dict[str, Any]:
    try:
        status = json.loads(status_json)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WireFormatError(f"exec status is not JSON: {status_json!r}") from error
    if not isinstance(status, dict):
        raise WireFormatError(f"exec status is not an object: {status_json!r}")
    return status


def _status_message(status: dict[str, Any]) -> str:
    message = status.get("message", "")
    return message if isinstance(message, str) else ""


def _exit_code_cause(status: dict[str, Any]) -> int:
    details = status.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    for cause in causes if isinstance(causes, list) else []:
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", ""))
            except (TypeError, ValueError) as error:
                raise WireFormatError(f"bad exit code cause {cause!r}") from error
    raise WireFormatError("NonZeroExitCode status without an ExitCode cause")
