"""Tar archives described member by member, for tests of the in-pod tar code."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable

Member = tuple[str, bytes | None, dict[str, object]]


def archive(*members: Member, compress: Callable[[bytes], bytes] = lambda data: data,
            mtime: int | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as writer:
        for name, content, fields in members:
            info = tarfile.TarInfo(name)
            if mtime is not None:
                info.mtime = mtime
            for key, value in fields.items():
                setattr(info, key, value)
            if content is not None:
                info.size = len(content)
            writer.addfile(info, io.BytesIO(content) if content is not None else None)
    return io.BytesIO(compress(buffer.getvalue()))


def file(name: str, content: bytes = b"data", **fields: object) -> Member:
    return name, content, {"mode": 0o644, **fields}


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> Member:
    return name, None, {"type": kind, "linkname": target}
