"""UDP ports in the exposure modes that listen on kubedock's host, against the scripted cluster."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest
import trio
import trio.testing
from engine_fake import FakeCluster

from kubedock import kube
from kubedock.engine import ContainerConfig, Engine, HostBinding, Unsupported

DNS = kube.PortSpec(5353, "udp")


async def new_engine(nursery: trio.Nursery, cluster: FakeCluster, expose: str) -> Engine:
    settings = kube.PodSettings(namespace="tests", instance_id="a1b2c3d4e5f6")
    engine = Engine(cluster, settings, nursery=nursery, start_timeout=30, fail_fast_after=0,
                    expose=expose, expose_host="127.0.0.1")
    await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
    return engine


def listens_on_udp(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


@pytest.mark.parametrize("expose", ["port-forward", "reverse-proxy"])
async def test_a_udp_port_listens_on_udp_and_adds_nothing_to_the_pod(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, expose: str,
) -> None:
    cluster = FakeCluster()
    engine = await new_engine(nursery, cluster, expose)
    container = engine.create("dns", ContainerConfig(
        image="dns:1", exposed_ports=(DNS,), port_bindings={DNS: (HostBinding("", 0),)}))
    await engine.start(container)
    [published] = container.published
    assert (published.port, published.host_ip) == (DNS, "127.0.0.1")
    assert listens_on_udp(published.host_port)
    # The relay (and with it the toolbox) waits for a first datagram.
    assert cluster.called("add_ephemeral_container") == []
    await engine.remove(container, force=True)


@pytest.mark.parametrize("expose", ["port-forward", "reverse-proxy"])
async def test_sctp_is_refused_where_kubedock_relays(nursery: trio.Nursery, expose: str) -> None:
    engine = await new_engine(nursery, FakeCluster(), expose)
    config: Any = ContainerConfig(image="x:1", exposed_ports=(kube.PortSpec(9, "sctp"),))
    with pytest.raises(Unsupported, match="9/sctp"):
        engine.create("x", config)
