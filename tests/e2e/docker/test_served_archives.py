"""Archives out of a pod over the direct connection to kubedock's program there (issue 16):
byte-exact at every size, and nothing left in the pod when the client goes away mid-copy."""

from __future__ import annotations

import io
import os
import socket
import tarfile
import time
from collections.abc import Iterator

import docker
import pytest
from docker.models.containers import Container
from kubedock_server import Kubedock

pytestmark = pytest.mark.cluster

MB = 1024 * 1024


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _files(chunks: Iterator[bytes]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        for member in archive:
            if member.isfile():
                extracted = archive.extractfile(member)
                assert extracted is not None
                out[member.name] = extracted.read()
    return out


@pytest.fixture(scope="module")
def tooled(client: docker.DockerClient) -> Iterator[Container]:
    """A running busybox whose pod has kubedock's program (an archive staged before start)."""
    container = client.containers.create("busybox:1.36", ["sleep", "600"])
    container.put_archive("/", _tar({"staged": b"x"}))
    container.start()
    yield container
    container.remove(force=True)


def _processes(container: Container) -> str:
    code, out = container.exec_run(["ps", "-o", "args"])
    assert code == 0
    return out.decode()


def _listeners(container: Container) -> list[str]:
    code, out = container.exec_run(["netstat", "-ltn"])
    assert code == 0
    return [line for line in out.decode().splitlines() if "LISTEN" in line]


@pytest.mark.parametrize("size", [0, 1, 2 * MB + 3, 100 * MB + 1])
def test_files_round_trip_byte_exact(tooled: Container, size: int) -> None:
    data = os.urandom(size)
    others = {f"many/{index}": os.urandom(index * 997) for index in range(5)}
    # The size decides the path: a file of less than 1 MiB comes over the exec.
    assert tooled.put_archive("/tmp", _tar({"blob": data, **others}))
    chunks, stat = tooled.get_archive("/tmp/blob", chunk_size=MB)
    assert stat["size"] == size
    assert _files(chunks) == {"blob": data}
    chunks, _ = tooled.get_archive("/tmp/many")  # a directory: its size is not known
    assert _files(chunks) == others


def test_a_large_copy_uses_the_connection_and_a_slow_reader_gets_everything(
        tooled: Container) -> None:
    data = os.urandom(80 * MB)  # more than every buffer on the way holds
    assert tooled.put_archive("/tmp", _tar({"slow": data}))
    chunks, _ = tooled.get_archive("/tmp/slow", chunk_size=256 * 1024)
    back = bytearray()
    for index, chunk in enumerate(chunks):
        back += chunk
        if index == 0:
            assert "archive get /tmp/slow --serve" in _processes(tooled)
            time.sleep(1)
    with tarfile.open(fileobj=io.BytesIO(bytes(back))) as archive:
        member = archive.extractfile("slow")
        assert member is not None and member.read() == data


def _request(kubedock: Kubedock, head: str) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", kubedock.port), timeout=60)
    connection.sendall(head.encode())
    return connection


def _settled(container: Container) -> None:
    """No program of kubedock's left copying in the pod, and nothing listening."""
    deadline = time.monotonic() + 30
    while "--serve" in _processes(container) or _listeners(container):
        assert time.monotonic() < deadline, (_processes(container), _listeners(container))
        time.sleep(0.5)


def test_client_leaving_mid_copy_leaves_nothing_in_the_pod(kubedock: Kubedock,
                                                           tooled: Container) -> None:
    assert tooled.put_archive("/tmp", _tar({"leave": os.urandom(50 * MB)}))
    connection = _request(
        kubedock, f"GET /containers/{tooled.id}/archive?path=/tmp/leave HTTP/1.1\r\n"
        "Host: kubedock\r\n\r\n")
    assert connection.recv(65536).startswith(b"HTTP/1.1 200")
    connection.close()
    _settled(tooled)

    # The container is as usable as before.
    assert tooled.put_archive("/tmp", _tar({"after": b"after\n" * MB}))
    chunks, _ = tooled.get_archive("/tmp/after")
    assert _files(chunks) == {"after": b"after\n" * MB}


def test_noshell_image_copies_large_files_over_the_connection(
        client: docker.DockerClient) -> None:
    container = client.containers.run("kubedock/noshell:1", detach=True)
    try:
        data = os.urandom(5 * MB)
        assert container.put_archive("/data", _tar({"big": data}))
        chunks, _ = container.get_archive("/data/big")
        assert _files(chunks) == {"big": data}
    finally:
        container.remove(force=True)
