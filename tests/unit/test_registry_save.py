"""The `docker save` layout (pure) and the streaming of its layers' content checks."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import httpx
import pytest

from kubedock.registry import (
    ManifestError,
    RegistryClient,
    Repository,
    SavedImage,
    archive_plan,
    check_layers_savable,
    stream_archive,
)
from kubedock.registry._manifest import Descriptor, digest_of
from kubedock.registry._save import tar_header

REPOSITORY = Repository("registry.test", "team/app")


def _image(layers: list[bytes], held: list[bytes], media_type: str) -> SavedImage:
    config = json.dumps({"created": "2024-05-01T10:00:00Z", "rootfs": {
        "type": "layers", "diff_ids": [digest_of(layer) for layer in layers]}}).encode()
    return SavedImage(REPOSITORY, config, tuple(
        Descriptor(media_type, digest_of(blob), len(blob)) for blob in held), ("team/app:1",))


def test_members_are_owned_by_root_with_their_type_bits_as_docker_writes_them() -> None:
    directory = tarfile.TarInfo.frombuf(tar_header("abc/", 0, 5), "utf-8", "strict")
    file = tarfile.TarInfo.frombuf(tar_header("abc/layer.tar", 7, 5), "utf-8", "strict")
    assert (directory.type, directory.mode, file.type, file.mode) == (
        tarfile.DIRTYPE, 0o40755, tarfile.REGTYPE, 0o100644)
    assert (file.uname, file.gname, file.uid, file.size, file.mtime) == ("root", "root", 0, 7, 5)


def test_the_plan_dates_members_by_the_image_and_refuses_undecodable_layers() -> None:
    plan = archive_plan([_image([b"x"], [b"x"], "application/vnd.oci.image.layer.v1.tar")])
    assert plan.mtime == 1714557600
    check_layers_savable(plan)
    zstd = archive_plan([_image([b"x"], [b"z"], "application/vnd.oci.image.layer.v1.tar+zstd")])
    with pytest.raises(ManifestError, match="cannot decompress"):
        check_layers_savable(zstd)
    with pytest.raises(ManifestError, match="diff_ids"):
        archive_plan([_image([b"x", b"y"], [b"x"], "")])


def _client(blobs: dict[str, bytes]) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=blobs[request.url.path.rsplit("/", 1)[1]])

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def test_an_uncompressed_layer_that_is_not_its_diff_id_is_refused_before_streaming() -> None:
    plan = archive_plan([_image([b"wanted"], [b"other"],
                                "application/vnd.oci.image.layer.v1.tar")])
    with pytest.raises(ManifestError, match="does not hold"):
        check_layers_savable(plan)


async def test_a_gzipped_layer_that_is_not_its_diff_id_ends_the_stream() -> None:
    held = gzip.compress(b"other")
    plan = archive_plan([_image([b"wanted"], [held],
                                "application/vnd.oci.image.layer.v1.tar+gzip")])
    check_layers_savable(plan)
    async with _client({digest_of(held): held}) as http:
        chunks = stream_archive(RegistryClient(http), plan)
        with pytest.raises(ManifestError, match="does not hold"):
            async for _ in chunks:
                pass


async def test_a_gzipped_layer_is_written_uncompressed() -> None:
    layer = bytes(range(256)) * 5000
    held = gzip.compress(layer)
    plan = archive_plan([_image([layer], [held],
                                "application/vnd.docker.image.rootfs.diff.tar.gzip")])
    async with _client({digest_of(held): held}) as http:
        archive = b"".join([chunk async for chunk in stream_archive(RegistryClient(http), plan)])
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        [member] = [m for m in tar.getmembers() if m.name.endswith("layer.tar")]
        assert tar.extractfile(member).read() == layer  # type: ignore[union-attr]
