from typing import Any

import pytest

from kubedock.kube import (
    ContainerSpec,
    PodSettings,
    PortSpec,
    Unsupported,
    pod_manifest,
    pod_name,
)

CONTAINER_ID = "3fa9c1d2b4e5" + "0" * 52
SETTINGS = PodSettings(namespace="tests", instance_id="a1b2c3d4e5f6")


def spec(**changes: Any) -> ContainerSpec:
    values: dict[str, Any] = {"container_id": CONTAINER_ID, "name": "db", "image": "redis:7"}
    values.update(changes)
    return ContainerSpec(**values)


def main_container(manifest: dict[str, Any]) -> dict[str, Any]:
    [container] = manifest["spec"]["containers"]
    assert container["name"] == "main"
    return container  # type: ignore[no-any-return]


def test_minimal_pod() -> None:
    manifest = pod_manifest(spec(), SETTINGS)
    assert manifest["apiVersion"] == "v1"
    assert manifest["kind"] == "Pod"
    metadata = manifest["metadata"]
    assert metadata["name"] == "kubedock-db-3fa9c1d2b4e5"
    assert metadata["namespace"] == "tests"
    assert metadata["labels"] == {
        "kubedock": "true",
        "kubedock.id": "a1b2c3d4e5f6",
        "kubedock.containerid": "3fa9c1d2b4e5",
    }
    assert metadata["annotations"] == {"kubedock.containername": "db"}
    pod = manifest["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    assert main_container(manifest) == {
        "name": "main",
        "image": "redis:7",
        "tty": False,
        "stdin": False,
        "stdinOnce": False,
    }


@pytest.mark.parametrize(
    ("name", "prefix", "expected"),
    [
        ("db", "kubedock", "kubedock-db-3fa9c1d2b4e5"),
        ("", "kubedock", "kubedock-3fa9c1d2b4e5"),
        ("myproj_db_1", "kubedock", "kubedock-myproj-db-1-3fa9c1d2b4e5"),
        ("My.Weird--Name!", "kubedock", "kubedock-my-weird-name-3fa9c1d2b4e5"),
        ("db", "", "db-3fa9c1d2b4e5"),
        ("__", "", "3fa9c1d2b4e5"),
        ("x" * 100, "kubedock", "kubedock-" + "x" * 23 + "-3fa9c1d2b4e5"),
    ],
)
def test_pod_name(name: str, prefix: str, expected: str) -> None:
    settings = PodSettings(namespace="n", instance_id="i", pod_name_prefix=prefix)
    assert pod_name(spec(name=name), settings) == expected


def test_pod_name_prefix_label_wins() -> None:
    labels = {"com.joyrex2001.kubedock.name-prefix": "tc"}
    assert pod_name(spec(labels=labels), SETTINGS) == "tc-db-3fa9c1d2b4e5"


def test_command_env_and_workdir() -> None:
    manifest = pod_manifest(
        spec(
            entrypoint=("/bin/sh", "-c"),
            cmd=("echo hi",),
            env=("A=1", "B=x=y", "UNSET"),
            working_dir="/srv",
            tty=True,
            open_stdin=True,
            stdin_once=True,
        ),
        SETTINGS,
    )
    container = main_container(manifest)
    assert container["command"] == ["/bin/sh", "-c"]
    assert container["args"] == ["echo hi"]
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "x=y"}]
    assert container["workingDir"] == "/srv"
    assert (container["tty"], container["stdin"], container["stdinOnce"]) == (True, True, True)


def test_cmd_alone_keeps_the_image_entrypoint() -> None:
    container = main_container(pod_manifest(spec(cmd=("redis-server",)), SETTINGS))
    assert "command" not in container
    assert container["args"] == ["redis-server"]


def test_empty_entrypoint_runs_cmd_as_the_command() -> None:
    container = main_container(pod_manifest(spec(entrypoint=(), cmd=("ls", "/")), SETTINGS))
    assert container["command"] == ["ls", "/"]
    assert "args" not in container


def test_ports() -> None:
    ports = (PortSpec(6379, "tcp"), PortSpec(53, "udp"))
    container = main_container(pod_manifest(spec(ports=ports), SETTINGS))
    assert container["ports"] == [
        {"name": "kd-tcp-6379", "containerPort": 6379, "protocol": "TCP"},
        {"name": "kd-udp-53", "containerPort": 53, "protocol": "UDP"},
    ]


def test_docker_labels_become_annotations_and_valid_ones_labels() -> None:
    labels = {
        "org.testcontainers": "true",
        "org.testcontainers.sessionId": "0b1c2d",
        "sidecar.istio.io/inject": "false",
        "description": "has spaces, not a label value",
        "bad key": "x",
        "kubedock": "false",
    }
    metadata = pod_manifest(spec(labels=labels), SETTINGS)["metadata"]
    assert metadata["labels"] == {
        "org.testcontainers": "true",
        "org.testcontainers.sessionId": "0b1c2d",
        "sidecar.istio.io/inject": "false",
        "kubedock": "true",
        "kubedock.id": "a1b2c3d4e5f6",
        "kubedock.containerid": "3fa9c1d2b4e5",
    }
    annotations = metadata["annotations"]
    assert annotations["description"] == "has spaces, not a label value"
    assert annotations["sidecar.istio.io/inject"] == "false"
    assert "bad key" not in annotations
    assert annotations["kubedock.containername"] == "db"


def test_server_labels_and_annotations() -> None:
    settings = PodSettings(
        namespace="n", instance_id="i", labels={"team": "qa"}, annotations={"owner": "ci"}
    )
    metadata = pod_manifest(spec(labels={"team": "dev"}), settings)["metadata"]
    assert metadata["labels"]["team"] == "dev"
    assert metadata["annotations"]["owner"] == "ci"


def test_resources_from_settings_labels_and_docker_limits() -> None:
    settings = PodSettings(
        namespace="n",
        instance_id="i",
        request_cpu="10m,1",
        request_memory="64Mi",
        request_ephemeral_storage=",1Gi",
    )
    container = main_container(pod_manifest(spec(), settings))
    assert container["resources"] == {
        "requests": {"cpu": "10m", "memory": "64Mi", "ephemeral-storage": "1Gi"},
        "limits": {"cpu": "1", "ephemeral-storage": "1Gi"},
    }
    labelled = spec(
        labels={"com.joyrex2001.kubedock.request-cpu": "100m"},
        memory_bytes=512 * 1024 * 1024,
        nano_cpus=1_500_000_000,
    )
    container = main_container(pod_manifest(labelled, settings))
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "1Gi"},
        "limits": {"cpu": "1500000000n", "memory": "536870912", "ephemeral-storage": "1Gi"},
    }



def test_ignore_container_memory_leaves_the_memory_limit_to_the_settings() -> None:
    settings = PodSettings(namespace="n", instance_id="i", ignore_container_memory=True)
    container = main_container(pod_manifest(spec(memory_bytes=512 * 1024 * 1024), settings))
    assert "resources" not in container or "memory" not in container["resources"].get(
        "limits", {})


@pytest.mark.parametrize(
    ("setting", "label", "expected"),
    [
        (None, None, None),
        ("ifnotpresent", None, "IfNotPresent"),
        ("default", None, "IfNotPresent"),
        ("notpresent", None, "IfNotPresent"),
        ("never", "always", "Always"),
        ("never", "allways", "Always"),
        (None, "Never", "Never"),
    ],
)
def test_pull_policy(setting: str | None, label: str | None, expected: str | None) -> None:
    settings = PodSettings(namespace="n", instance_id="i", pull_policy=setting)
    labels = {"com.joyrex2001.kubedock.pull-policy": label} if label else {}
    container = main_container(pod_manifest(spec(labels=labels), settings))
    assert container.get("imagePullPolicy") == expected


def test_unknown_pull_policy_is_refused() -> None:
    labels = {"com.joyrex2001.kubedock.pull-policy": "sometimes"}
    with pytest.raises(Unsupported):
        pod_manifest(spec(labels=labels), SETTINGS)


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("1000", {"runAsUser": 1000}),
        ("1000:2000", {"runAsUser": 1000, "runAsGroup": 2000}),
        ("root", {"runAsUser": 0}),
        ("0:root", {"runAsUser": 0, "runAsGroup": 0}),
    ],
)
def test_numeric_users(user: str, expected: dict[str, int]) -> None:
    container = main_container(pod_manifest(spec(user=user), SETTINGS))
    assert container["securityContext"] == expected


@pytest.mark.parametrize("user", ["redis", "1000:staff", "nobody:"])
def test_user_names_are_unsupported(user: str) -> None:
    with pytest.raises(Unsupported, match="numeric"):
        pod_manifest(spec(user=user), SETTINGS)


def test_pod_level_settings() -> None:
    settings = PodSettings(
        namespace="n",
        instance_id="i",
        service_account="runner",
        image_pull_secrets=("regcred",),
        node_selector={"disk": "ssd"},
        runas_user="1001",
        active_deadline_seconds=600,
    )
    pod = pod_manifest(spec(stop_grace_seconds=3), settings)["spec"]
    assert pod["serviceAccountName"] == "runner"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"disk": "ssd"}
    assert pod["securityContext"] == {"runAsUser": 1001}
    assert pod["activeDeadlineSeconds"] == 600
    assert pod["terminationGracePeriodSeconds"] == 3


def test_per_container_labels_override_settings() -> None:
    settings = PodSettings(
        namespace="n",
        instance_id="i",
        service_account="runner",
        node_selector={"disk": "ssd"},
        active_deadline_seconds=600,
    )
    labels = {
        "com.joyrex2001.kubedock.node-selector": "zone=a, arch=amd64",
        "com.joyrex2001.kubedock.active-deadline-seconds": "-1",
        "com.joyrex2001.kubedock.runas-user": "root",
        "com.joyrex2001.kubedock.service-account": "admin",
    }
    pod = pod_manifest(spec(labels=labels), settings)["spec"]
    assert pod["nodeSelector"] == {"zone": "a", "arch": "amd64"}
    assert "activeDeadlineSeconds" not in pod
    assert pod["securityContext"] == {"runAsUser": 0}
    # The server's service account is not for users to change.
    assert pod["serviceAccountName"] == "runner"


def test_service_account_label_applies_without_a_server_setting() -> None:
    labels = {"com.joyrex2001.kubedock.service-account": "builder"}
    assert pod_manifest(spec(labels=labels), SETTINGS)["spec"]["serviceAccountName"] == "builder"


def test_host_aliases_and_hostname() -> None:
    extra_hosts = (("db", "10.0.0.5"), ("cache", "10.0.0.6"), ("db.local", "10.0.0.5"))
    pod = pod_manifest(spec(extra_hosts=extra_hosts, hostname="Redis1"), SETTINGS)["spec"]
    assert pod["hostAliases"] == [
        {"ip": "10.0.0.5", "hostnames": ["db", "db.local"]},
        {"ip": "10.0.0.6", "hostnames": ["cache"]},
    ]
    assert pod["hostname"] == "redis1"


def test_a_container_without_a_hostname_is_named_by_its_short_id_as_in_docker() -> None:
    assert pod_manifest(spec(), SETTINGS)["spec"]["hostname"] == CONTAINER_ID[:12]


@pytest.mark.parametrize("hostname", ["my.host.example", "under_score", "x" * 64])
def test_hostname_that_is_no_dns_label_is_left_to_kubernetes(hostname: str) -> None:
    assert "hostname" not in pod_manifest(spec(hostname=hostname), SETTINGS)["spec"]


def test_pod_template_is_the_base() -> None:
    template = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "x-",
            "labels": {"from": "template", "kubedock": "no"},
            "annotations": {"a": "b"},
        },
        "spec": {
            "containers": [
                {
                    "name": "ignored",
                    "image": "ignored",
                    "resources": {"limits": {"memory": "1Gi"}},
                    "env": [{"name": "PROXY", "value": "p"}],
                }
            ],
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "nodeSelector": {"pool": "tests"},
            "restartPolicy": "Always",
            "automountServiceAccountToken": True,
        },
    }
    settings = PodSettings(
        namespace="n", instance_id="i", pod_template=template, node_selector={"disk": "ssd"}
    )
    manifest = pod_manifest(spec(env=("A=1",)), settings)
    assert "generateName" not in manifest["metadata"]
    assert manifest["metadata"]["labels"]["from"] == "template"
    assert manifest["metadata"]["labels"]["kubedock"] == "true"
    assert manifest["metadata"]["annotations"]["a"] == "b"
    pod = manifest["spec"]
    assert pod["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert pod["nodeSelector"] == {"pool": "tests", "disk": "ssd"}
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is True
    container = main_container(manifest)
    assert container["image"] == "redis:7"
    assert container["resources"] == {"limits": {"memory": "1Gi"}}
    assert container["env"] == [{"name": "PROXY", "value": "p"}, {"name": "A", "value": "1"}]
    # The template itself is left alone.
    assert template["spec"]["containers"][0]["name"] == "ignored"  # type: ignore[index]


def test_manifest_is_deterministic() -> None:
    container = spec(labels={"a": "1"}, ports=(PortSpec(80, "tcp"),))
    assert pod_manifest(container, SETTINGS) == pod_manifest(container, SETTINGS)


def test_docker_cpu_shares_and_memory_reservation_become_requests() -> None:
    container = main_container(pod_manifest(spec(
        cpu_shares=512, memory_reservation=64 * 1024 * 1024), SETTINGS))
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "67108864"}}
    # A request above the limit makes an invalid pod: shares weigh, the limit caps.
    capped = main_container(pod_manifest(spec(cpu_shares=4096, nano_cpus=250_000_000),
                                         SETTINGS))
    assert capped["resources"] == {"requests": {"cpu": "250m"},
                                   "limits": {"cpu": "250000000n"}}
    assert main_container(pod_manifest(spec(cpu_shares=2), SETTINGS))["resources"] == {
        "requests": {"cpu": "2m"}}


def test_groups_and_dropped_capabilities() -> None:
    manifest = pod_manifest(spec(supplemental_groups=(1000, 1001),
                                 drop_capabilities=("NET_RAW", "MKNOD"), user="1000:1000"),
                            SETTINGS)
    assert manifest["spec"]["securityContext"] == {"supplementalGroups": [1000, 1001]}
    assert main_container(manifest)["securityContext"] == {
        "runAsUser": 1000, "runAsGroup": 1000,
        "capabilities": {"drop": ["NET_RAW", "MKNOD"]},
    }
    settings = PodSettings(namespace="n", instance_id="i", runas_user="7", pod_template={
        "spec": {"securityContext": {"supplementalGroups": [5]},
                 "containers": [{"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}]}})
    manifest = pod_manifest(spec(supplemental_groups=(5, 6), drop_capabilities=("NET_RAW", "ALL")),
                            settings)
    assert manifest["spec"]["securityContext"] == {"runAsUser": 7, "supplementalGroups": [5, 6]}
    assert main_container(manifest)["securityContext"] == {
        "capabilities": {"drop": ["NET_RAW", "ALL"]}}
