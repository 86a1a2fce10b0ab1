"""The supervisor's way into pods without the init container: the installer container until
the instance has a ConfigMap of it (made of the first installer's copy), the ConfigMap after."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import trio
import trio.testing
from test_engine_supervised import (
    SupervisedCluster,
    _tar,
    image,
    main_of,
    new_engine,
    started,
)

from kubedock import kube
from kubedock.engine import Container, ContainerConfig, Engine

PROGRAM = b"\x7fELF the static supervisor"
SETTINGS = kube.PodSettings(namespace="tests", instance_id="a1b2c3d4e5f6",
                            init_image="kubedock/kubedock:0.1.0", labels={"team": "ci"})


class CopyingCluster(SupervisedCluster):
    def __init__(self, copy: bytes) -> None:
        super().__init__()
        self.copy = copy
        self.copies: list[str] = []  # the container of each copy's exec
        self.exec_exit_code = lambda argv: 0

    @contextlib.asynccontextmanager
    async def exec(
        self, pod: str, argv: Sequence[str], *, stdin: bool = False, stdout: bool = True,
        stderr: bool = True, tty: bool = False, container: str = kube.MAIN,
    ) -> AsyncIterator[Any]:
        if list(argv) == kube.supervisor_copy_argv():
            self.copies.append(container)
            self.exec_output = lambda argv: self.copy
        async with super().exec(pod, argv, stdin=stdin, stdout=stdout, stderr=stderr, tty=tty,
                                container=container) as channel:
            yield channel


def containers_of(cluster: SupervisedCluster, container: Container) -> list[str]:
    return [c["name"] for c in cluster.pods[container.pod_name or ""]["spec"]["containers"]]


async def start_another(engine: Engine, name: str) -> Container:
    container = engine.create(name, ContainerConfig(
        image="busybox:1.36", image_config=image(Cmd=["sh"]), cmd=("true",)))
    await engine.start(container)
    return container


async def test_the_first_installers_copy_serves_the_next_pods_from_a_config_map(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = CopyingCluster(_tar({"supervise": PROGRAM}))
    engine = await new_engine(nursery, cluster, "always")
    first = await started(engine, cmd=("true",))
    assert containers_of(cluster, first) == [kube.INSTALLER, kube.MAIN]
    await trio.sleep(1)
    assert cluster.copies == [kube.INSTALLER]
    (config_map,) = cluster.config_maps.values()
    assert config_map["metadata"]["name"] == kube.supervisor_config_map_name(engine.settings)
    assert base64.b64decode(config_map["binaryData"]["supervise"]) == PROGRAM
    second = await start_another(engine, "second")
    # No container before `main`: the kubelet mounts the supervisor before any starts.
    assert containers_of(cluster, second) == [kube.MAIN]
    pod_spec = cluster.pods[second.pod_name or ""]["spec"]
    assert {"name": "kubedock-tools", "configMap": {
        "name": config_map["metadata"]["name"], "defaultMode": 0o555}} in pod_spec["volumes"]
    assert {"name": "kubedock-tools", "mountPath": kube.TOOLS_DIR,
            "readOnly": True} in main_of(cluster, second)["volumeMounts"]
    assert main_of(cluster, second)["command"][:3] == [
        f"{kube.TOOLS_DIR}/supervise", "run", kube.STATE_DIR]
    assert second.supervisor == f"{kube.TOOLS_DIR}/supervise"
    assert cluster.copies == [kube.INSTALLER]


async def test_a_failed_copy_is_tried_again_with_the_next_pods_then_given_up(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = CopyingCluster(b"not a tar")
    engine = await new_engine(nursery, cluster, "always")
    for name in ("first", "second", "third", "fourth"):
        container = await start_another(engine, name)
        await trio.sleep(1)
        assert containers_of(cluster, container) == [kube.INSTALLER, kube.MAIN]
    assert cluster.copies == [kube.INSTALLER] * 3
    assert cluster.config_maps == {}


async def test_a_config_map_the_cluster_refuses_is_not_tried_again(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = CopyingCluster(_tar({"supervise": PROGRAM}))
    cluster.fail("create_object", kube.KubeError("configmaps is forbidden", status=403))
    engine = await new_engine(nursery, cluster, "always")
    for name in ("first", "second"):
        container = await start_another(engine, name)
        await trio.sleep(1)
        assert containers_of(cluster, container) == [kube.INSTALLER, kube.MAIN]
    assert cluster.copies == [kube.INSTALLER]


async def test_a_restarted_instance_mounts_its_config_map_at_once(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = CopyingCluster(b"")
    name = kube.supervisor_config_map_name(SETTINGS)
    cluster.config_maps[name] = {"metadata": {"name": name}}
    engine = await new_engine(nursery, cluster, "always")
    container = await started(engine, cmd=("true",))
    assert containers_of(cluster, container) == [kube.MAIN]
    assert cluster.copies == []


def test_the_config_map_holds_the_program_of_the_copy() -> None:
    manifest = kube.supervisor_config_map(SETTINGS, _tar({"supervise": PROGRAM}))
    assert manifest == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": kube.supervisor_config_map_name(SETTINGS), "namespace": "tests",
                     "labels": {"team": "ci", "kubedock": "true", "kubedock.id": "a1b2c3d4e5f6"}},
        "immutable": True,
        "binaryData": {"supervise": base64.b64encode(PROGRAM).decode()},
    }


@pytest.mark.parametrize("archive", [b"", b"garbage", _tar({"other": PROGRAM}),
                                     _tar({"supervise": None}), _tar({"supervise": b""})])
def test_a_copy_without_the_program_makes_no_config_map(archive: bytes) -> None:
    assert kube.supervisor_config_map(SETTINGS, archive) is None


def test_the_config_map_is_named_by_instance_and_image() -> None:
    name = kube.supervisor_config_map_name(SETTINGS)
    assert name.startswith("kubedock-supervise-a1b2c3d4e5f6-")
    other = kube.PodSettings(namespace="tests", instance_id="a1b2c3d4e5f6",
                             init_image="kubedock/kubedock:0.2.0")
    assert kube.supervisor_config_map_name(other) != name


@pytest.mark.parametrize(("limits", "installer_resources"), [
    # Docker's --memory and --cpus are limits; Kubernetes defaults the requests to them.
    ({"memory_bytes": 64 * 2**20, "nano_cpus": 500_000_000},
     {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "10m", "memory": "16Mi"}}),
    ({"memory_bytes": 64 * 2**20}, None),  # Burstable anyway
    ({}, None),  # BestEffort
])
def test_the_installer_keeps_a_guaranteed_pod_guaranteed(
    limits: dict[str, Any], installer_resources: dict[str, Any] | None
) -> None:
    spec = kube.ContainerSpec(container_id="a" * 64, name="c", image="busybox",
                              supervised_argv=("true",), **limits)
    installer, main = kube.pod_manifest(spec, SETTINGS)["spec"]["containers"]
    assert (installer["name"], main["name"]) == (kube.INSTALLER, kube.MAIN)
    assert installer.get("resources") == installer_resources
