"""Named volumes: the claim a volume becomes, the pod's mount of it, the create body's volume
mounts, and the engine's volume store against the scripted cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing
from engine_fake import FakeCluster, exited
from test_engine_jobs import new_engine

from kubedock import kube
from kubedock.api import BindPolicy
from kubedock.api._create_body import parse_create
from kubedock.api._errors import DockerError
from kubedock.engine import (
    ANONYMOUS_LABEL,
    Conflict,
    ContainerConfig,
    InvalidParameter,
    Mount,
    NoSuchVolume,
    Unsupported,
    with_anonymous_volumes,
)

PODS = kube.PodSettings(namespace="ns", instance_id="abc", labels={"team": "a"},
                        annotations={"note": "x"})


# -- pure translation -------------------------------------------------------------------------

def test_a_claim_carries_the_instance_labels_and_the_docker_name_and_labels() -> None:
    manifest = kube.claim_manifest("My_Data", "kubedock-my-data-0a0b0c", {"com.x": "1"}, PODS,
                                   kube.ClaimSettings())
    metadata = manifest["metadata"]
    assert metadata["labels"] == {"team": "a", "kubedock": "true", "kubedock.id": "abc"}
    assert metadata["annotations"] == {"note": "x", "kubedock.volume/name": "My_Data",
                                       "kubedock.volume/labels": '{"com.x": "1"}'}
    assert manifest["spec"] == {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
                                "resources": {"requests": {"storage": "1Gi"}}}


def test_a_storage_class_access_mode_and_size_are_as_configured() -> None:
    settings = kube.ClaimSettings("fast", "ReadWriteMany", "5Gi")
    spec = kube.claim_manifest("v", "c", {}, PODS, settings)["spec"]
    assert spec["storageClassName"] == "fast"
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["resources"]["requests"]["storage"] == "5Gi"


@pytest.mark.parametrize(("volume", "claim"), [
    ("data", "kubedock-data-f00f00"),
    ("My_Data.v2", "kubedock-my-data-v2-f00f00"),
    ("x" * 100, "kubedock-" + "x" * 31 + "-f00f00"),
])
def test_claim_names_are_dns_labels_made_unique(volume: str, claim: str) -> None:
    assert kube.claim_name(volume, "f00f00") == claim


def test_a_named_volume_mounts_its_claim() -> None:
    spec = kube.ContainerSpec(container_id="a" * 64, name="c", image="busybox", mounts=(
        kube.MountSpec("/data", "volume", claim="kubedock-v-1"),
        kube.MountSpec("/logs", "volume", "app/logs", read_only=True, claim="kubedock-w-2"),
        kube.MountSpec("/anon", "volume"),
    ))
    pod = kube.pod_manifest(spec, PODS)["spec"]
    assert "initContainers" not in pod
    assert pod["volumes"] == [
        {"name": "kd-volume-0", "persistentVolumeClaim": {"claimName": "kubedock-v-1"}},
        {"name": "kd-volume-1", "persistentVolumeClaim": {"claimName": "kubedock-w-2"}},
        {"name": "kd-volume-2", "emptyDir": {}},
    ]
    assert pod["containers"][0]["volumeMounts"] == [
        {"mountPath": "/data", "readOnly": False, "name": "kd-volume-0"},
        {"mountPath": "/logs", "readOnly": True, "name": "kd-volume-1", "subPath": "app/logs"},
        {"mountPath": "/anon", "readOnly": False, "name": "kd-volume-2"},
    ]


def test_create_bodies_name_volumes_by_bind_and_by_mount() -> None:
    config = parse_create({"Image": "busybox", "HostConfig": {
        "Binds": ["data:/data:ro", "/anon"],
        "Mounts": [{"Type": "volume", "Source": "logs", "Target": "/logs", "VolumeOptions": {
            "Subpath": "/app/", "Labels": {"b": "2", "a": "1"},
            "DriverConfig": {"Name": "local"}, "NoCopy": True}}],
    }}, BindPolicy())
    assert config.mounts == (
        Mount("volume", "/data", "data", read_only=True),
        Mount("volume", "/anon"),
        Mount("volume", "/logs", "logs", sub_path="app",
              volume_labels=(("a", "1"), ("b", "2")), no_copy=True),
    )


@pytest.mark.parametrize(("options", "status", "message"), [
    ({"DriverConfig": {"Name": "nfs"}}, 404, 'plugin "nfs" not found'),
    ({"DriverConfig": {"Options": {"type": "tmpfs"}}}, 501, "volume driver options"),
])
def test_volume_drivers_are_refused_by_name(options: dict[str, object], status: int,
                                            message: str) -> None:
    with pytest.raises(DockerError, match=message) as refusal:
        parse_create({"Image": "busybox", "HostConfig": {"Mounts": [
            {"Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": options}]}},
            BindPolicy())
    assert refusal.value.status == status


def test_a_subpath_needs_a_named_volume() -> None:
    with pytest.raises(DockerError, match="Subpath needs a named volume"):
        parse_create({"Image": "busybox", "HostConfig": {"Mounts": [
            {"Type": "volume", "Target": "/v", "VolumeOptions": {"Subpath": "x"}}]}},
            BindPolicy())


# -- the engine's volume store ----------------------------------------------------------------

async def test_create_is_idempotent_and_makes_one_claim(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()
    engine = await new_engine(nursery, cluster)
    async with trio.open_nursery() as creating:
        for labels in ({"a": "1"}, {"a": "2"}):
            creating.start_soon(engine.volumes.create, "data", labels)
    (claim,) = cluster.claims.values()
    volume = engine.volumes.get("data")
    assert claim["metadata"]["name"] == volume.claim
    assert claim["metadata"]["annotations"]["kubedock.volume/name"] == "data"
    assert volume.mountpoint == f"pvc://tests/{volume.claim}"
    assert [(e.type, e.action, e.actor_id) for e in engine.events.history()] == [
        ("volume", "create", "data")]


async def test_a_nameless_volume_is_anonymous(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    engine = await new_engine(nursery, FakeCluster())
    volume = await engine.volumes.create(None, {"x": "y"})
    assert len(volume.name) == 64 and volume.anonymous
    assert volume.labels == {"x": "y", ANONYMOUS_LABEL: ""}


async def test_invalid_names_are_refused_as_docker_does(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    engine = await new_engine(nursery, FakeCluster())
    for name in ("bad/name", "-x", "é"):
        with pytest.raises(InvalidParameter, match="includes invalid characters"):
            await engine.volumes.create(name, {})
    with pytest.raises(InvalidParameter, match="create a: volume name is too short"):
        await engine.volumes.create("a", {})


async def test_starts_mount_a_claim_made_on_the_fly(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()
    engine = await new_engine(nursery, cluster)
    config = ContainerConfig(image="busybox", mounts=(
        Mount("volume", "/data", "shared", volume_labels=(("k", "v"),)),))
    writer, reader = engine.create("writer", config), engine.create("reader", config)
    await engine.start(writer)
    await engine.start(reader)
    (claim,) = cluster.claims
    assert json.loads(cluster.claims[claim]["metadata"]["annotations"][
        "kubedock.volume/labels"]) == {"k": "v"}
    for container in (writer, reader):
        assert container.pod_name is not None
        volumes = cluster.pods[container.pod_name]["spec"]["volumes"]
        assert {"name": "kd-volume-0", "persistentVolumeClaim": {"claimName": claim}} in volumes
    assert sorted(engine.volumes.users(engine.volumes.get("shared"))) == sorted(
        [writer.id, reader.id])


async def test_a_volume_in_use_is_not_removed(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()
    engine = await new_engine(nursery, cluster)
    await engine.volumes.create("data", {})
    container = engine.create("c", ContainerConfig(image="busybox", mounts=(
        Mount("volume", "/data", "data"),)))
    with pytest.raises(Conflict, match=rf"remove data: volume is in use - \[{container.id}\]"):
        await engine.volumes.remove("data", force=True)
    await engine.remove(container, force=False)
    await engine.volumes.remove("data")
    assert cluster.claims == {}
    with pytest.raises(NoSuchVolume, match="get data: no such volume"):
        await engine.volumes.remove("data")
    await engine.volumes.remove("data", force=True)
    assert [e.action for e in engine.events.history() if e.type == "volume"] == [
        "create", "destroy"]


async def test_disk_usage_lists_volumes_with_their_users(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()
    engine = await new_engine(nursery, cluster)
    await engine.volumes.create("idle", {"k": "v"})
    config = ContainerConfig(image="busybox", mounts=(Mount("volume", "/d", "used"),))
    await engine.volumes.ensure(config.mounts)
    engine.create("c", config)
    usage = {volume.name: volume for volume in engine.volume_usage()}
    assert usage["idle"].ref_count == 0 and usage["idle"].labels == {"k": "v"}
    assert usage["used"].ref_count == 1
    assert usage["idle"].mountpoint.startswith("pvc://")


async def test_prune_removes_what_it_selects_and_no_container_uses(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()
    engine = await new_engine(nursery, cluster)
    for name in ("used", "kept", "gone"):
        await engine.volumes.create(name, {"keep": "1"} if name == "kept" else {})
    engine.create("c", ContainerConfig(image="busybox", mounts=(
        Mount("volume", "/data", "used"),)))
    pruned = await engine.volumes.prune(lambda volume: "keep" not in volume.labels)
    assert [volume.name for volume in pruned] == ["gone"]
    assert [volume.name for volume in engine.volumes.all()] == ["kept", "used"]
    assert len(cluster.claims) == 2


class _Namespace:
    """Listings of one instance's objects; claims refused (a Role from before volumes)."""

    def __init__(self, claims_status: int) -> None:
        self.objects = {kube.PODS: ["pod"], kube.CLAIMS: ["claim"]}
        self.claims_status = claims_status
        self.deleted: list[str] = []

    async def list_objects(self, kind: kube.Kind, label_selector: str) -> list[dict[str, Any]]:
        await trio.lowlevel.checkpoint()
        if kind == kube.CLAIMS and self.claims_status:
            raise kube.KubeError("forbidden", status=self.claims_status)
        return [{"metadata": {"name": name}} for name in self.objects.get(kind, [])]

    async def delete_object(self, kind: kube.Kind, name: str, **options: Any) -> None:
        await trio.lowlevel.checkpoint()
        self.objects[kind].remove(name)
        self.deleted.append(f"{kind.plural}/{name}")


async def test_cleanup_deletes_claims_after_pods_and_goes_on_without_the_right() -> None:
    allowed = _Namespace(0)
    await kube.delete_instance(allowed, "abc")  # type: ignore[arg-type]
    assert allowed.deleted == ["pods/pod", "persistentvolumeclaims/claim"]
    refused = _Namespace(403)
    await kube.delete_instance(refused, "abc")  # type: ignore[arg-type]
    assert refused.deleted == ["pods/pod"]
    with pytest.raises(kube.KubeError):
        await kube.delete_instance(_Namespace(500), "abc")  # type: ignore[arg-type]


# -- anonymous volumes and volume events ------------------------------------------------------

def test_anonymous_volumes_get_names_and_the_image_s_volumes_where_no_mount_is() -> None:
    mounts = (Mount("volume", "/anon"), Mount("volume", "/data", "named"),
              Mount("bind", "/etc/app", "/srv/app"))
    named = with_anonymous_volumes(mounts, ["/data", "/var/lib/db/", "/etc/app", "relative"])
    assert [(m.target, m.anonymous) for m in named] == [
        ("/anon", True), ("/data", False), ("/etc/app", False), ("/var/lib/db", True)]
    assert named[1:3] == mounts[1:]
    for mount in (named[0], named[3]):
        assert len(mount.source) == 64 and int(mount.source, 16) >= 0
    assert named[0].source != named[3].source


async def test_volume_events_follow_docker_s_moments(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()
    engine = await new_engine(nursery, cluster)
    await engine.volumes.create("data", {})
    mounts = with_anonymous_volumes((Mount("volume", "/data", "data", read_only=True),),
                                    ["/cache"])
    anonymous = mounts[1].source
    await engine.volumes.ensure(mounts, announce=True)
    container = engine.create("c", ContainerConfig(image="busybox", mounts=mounts))
    await engine.start(container)
    assert container.pod_name is not None
    # The anonymous volume is an emptyDir of the pod.
    assert {"name": "kd-volume-1", "emptyDir": {}} in cluster.pods[container.pod_name][
        "spec"]["volumes"]
    cluster.set_main(container.pod_name, exited(0), phase="Succeeded")
    await engine.wait(container, "not-running")
    await engine.remove(container, force=False, volumes=True)
    seen = [(e.action, e.actor_id, dict(e.attributes)) for e in engine.events.history()
            if e.type in ("volume", "container") and e.action in (
                "create", "mount", "start", "die", "unmount", "destroy")]
    local = {"driver": "local"}
    assert seen == [
        ("create", "data", local),
        ("create", "data", local),
        ("create", anonymous, local),
        ("create", container.id, {"name": "c", "image": "busybox"}),
        ("mount", "data", {"container": container.id, "destination": "/data",
                           "driver": "local", "propagation": "", "read/write": "false"}),
        ("mount", anonymous, {"container": container.id, "destination": "/cache",
                              "driver": "local", "propagation": "", "read/write": "true"}),
        ("start", container.id, {"name": "c", "image": "busybox"}),
        ("die", container.id, {"name": "c", "image": "busybox", "exitCode": "0"}),
        ("unmount", "data", {"container": container.id, "driver": "local"}),
        ("unmount", anonymous, {"container": container.id, "driver": "local"}),
        ("destroy", anonymous, local),
        ("destroy", container.id, {"name": "c", "image": "busybox"}),
    ]
    assert [volume.name for volume in engine.volumes.all()] == ["data"]


async def test_another_container_cannot_mount_an_anonymous_volume(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()
    engine = await new_engine(nursery, cluster)
    mounts = with_anonymous_volumes((Mount("volume", "/anon"),))
    await engine.volumes.ensure(mounts)
    with pytest.raises(Unsupported, match="emptyDir of its container's pod"):
        await engine.volumes.ensure((Mount("volume", "/x", mounts[0].source),))
