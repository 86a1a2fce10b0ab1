"""Tar streams read and written without trusting their entry names.

Everything here streams: archives are read front to back (`r|*`, so gzip, bzip2 and xz are
sniffed from the first bytes) and never held in memory. Only the standard library is imported,
because `kubedock init` runs this in every pod that receives files.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterator
from typing import IO

_CHUNK = 256 * 1024


class ArchiveError(Exception):
    """The archive is malformed, or an entry would land outside its target."""


def safe_name(name: str) -> str:
    """The entry name as a clean relative path; raises `ArchiveError` if it climbs out.

    A leading `/` is dropped (Go clients send absolute names) and `.` parts vanish; `..`
    that would leave the target is refused rather than clamped, as silently moving a file
    elsewhere is worse than failing.
    """
    parts: list[str] = []
    for part in name.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ArchiveError(f"entry {name!r} points outside the target")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def open_stream(source: IO[bytes]) -> tarfile.TarFile:
    """A streaming reader for a plain, gzip, bzip2 or xz tar."""
    try:
        return tarfile.open(fileobj=source, mode="r|*", bufsize=_CHUNK)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ArchiveError(f"not a tar archive: {error}") from None


def open_writer(sink: IO[bytes]) -> tarfile.TarFile:
    """A streaming writer of a PAX tar that copies file contents in large pieces."""
    archive = tarfile.open(  # noqa: SIM115 - the caller closes it
        fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_CHUNK)
    # Its default copies in 16 KiB pieces, each through two more buffers: a costly loop.
    # (The attribute is missing from typeshed's TarFile.)
    archive.copybufsize = _CHUNK  # type: ignore[attr-defined]
    return archive


def members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The archive's entries, with malformed input turned into `ArchiveError`."""
    iterator = iter(archive)
    while True:
        try:
            member = next(iterator)
        except StopIteration:
            return
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            raise ArchiveError(f"malformed tar archive: {error}") from None
        yield member


def relocate(source: IO[bytes], sink: IO[bytes], prefix: str = "") -> list[tarfile.TarInfo]:
    """Copy an archive to a plain tar whose names are safe and sit under `prefix`.

    Hard links must point at an earlier entry of the same archive. Returns the written
    entries (headers only) so callers can see what the archive holds.
    """
    written: list[tarfile.TarInfo] = []
    with open_stream(source) as archive, open_writer(sink) as out:
        for member in members(archive):
            name = safe_name(member.name)
            if not name:
                continue
            if member.islnk():
                member.linkname = posixpath.join(prefix, _linked_name(member))
            elif not (member.isfile() or member.isdir() or member.issym() or member.isfifo()):
                continue  # devices need privileges the pod does not have
            member.name = posixpath.join(prefix, name) if prefix else name
            # A PAX record would otherwise carry the original names into the copy.
            member.pax_headers = {
                key: value for key, value in member.pax_headers.items()
                if key not in ("path", "linkpath")
            }
            try:
                content = archive.extractfile(member) if member.isfile() else None
                out.addfile(member, content)
            except (tarfile.TarError, EOFError, OSError) as error:
                raise ArchiveError(f"truncated tar archive at {member.name!r}: {error}") from None
            written.append(member)
    return written


def extract(source: IO[bytes], target: str, *, no_overwrite_dir_non_dir: bool = False) -> int:
    """Write an archive's entries under the directory `target`; returns how many were written.

    Symlinks are created as they are (an absolute link means the container's root at run
    time) but never followed while extracting: a parent that is a symlink is refused, so a
    link to `/etc` followed by `link/passwd` cannot write outside `target`.
    """
    target = os.path.realpath(target)
    directories: list[tuple[str, tarfile.TarInfo]] = []
    count = 0
    refused: OSError | ArchiveError | None = None
    with open_stream(source) as archive:
        for member in members(archive):
            name = safe_name(member.name)
            # After a refusal the rest is still read (not written): a sender that streams
            # the archive is not left with data nobody takes.
            if not name or refused is not None:
                continue
            path = os.path.join(target, name)
            try:
                _make_parents(target, name)
                if member.isdir():
                    _make_directory(path, no_overwrite_dir_non_dir)
                    directories.append((path, member))
                else:
                    _clear(path, no_overwrite_dir_non_dir)
                    _write_entry(archive, member, path, target)
            except (tarfile.TarError, EOFError) as error:
                raise ArchiveError(f"truncated tar archive at {name!r}: {error}") from None
            except (OSError, ArchiveError) as error:
                refused = error
                continue
            count += 1
    if refused is not None:
        raise refused
    # Last, since writing a directory's children changed its mtime.
    for path, member in reversed(directories):
        _set_metadata(path, member)
    return count


def skip(source: IO[bytes]) -> None:
    """Read an archive to its end, writing nothing (see `extract`); malformed input ends it."""
    with contextlib.suppress(ArchiveError), open_stream(source) as archive:
        for _ in members(archive):
            pass


def _linked_name(member: tarfile.TarInfo) -> str:
    name = safe_name(member.linkname)
    if not name:
        raise ArchiveError(f"hard link {member.name!r} points at the target itself")
    return name


def _make_parents(target: str, name: str) -> None:
    current = target
    for part in name.split("/")[:-1]:
        current = os.path.join(current, part)
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if stat.S_ISLNK(info.st_mode):
            raise ArchiveError(f"entry {name!r} would be written through the symlink {part!r}")
        if not stat.S_ISDIR(info.st_mode):
            raise ArchiveError(f"entry {name!r}: {part!r} is not a directory")


def _make_directory(path: str, no_overwrite_dir_non_dir: bool) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o700)
        return
    if not stat.S_ISDIR(info.st_mode):
        if no_overwrite_dir_non_dir:
            raise ArchiveError(f"cannot overwrite non-directory {path!r} with directory")
        os.unlink(path)
        os.mkdir(path, 0o700)


def _clear(path: str, no_overwrite_dir_non_dir: bool) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        if no_overwrite_dir_non_dir:
            raise ArchiveError(f"cannot overwrite directory {path!r} with non-directory")
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _write_entry(archive: tarfile.TarFile, member: tarfile.TarInfo, path: str, target: str) -> None:
    if member.isfile():
        content = archive.extractfile(member)
        assert content is not None
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            shutil.copyfileobj(content, file, _CHUNK)
            written = file.tell()
        if written != member.size:
            raise ArchiveError(f"truncated tar archive at {member.name!r}")
    elif member.issym():
        os.symlink(member.linkname, path)
    elif member.islnk():
        source = os.path.join(target, _linked_name(member))
        if os.path.islink(source) or not os.path.isfile(source):
            raise ArchiveError(f"hard link {member.name!r} must point at an extracted file")
        os.link(source, path)
        return
    elif member.isfifo():
        os.mkfifo(path)
    else:
        raise ArchiveError(f"entry {member.name!r}: device files are not supported")
    _set_metadata(path, member)


def _set_metadata(path: str, member: tarfile.TarInfo) -> None:
    link = member.issym()
    if os.geteuid() == 0:
        # Ids the volume refuses (rootless storage, say) are not worth failing for.
        with contextlib.suppress(OSError):
            os.lchown(path, member.uid, member.gid)
    if not link:
        os.chmod(path, member.mode & 0o7777)
    os.utime(path, (member.mtime, member.mtime), follow_symlinks=not link)
