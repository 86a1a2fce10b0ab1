"""The server listens before its cluster part has started: `/_ping` and `/version` answer at
once, every other request waits for the routes, and a start that fails still ends the process
with its error."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from clusterless import clusterless_engine

from kubedock._server import _refusals_only
from kubedock.api import API_VERSION, StartGate, docker_routes, front_door, serve_http
from kubedock.kube import ClusterUnreachable


async def serve_gate(nursery: trio.Nursery, gate: StartGate) -> str:
    (bound,) = await nursery.start(serve_http, front_door(gate), ["127.0.0.1:0"])
    return f"http://{bound}"


async def test_ping_and_version_answer_before_the_routes_exist(nursery: trio.Nursery) -> None:
    url = await serve_gate(nursery, StartGate(limit=60))
    async with httpx.AsyncClient(base_url=url) as client:
        ping = await client.get("/_ping")
        head = await client.head("/v1.44/_ping")
        version = await client.get("/version")
    assert (ping.status_code, ping.text, ping.headers["Api-Version"]) == (200, "OK", API_VERSION)
    assert ping.headers["Content-Type"] == "text/plain"
    assert (head.status_code, head.headers["Content-Length"], head.content) == (200, "0", b"")
    assert version.json()["ApiVersion"] == API_VERSION


async def test_a_request_before_readiness_waits_for_the_routes(nursery: trio.Nursery) -> None:
    gate = StartGate(limit=60)
    url = await serve_gate(nursery, gate)
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=url) as client:

        async def list_containers() -> None:
            answers.append(await client.get("/v1.41/containers/json"))

        async with trio.open_nursery() as requests:
            requests.start_soon(list_containers)
            await trio.testing.wait_all_tasks_blocked(cushion=0.1)
            assert answers == []
            assert (await client.get("/_ping")).status_code == 200  # meanwhile
            assert answers == []
            gate.open(docker_routes(clusterless_engine(nursery)))
    assert (answers[0].status_code, answers[0].json()) == (200, [])


async def test_a_start_that_never_ends_answers_a_docker_error(nursery: trio.Nursery) -> None:
    url = await serve_gate(nursery, StartGate(limit=0.2, step="connecting to the cluster"))
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.post("/containers/create", json={"Image": "busybox"})
    assert answer.status_code == 503
    assert answer.headers["Content-Type"] == "application/json"
    assert "still connecting to the cluster" in answer.json()["message"]


def test_only_kubernetes_refusals_end_the_start_with_their_message() -> None:
    refusal = ClusterUnreachable("cannot reach the Kubernetes API server")
    nested = BaseExceptionGroup("", [ExceptionGroup("", [refusal]), refusal])
    assert _refusals_only(refusal) == [refusal]
    assert _refusals_only(nested) == [refusal, refusal]
    assert _refusals_only(ExceptionGroup("", [refusal, ValueError()])) == []


def kubeconfig(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({  # YAML, as JSON is
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}",
                                               "insecure-skip-tls-verify": True}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u",
                                               "namespace": "default"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
    }))
    return path


def server(tmp_path: Path, api_port: int, *flags: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "kubedock", "server", "--listen-addr", "127.0.0.1:0",
               "--unix-socket", str(tmp_path / "docker.sock"),
               "--kubeconfig", str(kubeconfig(tmp_path, api_port)),
               "--network-names", "external", *flags]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture
def silent_api_server() -> Iterator[int]:
    """An API server that takes connections (the kernel's backlog) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield listener.getsockname()[1]


def test_the_server_answers_ping_while_its_cluster_never_answers(
        tmp_path: Path, silent_api_server: int) -> None:
    process = server(tmp_path, silent_api_server, "--timeout", "1s")
    try:
        _wait_until_listening(tmp_path / "docker.sock", process)
        transport = httpx.HTTPTransport(uds=str(tmp_path / "docker.sock"))
        with httpx.Client(transport=transport, base_url="http://docker", timeout=30) as client:
            ping = client.get("/_ping")
            waited = client.get("/containers/json")
        assert (ping.status_code, ping.text) == (200, "OK")
        assert waited.status_code == 503
        assert "kubedock is not ready after 1s: still" in waited.json()["message"]
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _wait_until_listening(path: Path, process: subprocess.Popen[str]) -> None:
    while True:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(path))
                return
            except OSError:
                assert process.poll() is None, process.communicate()[1]
        time.sleep(0.01)


def test_a_cluster_that_refuses_ends_the_start_with_its_error(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        refusing = listener.getsockname()[1]  # closed from here on
    process = server(tmp_path, refusing)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "cannot reach the Kubernetes API server" in errors
    assert not (tmp_path / "docker.sock").exists()
