"""The OCI image index a multi-platform publish pushes, and the platform an archive's image
declares: the index is what kubedock's own platform selection (and a node's) reads."""

from __future__ import annotations

import json

import pytest

from kubedock.registry import (
    ManifestError,
    Platform,
    PlatformManifest,
    image_index,
    select_from_index,
)
from kubedock.registry._archive import ImageParts
from kubedock.registry._index import platform_of

AMD64 = PlatformManifest(Platform("linux", "amd64"), "sha256:" + "a" * 64, 401)
ARM64 = PlatformManifest(Platform("linux", "arm64"), "sha256:" + "b" * 64, 402)
ARM_V7 = PlatformManifest(Platform("linux", "arm", "v7"), "sha256:" + "c" * 64, 403)


def test_the_index_names_each_manifest_with_its_platform() -> None:
    document = json.loads(image_index([AMD64, ARM64, ARM_V7]))
    assert document == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": AMD64.digest,
             "size": 401, "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ARM64.digest,
             "size": 402, "platform": {"architecture": "arm64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ARM_V7.digest,
             "size": 403, "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
        ],
    }


@pytest.mark.parametrize("entry", [AMD64, ARM64, ARM_V7])
def test_platform_selection_finds_each_entry(entry: PlatformManifest) -> None:
    document = json.loads(image_index([AMD64, ARM64, ARM_V7]))
    assert select_from_index(document, entry.platform).digest == entry.digest


def _parts(config: dict[str, object]) -> ImageParts:
    return ImageParts(json.dumps(config).encode(), b"{}", ())


def test_the_platform_is_the_configs_in_gos_names() -> None:
    assert platform_of(_parts({"os": "linux", "architecture": "aarch64", "variant": "v8"}),
                      "x.tar") == Platform("linux", "arm64")
    assert platform_of(_parts({"os": "linux", "architecture": "amd64"}), "x.tar") == \
        Platform("linux", "amd64")


def test_an_image_of_no_platform_is_refused() -> None:
    with pytest.raises(ManifestError, match=r"x\.tar: the image config names no os"):
        platform_of(_parts({"os": "linux"}), "x.tar")
