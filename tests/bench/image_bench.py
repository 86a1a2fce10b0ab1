"""What a pull adds to a start, and kubedock's memory while a large image is pulled and saved.

    .venv/bin/python tests/bench/image_bench.py [--runs N] [--size-mb N]

Cached pull: ``POST /images/create`` of busybox:1.36 once kubedock knows its digest (each pull
asks the registry what the tag names now), as a median, next to the median ``docker run``-like
start (create + start + wait) of the same image; with ``--pre-pull`` too, once the node has the
digest. Memory: an image of one `--size-mb` layer (a tar of one file, pushed uncompressed to the
local registry once; later runs find it there) is pulled, then saved (``GET /images/{name}/get``
read to the end), and kubedock's peak RSS is printed before and after each. Not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import trio
from bench_server import BenchServer, kubedock_server, peak_rss_mb, timed

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kubedock.registry import RegistryClient, Repository  # noqa: E402
from kubedock.registry._manifest import OCI_MANIFEST, digest_of, image_manifest  # noqa: E402

REGISTRY = "127.0.0.1:5000"
MIRROR = ("--registry-mirror", f"docker.io=http://{REGISTRY}")
_BLOCK = hashlib.sha512(b"kubedock").digest() * (1 << 14)  # 1 MiB, the same every run


def _layer(size_mb: int) -> Iterator[bytes]:
    """A tar of one file of `size_mb` MiB, in pieces (never whole in memory)."""
    info = tarfile.TarInfo("big")
    info.size = size_mb * len(_BLOCK)
    yield info.tobuf(tarfile.USTAR_FORMAT)
    for _ in range(size_mb):
        yield _BLOCK
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


async def _push_large_image(size_mb: int) -> str:
    digest, size = hashlib.sha256(), 0
    for piece in _layer(size_mb):
        digest.update(piece)
        size += len(piece)
    layer = f"sha256:{digest.hexdigest()}"
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["true"]},
                         "rootfs": {"type": "layers", "diff_ids": [layer]}}).encode()
    repository = Repository(REGISTRY, "kd-bench/large")

    async def pieces() -> AsyncIterator[bytes]:
        for piece in _layer(size_mb):
            yield piece

    async def once() -> AsyncIterator[bytes]:
        yield config

    async with httpx.AsyncClient(timeout=300) as http:
        client = RegistryClient(http)
        if not await client.has_blob(repository, layer):
            await client.push_blob(repository, layer, size, pieces())
        if not await client.has_blob(repository, digest_of(config)):
            await client.push_blob(repository, digest_of(config), len(config), once())
        await client.push_manifest(repository, f"{size_mb}m", image_manifest(
            config, [(layer, size)], OCI_MANIFEST), OCI_MANIFEST)
    return f"{REGISTRY}/kd-bench/large:{size_mb}m"


def _pull(http: httpx.Client, image: str) -> None:
    name, _, tag = image.rpartition(":")
    with http.stream("POST", "/images/create", params={"fromImage": name, "tag": tag}) as answer:
        for line in answer.iter_lines():
            if '"error"' in line:
                raise RuntimeError(line)


def _run(http: httpx.Client, image: str) -> None:
    created = http.post("/containers/create", json={"Image": image, "Cmd": ["true"]})
    created.raise_for_status()
    container = created.json()["Id"]
    http.post(f"/containers/{container}/start").raise_for_status()
    http.post(f"/containers/{container}/wait", timeout=120).raise_for_status()
    http.delete(f"/containers/{container}", params={"force": "1"})


def _client(server: BenchServer) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=300)


def _cached_pull(runs: int, *extra: str) -> tuple[float, float]:
    with kubedock_server(*MIRROR, *extra) as server, _client(server) as http:
        _pull(http, "busybox:1.36")
        _run(http, "busybox:1.36")
        pull = timed(lambda: _pull(http, "busybox:1.36"), runs)
        start = timed(lambda: _run(http, "busybox:1.36"), max(3, runs // 4))
    return pull, start


def _memory(size_mb: int) -> None:
    image = trio.run(_push_large_image, size_mb)
    with kubedock_server(*MIRROR) as server, _client(server) as http:
        _pull(http, "busybox:1.36")  # imports and first requests done
        before = peak_rss_mb(server.process.pid)
        _pull(http, image)
        after_pull = peak_rss_mb(server.process.pid)
        begun, received = time.perf_counter(), 0
        with http.stream("GET", f"/images/{image}/get") as answer:
            for chunk in answer.iter_bytes():
                received += len(chunk)
        seconds = time.perf_counter() - begun
        after_save = peak_rss_mb(server.process.pid)
    print(f"memory, {size_mb} MiB image: peak RSS {before:.0f} MB before, {after_pull:.0f} MB "
          f"after the pull, {after_save:.0f} MB after saving it ({received / 2**20:.0f} MiB in "
          f"{seconds:.1f} s, {received / 2**20 / seconds:.0f} MiB/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    pull, start = _cached_pull(args.runs)
    print(f"cached pull: {pull * 1000:.1f} ms median ({args.runs} runs); a start (create, start, "
          f"wait) of the same image: {start * 1000:.0f} ms")
    pull, start = _cached_pull(args.runs, "--pre-pull")
    print(f"cached pull with --pre-pull: {pull * 1000:.1f} ms median; a start: "
          f"{start * 1000:.0f} ms")
    _memory(args.size_mb)


if __name__ == "__main__":
    main()
