"""Docker's --init: the pod shares its process namespace (pause is PID 1), signals go to the
container's own process, and kubedock's toolbox, which would take pause for it, is not used."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from engine_fake import FakeCluster
from test_engine_jobs import new_engine

from kubedock import kube
from kubedock.api import BindPolicy
from kubedock.api._create_body import parse_create
from kubedock.engine import ContainerConfig, Unsupported
from kubedock.engine._init import signal_argv


def test_init_is_taken_and_the_pod_shares_its_process_namespace() -> None:
    config = parse_create({"Image": "busybox", "HostConfig": {"Init": True}}, BindPolicy())
    assert config.init
    assert not parse_create({"Image": "busybox", "HostConfig": {"Init": None}},
                            BindPolicy()).init
    spec = kube.ContainerSpec(container_id="a" * 64, name="c", image="busybox",
                              shared_process_namespace=True)
    pod = kube.pod_manifest(spec, kube.PodSettings(namespace="ns", instance_id="i"))
    assert pod["spec"]["shareProcessNamespace"] is True
    plain = kube.ContainerSpec(container_id="a" * 64, name="c", image="busybox")
    assert "shareProcessNamespace" not in kube.pod_manifest(
        plain, kube.PodSettings(namespace="ns", instance_id="i"))["spec"]


def test_a_signal_goes_to_the_container_s_process_not_to_pid_1() -> None:
    assert signal_argv(ContainerConfig(image="busybox"), "SIGHUP") == ["kill", "-s", "HUP", "1"]
    argv = signal_argv(ContainerConfig(image="busybox", init=True), "SIGUSR1")
    assert argv[:2] == ["sh", "-c"] and argv[3:] == ["sh", "USR1"]
    assert "kill -s \"$1\" \"$main\"" in argv[2]


async def test_the_toolbox_is_not_used_with_init_but_for_its_listing(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery,
) -> None:
    cluster = FakeCluster()
    engine = await new_engine(nursery, cluster)
    container = engine.create("c", ContainerConfig(image="busybox", init=True))
    await engine.start(container)
    assert container.pod_name is not None
    assert cluster.pods[container.pod_name]["spec"]["shareProcessNamespace"] is True
    # The image has no sh: Docker's init would pass the signal on; kubedock says why it cannot.
    with pytest.raises(Unsupported, match="delivering a signal in a container started with "
                                          "--init needs the image's own tools"):
        await engine.kill(container, "HUP")
    assert cluster.called("add_ephemeral_container") == []
