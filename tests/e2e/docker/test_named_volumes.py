"""Named volumes on the cluster: a PersistentVolumeClaim each, shared by containers in turn,
with the docker CLI and docker-py, and the same scenarios against the Docker engine."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from kubedock_server import Kubedock, docker_cli, served_by

pytestmark = pytest.mark.cluster


def run(target: Kubedock, *args: str) -> subprocess.CompletedProcess[bytes]:
    return docker_cli(target, *args)


def claims(cluster: Any, namespace: str) -> list[str]:
    listing = cluster.kubectl("-n", namespace, "get", "persistentvolumeclaims", "-o",
                              "jsonpath={.items[*].metadata.name}")
    names: list[str] = listing.stdout.split()
    return names


def test_one_container_writes_the_next_reads(target: Kubedock, cluster: Any) -> None:
    volume = f"data-{secrets.token_hex(3)}"
    assert run(target, "volume", "create", volume).stdout == f"{volume}\n".encode()
    wrote = run(target, "run", "--rm", "-v", f"{volume}:/data", "busybox:1.36", "sh", "-c",
                "echo hi > /data/f")
    assert wrote.returncode == 0, wrote.stderr
    read = run(target, "run", "--rm", "-v", f"{volume}:/data:ro", "busybox:1.36", "cat",
               "/data/f")
    assert (read.returncode, read.stdout) == (0, b"hi\n"), read.stderr
    listed = run(target, "volume", "ls", "-q", "--filter", f"name={volume}").stdout.split()
    assert listed == [volume.encode()]
    (inspected,) = json.loads(run(target, "volume", "inspect", volume).stdout)
    assert (inspected["Name"], inspected["Driver"], inspected["Scope"]) == (
        volume, "local", "local")
    removed = run(target, "volume", "rm", volume)
    assert removed.returncode == 0, removed.stderr
    if not target.reference:
        assert claims(cluster, target.namespace) == []


def test_volumes_from_reads_what_the_source_wrote(target: Kubedock) -> None:
    volume, writer = f"shared-{secrets.token_hex(3)}", f"writer-{secrets.token_hex(3)}"
    try:
        wrote = run(target, "run", "--name", writer, "-v", f"{volume}:/data", "busybox:1.36",
                    "sh", "-c", "echo hi > /data/f")
        assert wrote.returncode == 0, wrote.stderr
        read = run(target, "run", "--rm", "--volumes-from", f"{writer}:ro", "busybox:1.36",
                   "sh", "-c", "cat /data/f; touch /data/g || echo read-only")
        assert (read.returncode, read.stdout.split(b"\n")[:1]) == (0, [b"hi"]), read.stderr
        assert b"read-only" in read.stdout
        missing = run(target, "create", "--volumes-from", "nosuch-container", "busybox:1.36")
        assert missing.returncode != 0
        assert "No such container: nosuch-container" in missing.stderr.decode()
    finally:
        run(target, "rm", "-f", writer)
        run(target, "volume", "rm", volume)


def test_a_volume_in_use_is_kept(target: Kubedock) -> None:
    volume = f"held-{secrets.token_hex(3)}"
    created = run(target, "create", "-v", f"{volume}:/data", "busybox:1.36", "true")
    assert created.returncode == 0, created.stderr
    container = created.stdout.decode().strip()
    try:
        # Created with the container, as Docker does.
        assert run(target, "volume", "inspect", volume).returncode == 0
        refused = run(target, "volume", "rm", "-f", volume)
        assert refused.returncode == 1
        assert f"remove {volume}: volume is in use - [{container}]" in refused.stderr.decode()
        (mount,) = json.loads(run(target, "inspect", container).stdout)[0]["Mounts"]
        assert (mount["Type"], mount["Name"], mount["Destination"], mount["RW"]) == (
            "volume", volume, "/data", True)
    finally:
        assert run(target, "rm", container).returncode == 0
    assert run(target, "volume", "rm", volume).returncode == 0
    assert run(target, "volume", "rm", volume).returncode == 1


@pytest.fixture(params=["kubedock", "docker_oracle"], ids=["kubedock", "docker"])
def py_client(request: pytest.FixtureRequest) -> Iterator[docker.DockerClient]:
    """docker-py at API 1.41 (the reference engine's), where a prune takes named volumes."""
    target = served_by(request, request.param)
    client = docker.DockerClient(base_url=target.host, version="1.41", timeout=120)
    yield client
    client.close()


def test_docker_py_volumes(py_client: docker.DockerClient) -> None:
    suite = secrets.token_hex(3)
    labels = {"suite": suite}
    shared = py_client.volumes.create(f"shared-{suite}", labels=labels)
    spare = py_client.volumes.create(f"spare-{suite}", labels={**labels, "keep": "1"})
    py_client.containers.run("busybox:1.36", ["sh", "-c", "echo $0 > /data/f", suite],
                             volumes={shared.name: {"bind": "/data", "mode": "rw"}},
                             remove=True)
    output = py_client.containers.run("busybox:1.36", ["cat", "/data/f"], remove=True,
                                      volumes={shared.name: {"bind": "/data", "mode": "ro"}})
    assert output == f"{suite}\n".encode()
    listed = py_client.volumes.list(filters={"label": f"suite={suite}"})
    assert sorted(volume.name for volume in listed) == [shared.name, spare.name]
    assert py_client.volumes.get(shared.name).attrs["Labels"] == labels
    pruned = py_client.volumes.prune(filters={"label": [f"suite={suite}", "keep"]})
    assert pruned["VolumesDeleted"] == [spare.name]
    shared.remove()
    with pytest.raises(docker.errors.NotFound):
        py_client.volumes.get(shared.name)


def test_shapes_match_the_docker_engine(kubedock: Kubedock, docker_oracle: str) -> None:
    reference = Kubedock(docker_oracle, 0, "", "", Path(os.devnull), reference=True)
    documents = []
    for target in (kubedock, reference):
        volume = f"shape-{secrets.token_hex(3)}"
        (created,) = json.loads(run(target, "volume", "inspect", run(
            target, "volume", "create", "--label", "a=b", volume).stdout.decode().strip()).stdout)
        container = run(target, "create", "-v", f"{volume}:/v", "busybox:1.36",
                        "true").stdout.decode().strip()
        mounts = json.loads(run(target, "inspect", container).stdout)[0]["Mounts"]
        assert run(target, "rm", container).returncode == 0
        assert run(target, "volume", "rm", volume).returncode == 0
        documents.append((created, mounts[0]))
    (ours, our_mount), (theirs, their_mount) = documents
    assert ours.keys() == theirs.keys()
    assert {k: v for k, v in ours.items() if k not in ("CreatedAt", "Mountpoint", "Name")} == {
        k: v for k, v in theirs.items() if k not in ("CreatedAt", "Mountpoint", "Name")}
    assert our_mount.keys() == their_mount.keys()
    skip = ("Name", "Source")
    assert {k: v for k, v in our_mount.items() if k not in skip} == {
        k: v for k, v in their_mount.items() if k not in skip}
