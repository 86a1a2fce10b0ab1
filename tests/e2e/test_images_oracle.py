"""The offline images (build/images) behave like their official namesakes on a real Docker engine.

These run against the reference engine from build/oracle/up (the `docker_oracle` fixture) with
the docker CLI, so a failure here is a fault in an image, not in kubedock.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest
import redis

pytestmark = pytest.mark.oracle

Docker = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def docker(docker_oracle: str) -> Iterator[Docker]:
    """Run the docker CLI against the oracle; containers it names are removed afterwards."""
    env = {**os.environ, "DOCKER_HOST": docker_oracle}
    prefix = f"kd-images-{secrets.token_hex(3)}"

    def run(
        *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        command = ["docker", *(arg.replace("{prefix}", prefix) for arg in args)]
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, check=check
        )

    yield run
    leftovers = run("ps", "-aq", "--filter", f"name={prefix}").stdout.split()
    if leftovers:
        run("rm", "-f", *leftovers)


def published(docker: Docker, container: str, port: str) -> tuple[str, int]:
    host, _, number = docker("port", container, port).stdout.splitlines()[0].rpartition(":")
    return host, int(number)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_busybox_echo(docker: Docker) -> None:
    assert docker("run", "--rm", "busybox:1.36", "echo", "hi").stdout == "hi\n"


def test_busybox_exit_code_and_default_tag(docker: Docker) -> None:
    done = docker("run", "--rm", "busybox", "sh", "-c", "exit 3", check=False)
    assert done.returncode == 3


def test_busybox_users_and_tmp(docker: Docker) -> None:
    script = "id -u user; id -u nobody; stat -c %a /tmp; which wget nc httpd tar"
    lines = docker("run", "--rm", "busybox:latest", "sh", "-c", script).stdout.split()
    assert lines[:3] == ["1000", "65534", "1777"]
    assert len(lines) == 7


def test_redis_answers_ping(docker: Docker) -> None:
    docker("run", "-d", "--name", "{prefix}-redis", "-p", "127.0.0.1::6379", "redis:7")
    host, port = published(docker, "{prefix}-redis", "6379/tcp")
    client = redis.Redis(host=host, port=port, socket_timeout=5)
    try:
        wait_until(lambda: "Ready to accept connections" in docker("logs", "{prefix}-redis").stdout,
                   "redis to log that it is ready")  # fmt: skip
        assert client.ping() is True
    finally:
        client.close()
    assert docker("exec", "{prefix}-redis", "/bin/sh", "-c", "redis-cli ping").stdout == "PONG\n"


def test_nginx_serves_the_default_page(docker: Docker) -> None:
    docker("run", "-d", "--name", "{prefix}-nginx", "-p", "127.0.0.1::80", "nginx:1.27")
    host, port = published(docker, "{prefix}-nginx", "80/tcp")

    def answers() -> bool:
        try:
            return httpx.get(f"http://{host}:{port}/", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(answers, "nginx to answer HTTP 200")
    assert "GET / HTTP/1.1" in docker("logs", "{prefix}-nginx").stdout
    stop_signal = docker("image", "inspect", "--format", "{{.Config.StopSignal}}", "nginx:1.27")
    assert stop_signal.stdout.strip() == "SIGQUIT"


def test_postgres_initialises_and_accepts_password_logins(docker: Docker) -> None:
    docker(
        "run", "-d", "--name", "{prefix}-postgres", "-p", "127.0.0.1::5432",
        "-e", "POSTGRES_PASSWORD=secret", "-e", "POSTGRES_DB=shop", "postgres:16",
        "postgres", "-c", "fsync=off",  # what Testcontainers' PostgreSQLContainer passes
    )  # fmt: skip
    ready_line = "database system is ready to accept connections"

    def logs() -> str:
        done = docker("logs", "{prefix}-postgres")
        return done.stdout + done.stderr

    wait_until(lambda: logs().count(ready_line) == 2, "the ready line twice", timeout=60)
    host, port = published(docker, "{prefix}-postgres", "5432/tcp")
    with psycopg.connect(
        host=host, port=port, user="postgres", password="secret", dbname="shop", connect_timeout=5
    ) as connection:
        assert connection.execute("select 1, current_user").fetchone() == (1, "postgres")
        assert connection.execute("show fsync").fetchone() == ("off",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=host, port=port, user="postgres", password="wrong", connect_timeout=5)
    owner = docker("exec", "{prefix}-postgres", "ps", "-o", "user,comm").stdout
    assert "postgres postgres" in owner


def test_noshell_runs_without_a_shell(docker: Docker) -> None:
    docker("run", "-d", "--name", "{prefix}-noshell", "kubedock/noshell:1")
    running = docker("inspect", "--format", "{{.State.Running}}", "{prefix}-noshell")
    assert running.stdout.strip() == "true"
    shell = docker("exec", "{prefix}-noshell", "/bin/sh", "-c", "true", check=False)
    assert shell.returncode != 0 and "/bin/sh" in shell.stdout + shell.stderr
    copied = docker("cp", "{prefix}-noshell:/data/hello.txt", "-")
    assert copied.returncode == 0 and "hello from the no-shell image" in copied.stdout
    started = time.monotonic()
    docker("stop", "{prefix}-noshell")
    assert time.monotonic() - started < 5  # SIGTERM ends it; no 10 s kill timeout
