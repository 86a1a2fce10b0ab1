"""The framing of a build sandbox session (`kubedock buildstep STATE serve`), both ends.

One exec session carries every operation of a sandbox, one after the other, so that each
costs a round trip rather than the start of a program in the pod. Pure and standard library
only.

kubedock → pod (stdin): a request is one line of JSON (`{"op": ...}` and the operation's
fields); `apply` follows it with the layer as chunks (`_chunks`: each a 4-byte big-endian
length and that many bytes, ended by a zero length).

pod → kubedock (stdout): frames of a 1-byte kind, a 4-byte big-endian length and the payload:
`o` output (a step's stdout, or a snapshot's tar), `s` a step's stderr, `e` why the operation
failed, `x` the end of the operation, its status as decimal digits (a step's exit code; 0 for
the others when they succeeded). A step's stderr comes apart only when its request says
`"stderr_apart": true`; otherwise it is in the `o` frames with its stdout, as a pod of an
earlier kubedock sends it (which ignores the field).
"""

from __future__ import annotations

import json
import struct
from typing import Any

OUTPUT = b"o"
STDERR = b"s"
ERROR = b"e"
END = b"x"
_HEADER = struct.Struct(">cI")


class SessionError(Exception):
    """The other end broke the framing."""


def request(op: str, **fields: Any) -> bytes:
    return json.dumps({"op": op, **fields}, separators=(",", ":")).encode() + b"\n"


def parse_request(line: bytes) -> dict[str, Any]:
    try:
        document = json.loads(line)
    except ValueError as error:
        raise SessionError(f"malformed request: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("op"), str):
        raise SessionError("malformed request: no op")
    return document


def frame(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


class FrameReader:
    """Frames out of a byte stream cut anywhere: `feed` bytes, then `next` until None."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> tuple[bytes, bytes] | None:
        if len(self._buffer) < _HEADER.size:
            return None
        kind, size = _HEADER.unpack_from(self._buffer)
        if kind not in (OUTPUT, STDERR, ERROR, END):
            raise SessionError(f"unknown frame kind {kind!r}")
        end = _HEADER.size + size
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[_HEADER.size:end])
        del self._buffer[:end]
        return kind, payload


def end_status(payload: bytes) -> int:
    try:
        return int(payload)
    except ValueError:
        raise SessionError(f"malformed end of operation: {payload[:40]!r}") from None
