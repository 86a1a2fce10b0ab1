"""A multi-platform image: one `docker save` archive per platform, pushed as an OCI image index."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

from ._archive import ImageArchive, ImageParts, parse_archive_manifest, push_image
from ._client import RegistryClient, Repository
from ._image import parse_image_config
from ._manifest import (
    OCI_INDEX,
    OCI_MANIFEST,
    ManifestError,
    Platform,
    digest_of,
    normalise_platform,
)


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
        for archive, parts, platform in images:
            digest = await push_image(client, repository, digest_of(parts.manifest), archive,
                                      parts)
            manifests.append(PlatformManifest(platform, digest, len(parts.manifest)))
    index = image_index(manifests)
    digest = await client.push_manifest(repository, tag, index, OCI_INDEX)
    return PushedIndex(digest, tuple(manifests))
