"""docker-py and testcontainers-python against kubedock."""

from __future__ import annotations

import gc
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import docker
import psycopg
import pytest
import redis
from kubedock_server import Kubedock
from testcontainers.community.postgres import PostgresContainer
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

pytestmark = pytest.mark.cluster


def test_run_detached_then_wait(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox:1.36", ["sh", "-c", "echo done; exit 4"],
                                      detach=True)
    try:
        assert container.wait(timeout=120)["StatusCode"] == 4
        assert container.logs() == b"done\n"
        container.reload()
        assert container.status == "exited"
    finally:
        container.remove(force=True)


# docker-py leaves the socket of a streamed exec to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_exec_run(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox:1.36", ["sleep", "300"], detach=True)
    try:
        result = container.exec_run(["sh", "-c", "echo $A; echo err >&2; exit 2"],
                                    environment={"A": "1"}, demux=True)
        assert result.exit_code == 2
        assert result.output == (b"1\n", b"err\n")
        assert container.exec_run("pwd", workdir="/etc").output == b"/etc\n"
        chunks = list(container.exec_run(["sh", "-c", "echo a; echo b"], stream=True).output)
        assert b"".join(chunks) == b"a\nb\n"
        gc.collect()
    finally:
        container.remove(force=True)


def test_logs_follow_ends_with_the_container(client: docker.DockerClient) -> None:
    container = client.containers.run(
        "busybox:1.36", ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done"], detach=True)
    try:
        assert b"".join(container.logs(stream=True, follow=True)) == b"1\n2\n3\n"
    finally:
        container.remove(force=True)


@pytest.fixture
def testcontainers_env(kubedock: Kubedock) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(DOCKER_HOST=kubedock.host, TESTCONTAINERS_RYUK_DISABLED="true")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.usefixtures("testcontainers_env")
def test_testcontainers_redis() -> None:
    redis_container = DockerContainer("redis:7").with_exposed_ports(6379).waiting_for(
        LogMessageWaitStrategy("Ready to accept connections"))
    with redis_container as container:
        port = int(container.get_exposed_port(6379))
        with redis.Redis(host=container.get_container_host_ip(), port=port) as connection:
            assert connection.ping()
            connection.set("key", "value")
            assert connection.get("key") == b"value"


@pytest.mark.usefixtures("testcontainers_env")
def test_testcontainers_postgres() -> None:
    with (PostgresContainer("postgres:16", driver=None) as postgres,
          psycopg.connect(postgres.get_connection_url()) as connection):
        assert connection.execute("select 40 + 2").fetchone() == (42,)


def _post(kubedock: Kubedock, path: str, body: bytes, content_type: str = "application/json"
          ) -> tuple[int, str, dict[str, object]]:
    request = urllib.request.Request(f"http://127.0.0.1:{kubedock.port}{path}", data=body,
                                     headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            document = json.loads(answer.read() or b"null")
            return answer.status, answer.headers["Content-Type"], document
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], json.loads(error.read())


@pytest.mark.parametrize(("body", "status", "text"), [
    (b"{not json", 400, "invalid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"Image": 5}', 400, "Image"),
    (b'{"Image": "busybox:1.36", "Cmd": {"a": 1}}', 400, "Cmd"),
    (b'{"Image": "busybox:1.36", "HostConfig": {"Privileged": true}}', 501, "Privileged"),
    (b"x" * (5 * 1024 * 1024), 413, "too large"),
])
def test_bad_create_bodies(kubedock: Kubedock, body: bytes, status: int, text: str) -> None:
    code, content_type, document = _post(kubedock, "/v1.45/containers/create", body)
    assert code == status
    assert content_type == "application/json"
    assert text in str(document["message"])


def test_unknown_route_and_container(kubedock: Kubedock) -> None:
    code, _, document = _post(kubedock, "/v1.45/containers/nope/start", b"")
    assert (code, document) == (404, {"message": "No such container: nope"})
    code, _, document = _post(kubedock, "/v1.45/no/such/route", b"")
    assert (code, document) == (404, {"message": "page not found"})


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_exec_tty_follows_resize(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox:1.36", ["sleep", "300"], detach=True)
    try:
        exec_id = client.api.exec_create(container.id, ["sh", "-c", "sleep 2; stty size"],
                                         tty=True)["Id"]
        output = client.api.exec_start(exec_id, tty=True, stream=True)
        time.sleep(0.5)
        client.api.exec_resize(exec_id, height=33, width=77)
        assert b"".join(output).strip() == b"33 77"
        gc.collect()
    finally:
        container.remove(force=True)
