"""An image's root filesystem as a directory: layers applied onto it, changes taken out of it.

A layer is a tar whose OCI whiteouts delete what lower layers left: `dir/.wh.name` removes
`dir/name`, `dir/.wh..wh..opq` empties `dir` of everything but this layer's own entries.
What changed since a point in time is found by comparing the tree with a manifest taken then
(type, mode, owner, size, mtime, inode and link target of every path): the tree changes only
through our own layer applies and build steps, so this is cheap and safe, with no content
hashing. A snapshot is a tar of the changes in the same form, deletions as whiteouts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tarfile
from collections.abc import Mapping
from typing import IO, NamedTuple

from ._tar import (
    ArchiveError,
    _clear,
    _make_directory,
    _set_metadata,
    _write_entry,
    members,
    open_stream,
    open_writer,
    safe_name,
)

WHITEOUT_PREFIX = ".wh."
_XATTR = "SCHILY.xattr."
# As Linux allows in one path lookup.
_MAX_SYMLINKS = 40
_CAPABILITY = "security.capability"
OPAQUE = ".wh..wh..opq"
_CHUNK = 256 * 1024


class Entry(NamedTuple):
    """What the manifest keeps of one path. `inode` makes a file rewritten with the same size
    and mtime a change; ctime is left out, because putting a file back in place (what a build
    step does with /etc/hosts) changes it. So a change of extended attributes alone (`setcap`
    on a file as it is) is not seen."""

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
                member.pax_headers = _capabilities_of(path)
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
    held. Names are taken as paths in the image: a symlink on the way is followed as the
    image would follow it, with `root` as `/` (so nothing lands outside), as container
    runtimes unpack layers. Device nodes are made, as the build step's root may."""
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
            base = name.rpartition("/")[2]
            if base.startswith(WHITEOUT_PREFIX):
                path = _in_root(root, name, create=False)
                if path is None:
                    continue  # nothing there to hide
                parent = os.path.dirname(path)
                if base == OPAQUE:
                    _empty(parent, written)
                else:
                    _clear(os.path.join(parent, base[len(WHITEOUT_PREFIX):]), False)
                continue
            path = _in_root(root, name, create=True)
            assert path is not None
            try:
                if member.isdir():
                    _make_directory(path, False)
                    directories.append((path, member))
                else:
                    _clear(path, False)
                    _write_member(archive, member, path, root)
                    _set_attributes(path, member)
            except (tarfile.TarError, EOFError) as error:
                raise ArchiveError(f"truncated tar archive at {name!r}: {error}") from None
            written.add(path)
    # Last, since writing a directory's children changed its mtime.
    for path, member in reversed(directories):
        _set_metadata(path, member)
        _set_attributes(path, member)
    return count


def _write_member(archive: tarfile.TarFile, member: tarfile.TarInfo, path: str,
                  root: str) -> None:
    if member.islnk():
        source = _in_root(root, safe_name(member.linkname), create=False)
        if source is None or not os.path.lexists(source) or os.path.isdir(source):
            raise ArchiveError(f"hard link {member.name!r} must point at an extracted file")
        os.link(source, path, follow_symlinks=False)
    elif member.ischr() or member.isblk():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        _set_metadata(path, member)
    else:
        _write_entry(archive, member, path, root)


def _in_root(root: str, name: str, *, create: bool) -> str | None:
    """Where `name` (a safe relative name) is under `root` once the symlinks among its
    parents are followed as if `root` were `/`; missing parents are made when `create`,
    else the answer is None. The last part is not followed."""
    parts = name.split("/")
    pending = list(reversed(parts[:-1]))
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        current = os.path.join(root, *resolved, part)
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            if not create:
                return None
            os.mkdir(current, 0o755)
            resolved.append(part)
            continue
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise ArchiveError(f"entry {name!r}: too many levels of symbolic links")
            target = os.readlink(current)
            if target.startswith("/"):
                resolved = []
            pending.extend(reversed(target.split("/")))
        elif stat.S_ISDIR(info.st_mode):
            resolved.append(part)
        elif create:
            raise ArchiveError(f"entry {name!r}: {part!r} is not a directory")
        else:
            return None
    return os.path.join(root, *resolved, parts[-1])


def _set_attributes(path: str, member: tarfile.TarInfo) -> None:
    """The entry's extended attributes (PAX `SCHILY.xattr.*`), set after its owner, since a
    change of owner clears file capabilities. Those the file system or our rights refuse
    are left out, as Docker does."""
    for key, value in member.pax_headers.items():
        if key.startswith(_XATTR):
            with contextlib.suppress(OSError):
                os.setxattr(path, key[len(_XATTR):], value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=False)


def _capabilities_of(path: str) -> dict[str, str]:
    """A file's capabilities as a PAX record: the one extended attribute Docker's layers
    keep."""
    try:
        value = os.getxattr(path, _CAPABILITY, follow_symlinks=False)
    except OSError:  # none, or no extended attributes here
        return {}
    return {_XATTR + _CAPABILITY: value.decode("utf-8", "surrogateescape")}


def _empty(directory: str, keep: set[str]) -> None:
    """Remove what `directory` holds, except the paths this layer wrote (and their parents):
    an opaque whiteout hides the lower layers only."""
    for name in _listing(directory):
        path = os.path.join(directory, name)
        if path in keep:
            continue
        if any(kept.startswith(path + "/") for kept in keep):
            _empty(path, keep)
        else:
            _clear(path, False)


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
