"""A build sandbox's root filesystem: layers applied with whiteouts, changes as layers."""

from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from tar_members import Member, archive
from tar_members import file as _file
from tar_members import link as _link

from kubedock.podside import ArchiveError
from kubedock.podside._rootfs import (
    Change,
    Entry,
    apply_layer,
    changes,
    load_manifest,
    reset,
    save_manifest,
    scan,
    snapshot,
)


def _layer(*members: Member, compress: Callable[[bytes], bytes] = lambda data: data) -> io.BytesIO:
    return archive(*members, compress=compress, mtime=1_600_000_000)


def _dir(name: str, **fields: object) -> Member:
    return name, None, {"type": tarfile.DIRTYPE, "mode": 0o755, **fields}



def _whiteout(name: str) -> Member:
    return name, b"", {"mode": 0}


def _base(root: Path) -> None:
    root.mkdir(exist_ok=True)
    apply_layer(_layer(_dir("bin"), _file("bin/true", b"\x7fELF"), _file("bin/sh", b"sh"),
                       _dir("etc"), _file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
                       _dir("usr"), _dir("usr/lib"), _file("usr/lib/a", b"a"),
                       _file("usr/lib/b", b"b")), str(root))


@pytest.mark.parametrize("compress", [lambda data: data, gzip.compress])
def test_apply_layer_keeps_metadata(tmp_path: Path, compress: Callable[[bytes], bytes]) -> None:
    layer = _layer(
        _dir("app", mode=0o750, mtime=1_500_000_000),
        _file("app/run", b"#!/bin/sh\n", mode=0o4755, uid=1000, gid=1001),
        _link("app/current", "/app/run"),
        _link("app/hard", "app/run", tarfile.LNKTYPE),
        ("dev/console", None, {"type": tarfile.CHRTYPE, "devmajor": 5, "devminor": 1,
                               "mode": 0o600}),
        compress=compress,
    )
    assert apply_layer(layer, str(tmp_path)) == 5
    run = (tmp_path / "app/run").lstat()
    assert (stat.S_IMODE(run.st_mode), run.st_uid, run.st_gid) == (0o4755, 1000, 1001)
    assert run.st_nlink == 2 and (tmp_path / "app/hard").lstat().st_ino == run.st_ino
    assert os.readlink(tmp_path / "app/current") == "/app/run"
    app = (tmp_path / "app").lstat()
    assert (stat.S_IMODE(app.st_mode), app.st_mtime) == (0o750, 1_500_000_000)
    console = (tmp_path / "dev/console").lstat()
    assert stat.S_ISCHR(console.st_mode) and os.major(console.st_rdev) == 5


def test_whiteouts_delete_lower_entries(tmp_path: Path) -> None:
    _base(tmp_path)
    apply_layer(_layer(_whiteout("bin/.wh.true"), _whiteout("usr/.wh.lib"),
                       _whiteout(".wh.nothing-here"), _whiteout("gone/.wh.x")), str(tmp_path))
    assert sorted(scan(str(tmp_path))) == ["bin", "bin/sh", "etc", "etc/passwd", "usr"]


def test_opaque_whiteout_keeps_the_layers_own_entries(tmp_path: Path) -> None:
    _base(tmp_path)
    apply_layer(_layer(_dir("usr"), _file("usr/lib/new", b"n"), _whiteout("usr/.wh..wh..opq"),
                       _file("usr/later", b"l")), str(tmp_path))
    assert sorted(name for name in scan(str(tmp_path)) if name.startswith("usr/")) == [
        "usr/later", "usr/lib", "usr/lib/new"]


def test_whiteout_never_deletes_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"k")
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(_layer(_link("escape", str(outside))), str(root))
    apply_layer(_layer(_whiteout("escape/.wh.keep"), _whiteout("escape/.wh..wh..opq")),
                str(root))
    assert (outside / "keep").read_bytes() == b"k"


def test_symlinks_among_parents_are_followed_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(_layer(_dir("usr"), _dir("usr/bin"), _link("bin", "usr/bin"),
                       _link("etc2", "/etc"), _link("up", "../../.."), _link("loop", "loop")),
                str(root))
    apply_layer(_layer(_file("bin/app", b"a"), _file("etc2/x", b"x"), _file("up/y", b"y")),
                str(root))
    assert (root / "usr/bin/app").read_bytes() == b"a" and (root / "bin").is_symlink()
    assert (root / "etc/x").read_bytes() == b"x" and (root / "y").read_bytes() == b"y"
    apply_layer(_layer(_whiteout("bin/.wh.app")), str(root))
    assert not (root / "usr/bin/app").exists()
    with pytest.raises(ArchiveError, match="symbolic links"):
        apply_layer(_layer(_file("loop/z")), str(root))


def test_hard_link_never_reaches_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ArchiveError, match="must point at an extracted file"):
        apply_layer(_layer(_link("evil", "/etc"), _link("h", "evil/passwd", tarfile.LNKTYPE)),
                    str(root))
    assert not (root / "h").exists()


def test_entry_climbing_out_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError):
        apply_layer(_layer(_file("../x")), str(tmp_path))


def _entry(kind: str = "f", inode: int = 1, **fields: object) -> Entry:
    return Entry(kind, 0o644, 0, 0, 0, 0, inode, "")._replace(**fields)


def test_changes_in_tar_order_with_topmost_deletions() -> None:
    before = {"a": _entry("d"), "a/x": _entry(), "a/y": _entry("d"), "a/y/z": _entry(),
              "b": _entry(), "c": _entry("d"), "c/k": _entry(), "a-b": _entry()}
    after = {"a": _entry("d", mtime_ns=5), "a/new": _entry(inode=9), "b": _entry(mode=0o600),
             "c": _entry("d", inode=2), "a-b": _entry()}
    assert changes(before, after) == [
        Change("a", False), Change("a/x", True), Change("a/y", True), Change("a/new", False),
        Change("b", False), Change("c", False), Change("c/k", True),
    ]


def test_removed_directory_replaced_by_a_file_needs_no_child_whiteouts() -> None:
    before = {"d": _entry("d"), "d/x": _entry()}
    after = {"d": _entry("f", inode=3)}
    assert changes(before, after) == [Change("d", False)]


def test_manifest_round_trip(tmp_path: Path) -> None:
    _base(tmp_path / "root")
    manifest = scan(str(tmp_path / "root"))
    save_manifest(manifest, str(tmp_path / "manifest.json"))
    assert load_manifest(str(tmp_path / "manifest.json")) == manifest
    assert load_manifest(str(tmp_path / "missing.json")) == {}


def _expected(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, content in members:
            archive.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def _info(name: str, *, mode: int, mtime: int, size: int = 0, uid: int = 0,
          kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.size, info.uid, info.type, info.linkname = (
        mode, mtime, size, uid, kind, link)
    return info


def test_snapshot_is_a_layer_of_the_changes(tmp_path: Path) -> None:
    root, manifest = tmp_path / "root", str(tmp_path / "manifest.json")
    _base(root)
    save_manifest(scan(str(root)), manifest)
    (root / "bin/true").unlink()
    (root / "x").write_bytes(b"hi\n")
    os.chmod(root / "x", 0o640)
    os.chown(root / "x", 7, 0)
    os.link(root / "x", root / "y")
    os.symlink("x", root / "z")
    os.chmod(root / "etc/passwd", 0o600)
    for path in ("x", "y", "z", "bin", "etc/passwd", ""):
        os.utime(root / path, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    out = io.BytesIO()
    snapshot(str(root), manifest, out)
    assert out.getvalue() == _expected(
        (_info("bin", mode=0o755, mtime=1_700_000_000, kind=tarfile.DIRTYPE), None),
        (_info("bin/.wh.true", mode=0, mtime=0), b""),
        (_info("etc/passwd", mode=0o600, mtime=1_700_000_000, size=26),
         b"root:x:0:0::/root:/bin/sh\n"),
        (_info("x", mode=0o640, mtime=1_700_000_000, size=3, uid=7), b"hi\n"),
        (_info("y", mode=0o640, mtime=1_700_000_000, uid=7, kind=tarfile.LNKTYPE, link="x"),
         None),
        (_info("z", mode=0o777, mtime=1_700_000_000, kind=tarfile.SYMTYPE, link="x"), None),
    )
    again = io.BytesIO()
    snapshot(str(root), manifest, again)
    assert again.getvalue() == _expected()


def test_snapshot_applied_onto_the_old_tree_gives_the_new_one(tmp_path: Path) -> None:
    old, new, manifest = tmp_path / "old", tmp_path / "new", str(tmp_path / "manifest.json")
    _base(old)
    _base(new)
    save_manifest(scan(str(new)), manifest)
    (new / "usr/lib/a").unlink()
    (new / "usr/lib/b").write_bytes(b"changed")
    os.makedirs(new / "opt/tool")
    (new / "opt/tool/cfg").write_bytes(b"c")
    reset(str(new / "etc"), str(tmp_path / "ignored.json"))
    layer = io.BytesIO()
    snapshot(str(new), manifest, layer)
    layer.seek(0)
    apply_layer(layer, str(old))

    def view(root: Path) -> dict[str, tuple[str, int, int, int, str, bytes]]:
        return {name: (entry.kind, entry.mode, entry.uid, entry.size, entry.link,
                       (root / name).read_bytes() if entry.kind == "f" else b"")
                for name, entry in scan(str(root)).items()}

    assert view(old) == view(new)


# cap_net_raw, permitted and effective (VFS_CAP_REVISION_2)
CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)


def test_file_capabilities_kept_both_ways(tmp_path: Path) -> None:
    root, manifest = tmp_path / "root", str(tmp_path / "manifest.json")
    root.mkdir()
    record = {"SCHILY.xattr.security.capability": CAPABILITY.decode("utf-8", "surrogateescape")}
    apply_layer(_layer(_file("ping", b"p", uid=1000, pax_headers=record)), str(root))
    assert os.getxattr(root / "ping", "security.capability") == CAPABILITY
    assert (root / "ping").stat().st_uid == 1000
    save_manifest({}, manifest)
    out = io.BytesIO()
    snapshot(str(root), manifest, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as archive:
        [member] = archive.getmembers()
    assert member.pax_headers == record
