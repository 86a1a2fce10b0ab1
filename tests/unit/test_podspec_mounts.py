"""Mounts in pod manifests, and the init container `setup` as the pod watch reads it."""

from __future__ import annotations

import attrs
import pytest

from kubedock import kube

SETTINGS = kube.PodSettings(namespace="ns", instance_id="i", init_image="kubedock/kubedock:1",
                            dind_image="kubedock/kubedock:1")


def spec(*mounts: kube.MountSpec) -> kube.ContainerSpec:
    return kube.ContainerSpec(container_id="a" * 64, name="c", image="busybox:1.36",
                              mounts=mounts)


def test_copies_get_the_setup_container_and_kubedock_in_main() -> None:
    manifest = kube.pod_manifest(spec(kube.MountSpec("/data", "copy", "b0", read_only=True)),
                                 SETTINGS)
    pod = manifest["spec"]
    (setup,) = pod["initContainers"]
    assert setup["args"] == ["init", "/.kubedock/data", "--tools", kube.TOOLS_DIR]
    assert setup["stdin"] and setup["stdinOnce"]
    main = pod["containers"][0]
    assert {"name": "kubedock-data", "mountPath": "/data", "readOnly": True,
            "subPath": "b0"} in main["volumeMounts"]
    assert {"name": "kubedock-tools", "mountPath": kube.TOOLS_DIR,
            "readOnly": True} in main["volumeMounts"]
    assert {volume["name"] for volume in pod["volumes"]} == {"kubedock-data", "kubedock-tools"}


def test_volumes_and_tmpfs_need_no_setup() -> None:
    manifest = kube.pod_manifest(spec(kube.MountSpec("/cache", "volume"),
                                      kube.MountSpec("/scratch", "tmpfs")), SETTINGS)
    pod = manifest["spec"]
    assert "initContainers" not in pod
    assert [volume["emptyDir"] for volume in pod["volumes"]] == [{}, {"medium": "Memory"}]


def test_the_watch_sees_setup_running() -> None:
    pod = {
        "metadata": {"name": "p"},
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [{"name": "setup", "state": {"running": {}}}],
            "containerStatuses": [{"name": "main",
                                   "state": {"waiting": {"reason": "PodInitializing"}}}],
        },
    }
    assert kube.observe(pod).setup == "running"
    assert kube.observe({"metadata": {"name": "p"}}).setup is None


def test_a_docker_socket_is_served_by_a_native_sidecar() -> None:
    settings = attrs.evolve(SETTINGS, kubedock_url="http://10.0.0.9:2475", pull_policy="never")
    pod = kube.pod_manifest(spec(kube.MountSpec("/var/run/docker.sock", "docker-socket")),
                            settings)["spec"]
    (dind,) = pod["initContainers"]
    assert dind["name"] == "dind" and dind["image"] == "kubedock/kubedock:1"
    assert dind["restartPolicy"] == "Always" and dind["imagePullPolicy"] == "Never"
    assert dind["args"] == ["dind", "--unix-socket", "/var/run/docker.sock",
                            "--kubedock-url", "http://10.0.0.9:2475"]
    hook = dind["lifecycle"]["postStart"]["exec"]["command"]
    assert hook[:4] == ["/kubedock", "dind", "--unix-socket", "/var/run/docker.sock"]
    assert "--wait" in hook
    shared = {"name": "kubedock-dind", "mountPath": "/var/run"}
    assert dind["volumeMounts"] == [shared]
    assert pod["containers"][0]["volumeMounts"] == [shared]
    assert pod["volumes"] == [{"name": "kubedock-dind", "emptyDir": {}}]


def test_the_socket_sidecar_starts_after_setup() -> None:
    settings = attrs.evolve(SETTINGS, kubedock_url="http://10.0.0.9:2475")
    pod = kube.pod_manifest(spec(kube.MountSpec("/run/docker.sock", "docker-socket"),
                                 kube.MountSpec("/data", "copy", "b1")), settings)["spec"]
    assert [init["name"] for init in pod["initContainers"]] == ["setup", "dind"]


def test_no_socket_without_a_way_back_to_kubedock() -> None:
    with pytest.raises(kube.Unsupported, match="reach kubedock"):
        kube.pod_manifest(spec(kube.MountSpec("/var/run/docker.sock", "docker-socket")),
                          SETTINGS)


def test_the_socket_sidecar_has_its_own_image_and_can_be_disabled() -> None:
    settings = attrs.evolve(SETTINGS, kubedock_url="http://10.0.0.9:2475", dind_image="dind:2")
    socket = spec(kube.MountSpec("/var/run/docker.sock", "docker-socket"))
    (dind,) = kube.pod_manifest(socket, settings)["spec"]["initContainers"]
    assert dind["image"] == "dind:2"
    with pytest.raises(kube.Unsupported, match="--disable-dind"):
        kube.pod_manifest(socket, attrs.evolve(settings, dind_image=None))
def test_over_tls_the_socket_sidecar_gets_its_credentials_in_a_secret_owned_by_the_pod(
) -> None:
    credentials = {"cert.pem": "C", "key.pem": "K", "server.pem": "S"}
    settings = attrs.evolve(SETTINGS, kubedock_url="https://10.0.0.9:2475",
                            dind_credentials=credentials)
    manifest = kube.pod_manifest(spec(kube.MountSpec("/var/run/docker.sock", "docker-socket")),
                                 settings)
    name = manifest["metadata"]["name"]
    (dind,) = manifest["spec"]["initContainers"]
    assert dind["args"][-2:] == ["--tls-dir", "/.kubedock/dind-tls"]
    assert {"name": "kubedock-dind-tls", "mountPath": "/.kubedock/dind-tls",
            "readOnly": True} in dind["volumeMounts"]
    assert {"name": "kubedock-dind-tls", "secret": {"secretName": name, "defaultMode": 0o400}
            } in manifest["spec"]["volumes"]
    # main sees the socket, not the credentials.
    assert [m["name"] for m in manifest["spec"]["containers"][0]["volumeMounts"]] == [
        "kubedock-dind"]

    created = {**manifest, "metadata": {**manifest["metadata"], "uid": "u-1"}}
    secret = kube.dind_secret(created, settings)
    assert secret is not None
    assert secret["metadata"]["name"] == name
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": "u-1"}]
    assert secret["metadata"]["labels"] == manifest["metadata"]["labels"]
    assert secret["stringData"] == credentials


def test_pods_without_a_tls_socket_sidecar_get_no_secret() -> None:
    plain = attrs.evolve(SETTINGS, kubedock_url="http://10.0.0.9:2475")
    with_socket = kube.pod_manifest(
        spec(kube.MountSpec("/var/run/docker.sock", "docker-socket")), plain)
    assert kube.dind_secret({**with_socket, "metadata": {"name": "p", "uid": "u"}}, plain) is None
    tls = attrs.evolve(plain, dind_credentials={"cert.pem": "C"})
    without = kube.pod_manifest(spec(kube.MountSpec("/data", "volume")), tls)
    assert kube.dind_secret({**without, "metadata": {"name": "p", "uid": "u"}}, tls) is None


def test_an_offline_pod_first_takes_its_interfaces_down() -> None:
    offline = attrs.evolve(spec(kube.MountSpec("/data", "copy", "b0")), offline=True)
    pod = kube.pod_manifest(offline, SETTINGS)["spec"]
    assert [init["name"] for init in pod["initContainers"]] == ["offline", "setup"]
    first = pod["initContainers"][0]
    assert (first["image"], first["args"]) == ("kubedock/kubedock:1", ["offline"])
    assert first["securityContext"] == {"runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}}
    assert "initContainers" not in kube.pod_manifest(spec(), SETTINGS)["spec"]
