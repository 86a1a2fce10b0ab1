"""What the build sandbox costs: its pod's start, one operation, a large layer each way.

    .venv/bin/python tests/bench/sandbox_bench.py [--runs N]

Against the local cluster (build/cluster/status), in the namespace `default`, with kubedock's
image of this checkout (build/cluster/up imports it). The start is from the first operation
to its end (pod created, running, one exec); an operation is a build step of `/bin/true` on
busybox, and a snapshot with nothing changed; the large layer is postgres:16's (one 87 MB
uncompressed layer, fetched from the cluster's registry into memory first), applied, then
copied whole by a step (`cp -a /usr /copy`) and snapshotted. Prints medians; not a test.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import trio

import kubedock
from kubedock.build import Sandbox, StepCommand, open_sandbox
from kubedock.kube import Cluster, PodSettings

REPO = Path(__file__).resolve().parents[2]
_MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json, "
                   "application/vnd.oci.image.manifest.v1+json")
_CHUNK = 256 * 1024


def _cluster_settings() -> dict[str, str]:
    done = subprocess.run([str(REPO / "build/cluster/status")], capture_output=True, text=True,
                          check=True)
    return dict(line.split("=", 1) for line in done.stdout.splitlines()
                if "=" in line and " " not in line)


async def _layers(registry: str, repository: str, tag: str) -> list[bytes]:
    async with httpx.AsyncClient(base_url=f"http://{registry}/v2/{repository}") as client:
        answer = await client.get(f"/manifests/{tag}", headers={"Accept": _MANIFEST_TYPES})
        answer.raise_for_status()
        blobs = []
        for layer in json.loads(answer.content)["layers"]:
            blob = await client.get(f"/blobs/{layer['digest']}")
            blob.raise_for_status()
            blobs.append(blob.content)
        return blobs


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), _CHUNK):
        yield data[start:start + _CHUNK]


async def _seconds(work: Callable[[], Awaitable[object]]) -> float:
    begun = time.perf_counter()
    await work()
    return time.perf_counter() - begun


async def _drop(data: bytes) -> None:
    pass


def _step(*argv: str) -> StepCommand:
    return StepCommand(argv=argv, env=(), user="", workdir="/")


async def _one_run(kube: Cluster, settings: PodSettings, busybox: list[bytes],
                   postgres: list[bytes], runs: int) -> dict[str, float]:
    async with open_sandbox(kube, settings) as sandbox:
        result = {"start": await _seconds(lambda: sandbox.snapshot(_drop))}
        for blob in busybox:
            await sandbox.apply_layer(_chunks(blob))
        result["step"] = statistics.median([
            await _seconds(lambda: _checked(sandbox, "/bin/true")) for _ in range(runs)])
        result["snapshot"] = statistics.median([
            await _seconds(lambda: sandbox.snapshot(_drop)) for _ in range(runs)])
        await sandbox.reset()
        result["apply"] = await _seconds(lambda: _apply_all(sandbox, postgres))
        await _checked(sandbox, "/bin/sh", "-c", "cp -a /usr /copy")
        size = 0

        async def count(data: bytes) -> None:
            nonlocal size
            size += len(data)

        result["snapshot large"] = await _seconds(lambda: sandbox.snapshot(count))
        result["snapshot bytes"] = size
        return result


async def _apply_all(sandbox: Sandbox, blobs: list[bytes]) -> None:
    for blob in blobs:
        await sandbox.apply_layer(_chunks(blob))


async def _checked(sandbox: Sandbox, *argv: str) -> None:
    code = await sandbox.run(_step(*argv), _drop, _drop)
    assert code == 0, (argv, code)


async def main(runs: int) -> None:
    outputs = _cluster_settings()
    registry = outputs["REGISTRY"]
    busybox = await _layers(registry, "library/busybox", "1.36")
    postgres = await _layers(registry, "library/postgres", "16")
    kube = await Cluster.connect(kubeconfig=outputs["KUBECONFIG"], namespace="default")
    settings = PodSettings(namespace="default", instance_id=secrets.token_hex(6),
                           pull_policy="ifnotpresent",
                           init_image=f"kubedock/kubedock:{kubedock.__version__}")
    try:
        results = [await _one_run(kube, settings, busybox, postgres, runs) for _ in range(3)]
    finally:
        await kube.aclose()
    layer_mb = sum(map(len, postgres)) / 1e6

    def median(key: str) -> float:
        return statistics.median(result[key] for result in results)

    print(f"pod start + first operation: {median('start'):.2f} s")
    print(f"build step /bin/true:        {median('step') * 1000:.0f} ms")
    print(f"snapshot, nothing changed:   {median('snapshot') * 1000:.0f} ms")
    print(f"apply {layer_mb:.0f} MB layer:         {median('apply'):.2f} s "
          f"({layer_mb / median('apply'):.0f} MB/s)")
    snapshot_mb = median("snapshot bytes") / 1e6
    print(f"snapshot of {snapshot_mb:.0f} MB of changes:  {median('snapshot large'):.2f} s "
          f"({snapshot_mb / median('snapshot large'):.0f} MB/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    trio.run(main, parser.parse_args().runs)
