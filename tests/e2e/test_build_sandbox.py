"""The build sandbox (`kubedock.build.open_sandbox`) in a real pod of kubedock's own image:
busybox's layers applied, steps run chrooted, their changes taken out as a layer."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

import kubedock
from kubedock.build import Sandbox, StepCommand, StepNotStarted, open_sandbox
from kubedock.kube import PODS, Cluster, PodSettings

pytestmark = pytest.mark.cluster

INSTANCE = secrets.token_hex(6)
_MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
))


@pytest.fixture(scope="module")
def kube_env(cluster: Any, namespace: str, current_images: None) -> tuple[str, str, str]:
    return str(cluster.kubeconfig), namespace, cluster.registry


@asynccontextmanager
async def sandbox_of(kube_env: tuple[str, str, str]) -> AsyncIterator[tuple[Cluster, Sandbox]]:
    kubeconfig, namespace, _ = kube_env
    kube = await Cluster.connect(kubeconfig=kubeconfig, namespace=namespace)
    settings = PodSettings(namespace=namespace, instance_id=INSTANCE,
                           pull_policy="ifnotpresent",
                           init_image=f"kubedock/kubedock:{kubedock.__version__}")
    try:
        async with open_sandbox(kube, settings) as sandbox:
            yield kube, sandbox
    finally:
        await kube.aclose()


async def apply_image(sandbox: Sandbox, registry: str, repository: str, tag: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://{registry}/v2/{repository}") as client:
        answer = await client.get(f"/manifests/{tag}", headers={"Accept": _MANIFEST_TYPES})
        answer.raise_for_status()
        for layer in json.loads(answer.content)["layers"]:
            async with client.stream("GET", f"/blobs/{layer['digest']}") as blob:
                blob.raise_for_status()
                await sandbox.apply_layer(blob.aiter_bytes())


async def run(sandbox: Sandbox, *argv: str, user: str = "",
              env: tuple[tuple[str, str], ...] = ()) -> tuple[int, bytes]:
    output = bytearray()

    async def take(data: bytes) -> None:
        output.extend(data)

    code = await sandbox.run(StepCommand(argv=argv, env=env, user=user, workdir="/"), take,
                             take)
    return code, bytes(output)


async def layer(sandbox: Sandbox) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    data = bytearray()

    async def take(chunk: bytes) -> None:
        data.extend(chunk)

    await sandbox.snapshot(take)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {member.name: (member, archive.extractfile(member).read()  # type: ignore[union-attr]
                              if member.isfile() else b"") for member in archive}


async def sandbox_pods(kube_env: tuple[str, str, str]) -> list[str]:
    kubeconfig, namespace, _ = kube_env
    kube = await Cluster.connect(kubeconfig=kubeconfig, namespace=namespace)
    try:
        pods = await kube.list_objects(PODS, f"kubedock.id={INSTANCE}")
    finally:
        await kube.aclose()
    return [pod["metadata"]["name"] for pod in pods]


async def test_steps_on_busybox(kube_env: tuple[str, str, str]) -> None:
    async with sandbox_of(kube_env) as (_, sandbox):
        await apply_image(sandbox, kube_env[2], "library/busybox", "1.36")
        assert await layer(sandbox) == {}

        assert await run(sandbox, "/bin/sh", "-c", "echo hi > /x; rm /bin/true") == (0, b"")
        changes = await layer(sandbox)
        # This busybox keeps its programs in /usr/bin (/bin links there).
        assert sorted(changes) == ["usr/bin", "usr/bin/.wh.true", "x"]
        member, content = changes["x"]
        assert (content, member.uid, member.mode) == (b"hi\n", 0, 0o644)

        assert await run(sandbox, "id", user="nobody") == (
            0, b"uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)\n")
        # A user made by one step is the USER of the next.
        # (This busybox has no adduser.)
        assert await run(sandbox, "/bin/sh", "-c",
                         "echo app:x:1234:1234::/home/app:/bin/sh >> /etc/passwd"
                         " && echo app:x:1234: >> /etc/group"
                         " && mkdir -p /home/app && chown app:app /home/app") == (0, b"")
        assert await run(sandbox, "/bin/sh", "-c", "id -u; echo $HOME; touch ~/mine",
                         user="app") == (0, b"1234\n/home/app\n")
        changes = await layer(sandbox)
        assert sorted(changes) == ["etc/group", "etc/passwd", "home", "home/app",
                                   "home/app/mine"]
        assert changes["home/app/mine"][0].uid == 1234
        assert await run(sandbox, "/bin/sh", "-c", "echo $GREETING $HOME",
                         env=(("GREETING", "hello"),)) == (0, b"hello /root\n")
        assert (await run(sandbox, "/bin/sh", "-c", "echo out; echo err >&2; exit 7"))[0] == 7
        # A program that cannot start is the runtime's error, as Docker's builder reports it.
        with pytest.raises(StepNotStarted, match=r'exec: "nosuchprogram": executable file not'):
            await run(sandbox, "nosuchprogram")
        with pytest.raises(StepNotStarted, match=r'exec: "/etc/passwd": '):
            await run(sandbox, "/etc/passwd")
        code, output = await run(sandbox, "/bin/sh", "-c",
                                 "grep -c nameserver /etc/resolv.conf; ls /dev")
        assert code == 0 and output.split()[0] != b"0"
        assert b"null" in output and b"urandom" in output
        assert await layer(sandbox) == {}

        await sandbox.reset()
        with pytest.raises(StepNotStarted):
            await run(sandbox, "/bin/sh")
        assert await layer(sandbox) == {}


async def test_cancelled_step_leaves_no_pod(kube_env: tuple[str, str, str]) -> None:
    async def ignore(data: bytes) -> None:
        pass

    with trio.move_on_after(120) as cancelled:
        async with sandbox_of(kube_env) as (_, sandbox):
            await apply_image(sandbox, kube_env[2], "library/busybox", "1.36")
            during = await sandbox_pods(kube_env)
            cancelled.deadline = trio.current_time() + 2  # cut the step short
            await sandbox.run(StepCommand(argv=("sleep", "600"), env=(), user="", workdir="/"),
                              ignore, ignore)
    assert cancelled.cancelled_caught and len(during) == 1
    for _ in range(150):
        if not await sandbox_pods(kube_env):
            break
        await trio.sleep(0.2)
    else:
        raise AssertionError(f"the sandbox pod is still there: {await sandbox_pods(kube_env)}")
