"""Files in and out of containers: docker cp, binds, volumes, put/get_archive (issue 4)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from kubedock_server import Kubedock, docker_cli, start_kubedock, stop_kubedock
from testcontainers.core.container import DockerContainer

pytestmark = pytest.mark.cluster


def run(server: Kubedock, *args: str) -> subprocess.CompletedProcess[bytes]:
    result = docker_cli(server, *args, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    return result


def _tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "hello.txt").write_text("hello\n")
    (root / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (root / "run.sh").chmod(0o755)
    (root / "sub/deep.txt").write_text("deep\n")
    (root / "link").symlink_to("hello.txt")


def test_bind_mount_is_seen_by_the_container(kubedock: Kubedock, tmp_path: Path) -> None:
    _tree(tmp_path / "dir")
    out = run(kubedock, "run", "--rm", "-v", f"{tmp_path / 'dir'}:/data:ro", "busybox:1.36",
              "sh", "-c", "ls -a /data; cat /data/link /data/sub/deep.txt; /data/run.sh").stdout
    text = out.decode()
    for expected in ("empty", "hello.txt", "run.sh", "sub", "link", "hello\ndeep\nran"):
        assert expected in text


def test_binds_of_kubedocks_secrets_and_the_kernels_trees_are_refused(
    kubedock: Kubedock, rbac_kubeconfig: Path, tmp_path: Path
) -> None:
    (tmp_path / "escape").symlink_to("/proc")
    for source, reason in [
        ("/", "it holds /proc"),
        (f"{tmp_path}/escape", "(that is, /proc): it is in /proc"),
        ("/var/run/secrets/kubernetes.io/serviceaccount", "service account tokens"),
        (str(rbac_kubeconfig.parent), f"it holds {rbac_kubeconfig} (kubedock's kubeconfig)"),
    ]:
        done = docker_cli(kubedock, "run", "--rm", "-v", f"{source}:/x", "busybox:1.36", "true")
        assert done.returncode == 125
        assert f"kubedock does not bind {source}" in done.stderr.decode()
        assert reason in done.stderr.decode()


def test_volume_and_tmpfs(kubedock: Kubedock) -> None:
    out = run(kubedock, "run", "--rm", "-v", "cache:/cache", "--tmpfs", "/scratch",
              "busybox:1.36", "sh", "-c", "touch /cache/x /scratch/y && grep -c scratch "
              "/proc/mounts").stdout
    assert out.strip() == b"1"


def test_cp_before_start_does_not_start_and_reaches_the_container(
    kubedock: Kubedock, tmp_path: Path
) -> None:
    (tmp_path / "conf.txt").write_text("configured\n")
    name = "cp-before-start"
    run(kubedock, "create", "--name", name, "busybox:1.36", "cat", "/etc/app/conf.txt")
    try:
        run(kubedock, "cp", str(tmp_path / "conf.txt"), f"{name}:/etc/app/conf.txt")
        state = run(kubedock, "inspect", "-f", "{{.State.Status}}", name).stdout
        assert state.strip() == b"created"
        run(kubedock, "start", "-a", name)
        assert run(kubedock, "logs", name).stdout == b"configured\n"
    finally:
        docker_cli(kubedock, "rm", "-f", name)


def test_cp_both_ways_on_a_running_container(kubedock: Kubedock, tmp_path: Path) -> None:
    _tree(tmp_path / "dir")
    name = "cp-running"
    run(kubedock, "run", "-d", "--name", name, "busybox:1.36", "sleep", "600")
    try:
        run(kubedock, "cp", str(tmp_path / "dir"), f"{name}:/tmp/")
        listing = run(kubedock, "exec", name, "ls", "-la", "/tmp/dir").stdout.decode()
        assert "run.sh" in listing and "link -> hello.txt" in listing
        run(kubedock, "cp", f"{name}:/tmp/dir", str(tmp_path / "back"))
        back = tmp_path / "back"
        assert (back / "sub/deep.txt").read_text() == "deep\n"
        assert os.readlink(back / "link") == "hello.txt"
        assert os.access(back / "run.sh", os.X_OK)
        assert (back / "empty").is_dir()
        missing = docker_cli(kubedock, "cp", f"{name}:/nope", str(tmp_path / "x"))
        assert missing.returncode != 0 and b"Could not find" in missing.stderr
    finally:
        docker_cli(kubedock, "rm", "-f", name)


def test_docker_py_put_and_get_archive(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox:1.36", ["sleep", "600"], detach=True)
    try:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:bz2") as archive:
            info = tarfile.TarInfo("greeting.txt")
            info.size, info.mode = 3, 0o640
            archive.addfile(info, io.BytesIO(b"hi\n"))
        assert container.put_archive("/tmp", buffer.getvalue())
        chunks, stat = container.get_archive("/tmp/greeting.txt")
        assert stat["name"] == "greeting.txt" and stat["size"] == 3
        assert stat["mode"] & 0o777 == 0o640
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
            member = archive.extractfile("greeting.txt")
            assert member is not None and member.read() == b"hi\n"
        with pytest.raises(docker.errors.NotFound):
            container.put_archive("/does/not/exist", buffer.getvalue())
    finally:
        container.remove(force=True)


_SIZES = [0, 1, 511, 512, 513, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 3 * 1024 * 1024 + 7]


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_files_of_every_boundary_size_round_trip_byte_exact(client: docker.DockerClient,
                                                             mode: str) -> None:
    """A plain tar passes the relay (one name re-encoded on the way), a compressed one goes
    through tarfile; both come back as they went in, also to a slow reader."""
    contents = {f"d/size-{size}": os.urandom(size) for size in _SIZES}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in contents.items():
            info = tarfile.TarInfo(name if "513" not in name else f"./{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    container = client.containers.run("busybox:1.36", ["sleep", "600"], detach=True)
    try:
        assert container.put_archive("/tmp", buffer.getvalue())
        chunks, _ = container.get_archive("/tmp/d", chunk_size=100_000)
        back = bytearray()
        for index, chunk in enumerate(chunks):
            back += chunk
            if index < 5:
                time.sleep(0.3)  # the pod's tar goes on writing into a stalled download
        with tarfile.open(fileobj=io.BytesIO(bytes(back))) as archive:
            for name, data in contents.items():
                member = archive.extractfile(name)
                assert member is not None and member.read() == data, name
    finally:
        container.remove(force=True)


def _tar_of(*entries: tarfile.TarInfo) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info in entries:
            archive.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return buffer.getvalue()


def _entry(name: str, size: int = 4, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    if link:
        info.type, info.linkname = tarfile.SYMTYPE, link
    else:
        info.size = size
    return info


@pytest.mark.parametrize("copier", ["kubedock", "image tar"])
def test_bad_archives_are_refused_and_write_nothing_outside(client: docker.DockerClient,
                                                            tmp_path: Path, copier: str) -> None:
    # A bind gives the pod kubedock's own program for copies after start; without one the
    # image's tar does them, behind kubedock's own checks of the stream.
    volumes = {str(tmp_path): {"bind": "/bound"}} if copier == "kubedock" else {}
    container = client.containers.run("busybox:1.36", ["sleep", "300"], detach=True,
                                      volumes=volumes)
    try:
        bad = {
            "garbage": b"this is not a tar archive" * 100,
            "truncated": _tar_of(_entry("big", 5000))[:1500],
            "dot-dot": _tar_of(_entry("../../etc/evil")),
            "through a symlink": _tar_of(_entry("link", link="/etc"), _entry("link/evil")),
        }
        for label, body in bad.items():
            with pytest.raises(docker.errors.APIError) as refused:
                container.put_archive("/tmp", body)
            assert 400 <= refused.value.status_code < 500, (label, refused.value)
        listing = container.exec_run(["ls", "/etc/evil", "/tmp/etc/evil"]).output
        assert listing.count(b"No such file or directory") == 2, listing
        assert container.put_archive("/tmp", _one_file_tar("fine.txt", b"fine\n"))
        assert container.exec_run(["cat", "/tmp/fine.txt"]).output == b"fine\n"
    finally:
        container.remove(force=True)


def _one_file_tar(name: str, content: bytes, mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _read_one(chunks: Iterator[bytes], name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        member = archive.extractfile(name)
        assert member is not None
        return member.read()


def test_noshell_image_copies_both_ways(client: docker.DockerClient) -> None:
    """No shell, no tar: before start the init container writes the files, after start the
    kubedock it left in the pod reads and writes them."""
    container = client.containers.create("kubedock/noshell:1")
    try:
        assert container.put_archive("/copied", _one_file_tar("in.txt", b"copied\n", "w:gz"))
        container.start()
        container.reload()
        assert container.status == "running"
        chunks, stat = container.get_archive("/copied/in.txt")
        assert stat["size"] == 7 and _read_one(chunks, "in.txt") == b"copied\n"
        assert container.put_archive("/data", _one_file_tar("later.txt", b"later\n"))
        chunks, _ = container.get_archive("/data/later.txt")
        assert _read_one(chunks, "later.txt") == b"later\n"
        chunks, stat = container.get_archive("/data/link-to-hello")
        assert stat["linkTarget"] == "hello.txt"
        with pytest.raises(docker.errors.NotFound):
            container.get_archive("/data/missing")
    finally:
        container.remove(force=True)


def test_testcontainers_copy_before_start_and_volume_mapping(
    kubedock: Kubedock, tmp_path: Path
) -> None:
    (tmp_path / "mapped.txt").write_text("mapped\n")
    saved = dict(os.environ)
    os.environ.update(DOCKER_HOST=kubedock.host, TESTCONTAINERS_RYUK_DISABLED="true")
    try:
        container = (
            DockerContainer("busybox:1.36", command=["sleep", "600"])
            .with_copy_into_container(b"copied\n", "/etc/app/conf.txt")
            .with_volume_mapping(str(tmp_path), "/mapped", "ro")
        )
        with container:
            code, out = container.exec(["cat", "/etc/app/conf.txt", "/mapped/mapped.txt"])
            assert (code, out) == (0, b"copied\nmapped\n")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_big_file_round_trip(kubedock: Kubedock, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as file:
        for _ in range(200):
            file.write(os.urandom(1024 * 1024))
    name = "cp-big"
    run(kubedock, "run", "-d", "--name", name, "busybox:1.36", "sleep", "600")
    try:
        run(kubedock, "cp", str(big), f"{name}:/tmp/big.bin")
        size = run(kubedock, "exec", name, "stat", "-c", "%s", "/tmp/big.bin").stdout
        assert int(size) == 200 * 1024 * 1024
        run(kubedock, "cp", f"{name}:/tmp/big.bin", str(tmp_path / "back.bin"))
        assert (tmp_path / "back.bin").stat().st_size == big.stat().st_size
    finally:
        docker_cli(kubedock, "rm", "-f", name)


def _tree_listing(target: Kubedock, tree: Path) -> list[str]:
    """The tree copied in before start (to /seed) and into the running container (to /tmp),
    as `stat` sees it inside."""
    name = f"cp-tree-{target.port}"
    run(target, "create", "--name", name, "busybox:1.36", "sleep", "600")
    try:
        run(target, "cp", str(tree), f"{name}:/seed")
        run(target, "start", name)
        run(target, "cp", str(tree), f"{name}:/tmp/")
        listing = run(target, "exec", name, "find", "/seed", "/tmp/dir", "-exec", "stat", "-c",
                      "%n %A %u:%g %s %Y %N", "{}", "+").stdout.decode()
        return sorted(listing.splitlines())
    finally:
        docker_cli(target, "rm", "-f", name)


def test_cp_never_replaces_a_directory_with_a_file(target: Kubedock, tmp_path: Path) -> None:
    """The docker CLI asks for noOverwriteDirNonDir; kubedock's own program honours it (the
    noshell image has neither shell nor tar: the bind brings kubedock into the pod, which then
    does the copying)."""
    name = f"overwrite-{time.time_ns()}"
    (tmp_path / "nested").write_bytes(b"a file where a directory is\n")
    (tmp_path / "bound").mkdir()
    started = docker_cli(target, "run", "-d", "--name", name, "-v", f"{tmp_path}/bound:/bound",
                         "kubedock/noshell:1")
    assert started.returncode == 0, started.stderr
    try:
        refused = docker_cli(target, "cp", str(tmp_path / "nested"), f"{name}:/data/")
        assert refused.returncode != 0
        assert b"cannot overwrite directory" in refused.stderr, refused.stderr
        kept = docker_cli(target, "cp", f"{name}:/data/nested/deeper.txt", str(tmp_path / "back"))
        assert kept.returncode == 0, kept.stderr
    finally:
        docker_cli(target, "rm", "-f", name)


def test_cp_of_a_tree_matches_docker(kubedock: Kubedock, docker_oracle: str,
                                     tmp_path: Path) -> None:
    _tree(tmp_path / "dir")
    oracle = Kubedock(docker_oracle, 0, "", "", tmp_path / "none", reference=True)
    assert _tree_listing(kubedock, tmp_path / "dir") == _tree_listing(oracle, tmp_path / "dir")


def test_failed_setup_fails_the_start_and_leaves_no_pod(
    cluster: Any, namespace: str, tmp_path: Path
) -> None:
    process, server = start_kubedock(cluster, namespace, tmp_path, "--port-forward",
                                     "--initimage", "kubedock/no-such-image:1")
    try:
        (tmp_path / "dir").mkdir()
        done = docker_cli(server, "run", "--rm", "-v", f"{tmp_path / 'dir'}:/data",
                          "busybox:1.36", "true", timeout=150)
        assert done.returncode != 0
        assert b"init container setup" in done.stderr, done.stderr
        pods = cluster.kubectl("-n", namespace, "get", "pods", "-o", "name",
                               "-l", "kubedock=true")
        assert not pods.stdout.strip()
    finally:
        stop_kubedock(process)


def test_no_pod_is_left(cluster: Any, namespace: str) -> None:
    """Every test above removed its containers: none of their pods may linger (the DNS
    role's pod stays while kubedock runs)."""
    pods = cluster.kubectl("-n", namespace, "get", "pods", "-o", "name",
                           "-l", "kubedock.containerid")
    assert not pods.stdout.strip()
