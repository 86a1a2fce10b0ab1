"""The channel websockets against a small stand-in API server on loopback (wsproto)."""

import json
from collections.abc import Awaitable, Callable

import attrs
import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
)

from kubedock import wire
from kubedock.kube import (
    ClusterUnreachable,
    ExecChannel,
    NotFound,
    PortForwardFailed,
    PortForwardStream,
)
from kubedock.kube._websocket import Keepalive, KeepalivePolicy, WebSocket, connect


@attrs.define
class FakeAuth:
    server: str
    token: str | None = "s3cret"
    tls_server_name: str | None = None

    async def ssl_context(self) -> bool:
        return True


class Peer:
    """The server end of one websocket: send messages, read what the client sent."""

    def __init__(self, stream: trio.SocketStream, connection: WSConnection) -> None:
        self.stream = stream
        self.connection = connection
        self.received: list[bytes] = []

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(self.connection.send(BytesMessage(data=data)))

    async def receive(self) -> bytes | None:
        while True:
            for event in self.connection.events():
                if isinstance(event, BytesMessage):
                    return bytes(event.data)
                if isinstance(event, CloseConnection):
                    return None
            data = await self.stream.receive_some()
            if not data:
                return None
            self.connection.receive_data(data)

    async def close(self) -> None:
        await self.stream.send_all(self.connection.send(CloseConnection(code=1000)))
        await self.stream.aclose()


Scenario = Callable[[Request, Peer], Awaitable[None]]


async def run(
    scenario: Scenario,
    client: Callable[[FakeAuth], Awaitable[None]],
    *,
    reject: bytes | None = None,
) -> Request:
    """Serve one websocket (`scenario`, or a 404 carrying `reject`) while `client` runs."""
    requests: list[Request] = []

    async def handler(stream: trio.SocketStream) -> None:
        connection = WSConnection(ConnectionType.SERVER)
        while not requests:
            connection.receive_data(await stream.receive_some())
            requests.extend(e for e in connection.events() if isinstance(e, Request))
        if reject is not None:
            headers = [(b"content-type", b"application/json")]
            await stream.send_all(
                connection.send(RejectConnection(status_code=404, headers=headers, has_body=True))
                + connection.send(RejectData(data=reject, body_finished=True))
            )
            await stream.aclose()
            return
        accept = AcceptConnection(subprotocol=requests[0].subprotocols[0])
        await stream.send_all(connection.send(accept))
        await scenario(requests[0], Peer(stream, connection))

    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    async with listener, trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handler, [listener])
        with trio.fail_after(5):
            await client(FakeAuth(f"http://127.0.0.1:{port}/prefix/"))
        nursery.cancel_scope.cancel()
    [request] = requests
    return request


async def test_exec_session() -> None:
    async def scenario(request: Request, peer: Peer) -> None:
        assert await peer.receive() == b"\x00hello"
        assert await peer.receive() == b"\xff\x00"
        await peer.stream.send_all(peer.connection.send(Ping(payload=b"p")))
        await peer.send(b"\x01out")
        await peer.send(b"\x02err")
        status = {
            "status": "Failure",
            "reason": "NonZeroExitCode",
            "message": "command terminated with non-zero exit code",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
        }
        await peer.send(b"\x03" + json.dumps(status).encode())
        await peer.close()

    output: list[tuple[int, bytes]] = []
    channel_seen: list[ExecChannel] = []

    async def client(auth: FakeAuth) -> None:
        socket = await connect(
            auth,
            "/api/v1/namespaces/ns/pods/p/exec",
            [("command", "cat"), ("command", "-n")],
            ("v5.channel.k8s.io", "v4.channel.k8s.io"),
        )
        channel = ExecChannel(socket)
        channel_seen.append(channel)
        assert channel.can_close_stdin
        await channel.send_stdin(b"hello")
        await channel.close_stdin()
        while item := await channel.receive():
            output.append(item)
        await channel.aclose()

    request = await run(scenario, client)
    assert request.target == "/prefix/api/v1/namespaces/ns/pods/p/exec?command=cat&command=-n"
    assert (b"authorization", b"Bearer s3cret") in [
        (k.lower(), v) for k, v in request.extra_headers
    ]
    assert output == [(1, b"out"), (2, b"err")]
    assert channel_seen[0].exit_code == 3


async def test_exec_output_that_has_arrived_comes_out_joined_and_in_order() -> None:
    async def scenario(request: Request, peer: Peer) -> None:
        burst = b"".join(peer.connection.send(BytesMessage(data=message)) for message in (
            b"\x01a", b"\x01b", b"\x02c", b"\x02d", b"\x01e",
            b'\x03{"status":"Success"}', b"\x01late"))
        await peer.stream.send_all(burst)
        await peer.close()

    output: list[tuple[int, bytes]] = []

    async def client(auth: FakeAuth) -> None:
        socket = await connect(auth, "/exec", [], ("v5.channel.k8s.io",))
        channel = ExecChannel(socket)
        while item := await channel.receive():
            output.append(item)
        assert channel.exit_code == 0
        await channel.aclose()

    await run(scenario, client)
    assert output == [(1, b"ab"), (2, b"cd"), (1, b"e"), (1, b"late")]


async def test_port_forward_data_before_an_error_is_delivered_first() -> None:
    port_bytes = (8080).to_bytes(2, "little")

    async def scenario(request: Request, peer: Peer) -> None:
        burst = b"".join(peer.connection.send(BytesMessage(data=message)) for message in (
            b"\x00" + port_bytes, b"\x01" + port_bytes, b"\x00one", b"\x00two",
            b"\x01lost connection to pod"))
        await peer.stream.send_all(burst)
        await peer.close()

    async def client(auth: FakeAuth) -> None:
        socket = await connect(auth, "/pf", [("ports", "8080")], ("v4.channel.k8s.io",))
        stream = PortForwardStream(socket, 8080)
        assert await stream.receive_some() == b"onetwo"
        with pytest.raises(PortForwardFailed, match="lost connection"):
            await stream.receive_some()
        await stream.aclose()

    await run(scenario, client)


async def test_refused_upgrade_maps_the_status() -> None:
    status = {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
    status["message"] = 'pods "p" not found'

    async def client(auth: FakeAuth) -> None:
        with pytest.raises(NotFound, match='pods "p" not found') as caught:
            await connect(auth, "/api/v1/namespaces/ns/pods/p/exec", [], ("v4.channel.k8s.io",))
        assert caught.value.reason == "NotFound"

    async def unused(request: Request, peer: Peer) -> None:
        raise AssertionError

    await run(unused, client, reject=json.dumps(status).encode())


async def test_port_forward_stream() -> None:
    port_bytes = (6379).to_bytes(2, "little")

    async def scenario(request: Request, peer: Peer) -> None:
        await peer.send(b"\x00" + port_bytes)
        await peer.send(b"\x01" + port_bytes)
        assert await peer.receive() == b"\x00PING\r\n"
        await peer.send(b"\x00+PONG\r\n")
        await peer.close()

    async def client(auth: FakeAuth) -> None:
        socket = await connect(
            auth,
            "/api/v1/namespaces/ns/pods/p/portforward",
            [("ports", "6379")],
            ("v4.channel.k8s.io",),
        )
        stream = PortForwardStream(socket, 6379)
        await stream.send_all(b"PING\r\n")
        assert await stream.receive_some(3) == b"+PO"
        assert await stream.receive_some() == b"NG\r\n"
        assert await stream.receive_some() == b""
        await stream.aclose()

    await run(scenario, client)


async def test_port_forward_error_channel() -> None:
    port_bytes = (8080).to_bytes(2, "little")

    async def scenario(request: Request, peer: Peer) -> None:
        await peer.send(b"\x00" + port_bytes)
        await peer.send(b"\x01" + port_bytes)
        await peer.send(b"\x01" + b"dial tcp4 127.0.0.1:8080: connect: connection refused")
        await peer.close()

    async def client(auth: FakeAuth) -> None:
        socket = await connect(auth, "/pf", [("ports", "8080")], ("v4.channel.k8s.io",))
        stream = PortForwardStream(socket, 8080)
        with pytest.raises(PortForwardFailed, match="connection refused"):
            await stream.receive_some()
        await stream.aclose()

    await run(scenario, client)


# -- keepalive: pings on silence, a dead connection given up in bounded time ------------------

POLICY = KeepalivePolicy(interval=20, timeout=10)


def test_keepalive_pings_after_silence_and_gives_up_without_an_answer() -> None:
    keepalive = Keepalive(POLICY, now=100)
    assert keepalive.due(119) is None
    assert keepalive.due(120) == "ping"
    keepalive.pinged(120)
    assert keepalive.deadline() == 130
    assert keepalive.due(129) is None
    assert keepalive.due(130) == "dead"


def test_keepalive_anything_heard_proves_life() -> None:
    keepalive = Keepalive(POLICY, now=0)
    keepalive.pinged(20)
    keepalive.heard(25)
    assert keepalive.due(44) is None
    assert keepalive.deadline() == 45


def open_in_memory(
    pair: Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]],
) -> tuple[WebSocket, trio.abc.Stream, WSConnection]:
    """A client WebSocket already upgraded, and the server's stream and protocol state."""
    client_stream, server_stream = pair()
    handshake = wire.ClientHandshake("api", "/exec", [], [], key=bytes(16))
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(handshake.request)
    assert isinstance(next(server.events()), Request)
    assert isinstance(handshake.receive(server.send(AcceptConnection())), wire.Accepted)
    return WebSocket(client_stream, None, keepalive=POLICY), server_stream, server


async def answer_pings(stream: trio.abc.Stream, server: WSConnection, pings: list[float]) -> None:
    while data := await stream.receive_some():
        server.receive_data(data)
        for event in server.events():
            if isinstance(event, Ping):
                pings.append(trio.current_time())
                await stream.send_all(server.send(event.response()))


async def test_a_quiet_session_with_a_live_server_stays_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    socket, stream, server = open_in_memory(trio.testing.memory_stream_pair)
    pings: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_pings, stream, server, pings)
        with trio.move_on_after(600) as waited:
            await socket.receive()
        assert waited.cancelled_caught
        await stream.send_all(server.send(BytesMessage(data=b"\x01late output")))
        assert await socket.receive() == b"\x01late output"
        nursery.cancel_scope.cancel()
    assert len(pings) == 600 // POLICY.interval
    await socket.aclose()


@pytest.mark.parametrize("pair", [trio.testing.memory_stream_pair,
                                  trio.testing.lockstep_stream_pair])
async def test_a_silent_server_ends_the_session_in_bounded_time(
    autojump_clock: trio.testing.MockClock,
    pair: Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]],
) -> None:
    # The lockstep pair never takes the ping either: a send stuck on a dead connection.
    socket, _stream, _server = open_in_memory(pair)
    with pytest.raises(ClusterUnreachable, match="stopped answering"):
        await socket.receive()
    assert trio.current_time() == POLICY.interval + POLICY.timeout
    await socket.aclose()


async def test_a_send_stuck_on_a_dead_connection_is_released(
    autojump_clock: trio.testing.MockClock,
) -> None:
    socket, _stream, _server = open_in_memory(trio.testing.lockstep_stream_pair)
    outcome: list[BaseException] = []

    async def upload() -> None:
        try:
            await socket.send(b"\x00" + b"x" * 1000)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(upload)
        with pytest.raises(ClusterUnreachable):
            await socket.receive()
    assert outcome and trio.current_time() == POLICY.interval + POLICY.timeout
    await socket.aclose()


async def test_a_send_nobody_takes_ends_without_a_reader(
    autojump_clock: trio.testing.MockClock,
) -> None:
    socket, _stream, _server = open_in_memory(trio.testing.lockstep_stream_pair)
    with pytest.raises(trio.BrokenResourceError, match="took nothing for 30 s"):
        await socket.send(b"\x00input")
    assert trio.current_time() == POLICY.interval + POLICY.timeout
    await socket.aclose()
