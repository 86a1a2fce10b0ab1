"""The toolbox: kubedock's own program beside a running container, added on first need.

Copying without the image's tar and stat, exec as another user, any signal and `top` need a
program the image may not have. kubedock adds its own image to the pod as an ephemeral
container the first time one of them is asked for (no cost at start: see the README for the
numbers), then execs `kubedock toolbox ...` in it for every later need of that run.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import trio

from .. import kube
from ._errors import Conflict, EngineError
from ._init import refuse_toolbox
from ._records import Container, files_reachable

# Pulling kubedock's image on a node that has never run it is the longest part.
_READY_SECONDS = 120
_POLL_SECONDS = 0.1
_KILLED = 128 + 9


class ToolboxFailed(EngineError):
    """kubedock's toolbox could not be added to the pod, or failed there (a 500)."""


class Toolbox:
    def __init__(self, cluster: kube.ClusterBoundary, settings: kube.PodSettings) -> None:
        self._cluster = cluster
        self._settings = settings
        # container id → the run (pod, start request) whose pod has a toolbox running.
        self._ready: dict[str, tuple[str, datetime | None]] = {}
        self._adding: dict[str, trio.Lock] = {}

    def ready(self, container: Container) -> bool:
        return self._ready.get(container.id) == _run_of(container)

    def forget(self, container: Container) -> None:
        self._ready.pop(container.id, None)
        self._adding.pop(container.id, None)

    async def ensure(self, container: Container) -> str:
        """The pod of the running `container`, with its toolbox running."""
        run = _run_of(container)
        pod = run[0]
        lock = self._adding.setdefault(container.id, trio.Lock())
        async with lock:
            if self._ready.get(container.id) == run:
                return pod
            await self._cluster.add_ephemeral_container(
                pod, kube.toolbox_container(self._settings))
            with trio.move_on_after(_READY_SECONDS):
                while True:
                    # The kubelet starts no container in a pod whose main has ended or that
                    # is going away: the toolbox would wait there until the pod is gone.
                    if _run_of(container) != run:
                        raise Conflict(f"Container {container.id} is not running")
                    try:
                        if kube.toolbox_running(await self._cluster.get_object(kube.PODS, pod)):
                            break
                    except kube.ToolboxFailed as failure:
                        raise ToolboxFailed(f"kubedock's toolbox did not start in pod {pod}: "
                                          f"{failure}") from None
                    except kube.NotFound:
                        raise Conflict(f"Container {container.id} is not running") from None
                    await trio.sleep(_POLL_SECONDS)
            if not kube.toolbox_running(await self._cluster.get_object(kube.PODS, pod)):
                raise ToolboxFailed(f"kubedock's toolbox did not start in pod {pod} within "
                                  f"{_READY_SECONDS} s")
            self._ready[container.id] = run
        return pod

    @contextlib.asynccontextmanager
    async def exec(self, container: Container, args: Sequence[str], *, stdin: bool = False,
                   stdout: bool = True, stderr: bool = True, tty: bool = False,
                   ) -> AsyncIterator[kube.ExecChannel]:
        """An exec session of `kubedock toolbox args...` beside `container`."""
        if args[0] != "ps":  # a listing of the pod's processes is right with --init too
            refuse_toolbox(container.config, _WHAT.get(args[0], args[0]))
        pod = await self.ensure(container)
        async with self._cluster.exec(pod, toolbox_argv(*args), stdin=stdin, stdout=stdout,
                                      stderr=stderr, tty=tty, container=kube.TOOLBOX) as channel:
            yield channel

    async def run(self, container: Container, *args: str) -> tuple[bytes, str, int]:
        """stdout, stderr and exit code of `kubedock toolbox args...` (-1: no exit code)."""
        out, err = bytearray(), bytearray()
        async with self.exec(container, args) as channel:
            while (message := await channel.receive()) is not None:
                (out if message[0] == 1 else err).extend(message[1])
        if channel.exit_code is None and channel.status_message:
            err.extend(channel.status_message.encode())
        code = channel.exit_code if channel.exit_code is not None else -1
        return bytes(out), err.decode(errors="replace"), code

    async def signal(self, container: Container, number: int) -> None:
        _, err, code = await self.run(container, "signal", str(number))
        # A signal that ends main's process ends its process namespace, the toolbox's
        # processes included: killed, or gone before their exit status was sent.
        if code not in (0, -1, _KILLED):
            raise Conflict(f"Cannot kill container: {container.id}: {err.strip()[-500:]}")

    @contextlib.asynccontextmanager
    async def udp_relay(self, container: Container, port: int) -> AsyncIterator[trio.abc.Stream]:
        """A stream of datagram frames (`wire`'s) to the relay of UDP `port` in the pod.

        The relay listens on a TCP port of the pod's own choosing, which it writes first;
        the stream is a port-forward to it, and the relay lives as long as the stream."""
        pod = await self.ensure(container)
        async with self._cluster.exec(pod, toolbox_argv("udp-relay", str(port)),
                                      container=kube.TOOLBOX) as channel:
            said = b""
            while not said.endswith(b"\n"):
                message = await channel.receive()
                if message is None:
                    raise ToolboxFailed(f"udp-relay: {said.decode(errors='replace')}"
                                        f"{channel.status_message or 'ended'}")
                said += message[1]
            if not said.strip().isdigit():
                raise ToolboxFailed(f"udp-relay: {said.decode(errors='replace').strip()}")
            stream = await self._cluster.open_port_forward(pod, int(said))
            async with stream:
                yield stream

    async def processes(self, container: Container) -> dict[str, Any]:
        out, err, code = await self.run(container, "ps")
        if code != 0:
            raise ToolboxFailed(f"ps: {err.strip()[-500:] or f'exit code {code}'}")
        result: dict[str, Any] = json.loads(out)
        return result


_WHAT = {"archive": "copying files", "exec": "an exec as another user",
         "signal": "delivering a signal"}


def toolbox_argv(*args: str) -> list[str]:
    return [kube.TOOLBOX_PROGRAM, "toolbox", *args]


def _run_of(container: Container) -> tuple[str, datetime | None]:
    if not files_reachable(container):
        raise Conflict(f"Container {container.id} is not running")
    assert container.pod_name is not None
    return container.pod_name, container.start_requested_at
