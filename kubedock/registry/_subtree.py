"""One directory of an image, as its container sees it, assembled from the image's layers.

Docker copies what the image holds at a volume's path into the new volume; kubedock reads it
from the layers in the registry instead of from a mounted root filesystem. Layers are read top
first, each once and as a stream: an entry is written unless a layer above already gave its
path, deleted it (a whiteout ``.wh.<name>``), hid its directory's lower content (an opaque
whiteout ``.wh..wh..opq``) or put something other than a directory at one of its parents.
Only the standard library and no I/O beyond the given file objects.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Iterator
from typing import IO

from ..podside import ArchiveError, open_writer, safe_name

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
# The name the directory itself has in the merged archive.
ROOT = "."
_CHUNK = 256 * 1024


class SubtreeMerger:
    """Writes the merged content under `path` (absolute, in the image) to `sink` as a plain
    tar whose names are relative to `path` (the directory itself as ``.``); feed it the layers
    top first, then `close` it."""

    def __init__(self, path: str, sink: IO[bytes]) -> None:
        self._root = safe_name(path)
        self._out = open_writer(sink)
        # Decided by the layers read so far, for the layers below them:
        self._given: set[str] = set()  # paths an upper layer holds
        self._deleted: set[str] = set()  # whiteouts
        self._opaque: set[str] = set()  # directories whose lower content is hidden
        self._not_directories: set[str] = set()  # paths held by something else than a directory
        self.entries = 0  # written, besides the directory itself

    def add_layer(self, layer: IO[bytes]) -> None:
        """Read one layer (a tar, compressed or not) from front to back."""
        given: set[str] = set()
        deleted: set[str] = set()
        opaque: set[str] = set()
        not_directories: set[str] = set()
        # Hard links of this layer name files of this layer: those written from it.
        written_here: set[str] = set()
        with _open_layer(layer) as archive:
            for member in _members(archive):
                name = safe_name(member.name)
                parent, base = posixpath.split(name)
                if base == OPAQUE:
                    if self._relevant(parent):
                        opaque.add(parent)
                    continue
                if base.startswith(WHITEOUT):
                    hidden = posixpath.join(parent, base.removeprefix(WHITEOUT))
                    if self._relevant(hidden):
                        deleted.add(hidden)
                    continue
                if not name or not self._relevant(name) or self._hidden(name) \
                        or name in self._given:
                    continue
                given.add(name)
                if not member.isdir():
                    not_directories.add(name)
                if not self._within(name):
                    continue  # a parent of the directory
                if self._write(archive, member, name, written_here):
                    written_here.add(name)
        self._given |= given
        self._deleted |= deleted
        self._opaque |= opaque
        self._not_directories |= not_directories

    def close(self) -> None:
        self._out.close()

    def _relevant(self, name: str) -> bool:
        """Whether `name` is the directory, in it, or one of its parents."""
        return self._within(name) or self._within_of(self._root, name)

    def _within(self, name: str) -> bool:
        return self._within_of(name, self._root)

    @staticmethod
    def _within_of(name: str, tree: str) -> bool:
        return not tree or name == tree or name.startswith(tree + "/")

    def _hidden(self, name: str) -> bool:
        if name in self._deleted:
            return True
        parent = posixpath.dirname(name)
        while parent:
            if parent in self._deleted or parent in self._opaque \
                    or parent in self._not_directories:
                return True
            parent = posixpath.dirname(parent)
        # The image root is a directory, and an opaque whiteout at the top hides it all.
        return "" in self._opaque

    def _write(self, archive: tarfile.TarFile, member: tarfile.TarInfo, name: str,
               written_here: set[str]) -> bool:
        relative = posixpath.relpath(name, self._root) if self._root else name
        if relative == ROOT and not member.isdir():
            return False  # something else than a directory: nothing to copy
        if member.islnk():
            target = safe_name(member.linkname)
            if target not in written_here:
                return False
            member.linkname = posixpath.relpath(target, self._root) if self._root else target
        elif not (member.isfile() or member.isdir() or member.issym() or member.isfifo()):
            return False  # devices need privileges the pod does not have
        member.name = relative
        member.pax_headers = {key: value for key, value in member.pax_headers.items()
                              if key not in ("path", "linkpath")}
        try:
            self._out.addfile(member, archive.extractfile(member) if member.isfile() else None)
        except (tarfile.TarError, EOFError, OSError) as error:
            raise ArchiveError(f"truncated layer at {name!r}: {error}") from None
        if relative != ROOT:
            self.entries += 1
        return True


def _open_layer(layer: IO[bytes]) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=layer, mode="r|*", bufsize=_CHUNK)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ArchiveError(f"a layer is not a tar archive: {error}") from None


def _members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    entries = iter(archive)
    while True:
        try:
            yield next(entries)
        except StopIteration:
            return
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            raise ArchiveError(f"malformed layer: {error}") from None
