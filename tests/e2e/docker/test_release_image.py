"""The release's image publisher (build/release/publish-image): kubedock's image archive and an
arm64 twin of it become one multi-platform image in the registry that wants credentials; the
registry client reads the index and both manifests back, and the node runs the image."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubedock_server import ROOT, Kubedock
from private_registry import PrivateRegistry, own_kubedock, write_logged_in_config

from kubedock import __version__, registry

pytestmark = pytest.mark.cluster

PUBLISH = ROOT / "build" / "release" / "publish-image"


@pytest.fixture(scope="module")
def kubedock_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubedock's image for this machine (amd64), as a release builds it: the one-folder
    program build/binary made for the cluster's images already, written into an archive."""
    out = tmp_path_factory.mktemp("release") / "kubedock-image-linux-x86_64.tar"
    built = subprocess.run([str(ROOT / "build" / "images" / "build"), "--kubedock-image",
                            str(out)], capture_output=True, text=True, check=False, timeout=900)
    assert built.returncode == 0, built.stderr[-4000:]
    return out


def with_architecture(archive: Path, architecture: str, out: Path) -> Path:
    """The archive again, its image's config saying another architecture (the layers kept)."""
    with tarfile.open(archive) as source, tarfile.open(out, "w") as target:
        def read(name: str) -> bytes:
            member = source.extractfile(name)
            assert member is not None
            return member.read()

        [entry] = json.loads(read("manifest.json"))
        config = {**json.loads(read(entry["Config"])), "architecture": architecture}
        config_bytes = json.dumps(config).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        replaced = {entry["Config"]: (config_name, config_bytes),
                    "manifest.json": ("manifest.json",
                                      json.dumps([{**entry, "Config": config_name}]).encode())}
        for member in source.getmembers():
            if member.name in replaced:
                name, data = replaced[member.name]
                info = tarfile.TarInfo(name)
                info.size = len(data)
                target.addfile(info, io.BytesIO(data))
            else:
                target.addfile(member, source.extractfile(member) if member.isfile() else None)
    return out


def publish(reference: str, *archives: Path, registry_: PrivateRegistry | None
            ) -> subprocess.CompletedProcess[str]:
    credentials = {"REGISTRY_USERNAME": registry_.username,
                   "REGISTRY_PASSWORD": registry_.password} if registry_ else {}
    return subprocess.run([sys.executable, str(PUBLISH), reference, *map(str, archives)],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, **credentials})


@pytest.fixture(scope="module")
def archives(kubedock_archive: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, Path]:
    arm64 = tmp_path_factory.mktemp("arm64") / "kubedock-image-linux-aarch64.tar"
    return kubedock_archive, with_architecture(kubedock_archive, "arm64", arm64)


async def test_both_architectures_read_back_from_the_index(
        private_registry: PrivateRegistry, archives: tuple[Path, Path]) -> None:
    path = f"kd-release/kubedock-{int(time.time() * 1000)}"
    reference = f"{private_registry.address}/{path}:{__version__}"
    published = publish(reference, *archives, registry_=private_registry)
    assert published.returncode == 0, published.stderr
    index_digest, *platform_lines = published.stdout.splitlines()
    printed = dict(line.split(" ") for line in platform_lines)
    assert sorted(printed) == ["linux/amd64", "linux/arm64"]

    credentials = registry.Credentials(private_registry.username, private_registry.password)
    repository = registry.Repository(private_registry.address, path)
    async with httpx.AsyncClient(timeout=60) as http:
        client = registry.RegistryClient(http, credentials=lambda host: credentials)
        assert await client.manifest_digest(repository, __version__) == index_digest
        data, media_type = await client.manifest(repository, index_digest)
        assert media_type == "application/vnd.oci.image.index.v1+json"
        entries = json.loads(data)["manifests"]
        assert {entry["platform"]["architecture"]: entry["digest"] for entry in entries} == {
            "amd64": printed["linux/amd64"], "arm64": printed["linux/arm64"]}
        resolved = {architecture: await client.resolve(
            repository, __version__, registry.Platform("linux", architecture))
            for architecture in ("amd64", "arm64")}
        # Each layer went up gzip-compressed: it unpacks to the layer the config names.
        [layer] = resolved["amd64"].manifest.layers
        assert layer.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
        unpacked = hashlib.sha256()
        inflate = zlib.decompressobj(wbits=31)
        async with client.blob_stream(repository, layer.digest) as chunks:
            async for chunk in chunks:
                unpacked.update(inflate.decompress(chunk))
        assert [f"sha256:{unpacked.hexdigest()}"] == list(resolved["amd64"].config.diff_ids)
    for architecture, image in resolved.items():
        assert image.digest == index_digest
        assert image.manifest.digest == printed[f"linux/{architecture}"]
        assert image.config.architecture == architecture
        assert image.config.entrypoint == ("/kubedock",)
    # The same layer serves both: pushed once.
    assert resolved["amd64"].manifest.layers == resolved["arm64"].manifest.layers


def test_the_node_runs_the_published_image(
        cluster: Any, namespace: str, rbac_kubeconfig: Path, private_registry: PrivateRegistry,
        archives: tuple[Path, Path], tmp_path: Path) -> None:
    name = f"{private_registry.address}/kd-release/run-{int(time.time() * 1000)}:{__version__}"
    published = publish(name, *archives, registry_=private_registry)
    assert published.returncode == 0, published.stderr
    logged_in = write_logged_in_config(tmp_path / "docker", private_registry)
    with own_kubedock(cluster, namespace, rbac_kubeconfig, tmp_path,
                      docker_config=logged_in) as server:
        assert _docker(server, logged_in, "pull", name).returncode == 0
        inspected = json.loads(_docker(server, logged_in, "image", "inspect", name).stdout)
        assert inspected[0]["Architecture"] == "amd64"
        ran = _docker(server, logged_in, "run", "--rm", name, "version")
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.splitlines()[0] == f"kubedock {__version__}"


def test_refusals_push_nothing(private_registry: PrivateRegistry,
                               archives: tuple[Path, Path]) -> None:
    amd64, _ = archives
    reference = f"{private_registry.address}/kd-release/refused:{int(time.time() * 1000)}"
    twice = publish(reference, amd64, amd64, registry_=private_registry)
    assert twice.returncode == 1
    assert twice.stderr.strip().endswith("a second image for linux/amd64"), twice.stderr
    anonymous = publish(reference, amd64, registry_=None)
    assert anonymous.returncode == 1
    assert anonymous.stderr.startswith("publish-image: "), anonymous.stderr
    repository, _, tag = reference.partition("/")[2].rpartition(":")
    tagged = httpx.head(f"http://{private_registry.address}/v2/{repository}/manifests/{tag}",
                        auth=(private_registry.username, private_registry.password))
    assert tagged.status_code == 404
    assert publish(f"{private_registry.address}/kd-release/refused@sha256:{'0' * 64}", amd64,
                   registry_=private_registry).returncode == 1


def _docker(server: Kubedock, config: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], env=server.env(DOCKER_CONFIG=config),
                          capture_output=True, text=True, timeout=180, check=False)
