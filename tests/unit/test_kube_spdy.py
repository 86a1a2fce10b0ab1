"""Exec over SPDY against a small stand-in kubelet on loopback (its own frame reader)."""

import json
import os
import struct
import zlib
from collections.abc import Awaitable, Callable
from functools import partial
from types import SimpleNamespace
from typing import Any

import h11
import pytest
import trio
import trio.lowlevel
import trio.testing
from test_kube_websocket import FakeAuth

from kubedock import wire
from kubedock.kube import (
    ClusterUnreachable,
    ExecChannel,
    KubeError,
    PortForwardFailed,
    PortForwardStream,
)
from kubedock.kube._spdy import SpdyChannels, connect_exec, connect_port_forwards
from kubedock.kube._spdy_mux import SpdySessions
from kubedock.kube._transport import Transport
from kubedock.kube._websocket import KeepalivePolicy


class Kubelet:
    """The server end of one SPDY exec: reads the client's frames, sends its own."""

    def __init__(self, stream: trio.SocketStream, trailing: bytes) -> None:
        self.stream = stream
        self._buffer = bytearray(trailing)
        self._headers = zlib.decompressobj()
        self.streams: dict[str, int] = {}  # streamtype -> id

    async def _exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            data = await self.stream.receive_some()
            if not data:
                raise EOFError
            self._buffer += data
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    async def frame(self) -> tuple[str, int, int, bytes]:
        """("data", stream id, flags, data) or ("control", type, flags, body)."""
        first, second = struct.unpack("!II", await self._exactly(8))
        body = await self._exactly(second & 0xFFFFFF)
        if first & 0x80000000:
            assert first >> 16 & 0x7FFF == 3
            return "control", first & 0xFFFF, second >> 24, body
        return "data", first, second >> 24, body

    async def accept_streams(self, count: int) -> None:
        for _ in range(count):
            kind, frame_type, _, body = await self.frame()
            while (kind, frame_type) in (("control", 4), ("control", 9)):  # windows
                kind, frame_type, _, body = await self.frame()
            assert (kind, frame_type) == ("control", 1)
            stream_id = struct.unpack_from("!I", body)[0]
            block = self._headers.decompress(body[10:])
            (count,), offset, headers = struct.unpack_from("!I", block), 4, {}
            for _ in range(count):
                fields = []
                for _ in range(2):
                    (length,) = struct.unpack_from("!I", block, offset)
                    fields.append(block[offset + 4:offset + 4 + length].decode())
                    offset += 4 + length
                headers[fields[0]] = fields[1]
            self.streams[headers["streamtype"]] = stream_id
            reply = struct.pack("!I", stream_id) + b"\x78\x01"
            await self.stream.send_all(control(2, 0, reply))

    async def send(self, streamtype: str, data: bytes, *, fin: bool = False) -> None:
        head = struct.pack("!II", self.streams[streamtype], (1 << 24 if fin else 0) | len(data))
        await self.stream.send_all(head + data)


def control(kind: int, flags: int, body: bytes) -> bytes:
    return struct.pack("!HHI", 0x8003, kind, flags << 24 | len(body)) + body


SUCCESS = json.dumps({"status": "Success"}).encode()


async def run(scenario: Callable[[Kubelet], Awaitable[None]],
              client: Callable[[FakeAuth], Awaitable[None]], *, status: int = 101
              ) -> h11.Request:
    requests: list[h11.Request] = []

    async def handler(stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        while True:
            connection.receive_data(await stream.receive_some())
            event = connection.next_event()
            if isinstance(event, h11.Request):
                requests.append(event)
                break
        if status != 101:
            body = b'{"kind":"Status","message":"nope","code":%d}' % status
            await stream.send_all(connection.send(h11.Response(
                status_code=status, headers=[(b"content-length", str(len(body)).encode())]))
                + connection.send(h11.Data(data=body)) + connection.send(h11.EndOfMessage()))
            await stream.aclose()
            return
        await stream.send_all(connection.send(h11.InformationalResponse(status_code=101, headers=[
            (b"connection", b"Upgrade"), (b"upgrade", b"SPDY/3.1"),
            (b"x-stream-protocol-version", dict(requests[0].headers)[b"x-stream-protocol-version"]),
        ])))
        trailing, _ = connection.trailing_data
        await scenario(Kubelet(stream, bytes(trailing)))

    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    async with listener, trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handler, [listener])
        with trio.fail_after(10):
            await client(FakeAuth(f"http://127.0.0.1:{port}/prefix/"))
        nursery.cancel_scope.cancel()
    return requests[0]


async def test_exec_session_round_trip() -> None:
    data = os.urandom(3 * 256 * 1024 + 5)

    async def scenario(kubelet: Kubelet) -> None:
        await kubelet.accept_streams(4)
        assert list(kubelet.streams) == ["error", "stdin", "stdout", "stderr"]
        received = bytearray()
        while True:
            kind, stream_id, flags, body = await kubelet.frame()
            assert (kind, stream_id) == ("data", kubelet.streams["stdin"])
            received += body
            if flags & 1:
                break
        # The echo comes back in pieces, as a process prints it; a ping is answered.
        for start in range(0, len(received), 32 * 1024):
            await kubelet.send("stdout", bytes(received[start:start + 32 * 1024]))
        await kubelet.stream.send_all(control(6, 0, struct.pack("!I", 2)))
        assert await kubelet.frame() == ("control", 6, 0, struct.pack("!I", 2))
        await kubelet.send("stderr", b"err")
        await kubelet.send("error", SUCCESS[:5])
        await kubelet.send("error", SUCCESS[5:], fin=True)
        await kubelet.stream.aclose()

    output = bytearray()
    errors = bytearray()

    async def client(auth: FakeAuth) -> None:
        socket = await connect_exec(auth, "/api/v1/namespaces/ns/pods/p/exec",
                                    [("command", "cat")], stdin=True, stdout=True, stderr=True)
        channel = ExecChannel(socket)
        assert channel.can_close_stdin
        for start in range(0, len(data), 100_000):
            await channel.send_stdin(data[start:start + 100_000])
        await channel.close_stdin()
        with pytest.raises(trio.BrokenResourceError):
            await channel.send_stdin(b"after the end")
        while item := await channel.receive():
            (output if item[0] == 1 else errors).extend(item[1])
        assert channel.exit_code == 0
        await channel.aclose()

    request = await run(scenario, client)
    assert request.method == b"POST"
    assert request.target == b"/prefix/api/v1/namespaces/ns/pods/p/exec?command=cat"
    headers = dict(request.headers)
    assert headers[b"upgrade"] == b"SPDY/3.1"
    assert headers[b"x-stream-protocol-version"] == b"v4.channel.k8s.io"
    assert headers[b"authorization"] == b"Bearer s3cret"
    assert output == data
    assert errors == b"err"


async def test_exit_code_and_only_the_requested_streams() -> None:
    status = {"status": "Failure", "reason": "NonZeroExitCode", "message": "exit 3",
              "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}

    async def scenario(kubelet: Kubelet) -> None:
        await kubelet.accept_streams(2)
        assert list(kubelet.streams) == ["error", "stdout"]
        await kubelet.send("stdout", b"", fin=True)
        await kubelet.send("error", json.dumps(status).encode(), fin=True)
        await kubelet.stream.aclose()

    async def client(auth: FakeAuth) -> None:
        socket = await connect_exec(auth, "/exec", [], stdin=False, stdout=True, stderr=False)
        channel = ExecChannel(socket)
        assert await channel.receive() is None
        assert channel.exit_code == 3
        await channel.aclose()

    await run(scenario, client)


async def test_a_cut_connection_leaves_no_exit_code() -> None:
    async def scenario(kubelet: Kubelet) -> None:
        await kubelet.accept_streams(3)
        await kubelet.send("stdout", b"partial")
        await kubelet.stream.aclose()

    async def client(auth: FakeAuth) -> None:
        channel = ExecChannel(await connect_exec(auth, "/exec", [], stdin=False, stdout=True,
                                                 stderr=True))
        assert await channel.receive() == (1, b"partial")
        assert await channel.receive() is None
        assert channel.exit_code is None
        await channel.aclose()

    await run(scenario, client)


async def test_a_refused_upgrade_raises_the_status() -> None:
    async def client(auth: FakeAuth) -> None:
        with pytest.raises(Exception, match="nope") as caught:
            await connect_exec(auth, "/exec", [], stdin=False, stdout=True, stderr=True)
        assert getattr(caught.value, "status", None) == 400

    async def never_reached(kubelet: Kubelet) -> None:
        raise AssertionError("no upgrade")

    await run(never_reached, client, status=400)


async def test_a_silent_server_is_pinged_then_given_up(
        autojump_clock: trio.testing.MockClock) -> None:
    client_end, server_end = trio.testing.memory_stream_pair()
    session = SpdyChannels(client_end, [wire.Channel.ERROR, wire.Channel.STDOUT], b"",
                           subprotocol="v5.channel.k8s.io",
                           keepalive=KeepalivePolicy(interval=1, timeout=1))
    with pytest.raises(ClusterUnreachable, match="stopped answering"):
        await session.receive()
    assert trio.current_time() == pytest.approx(2)
    assert await server_end.receive_some() == control(6, 0, struct.pack("!I", 1))


async def open_port_forward(auth: FakeAuth, port: int, forwards: SpdySessions
                            ) -> PortForwardStream:
    forward = await forwards.open_forward(
        "/portforward", port, partial(connect_port_forwards, auth, "/portforward"))
    return PortForwardStream(forward, port)


async def test_port_forward_round_trip_and_end() -> None:
    data = os.urandom(600_000)

    async def scenario(kubelet: Kubelet) -> None:
        await kubelet.accept_streams(2)
        assert list(kubelet.streams) == ["error", "data"]
        received = bytearray()
        while len(received) < len(data):
            kind, stream_id, _, body = await kubelet.frame()
            assert (kind, stream_id) == ("data", kubelet.streams["data"])
            received += body
        for start in range(0, len(received), 32 * 1024):
            await kubelet.send("data", bytes(received[start:start + 32 * 1024]))
        await kubelet.send("data", b"", fin=True)
        await kubelet.send("error", b"", fin=True)
        await trio.sleep_forever()  # the session ends with its streams, not the connection

    echoed = bytearray()

    async def client(auth: FakeAuth) -> None:
        forwards = SpdySessions()
        stream = await open_port_forward(auth, 5432, forwards)
        await stream.send_all(data)
        while chunk := await stream.receive_some():
            echoed.extend(chunk)
        await stream.aclose()
        await forwards.aclose()

    request = await run(scenario, client)
    assert dict(request.headers)[b"x-stream-protocol-version"] == b"portforward.k8s.io"
    assert echoed == data


async def test_port_forward_refused_after_the_data_stream_ended() -> None:
    async def scenario(kubelet: Kubelet) -> None:
        await kubelet.accept_streams(2)
        await kubelet.send("data", b"", fin=True)
        await trio.sleep(0.05)  # the kubelet's words come later
        await kubelet.send("error", b"connection refused")
        await kubelet.send("error", b"", fin=True)
        await trio.sleep_forever()

    async def client(auth: FakeAuth) -> None:
        stream = await open_port_forward(auth, 80, SpdySessions())
        with pytest.raises(PortForwardFailed, match="connection refused"):
            await stream.receive_some()
        await stream.aclose()  # and its connection, which takes no more forwards

    await run(scenario, client)


@pytest.mark.parametrize(("status", "falls_back"), [(400, True), (403, True), (501, True),
                                                     (404, False), (500, False)])
async def test_a_refused_spdy_upgrade_falls_back_to_the_websocket(status: int,
                                                                  falls_back: bool) -> None:
    fallbacks: list[str] = []

    async def websocket() -> Any:
        fallbacks.append("websocket")
        return "websocket session"

    async def client(auth: FakeAuth) -> None:
        transport = Transport(SimpleNamespace(auth=auth), "ns", None)
        connect = partial(connect_exec, path="/exec", params=[], stdin=False, stdout=True,
                          stderr=True)
        if falls_back:
            assert await transport.over_spdy(connect, websocket) == "websocket session"
        else:
            with pytest.raises(KubeError):
                await transport.over_spdy(connect, websocket)

    async def never_reached(kubelet: Kubelet) -> None:
        raise AssertionError("no upgrade")

    await run(never_reached, client, status=status)
    assert fallbacks == (["websocket"] if falls_back else [])
