"""Archives into and out of a pod over a connection to kubedock's program there (issue 16):
at the pod's address, or through a port-forward with `--pod-network never`; byte-exact at
every size, and nothing left in the pod when the client goes away mid-copy."""

from __future__ import annotations

import hashlib
import io
import os
import random
import socket
import tarfile
import time
from collections.abc import Iterable, Iterator

import docker
import pytest
from docker.models.containers import Container
from kubedock_server import Kubedock, start_kubedock, stop_kubedock

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


def _peers(container: Container) -> set[str]:
    """Where the pod's established connections come from: kubedock's host (the pod
    network) or the pod's loopback (a port-forward)."""
    code, out = container.exec_run(["netstat", "-tn"])
    assert code == 0
    peers = set()
    for line in out.decode().splitlines():
        fields = line.split()
        if fields[-1:] == ["ESTABLISHED"]:
            host = fields[4].rpartition(":")[0].removeprefix("::ffff:")
            peers.add("loopback" if host in ("127.0.0.1", "::1") else "pod network")
    return peers


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


class _Chunks(io.RawIOBase):
    """The chunks of a streamed answer as a file, for tarfile's stream mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._rest = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._rest:
            self._rest = memoryview(next(self._chunks, b""))
        size = min(len(buffer), len(self._rest))
        buffer[:size], self._rest = self._rest[:size], self._rest[size:]
        return size


def test_a_gibibyte_streams_both_ways_byte_exact(tooled: Container) -> None:
    size, piece = 1024 * MB, 4 * MB
    sent = hashlib.sha256()

    def upload() -> Iterator[bytes]:  # a tar of one file, made as it goes
        info = tarfile.TarInfo("giant")
        info.size = size
        yield info.tobuf(tarfile.USTAR_FORMAT)
        generator = random.Random(16)
        for _ in range(size // piece):
            data = generator.randbytes(piece)
            sent.update(data)
            yield data
        yield bytes(2 * tarfile.BLOCKSIZE)

    assert tooled.put_archive("/tmp", upload())
    chunks, stat = tooled.get_archive("/tmp/giant", chunk_size=MB)
    assert stat["size"] == size
    got = hashlib.sha256()
    with tarfile.open(fileobj=_Chunks(chunks), mode="r|", bufsize=piece) as archive:
        member = archive.next()
        assert member is not None and member.name == "giant"
        content = archive.extractfile(member)
        assert content is not None
        while data := content.read(piece):
            got.update(data)
    assert got.hexdigest() == sent.hexdigest()
    assert tooled.exec_run(["rm", "/tmp/giant"]).exit_code == 0


@pytest.mark.parametrize("size", [1, 900_000, 2_000_000])
def test_a_missing_path_is_not_found(tooled: Container, size: int) -> None:
    """Over the connection (2 MB) and the exec (less): the exec's program reads the refused
    archive to its end, or the session would stall under the rest of it."""
    with pytest.raises(docker.errors.NotFound):
        tooled.get_archive("/nowhere")
    with pytest.raises(docker.errors.NotFound):
        tooled.put_archive("/nowhere", _tar({"big": os.urandom(size)}))


def test_a_large_copy_uses_the_connection_and_a_slow_reader_gets_everything(
        tooled: Container) -> None:
    data = os.urandom(80 * MB)  # more than every buffer on the way holds
    assert tooled.put_archive("/tmp", _tar({"slow": data}))
    chunks, _ = tooled.get_archive("/tmp/slow", chunk_size=256 * 1024)
    back = bytearray()
    for index, chunk in enumerate(chunks):
        back += chunk
        if index == 0:
            assert "archive get /tmp/slow --with-stat --serve --pod-network" in _processes(tooled)
            assert _peers(tooled) == {"pod network"}
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


def _put_head(container: Container, path: str, size: int) -> str:
    return (f"PUT /containers/{container.id}/archive?path={path} HTTP/1.1\r\n"
            f"Host: kubedock\r\nContent-Type: application/x-tar\r\n"
            f"Content-Length: {size}\r\n\r\n")


def test_a_slow_writer_puts_everything_over_the_pod_network(kubedock: Kubedock,
                                                              tooled: Container) -> None:
    data = _tar({"written": os.urandom(60 * MB)})
    connection = _request(kubedock, _put_head(tooled, "/tmp", len(data)))
    with connection:
        connection.sendall(data[: 20 * MB])
        deadline = time.monotonic() + 30
        while _peers(tooled) != {"pod network"}:
            assert time.monotonic() < deadline, _peers(tooled)
            time.sleep(0.2)
        assert "archive put /tmp --serve --pod-network" in _processes(tooled)
        time.sleep(1)
        connection.sendall(data[20 * MB :])
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
    chunks, _ = tooled.get_archive("/tmp/written")
    assert _files(chunks) == _files(iter([data]))


def test_client_leaving_mid_put_leaves_nothing_in_the_pod(kubedock: Kubedock,
                                                         tooled: Container) -> None:
    connection = _request(kubedock, _put_head(tooled, "/tmp", 50 * MB))
    with connection:
        connection.sendall(_tar({"half": os.urandom(50 * MB)})[: 10 * MB])
        deadline = time.monotonic() + 30
        while "archive put /tmp --serve" not in _processes(tooled):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    _settled(tooled)


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


@pytest.fixture(scope="module")
def kept_off_the_pod_network(cluster: object, namespace: str,
                             tmp_path_factory: pytest.TempPathFactory
                             ) -> Iterator[docker.DockerClient]:
    """A second kubedock in the namespace, with `--pod-network never`."""
    process, server = start_kubedock(cluster, namespace, tmp_path_factory.mktemp("never"),
                                     "--port-forward", "--pod-network", "never")
    client = docker.DockerClient(base_url=server.host, timeout=120)
    yield client
    client.close()
    stop_kubedock(process)


def test_without_the_pod_network_archives_go_over_a_port_forward(
        kept_off_the_pod_network: docker.DockerClient) -> None:
    container = kept_off_the_pod_network.containers.create("busybox:1.36", ["sleep", "600"])
    try:
        container.put_archive("/", _tar({"staged": b"x"}))
        container.start()
        data = os.urandom(30 * MB)
        assert container.put_archive("/tmp", _tar({"blob": data}))
        chunks, _ = container.get_archive("/tmp/blob", chunk_size=256 * 1024)
        back = bytearray()
        for index, chunk in enumerate(chunks):
            back += chunk
            if index == 0:
                assert "archive get /tmp/blob --with-stat --serve" in _processes(container)
                assert "--pod-network" not in _processes(container)
                assert _peers(container) == {"loopback"}
        assert _files(iter([bytes(back)])) == {"blob": data}
    finally:
        container.remove(force=True)
