"""Ways of putting kubedock's supervisor into a pod, against a pod without it, on raw pods.

    .venv/bin/python tests/bench/delivery_bench.py SUPERVISOR [--runs N]

SUPERVISOR is the static program (`build/images/recipes/supervise.c`, as kubedock's image
holds it in /opt/kubedock/supervise). Each run creates one pod of busybox per way, in an order
that turns from run to run, each timed from its creation until the watch reports `main`
running, and each once the pod before it is gone. Ways:

- plain: `main` alone, no volume (what an unsupervised container's pod is);
- volume: `main` alone with an emptyDir (what any volume costs by itself);
- installer: the first container `kubedock-tools` of kubedock's image, whose postStart hook
  copies the supervisor into an emptyDir, and `main` under the supervisor from there;
- configmap: the supervisor in a ConfigMap volume (created once, before the runs), `main`
  under it, its state in an emptyDir.

Needs kubedock's image on the node (`build/cluster/up`). Prints medians; not a test.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import kubedock  # noqa: E402
from kubedock import kube  # noqa: E402

TOOLS = "/.kubedock/bin"
STATE = "/.kubedock/state"
IMAGE = "busybox:1.36"
KUBEDOCK_IMAGE = f"kubedock/kubedock:{kubedock.__version__}"


# The program prints the node's uptime as it starts: on this single-node cluster, the same clock
# as the benchmark's, so the start of the process itself is timed, not only the kubelet's next
# status report (which comes on its once-a-second relist).
PROGRAM = ["sh", "-c", "cat /proc/uptime; exec sleep 300"]
_LATE = 1.5  # seconds: a report that came a relist later than most


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def _main(command: list[str], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": command, "volumeMounts": mounts}


def _supervised(tools_mount: dict[str, Any]) -> dict[str, Any]:
    return _main([f"{TOOLS}/supervise", "run", STATE, *PROGRAM],
                 [tools_mount, {"name": "state", "mountPath": STATE}])


def plain(_: str) -> dict[str, Any]:
    return {"containers": [_main(PROGRAM, [])]}


def volume(_: str) -> dict[str, Any]:
    return {"containers": [_main(PROGRAM, [{"name": "state", "mountPath": STATE}])],
            "volumes": [{"name": "state", "emptyDir": {}}]}


def installer(_: str) -> dict[str, Any]:
    tools = {"name": "tools", "mountPath": TOOLS}
    return {
        "containers": [
            {"name": "kubedock-tools", "image": KUBEDOCK_IMAGE, "imagePullPolicy": "IfNotPresent",
             "command": ["/opt/kubedock/supervise", "idle"],
             "lifecycle": {"postStart": {"exec": {"command": [
                 "/opt/kubedock/supervise", "install", f"{TOOLS}/supervise"]}}},
             "volumeMounts": [tools]},
            _supervised({**tools, "readOnly": True}),
        ],
        "volumes": [{"name": "tools", "emptyDir": {}}, {"name": "state", "emptyDir": {}}],
    }


def configmap(config_map: str) -> dict[str, Any]:
    return {
        "containers": [_supervised({"name": "tools", "mountPath": TOOLS, "readOnly": True})],
        "volumes": [{"name": "tools", "configMap": {"name": config_map, "defaultMode": 0o555}},
                    {"name": "state", "emptyDir": {}}],
    }


WAYS: dict[str, Callable[[str], dict[str, Any]]] = {
    "plain": plain, "volume": volume, "installer": installer, "configmap": configmap}


async def _bench(supervisor: bytes, runs: int
                 ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    cluster = await kube.Cluster.connect(namespace="default")
    label = f"delivery-{uuid.uuid4().hex[:6]}"
    config_map = label
    results: dict[str, list[float]] = {way: [] for way in WAYS}
    processes: dict[str, list[float]] = {way: [] for way in WAYS}
    created: dict[str, float] = {}
    running: dict[str, trio.Event] = {}
    gone: dict[str, trio.Event] = {}
    seconds: dict[str, float] = {}

    def on_change(observation: kube.ContainerObservation) -> None:
        name = observation.pod_name
        if observation.deleted:
            gone[name].set()
        elif observation.state == "running" and not running[name].is_set():
            seconds[name] = time.perf_counter() - created[name]
            running[name].set()

    await cluster.create_object(kube.CONFIG_MAPS, {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": config_map, "labels": {"bench": label}},
        "binaryData": {"supervise": base64.b64encode(supervisor).decode()}})
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(cluster.watch_pods, f"bench={label}", on_change)
            for run in range(runs + 1):  # the first is a warm-up
                order = list(WAYS)
                order = order[run % len(order):] + order[:run % len(order)]
                for way in order:
                    name = f"{way}-{run}-{uuid.uuid4().hex[:4]}"
                    running[name], gone[name] = trio.Event(), trio.Event()
                    created[name], uptime = time.perf_counter(), _uptime()
                    await cluster.create_pod({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "labels": {"bench": label}},
                        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                                 "automountServiceAccountToken": False,
                                 "enableServiceLinks": False, **WAYS[way](config_map)},
                    })
                    with trio.fail_after(120):
                        await running[name].wait()
                    process = float((await _log(cluster, name)).split()[0]) - uptime
                    await cluster.delete_pod(name, grace_seconds=0)
                    with trio.fail_after(120):
                        await gone[name].wait()
                    await trio.sleep(1)  # the node finishes tearing the pod down
                    if run:
                        results[way].append(seconds[name])
                        processes[way].append(process)
                        print(f"  {way:10} {seconds[name] * 1000:6.0f} ms, process"
                              f" {process * 1000:6.0f} ms", flush=True)
            nursery.cancel_scope.cancel()
    finally:
        await cluster.delete_object(kube.CONFIG_MAPS, config_map)
        await cluster.aclose()
    return results, processes


async def _log(cluster: kube.Cluster, pod: str) -> str:
    chunks = []
    async with cluster.logs(pod) as log:
        async for chunk in log:
            chunks.append(chunk)
    return b"".join(chunks).decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("supervisor", type=Path)
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    results, processes = trio.run(_bench, args.supervisor.read_bytes(), args.runs)
    print(f"{args.runs} runs, medians (difference to plain): until the watch sees main running;"
          " until its program runs; runs whose report missed the first second")
    for way in WAYS:
        late = sum(seconds > _LATE for seconds in results[way])
        print(f"  {way:10} {_median(results, way)} | {_median(processes, way)} | {late}")


def _median(results: dict[str, list[float]], way: str) -> str:
    median, base = statistics.median(results[way]), statistics.median(results["plain"])
    return f"{median * 1000:6.0f} ms ({(median - base) * 1000:+5.0f} ms)"


if __name__ == "__main__":
    main()
