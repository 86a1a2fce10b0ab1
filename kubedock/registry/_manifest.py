"""Manifests, indexes and image configs of the OCI distribution API (pure)."""

from __future__ import annotations

import hashlib
import json
import platform as host_platform
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
IMAGE_MANIFESTS = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEXES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
# Sent as Accept on every manifest request: without it registries convert to schema 1.
ACCEPTED = ", ".join((*IMAGE_MANIFESTS, *INDEXES))


class ManifestError(Exception):
    """A manifest or config a registry served that kubedock cannot use."""


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@attrs.frozen
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(filter(None, (self.os, self.architecture, self.variant)))


_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def normalise_platform(os: str, architecture: str, variant: str = "") -> Platform:
    """Go's names (``amd64``, ``arm64``/``v8``), as nodes report them and indexes spell them."""
    architecture = _ARCHITECTURES.get(architecture, architecture)
    if architecture == "arm64" and variant == "v8":
        variant = ""
    return Platform(os.lower(), architecture, variant)


def host_platform_of_this_machine() -> Platform:
    return normalise_platform("linux", host_platform.machine())


@attrs.frozen
class Descriptor:
    media_type: str
    digest: str
    size: int


@attrs.frozen
class Manifest:
    """An image manifest: its config and layers, and the digest it is served under."""

    digest: str
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def parse_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as error:
        raise ManifestError(f"{what} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ManifestError(f"{what} is not a JSON object")
    return document


def media_type_of(document: Mapping[str, Any], content_type: str) -> str:
    """The manifest's own mediaType, else the Content-Type it was served with."""
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if "manifests" in document:
        return OCI_INDEX
    return content_type.split(";")[0].strip() or OCI_MANIFEST


def select_from_index(document: Mapping[str, Any], wanted: Platform) -> Descriptor:
    """The manifest of an index built for `wanted`, as Docker chooses: the same OS and
    architecture; among those the same variant, else the first without one."""
    candidates = []
    for entry in _list(document, "manifests"):
        found = entry.get("platform") if isinstance(entry, dict) else None
        if not isinstance(found, dict):
            continue
        entry_platform = normalise_platform(str(found.get("os", "")),
                                            str(found.get("architecture", "")),
                                            str(found.get("variant", "")))
        if (entry_platform.os, entry_platform.architecture) == (wanted.os, wanted.architecture):
            candidates.append((entry_platform.variant, _descriptor(entry)))
    for variant, descriptor in candidates:
        if variant == wanted.variant:
            return descriptor
    for variant, descriptor in candidates:
        if not variant:
            return descriptor
    raise ManifestError(f"no matching manifest for {wanted} in the manifest list entries")


def parse_manifest(document: Mapping[str, Any], digest: str, media_type: str) -> Manifest:
    config = document.get("config")
    if not isinstance(config, dict):
        raise ManifestError(f"manifest {digest} has no config")
    return Manifest(digest, media_type, _descriptor(config),
                    tuple(_descriptor(layer) for layer in _list(document, "layers")))


def _descriptor(entry: Any) -> Descriptor:
    if not isinstance(entry, dict):
        raise ManifestError(f"bad descriptor {entry!r}")
    media_type, digest, size = entry.get("mediaType"), entry.get("digest"), entry.get("size")
    if not isinstance(digest, str) or not digest.startswith("sha256:") or not isinstance(size, int):
        raise ManifestError(f"bad descriptor {entry!r}")
    return Descriptor(media_type if isinstance(media_type, str) else "", digest, size)


def _list(document: Mapping[str, Any], key: str) -> list[Any]:
    value = document.get(key)
    return value if isinstance(value, list) else []


def image_manifest(config: bytes, layers: list[tuple[str, int]], media_type: str,
                   layer_media_types: Sequence[str] | None = None) -> bytes:
    """An image manifest for a config and layers ((digest, size) each): uncompressed unless
    `layer_media_types` says otherwise layer by layer."""
    is_oci = media_type == OCI_MANIFEST
    plain = OCI_LAYER if is_oci else "application/vnd.docker.image.rootfs.diff.tar"
    types = layer_media_types or [plain] * len(layers)
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": OCI_CONFIG if is_oci else DOCKER_CONFIG,
                   "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": layer_type, "digest": digest, "size": size}
                   for (digest, size), layer_type in zip(layers, types, strict=True)],
    }
    return json.dumps(document, separators=(",", ":")).encode()
