"""Files in and out of containers: docker cp, binds, volumes, put/get_archive (issue 4)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest
from kubedock_server import Kubedock, docker_cli

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


def test_noshell_image_receives_files_before_start(client: docker.DockerClient) -> None:
    container = client.containers.create("kubedock/noshell:1")
    try:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            info = tarfile.TarInfo("copied.txt")
            info.size = 7
            archive.addfile(info, io.BytesIO(b"copied\n"))
        assert container.put_archive("/data", buffer.getvalue())
        container.start()
        container.reload()
        assert container.status == "running"
    finally:
        container.remove(force=True)


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
