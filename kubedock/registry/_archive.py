"""Image archives as `docker save` writes them, pushed to a registry layer by layer."""

from __future__ import annotations

import json
import tarfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import trio

from ._client import RegistryClient, Repository
from ._manifest import OCI_MANIFEST, ManifestError, digest_of, image_manifest, parse_json

_CHUNK = 1 << 20


@attrs.frozen
class ArchivedImage:
    """One entry of an archive's ``manifest.json``: its config, layer members and tags."""

    config: str
    layers: tuple[str, ...]
    repo_tags: tuple[str, ...]


def parse_archive_manifest(data: bytes) -> list[ArchivedImage]:
    try:
        document: Any = json.loads(data)
    except ValueError as error:
        raise ManifestError(f"manifest.json is not JSON: {error}") from None
    if not isinstance(document, list):
        raise ManifestError("manifest.json is not a list")
    images = []
    for entry in document:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list):
            raise ManifestError(f"bad manifest.json entry {entry!r}")
        images.append(ArchivedImage(entry["Config"], tuple(map(str, entry["Layers"])),
                                    tuple(map(str, entry.get("RepoTags") or ()))))
    return images


@attrs.frozen
class ImageParts:
    """What a registry holds of an archived image: its config, the OCI manifest over it, and
    each layer as (diff id, archive member)."""

    config: bytes
    manifest: bytes
    layers: tuple[tuple[str, str], ...]


@attrs.frozen
class _Member:
    offset: int
    size: int


class ImageArchive:
    """A seekable, uncompressed tar: members are read in place, never extracted."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        with tarfile.open(fileobj=file, mode="r:") as archive:
            self._members = {info.name.removeprefix("./"): _Member(info.offset_data, info.size)
                             for info in archive.getmembers() if info.isfile()}

    def member(self, name: str) -> _Member:
        try:
            return self._members[name]
        except KeyError:
            raise ManifestError(f"the archive has no {name}") from None

    def parts(self, image: ArchivedImage) -> ImageParts:
        config = self.read(image.config)
        layers = tuple(zip(_diff_ids(config, image), image.layers, strict=True))
        manifest = image_manifest(config, [(d, self.member(m).size) for d, m in layers],
                                  OCI_MANIFEST)
        return ImageParts(config, manifest, layers)

    def read(self, name: str) -> bytes:
        member = self.member(name)
        self._file.seek(member.offset)
        return self._file.read(member.size)

    def chunks(self, name: str) -> Iterator[bytes]:
        """A member's bytes in pieces, read here (blocking): for work in a thread."""
        member = self.member(name)
        position, end = member.offset, member.offset + member.size
        while position < end:
            chunk = self._read_at(position, min(_CHUNK, end - position))
            position += len(chunk)
            yield chunk

    async def stream(self, name: str) -> AsyncIterator[bytes]:
        pieces = self.chunks(name)
        while (chunk := await trio.to_thread.run_sync(next, pieces, None)) is not None:
            yield chunk

    def _read_at(self, position: int, size: int) -> bytes:
        self._file.seek(position)
        return self._file.read(size)


@attrs.frozen
class PushedArchive:
    pushed: list[tuple[str, str]]  # (tag, manifest digest)
    untagged: list[str]  # the ids (config digests) of the images the archive names no tag for


async def push_archive(client: RegistryClient, path: Path,
                       repository_of: Callable[[str], tuple[Repository, str] | None]
                       ) -> PushedArchive:
    """Pushes every tagged image of a `docker save` archive whose tag `repository_of` maps to a
    (repository, tag); blobs the registry has are skipped. An image without a tag has no
    repository to go to: its id is reported instead.

    Layers go up uncompressed, as the archive holds them: their digests are the config's
    diff_ids, so pushes need no second read and the registry checks each one."""
    pushed, untagged = [], []
    with path.open("rb") as file:
        archive = await trio.to_thread.run_sync(ImageArchive, file)
        for image in parse_archive_manifest(archive.read("manifest.json")):
            parts = archive.parts(image)
            if not image.repo_tags:
                untagged.append(digest_of(parts.config))
            for tag in image.repo_tags:
                target = repository_of(tag)
                if target is None:
                    continue
                repository, reference = target
                for digest, member in parts.layers:
                    if not await client.has_blob(repository, digest):
                        await client.push_blob(repository, digest, archive.member(member).size,
                                               archive.stream(member))
                await push_config(client, repository, parts.config)
                digest = await client.push_manifest(repository, reference, parts.manifest,
                                                    OCI_MANIFEST)
                pushed.append((tag, digest))
    return PushedArchive(pushed, untagged)


async def push_config(client: RegistryClient, repository: Repository, config: bytes) -> None:
    digest = digest_of(config)
    if not await client.has_blob(repository, digest):
        await client.push_blob(repository, digest, len(config), _once(config))


def _diff_ids(config: bytes, image: ArchivedImage) -> list[str]:
    rootfs = parse_json(config, image.config).get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(image.layers):
        raise ManifestError(f"{image.config}: rootfs.diff_ids do not match the layers")
    return [str(d) for d in diff_ids]


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
