"""A multi-platform image: one `docker save` archive per platform, pushed as an OCI image index.

Layers go up gzip-compressed, as images are published: an archive's are plain tars, and a node
pulls a layer of kubedock's image in well under half the bytes that way."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import attrs
import trio

from ._archive import ImageArchive, ImageParts, parse_archive_manifest, push_config
from ._client import RegistryClient, Repository
from ._image import parse_image_config
from ._manifest import (
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    ManifestError,
    Platform,
    digest_of,
    image_manifest,
    normalise_platform,
)

OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
_CHUNK = 1 << 20


@attrs.frozen
class PlatformManifest:
    platform: Platform
    digest: str
    size: int


@attrs.frozen
class PushedIndex:
    digest: str
    manifests: tuple[PlatformManifest, ...]


def image_index(manifests: Sequence[PlatformManifest]) -> bytes:
    """The OCI image index over image manifests, one per platform."""
    entries = []
    for manifest in manifests:
        platform = {"architecture": manifest.platform.architecture, "os": manifest.platform.os}
        if manifest.platform.variant:
            platform["variant"] = manifest.platform.variant
        entries.append({"mediaType": OCI_MANIFEST, "digest": manifest.digest,
                        "size": manifest.size, "platform": platform})
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return json.dumps(document, separators=(",", ":")).encode()


def platform_of(parts: ImageParts, what: str) -> Platform:
    """The platform an image's config declares it was built for."""
    config = parse_image_config(parts.config, digest_of(parts.config))
    if not config.os or not config.architecture:
        raise ManifestError(f"{what}: the image config names no os and architecture")
    return normalise_platform(config.os, config.architecture, config.variant)


async def push_index(client: RegistryClient, repository: Repository, tag: str,
                     archives: Sequence[Path]) -> PushedIndex:
    """Pushes the one image of each archive by its digest, then an index over them under `tag`.

    Every archive is read before anything goes out: one that holds other than one image, or two
    of the same platform, push nothing."""
    with contextlib.ExitStack() as files:
        images: list[tuple[ImageArchive, ImageParts, Platform]] = []
        for path in archives:
            archive = await trio.to_thread.run_sync(ImageArchive,
                                                    files.enter_context(path.open("rb")))
            contents = parse_archive_manifest(archive.read("manifest.json"))
            if len(contents) != 1:
                raise ManifestError(f"{path}: holds {len(contents)} images, not one")
            parts = archive.parts(contents[0])
            platform = platform_of(parts, str(path))
            if any(platform == known for _, _, known in images):
                raise ManifestError(f"{path}: a second image for {platform}")
            images.append((archive, parts, platform))
        manifests = []
        with tempfile.TemporaryDirectory(prefix="kubedock-publish-") as scratch:
            for archive, parts, platform in images:
                manifest = await _push_compressed(client, repository, archive, parts,
                                                  Path(scratch))
                digest = await client.push_manifest(repository, digest_of(manifest), manifest,
                                                    OCI_MANIFEST)
                manifests.append(PlatformManifest(platform, digest, len(manifest)))
    index = image_index(manifests)
    digest = await client.push_manifest(repository, tag, index, OCI_INDEX)
    return PushedIndex(digest, tuple(manifests))


async def _push_compressed(client: RegistryClient, repository: Repository,
                           archive: ImageArchive, parts: ImageParts, scratch: Path) -> bytes:
    """Pushes an image's config and its layers gzip-compressed (those the registry lacks);
    answers the image's manifest."""
    layers = []
    for diff_id, member in parts.layers:
        compressed = scratch / diff_id.removeprefix("sha256:")
        if not compressed.exists():  # else the same layer of an earlier platform's image
            await trio.to_thread.run_sync(_gzip, archive, member, compressed)
        digest, size = await trio.to_thread.run_sync(_digest_and_size, compressed)
        if not await client.has_blob(repository, digest):
            await client.push_blob(repository, digest, size, _file_chunks(compressed))
        layers.append((digest, size))
    await push_config(client, repository, parts.config)
    return image_manifest(parts.config, layers, OCI_MANIFEST, [OCI_LAYER_GZIP] * len(layers))


def _gzip(archive: ImageArchive, member: str, out: Path) -> None:
    """The member gzip-compressed into `out`, reproducibly (no name, time 0), at gzip's
    default level: 9 takes twice as long for a few percent."""
    with out.open("wb") as file, gzip.GzipFile(filename="", mode="wb", fileobj=file, mtime=0,
                                               compresslevel=6) as compressed:
        for chunk in archive.chunks(member):
            compressed.write(chunk)


def _digest_and_size(path: Path) -> tuple[str, int]:
    with path.open("rb") as file:
        return f"sha256:{hashlib.file_digest(file, 'sha256').hexdigest()}", path.stat().st_size


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await trio.open_file(path, "rb") as file:
        while chunk := await file.read(_CHUNK):
            yield chunk
