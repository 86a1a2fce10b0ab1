"""Volume copy-up: what an image holds at a volume's path, read from its layers in a registry,
goes to the new volume through the pod's init container."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from engine_fake import FakeCluster
from test_engine_jobs import new_engine
from test_layer_subtree import _tar

from kubedock import kube
from kubedock.engine import (
    ContainerConfig,
    Engine,
    ImageStore,
    Mount,
    RegistrySource,
    parse_reference,
    with_anonymous_volumes,
)
from kubedock.engine._archive import _write_volume_stream
from kubedock.engine._seeds import SeedStore
from kubedock.registry import DOCKER_HUB, Platform, RegistryClient
from kubedock.registry._manifest import OCI_MANIFEST, digest_of, image_manifest

sys.path.append(str(Path(__file__).resolve().parents[1] / "api"))
from fake_registry import FakeRegistry

BASE = _tar([("srv", "dir", "", 0o755), ("srv/conf", "dir", "", 0o755),
             ("srv/conf/app.ini", "file", "[app]", 0o644),
             ("srv/conf/old", "file", "old", 0o644), ("data", "dir", "", 0o1777)],
            compress=True)
TOP = _tar([("srv/conf/.wh.old", "file", "", 0o644),
            ("srv/conf/extra", "file", "more", 0o600)], compress=True)


def _add_layered_image(fake: FakeRegistry, repository: str, tag: str,
                       layers: list[bytes], volumes: list[str]) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [
                             digest_of(layer) for layer in layers]},
                         "config": {"Volumes": {path: {} for path in volumes}}}).encode()
    for blob in (config, *layers):
        fake.blobs[digest_of(blob)] = blob
    manifest = image_manifest(config, [(digest_of(layer), len(layer)) for layer in layers],
                              OCI_MANIFEST)
    fake._put(repository, tag, manifest, OCI_MANIFEST)


@pytest.fixture
def fake() -> FakeRegistry:
    fake = FakeRegistry()
    _add_layered_image(fake, "library/app", "1", [BASE, TOP], ["/srv/conf", "/data"])
    return fake


@pytest.fixture
async def images(fake: FakeRegistry) -> AsyncIterator[ImageStore]:
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        client = RegistryClient(http, mirrors={DOCKER_HUB: "https://registry.test"})
        yield ImageStore(RegistrySource(client, Platform("linux", "amd64"), timeout=5))


async def _config(images: ImageStore, mounts: tuple[Mount, ...] = ()) -> ContainerConfig:
    image, _ = await images.pull(parse_reference("app:1"), None)
    assert image.config is not None
    return ContainerConfig(image="app:1", image_config=image.config,
                           mounts=with_anonymous_volumes(mounts, image.config.volumes))


def _names(file: str) -> list[tuple[str, str]]:
    with tarfile.open(file) as archive:
        return [(member.name, archive.extractfile(member).read().decode()  # type: ignore[union-attr]
                 if member.isfile() else "") for member in archive]


async def test_only_volumes_whose_path_has_content_get_a_seed_read_once(
    images: ImageStore, fake: FakeRegistry,
) -> None:
    config = await _config(images, (Mount("volume", "/cache", "cache"),))
    seeds = SeedStore()
    found = await seeds.for_start(images, config, lambda mount: True)
    # /cache and /data hold nothing in the image; /srv/conf holds the merged layers.
    assert [config.mounts[index].target for index in found] == ["/srv/conf"]
    assert _names(found[1]) == [("extra", "more"), (".", ""), ("app.ini", "[app]")]
    reads = len(fake.requests)
    assert await seeds.for_start(images, config, lambda mount: True) == found
    assert len(fake.requests) == reads  # known from the first start
    assert await seeds.for_start(images, config, lambda mount: False) == {}


async def test_nocopy_and_images_kubedock_cannot_read_get_no_seed(
    images: ImageStore, fake: FakeRegistry,
) -> None:
    config = await _config(images, (Mount("volume", "/srv/conf", "conf", no_copy=True),))
    assert await SeedStore().for_start(images, config, lambda mount: True) == {}
    config = await _config(images)
    for layer in (BASE, TOP):
        fake.blobs[digest_of(layer)] = b"corrupt"
    assert await SeedStore().for_start(images, config, lambda mount: True) == {}


def test_the_init_container_mounts_a_seeded_volume_in_its_data_directory() -> None:
    spec = kube.ContainerSpec(container_id="a" * 64, name="c", image="app", mounts=(
        kube.MountSpec("/srv/conf", "volume", "sub", read_only=True, claim="kubedock-conf-1",
                       seeded=True),
        kube.MountSpec("/data", "volume", seeded=True),
        kube.MountSpec("/plain", "volume"),
    ))
    assert spec.needs_setup
    settings = kube.PodSettings(namespace="ns", instance_id="i", init_image="kd:1")
    pod = kube.pod_manifest(spec, settings)["spec"]
    (setup,) = pod["initContainers"]
    assert setup["volumeMounts"][2:] == [
        {"name": "kd-volume-0", "subPath": "sub", "mountPath": "/.kubedock/data/v0"},
        {"name": "kd-volume-1", "mountPath": "/.kubedock/data/v1"},
    ]
    assert pod["containers"][0]["volumeMounts"][0] == {
        "mountPath": "/srv/conf", "readOnly": True, "name": "kd-volume-0", "subPath": "sub"}


def test_the_stream_to_the_init_container_places_seeds_in_their_volumes(
        tmp_path: Path) -> None:
    seed = tmp_path / "seed.tar"
    seed.write_bytes(_tar([("data", "file", "x", 0o644), ("hard", "link", "data", 0o644),
                           (".", "dir", "", 0o1777)]))
    sink = io.BytesIO()
    _write_volume_stream(sink, [("v3", str(seed))], [], [])
    sink.seek(0)
    with tarfile.open(fileobj=sink) as archive:
        assert [(m.name, m.linkname, m.mode) for m in archive] == [
            ("v3/data", "", 0o644), ("v3/hard", "v3/data", 0o644), ("v3", "", 0o1777)]


async def test_a_start_seeds_new_volumes_only(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, images: ImageStore,
) -> None:
    cluster = FakeCluster()
    engine: Engine = await new_engine(nursery, cluster)
    engine.settings = kube.PodSettings(namespace="tests", instance_id="a1b2c3d4e5f6",
                                       init_image="kd:1")
    engine.images = images
    config = await _config(images, (Mount("volume", "/srv/conf", "conf"),))
    await engine.volumes.ensure(config.mounts)
    first = engine.create("first", config)
    await engine.start(first)
    assert list(first.seeds) == [0]
    assert first.pod_name is not None
    setup = cluster.pods[first.pod_name]["spec"]["initContainers"][0]
    assert {"name": "kd-volume-0", "mountPath": "/.kubedock/data/v0"} in setup["volumeMounts"]
    # The named volume has been mounted: the next container finds it as it was left.
    second = engine.create("second", config)
    await engine.start(second)
    assert second.seeds == {}
