"""``docker attach``: a container's output as it happens, and its stdin.

Output is read from the container's log (followed), not from a Kubernetes attach session: the
log has stdout and stderr apart, and holds what the process printed before the session could
open, which matters because clients attach before start and short-lived containers may be done
before any session exists. Stdin goes through a Kubernetes attach session.
"""

from __future__ import annotations

import contextlib
import time

import attrs
import trio

from .. import kube, wire
from ._exec import detach_sequence, pump_stdin
from ._logs import LogRequest, cancel_at_exit, send_logs
from ._records import Container


@attrs.frozen
class AttachRequest:
    stdin: bool
    stdout: bool
    stderr: bool
    logs: bool  # replay what was logged before the attach
    # Follow the output (and pass stdin) until the process ends; without it only the replay.
    stream: bool = True
    # Docker's key spec (None: its default) that ends a terminal session, checked at once.
    detach_keys: str | None = attrs.field(default=None, validator=lambda _request, _field, spec:
                                          detach_sequence(spec, "detach"))


async def attach(
    cluster: kube.ClusterBoundary, container: Container, stream: trio.abc.HalfCloseableStream,
    request: AttachRequest,
) -> None:
    """Serve one attach until the container's process ends or the client goes away."""
    if not request.stream:
        try:
            if request.logs:
                await _pump_output(cluster, container, stream, LogRequest(
                    stdout=request.stdout, stderr=request.stderr))
        finally:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.aclose()
        return
    attached_before_start = container.status == "created"
    since = None if request.logs or attached_before_start else time.time()
    container.attached += 1
    try:
        while container.status == "created" and not container.removed:
            await container.changed.wait()
        if container.removed or container.pod_name is None:
            return
        interactive = (request.stdin and container.config.open_stdin
                       and container.status == "running")
        if interactive and container.config.tty:
            await _attach_terminal(cluster, container, stream, request, since)
            return
        async with trio.open_nursery() as nursery:
            if interactive:
                nursery.start_soon(_attach_stdin, cluster, container, stream)
            if request.stdout or request.stderr:
                await _pump_output(cluster, container, stream, LogRequest(
                    stdout=request.stdout, stderr=request.stderr, follow=True, since=since))
            else:
                while container.status == "running":
                    await container.changed.wait()
            nursery.cancel_scope.cancel()
    finally:
        container.attached -= 1
        container.notify()
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.aclose()


async def _pump_output(
    cluster: kube.ClusterBoundary, container: Container, stream: trio.abc.HalfCloseableStream,
    request: LogRequest,
) -> None:
    send, receive = trio.open_memory_channel[tuple[int, bytes]](64)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_logs, cluster, container, request, send)
        async with receive:
            async for number, data in receive:
                payload = data if container.config.tty else wire.frame(wire.Stream(number), data)
                try:
                    await stream.send_all(payload)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    nursery.cancel_scope.cancel()
                    return


async def _attach_stdin(
    cluster: kube.ClusterBoundary, container: Container, stream: trio.abc.HalfCloseableStream
) -> None:
    assert container.pod_name is not None
    async with cluster.attach(
        container.pod_name, stdin=True, stdout=False, stderr=False, tty=container.config.tty,
    ) as channel, trio.open_nursery() as nursery:
        if container.config.tty:
            nursery.start_soon(container.terminal.follow, channel)
        await pump_stdin(stream, channel)
        # Under v4 the process only sees EOF when the session ends; keep it open until then
        # only when the session can half-close.
        if channel.can_close_stdin:
            while await channel.receive() is not None:
                pass
        nursery.cancel_scope.cancel()


async def _attach_terminal(
    cluster: kube.ClusterBoundary, container: Container, stream: trio.abc.HalfCloseableStream,
    request: AttachRequest, since: float | None,
) -> None:
    """A terminal session: the screen comes from the session, not the log, whose lines are only
    written once complete (a prompt, or keys echoed as they are typed, would never show).

    The lines printed before the session opens are only in the log: they are sent first. What
    is printed while it opens is lost, as with ``kubectl attach``; a shell redraws its prompt
    on the resize that the client sends on start.

    The detach keys end the session as they end Docker's: the stream closes, the process runs
    on with its stdin open."""
    assert container.pod_name is not None
    stdout = request.stdout
    if stdout:
        await _pump_output(cluster, container, stream,
                           LogRequest(stdout=True, stderr=False, since=since))
    async with cluster.attach(
        container.pod_name, stdin=True, stdout=stdout, stderr=False, tty=True,
    ) as channel, trio.open_nursery() as nursery:
        nursery.start_soon(container.terminal.follow, channel)
        nursery.start_soon(_stdin_until_detached, stream, channel,
                           detach_sequence(request.detach_keys, "detach"), nursery.cancel_scope)
        if container.supervisor is not None:  # the session outlives a supervised program
            nursery.start_soon(cancel_at_exit, container, container.pod_name,
                               nursery.cancel_scope)
        while (message := await channel.receive()) is not None:
            try:
                await stream.send_all(message[1])
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                break
        nursery.cancel_scope.cancel()


async def _stdin_until_detached(stream: trio.abc.HalfCloseableStream, channel: kube.ExecChannel,
                                detach_keys: bytes, session: trio.CancelScope) -> None:
    if await pump_stdin(stream, channel, detach_keys):
        session.cancel()
