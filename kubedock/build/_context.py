"""What COPY and ADD read: the build context (the client's tar, spooled to a file) or a stage's
or image's layers, read in place; the layers they make (blocking file work: callers run it in a
thread)."""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import re
import tarfile
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO

import attrs
import trio

_CHUNK = 1 << 20


class ContextError(ValueError):
    """A COPY or ADD that cannot be done from the context; the text is Docker's."""


def _clean(path: str) -> str:
    cleaned = posixpath.normpath("/" + path).lstrip("/")
    return "" if cleaned == "." else cleaned


@attrs.frozen
class _Pattern:
    regex: re.Pattern[str]
    exclusion: bool


def _pattern(text: str) -> _Pattern | None:
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    exclusion = text.startswith("!")
    cleaned = _clean(text.removeprefix("!").strip())
    if not cleaned:
        return None
    regex = ""
    index = 0
    while index < len(cleaned):
        char = cleaned[index]
        if cleaned.startswith("**", index):
            index += 2
            if cleaned.startswith("/", index):
                index += 1
                regex += "(?:.*/)?"
            else:
                regex += ".*"
            continue
        regex += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
        index += 1
    # A pattern naming a directory excludes what is under it.
    return _Pattern(re.compile(f"^{regex}(?:/.*)?$"), exclusion)


def parse_dockerignore(text: str) -> tuple[_Pattern, ...]:
    return tuple(p for p in map(_pattern, text.splitlines()) if p is not None)


def ignored(patterns: Sequence[_Pattern], path: str) -> bool:
    """Docker's rule: the last pattern that matches decides."""
    result = False
    for pattern in patterns:
        if pattern.regex.match(path):
            result = not pattern.exclusion
    return result


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


@attrs.frozen
class CopyOptions:
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None
    extract_archives: bool = False  # ADD


class FileTree:
    """Files to copy from, as tar members by clean path: the build context, or the root
    filesystem of a stage or an image."""

    _members: dict[str, tarfile.TarInfo]
    _missing = "file not found in build context or excluded by .dockerignore: "

    def _open(self, member: tarfile.TarInfo) -> IO[bytes] | None:
        raise NotImplementedError

    def _visible(self) -> dict[str, tarfile.TarInfo]:
        return self._members

    def read_text(self, path: str) -> str | None:
        """A small text file (a Dockerfile, /etc/passwd); None when there is none."""
        info = self._members.get(_clean(path))
        extracted = self._open(info) if info is not None and info.isfile() else None
        return extracted.read().decode("utf-8", "replace") if extracted is not None else None

    def _matches(self, source: str, visible: dict[str, tarfile.TarInfo]) -> list[str]:
        cleaned = _clean(source)
        if not cleaned:
            return [""]
        if any(char in cleaned for char in "*?["):
            return sorted(name for name in visible
                          if fnmatch.fnmatchcase(name, cleaned) and name.count("/")
                          == cleaned.count("/"))
        if cleaned in visible or any(name.startswith(cleaned + "/") for name in visible):
            return [cleaned]
        return []

    def copy_layer(self, sources: Sequence[str], destination: str, directory_known: bool,
                   options: CopyOptions, target: Path) -> None:
        """Writes the layer of `COPY sources destination` to `target`.

        `destination` is absolute; it is a directory when it ends in `/`, when there are
        several sources or a source is a directory, or when `directory_known` (the builder
        knows it as one)."""
        visible = self._visible()
        matched: list[str] = []
        for source in sources:
            found = self._matches(source, visible)
            if not found:
                raise ContextError(f"COPY failed: {self._missing}stat {_clean(source) or '.'}: "
                                   "file does not exist")
            matched.extend(found)
        as_directory = (destination.endswith(("/", "/.")) or len(matched) > 1
                        or directory_known
                        or any(not self._is_file(visible, name) for name in matched))
        destination = _clean(destination)
        entries: dict[str, tuple[tarfile.TarInfo, tarfile.TarInfo | None]] = {}
        archives: list[tuple[tarfile.TarInfo, str]] = []
        for name in matched:
            base = posixpath.basename(name) if self._is_file(visible, name) else ""
            for member, relative in self._tree(visible, name):
                path = _clean(posixpath.join(destination, base, relative)) if as_directory \
                    else destination
                if options.extract_archives and member is not None and member.isfile() \
                        and self._is_archive(member):
                    archives.append((member, posixpath.dirname(path) if as_directory else path))
                    continue
                entries[path] = (self._entry(member, path, options), member)
        self._write(entries, archives, target)

    def _is_file(self, visible: dict[str, tarfile.TarInfo], name: str) -> bool:
        info = visible.get(name)
        return info is not None and not info.isdir()

    def _tree(self, visible: dict[str, tarfile.TarInfo], name: str
              ) -> Iterator[tuple[tarfile.TarInfo | None, str]]:
        if self._is_file(visible, name):
            yield visible[name], ""
            return
        prefix = name + "/" if name else ""
        for path in sorted(visible):
            if path.startswith(prefix):
                yield visible[path], path[len(prefix):]

    def _is_archive(self, member: tarfile.TarInfo) -> bool:
        extracted = self._open(member)
        assert extracted is not None
        head = extracted.read(512)
        return head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" \
            or (len(head) == 512 and head[257:262] == b"ustar")

    def _entry(self, member: tarfile.TarInfo | None, path: str, options: CopyOptions
               ) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path)
        if member is None or member.isdir():
            info.type = tarfile.DIRTYPE
            info.mode = member.mode if member is not None else 0o755
        else:
            info.type = member.type
            info.mode = member.mode
            info.size = member.size if member.isfile() else 0
            info.linkname = member.linkname
            if member.islnk():
                info.type = tarfile.REGTYPE
                resolved = self._members.get(_clean(member.linkname))
                info.size = resolved.size if resolved is not None else 0
        info.mtime = member.mtime if member is not None else 0
        if options.mode is not None:
            info.mode = options.mode
        info.uid = options.uid or 0
        info.gid = options.gid if options.gid is not None else (options.uid or 0)
        return info

    def _write(self, entries: dict[str, tuple[tarfile.TarInfo, tarfile.TarInfo | None]],
               archives: list[tuple[tarfile.TarInfo, str]], target: Path) -> None:
        parents: set[str] = set()
        for path in [*entries, *(directory + "/" for _, directory in archives)]:
            parent = posixpath.dirname(path)
            while parent:
                parents.add(parent)
                parent = posixpath.dirname(parent)
        with target.open("wb") as file, tarfile.open(fileobj=file, mode="w",
                                                     format=tarfile.PAX_FORMAT) as layer:
            for parent in sorted(parents - set(entries)):
                info = tarfile.TarInfo(parent)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                layer.addfile(info)
            for path in sorted(entries):
                info, member = entries[path]
                if not path:
                    continue
                if info.isfile():
                    source = member
                    if source is not None and source.islnk():
                        source = self._members.get(_clean(source.linkname))
                    layer.addfile(info, self._open(source) if source else None)
                else:
                    layer.addfile(info)
            written = parents | set(entries)
            for member, directory in archives:
                self._add_extracted(layer, member, directory, written)

    def _add_extracted(self, layer: tarfile.TarFile, member: tarfile.TarInfo,
                       directory: str, written: set[str]) -> None:
        """ADD of a local archive: its entries under `directory`, streamed through (with the
        directories an archive may leave out)."""
        extracted = self._open(member)
        assert extracted is not None
        with tarfile.open(fileobj=extracted, mode="r|*") as archive:
            for info in archive:
                path = _clean(posixpath.join(directory, info.name))
                if not path:
                    continue
                missing = []
                parent = posixpath.dirname(path)
                while parent and parent not in written:
                    missing.append(parent)
                    parent = posixpath.dirname(parent)
                for name in reversed(missing):
                    parent_info = tarfile.TarInfo(name)
                    parent_info.type, parent_info.mode = tarfile.DIRTYPE, 0o755
                    layer.addfile(parent_info)
                written.update(missing)
                written.add(path)
                copy = info.replace(name=path, deep=False)
                if info.islnk():
                    copy.linkname = _clean(posixpath.join(directory, info.linkname))
                layer.addfile(copy, archive.extractfile(info) if info.isfile() else None)


class BuildContext(FileTree):
    """A context tar on disk, its members by clean path; one open file."""

    def __init__(self, file: BinaryIO) -> None:
        self._tar = tarfile.open(fileobj=file, mode="r:*")  # noqa: SIM115 (closed by close())
        self._members = {name: info for info in self._tar if (name := _clean(info.name))}
        self._ignore: tuple[_Pattern, ...] = ()

    def close(self) -> None:
        self._tar.close()

    def use_dockerignore(self) -> None:
        text = self.read_text(".dockerignore")
        self._ignore = parse_dockerignore(text) if text else ()

    def _visible(self) -> dict[str, tarfile.TarInfo]:
        return {name: info for name, info in self._members.items()
                if not ignored(self._ignore, name)}

    def _open(self, member: tarfile.TarInfo) -> IO[bytes] | None:
        return self._tar.extractfile(member)


class LayerStack(FileTree):
    """The root filesystem a stack of layer files makes, whiteouts applied; read in place."""

    _missing = ""

    def __init__(self, layers: Sequence[Path]) -> None:
        self._tars = [tarfile.open(path, mode="r:*") for path in layers]  # noqa: SIM115
        self._members = {}
        self._owner: dict[int, tarfile.TarFile] = {}
        for archive in self._tars:
            for info in archive:
                name = _clean(info.name)
                directory, base = posixpath.split(name)
                if base == ".wh..wh..opq":
                    self._remove_under(directory)
                elif base.startswith(".wh."):
                    removed = posixpath.join(directory, base[4:])
                    self._members.pop(removed, None)
                    self._remove_under(removed)
                elif name:
                    if not info.isdir():
                        self._remove_under(name)
                    self._members[name] = info
                    self._owner[id(info)] = archive

    def _remove_under(self, directory: str) -> None:
        prefix = directory + "/" if directory else ""
        for name in [n for n in self._members if n.startswith(prefix)]:
            del self._members[name]

    def close(self) -> None:
        for archive in self._tars:
            archive.close()

    def _open(self, member: tarfile.TarInfo) -> IO[bytes] | None:
        return self._owner[id(member)].extractfile(member)


def digest_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await trio.open_file(path, "rb") as file:
        while chunk := await file.read(_CHUNK):
            yield chunk
