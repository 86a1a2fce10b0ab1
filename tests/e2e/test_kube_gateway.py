"""kubedock.kube and kubedock.expose against the real local cluster."""

import hashlib
import math
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio

from kubedock.expose import serve_port_forward, serve_reverse_proxy
from kubedock.kube import (
    Cluster,
    ContainerObservation,
    ContainerSpec,
    PodSettings,
    pod_manifest,
)

pytestmark = pytest.mark.cluster

BUSYBOX = "busybox:1.36"
INSTANCE = secrets.token_hex(6)
# stdout and stderr lines first, so the split-streams test has both; then a web server.
SERVE = (
    "mkdir -p /www && echo hello from the pod > /www/index.html"
    " && echo to-stdout && sleep 0.2 && echo to-stderr >&2 && exec httpd -f -p 8080 -h /www"
)


def container(name: str, *cmd: str, image: str = BUSYBOX) -> ContainerSpec:
    return ContainerSpec(
        container_id=secrets.token_hex(32),
        name=name,
        image=image,
        cmd=cmd,
        stop_grace_seconds=0,
    )


def settings(namespace: str) -> PodSettings:
    return PodSettings(namespace=namespace, instance_id=INSTANCE, pull_policy="ifnotpresent")


@asynccontextmanager
async def connected(kube_env: tuple[str, str]) -> AsyncIterator[Cluster]:
    kubeconfig, namespace = kube_env
    kube = await Cluster.connect(kubeconfig=kubeconfig, namespace=namespace)
    try:
        yield kube
    finally:
        await kube.aclose()


async def wait_for(
    kube: Cluster,
    pod: str,
    condition: Callable[[ContainerObservation], bool],
    *,
    seconds: float = 90,
    before: Callable[[], Any] | None = None,
) -> ContainerObservation:
    """Watch `pod` until `condition` holds; `before` runs once the watch is live."""
    send, receive = trio.open_memory_channel[ContainerObservation](math.inf)
    async with trio.open_nursery() as nursery:
        await nursery.start(kube.watch_pods, f"kubedock.id={INSTANCE}", send.send_nowait)
        if before is not None:
            await before()
        with trio.fail_after(seconds):
            async for seen in receive:
                if seen.pod_name == pod and condition(seen):
                    nursery.cancel_scope.cancel()
                    return seen
    raise AssertionError("unreachable")


async def start_pod(kube: Cluster, spec: ContainerSpec) -> str:
    manifest = pod_manifest(spec, settings(kube.namespace))
    name: str = manifest["metadata"]["name"]
    seen = await wait_for(
        kube,
        name,
        lambda seen: seen.state != "waiting" or seen.fatal or seen.stalled,
        before=partial(kube.create_pod, manifest),
    )
    assert seen.state == "running", seen
    return name


@pytest.fixture(scope="module")
def kube_env(cluster: Any, namespace: str) -> tuple[str, str]:
    return str(cluster.kubeconfig), namespace


@pytest.fixture(scope="module")
def web_pod(kube_env: tuple[str, str]) -> str:
    async def start() -> str:
        async with connected(kube_env) as kube:
            return await start_pod(kube, container("web", "sh", "-c", SERVE))

    return trio.run(start)


async def run_exec(kube: Cluster, pod: str, argv: list[str], stdin: bytes | None = None) -> Any:
    out, err = b"", b""
    async with kube.exec(pod, argv, stdin=stdin is not None) as channel:
        if stdin is not None:
            await channel.send_stdin(stdin)
            await channel.close_stdin()
        while item := await channel.receive():
            if item[0] == 1:
                out += item[1]
            else:
                err += item[1]
    return channel.exit_code, out, err


async def test_exec_exit_codes(kube_env: tuple[str, str], web_pod: str) -> None:
    async with connected(kube_env) as kube:
        assert await run_exec(kube, web_pod, ["sh", "-c", "echo hi; echo oops >&2"]) == (
            0,
            b"hi\n",
            b"oops\n",
        )
        code, _, _ = await run_exec(kube, web_pod, ["sh", "-c", "exit 3"])
        assert code == 3
        # A command that cannot start: 126, as Docker reports it (the runtime's error, not a
        # shell's "not found").
        code, _, _ = await run_exec(kube, web_pod, ["no-such-binary"])
        assert code == 126


async def test_exec_stdin(kube_env: tuple[str, str], web_pod: str) -> None:
    payload = b"line one\n" + bytes(range(256)) * 400
    async with connected(kube_env) as kube:
        with trio.fail_after(30):
            assert await run_exec(kube, web_pod, ["cat"], stdin=payload) == (0, payload, b"")


async def test_logs_split_streams(kube_env: tuple[str, str], web_pod: str) -> None:
    async def read(kube: Cluster, **options: Any) -> bytes:
        data = b""
        async with kube.logs(web_pod, **options) as chunks:
            async for chunk in chunks:
                data += chunk
        return data

    async with connected(kube_env) as kube:
        assert await kube.split_streams_supported()
        assert await read(kube) == b"to-stdout\nto-stderr\n"
        assert await read(kube, stream="Stdout") == b"to-stdout\n"
        assert await read(kube, stream="Stderr") == b"to-stderr\n"
        assert await read(kube, tail_lines=1) == b"to-stderr\n"


async def test_logs_follow(kube_env: tuple[str, str], web_pod: str) -> None:
    async with connected(kube_env) as kube:
        received = b""
        with trio.fail_after(30):
            async with kube.logs(web_pod, follow=True, stream="Stdout") as chunks:
                # Written by another process into the main process's stdout.
                await run_exec(kube, web_pod, ["sh", "-c", "echo followed > /proc/1/fd/1"])
                async for chunk in chunks:
                    received += chunk
                    if b"followed" in received:
                        break
        assert received == b"to-stdout\nfollowed\n"


async def http_get(port: int, path: str = "/index.html") -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        response = b""
        while data := await stream.receive_some():
            response += data
    return response


async def test_port_forward(kube_env: tuple[str, str], web_pod: str) -> None:
    async with connected(kube_env) as kube, trio.open_nursery() as nursery:
        port = await nursery.start(serve_port_forward, kube, web_pod, 8080)
        with trio.fail_after(30):
            for _ in range(3):
                response = await http_get(port)
                assert response.startswith(b"HTTP/1.")
                assert response.endswith(b"hello from the pod\n")
        nursery.cancel_scope.cancel()


async def test_port_forward_carries_bytes_exactly_to_a_slow_reader(
    kube_env: tuple[str, str], web_pod: str
) -> None:
    async with connected(kube_env) as kube, trio.open_nursery() as nursery:
        code, out, _ = await run_exec(kube, web_pod, [
            "sh", "-c", "head -c 5000007 /dev/urandom > /www/random && md5sum < /www/random"])
        assert code == 0
        port = await nursery.start(serve_port_forward, kube, web_pod, 8080)
        with trio.fail_after(60):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(b"GET /random HTTP/1.0\r\n\r\n")
                response = bytearray()
                while data := await stream.receive_some(64 * 1024):
                    response += data
                    if len(response) < 1024 * 1024:
                        await trio.sleep(0.05)
        body = bytes(response).split(b"\r\n\r\n", 1)[1]
        assert len(body) == 5000007
        assert hashlib.md5(body).hexdigest() == out.split()[0].decode()
        nursery.cancel_scope.cancel()


async def test_port_forward_waits_for_a_late_listener(
    kube_env: tuple[str, str], web_pod: str
) -> None:
    async with connected(kube_env) as kube, trio.open_nursery() as nursery:
        port = await nursery.start(serve_port_forward, kube, web_pod, 9090)

        async def listen_later() -> None:
            await trio.sleep(1.5)
            await run_exec(kube, web_pod, ["httpd", "-p", "9090", "-h", "/www"])

        nursery.start_soon(listen_later)
        with trio.fail_after(30):
            assert (await http_get(port)).endswith(b"hello from the pod\n")
        nursery.cancel_scope.cancel()


async def test_reverse_proxy_to_the_pod_ip(kube_env: tuple[str, str], web_pod: str) -> None:
    # This machine is the cluster's node, so pod IPs route here as they would in-cluster.
    async with connected(kube_env) as kube, trio.open_nursery() as nursery:
        seen = await wait_for(kube, web_pod, lambda seen: seen.pod_ip is not None)
        assert seen.pod_ip is not None
        port = await nursery.start(serve_reverse_proxy, seen.pod_ip, 8080)
        with trio.fail_after(30):
            assert (await http_get(port)).endswith(b"hello from the pod\n")
        nursery.cancel_scope.cancel()


async def test_exit_code_and_delete(kube_env: tuple[str, str]) -> None:
    spec = container("exits", "sh", "-c", "echo bye; exit 3")
    async with connected(kube_env) as kube:
        manifest = pod_manifest(spec, settings(kube.namespace))
        name = manifest["metadata"]["name"]
        seen = await wait_for(
            kube,
            name,
            lambda seen: seen.state == "terminated",
            before=partial(kube.create_pod, manifest),
        )
        assert (seen.exit_code, seen.reason, seen.fatal) == (3, "Error", False)
        assert seen.finished_at is not None
        gone = await wait_for(
            kube, name, lambda seen: seen.deleted, before=partial(kube.delete_pod, name)
        )
        assert gone.exit_code == 3
        await kube.delete_pod(name)  # already gone: fine


async def test_invalid_image_is_fatal(kube_env: tuple[str, str]) -> None:
    spec = container("bad", "true", image="Not/A:Valid@Image")
    async with connected(kube_env) as kube:
        manifest = pod_manifest(spec, settings(kube.namespace))
        name = manifest["metadata"]["name"]
        seen = await wait_for(
            kube, name, lambda seen: seen.fatal, before=partial(kube.create_pod, manifest)
        )
        assert seen.reason == "InvalidImageName"
        await kube.delete_all(f"kubedock.containerid={spec.short_id}", grace_seconds=0)
