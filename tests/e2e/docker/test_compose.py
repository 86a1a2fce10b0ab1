"""`docker compose` v2 against kubedock, and the same project against the reference engine.

tests/ecosystem/compose/compose.yaml: postgres with a healthcheck that nginx waits for
(`depends_on: condition: service_healthy`), nginx publishing a port and answering to an alias,
a busybox client that reaches it by service name and alias on the project network, and a named
volume that one service writes and another, started once the first completed, reads; on
kubedock with its default resolver and with a Service per name (`--network-names services`).
tests/ecosystem/compose/build/compose.yaml: a service whose image compose builds (`up --build`)
and removes (`down --rmi local`).
The plugin is built by build/compose (from its Go module, cached like the cluster) and found
through the test's own DOCKER_CONFIG, never the machine's.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_cluster import wait_for
from kubedock_server import ROOT, Kubedock, docker_cli, served_by, start_kubedock, stop_kubedock

pytestmark = pytest.mark.cluster

PROJECT_FILE = ROOT / "tests/ecosystem/compose/compose.yaml"
BUILD_PROJECT_FILE = ROOT / "tests/ecosystem/compose/build/compose.yaml"
SERVICES = {"db", "web", "client", "writer", "reader"}


@pytest.fixture(scope="module")
def services_kubedock(cluster: Any, namespace: str, rbac_kubeconfig: Path,
                      current_images: None, tmp_path_factory: pytest.TempPathFactory
                      ) -> Iterator[Kubedock]:
    """kubedock with deploy/rbac.yaml's rights, naming containers with a Service per name."""
    process, server = start_kubedock(cluster, namespace, tmp_path_factory.mktemp("services"),
                                     "--port-forward", "--network-names", "services",
                                     "--kubeconfig", str(rbac_kubeconfig))
    yield server
    assert stop_kubedock(process) == 128 + 15, server.log.read_text()[-4000:]


@pytest.fixture(params=["kubedock", "services_kubedock", "docker_oracle"],
                ids=["kubedock", "kubedock-services", "docker"])
def target(request: pytest.FixtureRequest) -> Kubedock:
    return served_by(request, request.param)


class Compose:
    def __init__(self, target: Kubedock, docker_config: Path, project_file: Path = PROJECT_FILE,
                 **env: str) -> None:
        self.target = target
        self.project = f"kd{secrets.token_hex(3)}"
        self.project_file = project_file
        self.env = target.env(DOCKER_CONFIG=str(docker_config), **env)

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "compose", "-p", self.project, "-f",
                               str(self.project_file), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self(*args)
        assert done.returncode == 0, f"compose {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done


@pytest.fixture
def docker_config(compose_plugins: Path, tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"cliPluginsExtraDirs": [
        str(compose_plugins)]}))
    return tmp_path


@pytest.fixture
def compose(target: Kubedock, docker_config: Path) -> Iterator[Compose]:
    project = Compose(target, docker_config)
    yield project
    project("down", "-v", "-t", "1")


def _logs_show(compose: Compose, service: str, text: str) -> bool:
    return text in compose.ok("logs", "--no-color", service).stdout


def _http_get(address: str) -> str:
    port = address.rpartition(":")[2]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
        body: bytes = answer.read()
    return body.decode()


def _left_in_cluster(cluster: Any, namespace: str) -> list[str]:
    """kubedock's objects in the namespace, less the resolver every instance shares."""
    listing = cluster.kubectl("-n", namespace, "get", "pods,persistentvolumeclaims,services",
                              "-l", "kubedock=true,app.kubernetes.io/name!=kubedock-dns",
                              "-o", "name")
    names: list[str] = listing.stdout.split()
    return names


def test_compose_project_up_to_down(target: Kubedock, compose: Compose, cluster: Any,
                                    request: pytest.FixtureRequest) -> None:
    up = compose.ok("up", "-d").stderr
    # compose started web only once db was healthy.
    progress = [line.strip() for line in up.splitlines()]
    db, web = f"{compose.project}-db-1", f"{compose.project}-web-1"
    assert progress.index(f"Container {db}  Healthy") < progress.index(
        f"Container {web}  Starting"), up

    listing = compose.ok("ps", "-a", "--format", "json").stdout
    listed = [json.loads(line) for line in listing.splitlines()]
    by_service = {entry["Service"]: entry for entry in listed}
    assert set(by_service) == SERVICES
    assert (by_service["db"]["State"], by_service["db"]["Health"]) == ("running", "healthy")
    assert by_service["db"]["Status"].endswith("(healthy)")
    assert {entry["State"] for name, entry in by_service.items() if name != "writer"} == {
        "running"}
    assert (by_service["writer"]["State"], by_service["writer"]["ExitCode"]) == ("exited", 0)
    assert [(p["TargetPort"], p["Protocol"]) for p in by_service["web"]["Publishers"]
            if p["PublishedPort"]][:1] == [(80, "tcp")]

    # The published port, from here.
    address = compose.ok("port", "web", "80").stdout.strip()
    assert "Welcome to nginx!" in _http_get(address)
    # The client reached the server by service name and by alias; the reader saw what the
    # writer left in the volume.
    wait_for(lambda: _logs_show(compose, "client", "fetched"), what="the client's fetches",
             timeout=60)
    client_logs = compose.ok("logs", "--no-color", "client").stdout
    assert client_logs.count("Welcome to nginx!") >= 2
    wait_for(lambda: _logs_show(compose, "reader", "shared-by-writer"), what="the reader",
             timeout=60)

    # The database by its service name: postgres names no port, its image exposes 5432.
    reached = compose("exec", "-T", "client", "sh", "-c", "nc -w 3 db 5432 </dev/null && echo ok")
    assert (reached.returncode, reached.stdout) == (0, "ok\n"), reached.stderr
    read = compose("exec", "-T", "reader", "cat", "/shared/note")
    assert (read.returncode, read.stdout) == (0, "shared-by-writer\n"), read.stderr
    failed = compose("exec", "-T", "client", "sh", "-c", "wget -qO- http://www/ >/dev/null; "
                     "echo to-stderr >&2; exit 3")
    assert (failed.returncode, failed.stderr) == (3, "to-stderr\n")

    if not target.reference:
        kinds = {name.partition("/")[0] for name in _left_in_cluster(cluster, target.namespace)}
        services = {"service"} if request.node.callspec.params["target"] == "services_kubedock" \
            else set()
        assert kinds == {"pod", "persistentvolumeclaim"} | services, kinds
    down = compose.ok("down", "-v").stderr
    assert f"Volume {compose.project}_shared  Removed" in down
    project_label = f"label=com.docker.compose.project={compose.project}"
    for listing in (("ps", "-a", "-q"), ("volume", "ls", "-q"), ("network", "ls", "-q")):
        left = docker_cli(target, *listing, "--filter", project_label)
        assert (left.returncode, left.stdout) == (0, b""), listing
    if not target.reference:
        wait_for(lambda: not _left_in_cluster(cluster, target.namespace),
                 what="no pod, claim or service left", timeout=30)


@pytest.mark.parametrize("target", ["kubedock", "docker_oracle"], ids=["kubedock", "docker"],
                         indirect=True)
def test_compose_builds_and_removes_a_service_image(target: Kubedock, docker_config: Path,
                                                    cluster: Any) -> None:
    # Without buildx, compose builds with BuildKit unless told not to, whatever the engine says
    # in /_ping's Builder-Version: through the engine's /grpc where it answers (Docker), else in
    # a moby/buildkit container it starts (kubedock: the pull fails). kubedock's builder is the
    # classic one, so compose is told so; the reference engine builds the same way.
    compose = Compose(target, docker_config, BUILD_PROJECT_FILE, DOCKER_BUILDKIT="0")
    image = f"{compose.project}-app:latest"
    try:
        up = compose.ok("up", "-d", "--build")
        assert f"Successfully tagged {image}" in up.stdout, up.stdout
        wait_for(lambda: _logs_show(compose, "app", "greetings from compose"),
                 what="the built service's output", timeout=60)
        logs = compose.ok("logs", "--no-color", "--no-log-prefix", "app").stdout
        assert logs == "built with hello\ngreetings from compose\n"
        [entry] = [json.loads(line) for line in
                   compose.ok("ps", "--format", "json").stdout.splitlines()]
        assert (entry["Image"], entry["State"]) == (f"{compose.project}-app", "running")
    finally:
        down = compose.ok("down", "-v", "--rmi", "local", "-t", "1").stderr
    assert f"Image {image}  Removed" in down, down
    assert docker_cli(target, "image", "inspect", image).returncode == 1
    project_label = f"label=com.docker.compose.project={compose.project}"
    for listing in (("ps", "-a", "-q"), ("network", "ls", "-q")):
        left = docker_cli(target, *listing, "--filter", project_label)
        assert (left.returncode, left.stdout) == (0, b""), listing
    if not target.reference:
        # No tag is left in the registry the nodes pull from, nor a pod in the namespace.
        wait_for(lambda: not _left_in_cluster(cluster, target.namespace),
                 what="no pod left", timeout=30)
        assert not _registry_tags(cluster, f"library/{compose.project}-app")


def _registry_tags(cluster: Any, repository: str) -> list[str]:
    try:
        with urllib.request.urlopen(f"http://{cluster.registry}/v2/{repository}/tags/list",
                                    timeout=10) as answer:
            tags: list[str] = json.loads(answer.read())["tags"] or []
    except urllib.error.HTTPError as error:
        assert error.code == 404, error
        return []
    return tags
