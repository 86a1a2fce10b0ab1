"""Docker networks on the cluster: aliases resolve inside a network, and only there.

Two kubedock instances share the module's namespace, each with the same network name and the
same aliases; kubedock's DNS keeps them apart by network id.
"""

from __future__ import annotations

import gc
import os
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import pytest
from kubedock_server import Kubedock, start_kubedock, stop_kubedock
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

pytestmark = [
    pytest.mark.cluster,
    # docker-py leaves the socket of an exec to the garbage collector.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

REDIS_GET = "printf 'GET owner\\r\\nQUIT\\r\\n' | nc {host} 6379"
# Fresh clients that resolve a peer as their first instruction, and how many start at once.
FIRST_LOOKUPS = int(os.environ.get("KD_E2E_FIRST_LOOKUPS", "50"))
FIRST_LOOKUPS_AT_ONCE = 5


@pytest.fixture(scope="module")
def second(cluster: Any, namespace: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[docker.DockerClient]:
    """Another kubedock instance in the same namespace."""
    process, server = start_kubedock(cluster, namespace, tmp_path_factory.mktemp("second"),
                                     "--port-forward")
    client = docker.DockerClient(base_url=server.host, timeout=120)
    yield client
    client.close()
    assert stop_kubedock(process) == 128 + 15, server.log.read_text()[-4000:]


def run_pair(client: docker.DockerClient, owner: str) -> tuple[Any, Any, Any]:
    """network ``net`` with redis (alias db, holding ``owner``) and busybox (alias app)."""
    network = client.networks.create("net")
    db = client.containers.run("redis:7", detach=True, network="net",
                               networking_config={"net": client.api.create_endpoint_config(
                                   aliases=["db"])})
    app = client.containers.create("busybox:1.36", ["sleep", "600"])
    network.connect(app, aliases=["app"])  # before start, as testcontainers-node does
    app.start()
    for _ in range(60):
        if db.exec_run(["redis-cli", "set", "owner", owner]).output.strip() == b"OK":
            break
    return network, db, app


def redis_get(app: Any, host: str) -> Any:
    """GET owner from the redis at ``host``, from inside ``app``.

    Retried for a while: a Service answers once the cluster has programmed its endpoints, and a
    name connected to a running container resolves once the DNS role has seen the change.
    """
    for _ in range(40):
        answer = app.exec_run(["sh", "-c", REDIS_GET.format(host=host)])
        if answer.exit_code == 0:
            break
        time.sleep(0.5)
    return answer


def service_names(cluster: Any, namespace: str) -> list[str]:
    listing = cluster.kubectl("-n", namespace, "get", "services", "-o",
                              "jsonpath={.items[*].metadata.name}")
    names: list[str] = listing.stdout.split()
    return names


def remove(network: Any, *containers: Any) -> None:
    for container in containers:
        container.remove(force=True)
    network.remove()
    gc.collect()


def test_alias_resolves_per_instance(client: docker.DockerClient,
                                     second: docker.DockerClient) -> None:
    first_pair = run_pair(client, "first")
    second_pair = run_pair(second, "second")
    try:
        for (_network, db, app), owner in ((first_pair, b"first"), (second_pair, b"second")):
            answer = app.exec_run(["sh", "-c", REDIS_GET.format(host="db")])
            assert answer.exit_code == 0, answer.output
            assert owner in answer.output and answer.output.count(b"\r\n") >= 2
            db.reload()
            endpoint = db.attrs["NetworkSettings"]["Networks"]["net"]
            assert endpoint["Aliases"] == ["db"]
            assert endpoint["IPAddress"] == db.attrs["NetworkSettings"]["IPAddress"] != ""
            # And back: db reaches app by its alias, connected after create.
            ping = db.exec_run(["sh", "-c", "getent hosts app || nslookup app"])
            assert ping.exit_code == 0, ping.output
    finally:
        remove(*first_pair)
        remove(*second_pair)


def test_container_off_the_network_cannot_resolve(client: docker.DockerClient) -> None:
    network, db, app = run_pair(client, "first")
    outsider = client.containers.run("busybox:1.36", ["sleep", "600"], detach=True)
    try:
        answer = outsider.exec_run(["sh", "-c", REDIS_GET.format(host="db")])
        assert answer.exit_code != 0
        assert b"bad address" in answer.output
        # Connected later, it resolves: kubedock updates the pod's names in place.
        network.connect(outsider)
        assert b"first" in redis_get(outsider, "db").output
    finally:
        remove(network, db, app, outsider)


def test_network_none_leaves_loopback_alone(target: Kubedock) -> None:
    """`--network none`: lo is the only interface with an address, and nothing is reachable."""
    client = docker.DockerClient(base_url=target.host, timeout=120)
    peer = client.containers.run("redis:7", detach=True)
    try:
        peer.reload()
        address = peer.attrs["NetworkSettings"]["IPAddress"]
        script = (f"ip -o -4 addr; ip -o route; nc -w 3 {address} 6379 </dev/null "
                  "&& echo reached || echo unreachable")
        output = client.containers.run("busybox:1.36", ["sh", "-c", script],
                                       network_mode="none", remove=True, stderr=True).decode()
        interfaces = [line.split()[1] for line in output.splitlines() if " inet " in line]
        assert interfaces == ["lo"], output
        assert output.rstrip().endswith("unreachable"), output
        offline = client.containers.create("busybox:1.36", "true", network_mode="none")
        try:
            assert list(offline.attrs["NetworkSettings"]["Networks"]) == ["none"]
            with pytest.raises(docker.errors.APIError) as refused:
                client.networks.get("bridge").connect(offline)
            assert refused.value.status_code == 400
            assert "private (none) mode" in str(refused.value)
        finally:
            offline.remove(force=True)
    finally:
        peer.remove(force=True)
        client.close()


def test_peer_resolves_from_the_first_instruction(target: Kubedock) -> None:
    """`docker run --network n busybox nslookup db`, right after db started, many times over.

    Docker's DNS knows a container before it starts; kubedock's learns a pod's address when the
    kubelet reports it, which can be after the first instruction ran.
    """
    client = docker.DockerClient(base_url=target.host, timeout=120)
    name = f"first-{secrets.token_hex(3)}"
    network = client.networks.create(name)
    db = client.containers.run("redis:7", detach=True, network=name,
                               networking_config={name: client.api.create_endpoint_config(
                                   aliases=["db"])})

    def first_lookup(_index: int) -> str:
        try:
            output = client.containers.run("busybox:1.36", ["nslookup", "db"], network=name,
                                           remove=True, stderr=True)
        except docker.errors.ContainerError as error:
            return f"exit {error.exit_status}: {error.stderr!r}"
        return str(output, "utf-8", "replace")

    try:
        db.reload()
        address = db.attrs["NetworkSettings"]["Networks"][name]["IPAddress"]
        with ThreadPoolExecutor(FIRST_LOOKUPS_AT_ONCE) as pool:
            outputs = list(pool.map(first_lookup, range(FIRST_LOOKUPS)))
        failed = [output for output in outputs if f"Address: {address}" not in output]
        assert not failed, f"{len(failed)} of {FIRST_LOOKUPS} failed; first: {failed[0]}"
    finally:
        remove(network, db)
        client.close()


def test_testcontainers_network_aliases(kubedock: Kubedock, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    for key, value in kubedock.env().items():
        monkeypatch.setenv(key, value)
    with Network() as network, DockerContainer("redis:7").with_network(
        network
    ).with_network_aliases("cache") as cache, DockerContainer("busybox:1.36").with_command(
        "sleep 600"
    ).with_network(network) as app:
        for _ in range(60):
            if cache.exec(["redis-cli", "ping"]).output.strip() == b"PONG":
                break
        result = app.exec(["sh", "-c", "printf 'PING\\r\\nQUIT\\r\\n' | nc cache 6379"])
        assert b"+PONG" in result.output, result.output


def test_services_mode(cluster: Any, namespace: str, tmp_path: Path) -> None:
    process, server = start_kubedock(cluster, namespace, tmp_path, "--network-names", "services")
    client = docker.DockerClient(base_url=server.host, timeout=120)
    try:
        client.networks.create("svcnet")
        db = client.containers.run(
            "redis:7", detach=True, network="svcnet", ports={"6379/tcp": None},
            networking_config={"svcnet": client.api.create_endpoint_config(aliases=["svcdb"])})
        app = client.containers.run("busybox:1.36", ["sleep", "600"], detach=True,
                                    network="svcnet")
        for _ in range(60):
            if db.exec_run(["redis-cli", "set", "owner", "svc"]).output.strip() == b"OK":
                break
        answer = redis_get(app, "svcdb")
        assert b"svc" in answer.output, answer.output
        assert "svcdb" in service_names(cluster, namespace)
        # A name given after start gets its Service too.
        client.networks.create("other").connect(db, aliases=["svcdb2"])
        answer = redis_get(app, "svcdb2")
        assert b"svc" in answer.output, answer.output
        # A name is namespace-wide in this mode: a second holder is refused, not clobbered.
        rival = client.containers.create(
            "redis:7", network="svcnet", ports={"6379/tcp": None},
            networking_config={"svcnet": client.api.create_endpoint_config(aliases=["svcdb"])})
        with pytest.raises(docker.errors.APIError) as refused:
            rival.start()
        assert refused.value.status_code == 409
        rival.reload()
        assert rival.status != "running"
        rival.remove(force=True)
        db.remove(force=True)
        app.remove(force=True)
        gc.collect()
        # Owned by the pod: the garbage collector takes the Service with it.
        for _ in range(60):
            if "svcdb" not in service_names(cluster, namespace):
                break
            time.sleep(0.5)
        assert "svcdb" not in service_names(cluster, namespace)
    finally:
        client.close()
        assert stop_kubedock(process) == 128 + 15, server.log.read_text()[-4000:]
