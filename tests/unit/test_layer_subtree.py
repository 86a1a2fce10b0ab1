"""An image directory assembled from layers, top first, with whiteouts: byte for byte."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from kubedock.podside import ArchiveError, open_writer
from kubedock.registry import SubtreeMerger

# (name, kind, content or link target, mode)
Entry = tuple[str, str, str, int]


def _info(name: str, kind: str, data: str, mode: int) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uid, info.gid = mode, 1_700_000_000, 999, 999
    info.uname = info.gname = ""
    if kind == "dir":
        info.type = tarfile.DIRTYPE
        return info, None
    if kind == "sym":
        info.type, info.linkname = tarfile.SYMTYPE, data
        return info, None
    if kind == "link":
        info.type, info.linkname = tarfile.LNKTYPE, data
        return info, None
    if kind == "char":
        info.type = tarfile.CHRTYPE
        return info, None
    info.size = len(data.encode())
    return info, data.encode()


def _tar(entries: list[Entry], *, compress: bool = False) -> bytes:
    sink = io.BytesIO()
    with open_writer(sink) as out:
        for entry in entries:
            info, content = _info(*entry)
            out.addfile(info, io.BytesIO(content) if content is not None else None)
    data = sink.getvalue()
    return gzip.compress(data, mtime=0) if compress else data


def _merge(path: str, layers_bottom_first: list[bytes]) -> tuple[bytes, int]:
    sink = io.BytesIO()
    merger = SubtreeMerger(path, sink)
    for layer in reversed(layers_bottom_first):
        merger.add_layer(io.BytesIO(layer))
    merger.close()
    return sink.getvalue(), merger.entries


def test_upper_layers_win_and_whiteouts_delete_what_lies_below() -> None:
    base = _tar([
        ("var", "dir", "", 0o755), ("var/lib", "dir", "", 0o755),
        ("var/lib/db", "dir", "", 0o700),
        ("var/lib/db/old.conf", "file", "old", 0o644),
        ("var/lib/db/keep", "file", "kept", 0o600),
        ("var/lib/db/sub", "dir", "", 0o755),
        ("var/lib/db/sub/gone", "file", "gone", 0o644),
        ("var/lib/other", "file", "elsewhere", 0o644),
        ("etc/passwd", "file", "root", 0o644),
    ], compress=True)
    top = _tar([
        ("./var/lib/db/.wh.old.conf", "file", "", 0o644),
        ("./var/lib/db/new.conf", "file", "new", 0o640),
        ("./var/lib/db/keep", "file", "replaced", 0o600),
        ("./var/lib/db/sub/.wh..wh..opq", "file", "", 0o644),
        ("./var/lib/db/sub/fresh", "file", "fresh", 0o644),
        ("./var/lib/db/data", "file", "payload", 0o644),
        ("./var/lib/db/alias", "link", "var/lib/db/data", 0o644),
        ("./var/lib/db/null", "char", "", 0o666),
    ])
    merged, entries = _merge("/var/lib/db/", [base, top])
    assert merged == _tar([
        ("new.conf", "file", "new", 0o640),
        ("keep", "file", "replaced", 0o600),
        ("sub/fresh", "file", "fresh", 0o644),
        ("data", "file", "payload", 0o644),
        ("alias", "link", "data", 0o644),
        (".", "dir", "", 0o700),
        ("sub", "dir", "", 0o755),
    ])
    assert entries == 6


def test_a_deleted_or_replaced_parent_hides_the_lower_directory() -> None:
    base = _tar([("srv/app", "dir", "", 0o755), ("srv/app/f", "file", "x", 0o644)])
    for top in (_tar([("srv/.wh.app", "file", "", 0o644)]),
                _tar([("srv", "sym", "/opt", 0o777)]),
                _tar([(".wh..wh..opq", "file", "", 0o644)])):
        merged, entries = _merge("/srv/app", [base, top])
        assert (merged, entries) == (_tar([]), 0)


def test_a_directory_given_again_above_keeps_the_content_below() -> None:
    base = _tar([("data", "dir", "", 0o755), ("data/a", "file", "a", 0o644)])
    top = _tar([("data", "dir", "", 0o1777), ("data/b", "sym", "a", 0o777)])
    merged, entries = _merge("/data", [base, top])
    assert merged == _tar([(".", "dir", "", 0o1777), ("b", "sym", "a", 0o777),
                           ("a", "file", "a", 0o644)])
    assert entries == 2


def test_an_empty_directory_has_no_entries_and_a_file_at_the_path_is_not_copied() -> None:
    assert _merge("/var/lib/postgresql/data", [_tar([
        ("var/lib/postgresql/data", "dir", "", 0o1777)])])[1] == 0
    assert _merge("/data", [_tar([("data", "file", "x", 0o644)])]) == (_tar([]), 0)


def test_a_malformed_layer_is_an_archive_error() -> None:
    merger = SubtreeMerger("/data", io.BytesIO())
    with pytest.raises(ArchiveError):
        merger.add_layer(io.BytesIO(gzip.compress(b"not a tar at all" * 64)))
