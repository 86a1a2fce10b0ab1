"""Safe extraction and relocation of tar streams (`kubedock init` and the archive API)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from tar_members import archive as _tar
from tar_members import file as _file
from tar_members import link as _link

from kubedock.podside import ArchiveError, extract, relocate, safe_name


@pytest.mark.parametrize(("name", "expected"), [
    ("a/b", "a/b"), ("/tmp/x", "tmp/x"), ("./a/./b/", "a/b"), ("a/../b", "b"), (".", ""),
])
def test_safe_name(name: str, expected: str) -> None:
    assert safe_name(name) == expected


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/../etc/passwd"])
def test_safe_name_refuses_escapes(name: str) -> None:
    with pytest.raises(ArchiveError):
        safe_name(name)


@pytest.mark.parametrize("compress", [lambda d: d, gzip.compress, bz2.compress, lzma.compress])
def test_extract_any_compression_with_modes_and_mtimes(
    tmp_path: Path, compress: Callable[[bytes], bytes]
) -> None:
    archive = _tar(
        _file("/bin/start.sh", b"#!/bin/sh\n", mode=0o755, mtime=1_700_000_000),
        ("empty", None, {"type": tarfile.DIRTYPE, "mode": 0o750, "mtime": 1_600_000_000}),
        _link("bin/link", "/usr/bin/env"),
        compress=compress,
    )
    assert extract(archive, str(tmp_path)) == 3
    script = tmp_path / "bin/start.sh"
    assert script.read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert script.stat().st_mtime == 1_700_000_000
    assert stat.S_IMODE((tmp_path / "empty").stat().st_mode) == 0o750
    assert (tmp_path / "empty").stat().st_mtime == 1_600_000_000
    assert os.readlink(tmp_path / "bin/link") == "/usr/bin/env"


def test_long_names(tmp_path: Path) -> None:
    name = "/".join(["d" * 60] * 5) + "/" + "f" * 150
    extract(_tar(_file(name)), str(tmp_path))
    assert (tmp_path / name).read_bytes() == b"data"


def test_traversal_writes_nothing_outside(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(ArchiveError):
        extract(_tar(_file("../outside")), str(target))
    assert not (tmp_path / "outside").exists()


def test_writing_through_a_symlink_is_refused(tmp_path: Path) -> None:
    target, outside = tmp_path / "target", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    with pytest.raises(ArchiveError, match="symlink"):
        extract(_tar(_link("escape", str(outside)), _file("escape/pwned")), str(target))
    assert not (outside / "pwned").exists()


def test_replacing_a_symlink_does_not_follow_it(tmp_path: Path) -> None:
    target, victim = tmp_path / "target", tmp_path / "victim"
    target.mkdir()
    victim.write_bytes(b"keep")
    extract(_tar(_link("file", str(victim)), _file("file", b"new")), str(target))
    assert victim.read_bytes() == b"keep"
    assert (target / "file").read_bytes() == b"new"


def test_hard_links_must_stay_inside(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "secret").write_bytes(b"secret")
    with pytest.raises(ArchiveError):
        extract(_tar(_link("h", "../secret", tarfile.LNKTYPE)), str(target))
    extract(_tar(_file("a", b"x"), _link("h", "a", tarfile.LNKTYPE)), str(target))
    assert (target / "h").stat().st_ino == (target / "a").stat().st_ino


def test_no_overwrite_dir_non_dir(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(ArchiveError, match="directory"):
        extract(_tar(_file("d")), str(tmp_path), no_overwrite_dir_non_dir=True)
    extract(_tar(_file("d")), str(tmp_path))
    assert (tmp_path / "d").is_file()
    with pytest.raises(ArchiveError, match="non-directory"):
        extract(_tar(("d", None, {"type": tarfile.DIRTYPE})), str(tmp_path),
                no_overwrite_dir_non_dir=True)
    extract(_tar(("d", None, {"type": tarfile.DIRTYPE, "mode": 0o755})), str(tmp_path))
    assert (tmp_path / "d").is_dir()


@pytest.mark.parametrize("cut", [100, 512 + 10, 1500])
def test_truncated_archive_is_a_clean_error(tmp_path: Path, cut: int) -> None:
    data = _tar(_file("big", os.urandom(2000))).getvalue()[:cut]
    with pytest.raises(ArchiveError):
        extract(io.BytesIO(data), str(tmp_path))


def test_garbage_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError):
        extract(io.BytesIO(b"\x1f\x8b" + os.urandom(3000)), str(tmp_path))


def test_relocate_prefixes_and_drops_pax_names(tmp_path: Path) -> None:
    long = "x" * 200
    out = io.BytesIO()
    written = relocate(_tar(_file(f"/{long}"), _file("a/b")), out, "s/etc")
    assert [entry.name for entry in written] == [f"s/etc/{long}", "s/etc/a/b"]
    out.seek(0)
    with tarfile.open(fileobj=out) as archive:
        assert archive.getnames() == [f"s/etc/{long}", "s/etc/a/b"]


def test_relocate_refuses_traversal() -> None:
    with pytest.raises(ArchiveError):
        relocate(_tar(_file("../../x")), io.BytesIO())


def test_after_a_refused_entry_the_rest_is_read_not_written(tmp_path: Path) -> None:
    target, outside = tmp_path / "target", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    data = _tar(_link("escape", str(outside)), _file("escape/pwned"),
                _file("big", bytes(2 * 1024 * 1024)), _file("after")).getvalue()
    source = io.BytesIO(data)
    with pytest.raises(ArchiveError, match="symlink"):
        extract(source, str(target))
    assert source.tell() > 2 * 1024 * 1024  # read past the big entry (not only a buffer's worth)
    assert not (target / "big").exists()
    assert not (target / "after").exists()
