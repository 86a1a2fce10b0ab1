"""Terminal sessions (detach keys on exec and attach, which side has a terminal): kubedock's app
on a real server, with a scripted cluster whose processes are terminal `cat`s (what they read on
stdin comes back on their output)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
import trio
from clusterless import clusterless_engine

from kubedock.api import create_app, serve_http
from kubedock.engine import Container, Engine

HEAD_END = b"\r\n\r\n"


class TerminalCat:
    """A session with a `cat` on a terminal; `finish` ends the process."""

    can_close_stdin = True

    def __init__(self) -> None:
        self.stdin = b""
        self.stdin_closed = trio.Event()
        self.exit_code: int | None = None
        self.start_failure: str | None = None
        self._output_in, self._output = trio.open_memory_channel[bytes | None](16)

    async def send_stdin(self, data: bytes) -> None:
        self.stdin += data
        await self._output_in.send(data)

    async def close_stdin(self) -> None:
        self.stdin_closed.set()
        await trio.lowlevel.checkpoint()

    async def resize(self, width: int, height: int) -> None:
        await trio.lowlevel.checkpoint()

    async def receive(self) -> tuple[int, bytes] | None:
        data = await self._output.receive()
        return None if data is None else (1, data)

    async def finish(self, code: int) -> None:
        self.exit_code = code
        await self._output_in.send(None)


class ScriptedCluster:
    def __init__(self) -> None:
        self.sessions: list[TerminalCat] = []
        self.streams: list[dict[str, bool]] = []  # what each session asked for

    @contextlib.asynccontextmanager
    async def _session(self, streams: dict[str, bool]) -> AsyncIterator[TerminalCat]:
        session = TerminalCat()
        self.sessions.append(session)
        self.streams.append(streams)
        yield session

    def exec(self, pod: str, argv: list[str], **streams: bool
             ) -> contextlib.AbstractAsyncContextManager[TerminalCat]:
        return self._session(streams)

    def attach(self, pod: str, **streams: bool
               ) -> contextlib.AbstractAsyncContextManager[TerminalCat]:
        return self._session(streams)

    async def split_streams_supported(self) -> bool:
        return False

    @contextlib.asynccontextmanager
    async def logs(self, pod: str, **options: Any) -> AsyncIterator[AsyncIterator[bytes]]:
        async def nothing() -> AsyncIterator[bytes]:
            return
            yield b""

        yield nothing()


@pytest.fixture
async def server(nursery: trio.Nursery) -> tuple[Engine, ScriptedCluster, tuple[str, int]]:
    cluster = ScriptedCluster()
    engine = clusterless_engine(nursery, cluster)
    (bound,) = await nursery.start(partial(serve_http, create_app(engine), ["127.0.0.1:0"]))
    host, port = bound.rsplit(":", 1)
    return engine, cluster, (host, int(port))


def running_terminal(engine: Engine) -> Container:
    from kubedock.engine import ContainerConfig

    container = engine.create("term", ContainerConfig(image="busybox:1.36", tty=True,
                                                       open_stdin=True))
    # As the pod watch would leave it once the pod runs.
    container.status, container.pod_name = "running", "pod"
    return container


async def request(address: tuple[str, int], method: str, path: str,
                  body: dict[str, Any] | None = None) -> tuple[int, Any]:
    payload = json.dumps(body).encode() if body is not None else b""
    async with await trio.open_tcp_stream(*address) as client:
        await client.send_all(
            f"{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload)
        answer = b""
        with trio.fail_after(5):
            while data := await client.receive_some():
                answer += data
    head, _, content = answer.partition(HEAD_END)
    return int(head.split()[1]), json.loads(content) if content.strip() else None


async def open_session(address: tuple[str, int], path: str, body: bytes = b""
                       ) -> trio.SocketStream:
    client = await trio.open_tcp_stream(*address)
    await client.send_all(
        f"POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    head = b""
    with trio.fail_after(5):
        while HEAD_END not in head:
            head += await client.receive_some(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n"), head
    return client


async def until_closed(client: trio.SocketStream) -> bytes:
    received = b""
    with trio.fail_after(5):
        while data := await client.receive_some():
            received += data
    return received


async def type_keys(client: trio.SocketStream, *keys: bytes) -> None:
    for key in keys:  # one key at a time, as typed
        await client.send_all(key)
        await trio.sleep(0.05)


async def receive_exactly(client: trio.SocketStream, expected: bytes) -> None:
    received = b""
    with trio.fail_after(5):
        while len(received) < len(expected):
            received += await client.receive_some()
    assert received == expected


async def test_exec_detaches_at_the_default_keys_and_the_process_runs_on(
        server: tuple[Engine, ScriptedCluster, tuple[str, int]]) -> None:
    engine, cluster, address = server
    container = running_terminal(engine)
    status, created = await request(address, "POST", f"/containers/{container.id}/exec", {
        "Cmd": ["cat"], "Tty": True, "AttachStdin": True, "AttachStdout": True})
    assert status == 201
    exec_id = created["Id"]
    client = await open_session(address, f"/exec/{exec_id}/start", b'{"Tty":true}')
    await type_keys(client, b"hi\n")
    await receive_exactly(client, b"hi\n")
    await type_keys(client, b"\x10", b"x", b"\x10", b"\x11")
    assert await until_closed(client) == (
        b"\x10x"  # a broken sequence is the process's input after all
        b"exec attach failed: error on attach stdin: read escape sequence\r\n")
    (session,) = cluster.sessions
    assert (session.stdin, session.stdin_closed.is_set()) == (b"hi\n\x10x", False)
    assert (await request(address, "GET", f"/exec/{exec_id}/json"))[1]["Running"] is True
    await session.finish(0)
    with trio.fail_after(5):
        await engine.execs.get(exec_id).finished.wait()
    inspected = (await request(address, "GET", f"/exec/{exec_id}/json"))[1]
    assert (inspected["Running"], inspected["ExitCode"]) == (False, 0)
    await client.aclose()


# The API says DetachKeys; docker-py sends detachKeys, which Go's JSON decoding takes too.
@pytest.mark.parametrize("member", ["DetachKeys", "detachKeys"])
async def test_exec_with_its_own_keys(server: tuple[Engine, ScriptedCluster, tuple[str, int]],
                                      member: str) -> None:
    engine, cluster, address = server
    container = running_terminal(engine)
    _, created = await request(address, "POST", f"/containers/{container.id}/exec", {
        "Cmd": ["cat"], "Tty": True, "AttachStdin": True, "AttachStdout": True,
        member: "ctrl-x,y"})
    assert (await request(address, "GET", f"/exec/{created['Id']}/json"))[1]["DetachKeys"] == \
        "ctrl-x,y"
    client = await open_session(address, f"/exec/{created['Id']}/start", b'{"Tty":true}')
    await type_keys(client, b"\x10", b"\x11", b"\x18", b"y")
    assert await until_closed(client) == (
        b"\x10\x11exec attach failed: error on attach stdin: read escape sequence\r\n")
    assert cluster.sessions[0].stdin == b"\x10\x11"
    await client.aclose()


async def test_without_a_terminal_the_keys_are_input(
        server: tuple[Engine, ScriptedCluster, tuple[str, int]]) -> None:
    engine, cluster, address = server
    container = running_terminal(engine)
    _, created = await request(address, "POST", f"/containers/{container.id}/exec", {
        "Cmd": ["cat"], "AttachStdin": True, "AttachStdout": True})
    client = await open_session(address, f"/exec/{created['Id']}/start", b"{}")
    await type_keys(client, b"\x10", b"\x11")
    await client.send_eof()
    (session,) = cluster.sessions
    with trio.fail_after(5):
        await session.stdin_closed.wait()
    await session.finish(0)
    assert await until_closed(client) == b"\x01\x00\x00\x00\x00\x00\x00\x01\x10" \
        b"\x01\x00\x00\x00\x00\x00\x00\x01\x11"
    assert session.stdin == b"\x10\x11"
    await client.aclose()


@pytest.mark.parametrize(("query", "keys"), [("", (b"\x10", b"\x11")),
                                             ("?detachKeys=a,ctrl-b", (b"a", b"\x02"))])
async def test_attach_detaches_and_the_container_runs_on(
        server: tuple[Engine, ScriptedCluster, tuple[str, int]], query: str,
        keys: tuple[bytes, ...]) -> None:
    engine, cluster, address = server
    container = running_terminal(engine)
    client = await open_session(
        address, f"/containers/{container.id}/attach?stream=1&stdin=1&stdout=1"
        + query.replace("?", "&"))
    await type_keys(client, b"ls\r")
    await receive_exactly(client, b"ls\r")
    await type_keys(client, *keys)
    # Docker says nothing: the stream just ends.
    assert await until_closed(client) == b""
    (session,) = cluster.sessions
    assert (session.stdin, session.stdin_closed.is_set()) == (b"ls\r", False)
    assert container.status == "running"
    await client.aclose()


async def test_attach_ignores_a_body(
        server: tuple[Engine, ScriptedCluster, tuple[str, int]]) -> None:
    engine, _, address = server
    container = running_terminal(engine)
    client = await trio.open_tcp_stream(*address)
    await client.send_all(
        f"POST /containers/{container.id}/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\n"
        "Host: docker\r\nContent-Length: 2\r\n\r\n".encode())
    await trio.sleep(0.1)  # the body comes after the route started
    await client.send_all(b"{}")
    assert (await client.receive_some()).startswith(b"HTTP/1.1 200 OK\r\n")
    await type_keys(client, b"\x10", b"\x11")  # ctrl-p ctrl-q
    assert await until_closed(client) == b""
    await client.aclose()


@pytest.mark.parametrize("keys", ["ctrl-", "ctrl-P", "ab", ","])
async def test_bad_keys_are_refused(server: tuple[Engine, ScriptedCluster, tuple[str, int]],
                                    keys: str) -> None:
    engine, cluster, address = server
    container = running_terminal(engine)
    status, answer = await request(address, "POST", f"/containers/{container.id}/exec", {
        "Cmd": ["cat"], "Tty": True, "AttachStdin": True, "DetachKeys": keys})
    assert (status, answer) == (400, {"message": f"Invalid escape keys ({keys}) provided"})
    status, answer = await request(
        address, "POST", f"/containers/{container.id}/attach?stream=1&stdin=1&detachKeys={keys}")
    assert (status, answer) == (400, {"message": f"Invalid detach keys ({keys}) provided"})
    assert cluster.sessions == []


@pytest.mark.parametrize(("create_tty", "start_tty", "received"), [
    # The process has a terminal when the exec was created with one; the start request says
    # whether the stream is multiplexed (as Docker does).
    (True, False, b"\x01\x00\x00\x00\x00\x00\x00\x04hi\r\n"),
    (False, True, b"hi\r\n"),
])
async def test_the_terminal_is_the_exec_s_the_framing_the_start_s(
        server: tuple[Engine, ScriptedCluster, tuple[str, int]], create_tty: bool,
        start_tty: bool, received: bytes) -> None:
    engine, cluster, address = server
    container = running_terminal(engine)
    _, created = await request(address, "POST", f"/containers/{container.id}/exec", {
        "Cmd": ["cat"], "Tty": create_tty, "AttachStdin": True, "AttachStdout": True,
        "AttachStderr": True})
    client = await open_session(address, f"/exec/{created['Id']}/start",
                                json.dumps({"Tty": start_tty}).encode())
    await type_keys(client, b"hi\r\n")
    await receive_exactly(client, received)
    await cluster.sessions[0].finish(0)
    assert await until_closed(client) == b""
    # Without a terminal on either side, stderr would be asked for too.
    assert cluster.streams == [{"stdin": True, "stdout": True, "stderr": False, "tty": create_tty}]
    await client.aclose()
