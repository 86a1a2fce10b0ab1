"""An image's root filesystem as a directory: layers applied onto it, changes taken out of it.

A layer is a tar whose OCI whiteouts delete what lower layers left: `dir/.wh.name` removes
`dir/name`, `dir/.wh..wh..opq` empties `dir` of everything but this layer's own entries.
What changed since a point in time is found by comparing the tree with a manifest taken then
(type, mode, owner, size, mtime, inode and link target of every path): the tree changes only
through our own layer applies and build steps, so this is cheap and safe, with no content
hashing. A snapshot is a tar of the changes in the same form, deletions as whiteouts.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator, Mapping
from typing import IO, NamedTuple

from ._tar import (
    ArchiveError,
    _clear,
    _make_directory,
    _make_parents,
    _set_metadata,
    _write_entry,
    members,
    open_stream,
    open_writer,
    safe_name,
)

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
_CHUNK = 256 * 1024


class Entry(NamedTuple):
    """What the manifest keeps of one path. `inode` makes a file rewritten with the same size
    and mtime a change; ctime is left out, because putting a file back in place (what a build
    step does with /etc/hosts) changes it."""

    kind: str  # one of "d", "f", "l", "c", "b", "p", "s"
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    inode: int
    link: str


Manifest = dict[str, Entry]

_KINDS = ((stat.S_ISDIR, "d"), (stat.S_ISREG, "f"), (stat.S_ISLNK, "l"), (stat.S_ISCHR, "c"),
          (stat.S_ISBLK, "b"), (stat.S_ISFIFO, "p"), (stat.S_ISSOCK, "s"))


def entry_of(path: str, info: os.stat_result) -> Entry:
    kind = next(letter for test, letter in _KINDS if test(info.st_mode))
    return Entry(
        kind=kind, mode=stat.S_IMODE(info.st_mode), uid=info.st_uid, gid=info.st_gid,
        size=info.st_size if kind == "f" else 0, mtime_ns=info.st_mtime_ns,
        inode=info.st_ino, link=os.readlink(path) if kind == "l" else "",
    )


def scan(root: str) -> Manifest:
    """Every path under `root` (relative, `/`-separated; the root itself left out)."""
    found: Manifest = {}
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(os.path.join(root, relative) if relative else root) as listing:
            for item in listing:
                name = f"{relative}/{item.name}" if relative else item.name
                info = item.stat(follow_symlinks=False)
                found[name] = entry_of(item.path, info)
                if stat.S_ISDIR(info.st_mode):
                    pending.append(name)
    return found


def save_manifest(manifest: Mapping[str, Entry], path: str) -> None:
    temporary = path + ".new"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(manifest, file, separators=(",", ":"))
    os.replace(temporary, path)


def load_manifest(path: str) -> Manifest:
    try:
        with open(path, encoding="utf-8") as file:
            return {name: Entry(*fields) for name, fields in json.load(file).items()}
    except FileNotFoundError:
        return {}


def _path_key(name: str) -> list[str]:
    # Component-wise, so a directory comes right before its children (`a`, `a/b`, `a-b`).
    return name.split("/")


def _parent(name: str) -> str:
    return name.rpartition("/")[0]


class Change(NamedTuple):
    name: str
    deleted: bool


def changes(before: Mapping[str, Entry], after: Mapping[str, Entry]) -> list[Change]:
    """What turns `before` into `after`, in tar order: added or changed paths, and one
    deletion for each removed path whose parent is still a directory (a removed directory's
    children go with it)."""
    found = [Change(name, False) for name, entry in after.items() if before.get(name) != entry]
    for name in before:
        if name in after:
            continue
        parent = _parent(name)
        if parent == "" or (parent in after and after[parent].kind == "d"):
            found.append(Change(name, True))
    found.sort(key=lambda change: _path_key(_whiteout_name(change.name) if change.deleted
                                            else change.name))
    return found


def _whiteout_name(name: str) -> str:
    parent, _, base = name.rpartition("/")
    return f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base


def write_changes(root: str, found: list[Change], after: Mapping[str, Entry],
                  sink: IO[bytes]) -> None:
    """A plain tar of `found` (see `changes`), read from `root` as `after` describes it.

    A file with several links comes once with its content; its other new names in this tar
    are hard links to that first one. Whiteouts are empty files owned by root, mode 0,
    mtime 0, as no metadata of theirs means anything.
    """
    linked: dict[int, str] = {}
    with open_writer(sink) as out:
        for change in found:
            if change.deleted:
                whiteout = tarfile.TarInfo(_whiteout_name(change.name))
                whiteout.mode = 0
                out.addfile(whiteout)
                continue
            path = os.path.join(root, change.name)
            info = os.lstat(path)
            entry = entry_of(path, info)
            member = tarfile.TarInfo(change.name)
            member.mode, member.uid, member.gid = entry.mode, entry.uid, entry.gid
            member.mtime = info.st_mtime_ns // 1_000_000_000
            content: IO[bytes] | None = None
            if entry.kind == "f" and info.st_nlink > 1 and entry.inode in linked:
                member.type, member.linkname = tarfile.LNKTYPE, linked[entry.inode]
            elif entry.kind == "f":
                member.size = entry.size
                content = open(path, "rb")  # noqa: SIM115 - closed below
                if info.st_nlink > 1:
                    linked[entry.inode] = change.name
            else:
                member.type = _TAR_TYPES[entry.kind]
                member.linkname = entry.link
                if entry.kind in ("c", "b"):
                    member.devmajor, member.devminor = (os.major(info.st_rdev),
                                                        os.minor(info.st_rdev))
            try:
                out.addfile(member, content)
            finally:
                if content is not None:
                    content.close()


_TAR_TYPES = {"d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "c": tarfile.CHRTYPE,
              "b": tarfile.BLKTYPE, "p": tarfile.FIFOTYPE}


def snapshot(root: str, manifest_path: str, sink: IO[bytes]) -> None:
    """Write the changes since the saved manifest to `sink`, then make the tree the new
    starting point. Sockets are left out, as tar cannot hold them."""
    after = {name: entry for name, entry in scan(root).items() if entry.kind != "s"}
    write_changes(root, changes(load_manifest(manifest_path), after), after, sink)
    save_manifest(after, manifest_path)


def apply_layer(source: IO[bytes], root: str) -> int:
    """Unpack one layer (plain or compressed tar) onto `root`; returns how many entries it
    held. Entries are checked as `kubedock.podside.extract` checks them (no name climbs
    out, no parent is a symlink); device nodes are made, as the build step's root may."""
    root = os.path.realpath(root)
    written: set[str] = set()
    directories: list[tuple[str, tarfile.TarInfo]] = []
    count = 0
    with open_stream(source) as archive:
        for member in members(archive):
            name = safe_name(member.name)
            if not name:
                continue
            count += 1
            parent, _, base = name.rpartition("/")
            if base.startswith(WHITEOUT_PREFIX):
                # What lies under a symlink or a missing directory is not ours to delete.
                if _is_directory(root, parent):
                    if base == OPAQUE:
                        _empty(root, parent, written)
                    else:
                        _clear(os.path.join(root, parent, base[len(WHITEOUT_PREFIX):]), False)
            else:
                _make_parents(root, name)
                path = os.path.join(root, name)
                try:
                    if member.isdir():
                        _make_directory(path, False)
                        directories.append((path, member))
                    else:
                        _clear(path, False)
                        if member.ischr() or member.isblk():
                            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                            os.mknod(path, kind | 0o600,
                                     os.makedev(member.devmajor, member.devminor))
                            _set_metadata(path, member)
                        else:
                            _write_entry(archive, member, path, root)
                except (tarfile.TarError, EOFError) as error:
                    raise ArchiveError(f"truncated tar archive at {name!r}: {error}") from None
                written.add(name)
    # Last, since writing a directory's children changed its mtime.
    for path, member in reversed(directories):
        _set_metadata(path, member)
    return count


def _is_directory(root: str, name: str) -> bool:
    """Whether `name` is a directory under `root` reached through directories only."""
    current = root
    for part in filter(None, name.split("/")):
        current = os.path.join(current, part)
        try:
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                return False
        except FileNotFoundError:
            return False
    return True


def _empty(root: str, directory: str, keep: set[str]) -> None:
    """Remove what `directory` holds, except the entries this layer wrote (and their
    parents): an opaque whiteout hides the lower layers only."""
    prefix = f"{directory}/" if directory else ""
    kept_parents = {name for kept in keep if kept.startswith(prefix)
                    for name in _ancestors(kept[len(prefix):])}
    for name in _listing(os.path.join(root, directory)):
        relative = prefix + name
        if relative in keep:
            continue
        if name in kept_parents:
            _empty(root, relative, keep)
        else:
            _clear(os.path.join(root, relative), False)


def _ancestors(name: str) -> Iterator[str]:
    parts = name.split("/")
    for end in range(1, len(parts)):
        yield "/".join(parts[:end])


def _listing(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except NotADirectoryError:
        return []


def reset(root: str, manifest_path: str) -> None:
    """Empty `root` and forget the manifest."""
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    save_manifest({}, manifest_path)
