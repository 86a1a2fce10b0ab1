import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path

import docker  # type: ignore[import-untyped]
import h11
import httpx
import pytest
import trio
from hypercorn.protocol.h11 import H11Protocol
from quart import request
from quart_trio import QuartTrio

from kubedock.api import _hijack
from kubedock.api._hijack import HIJACK_EXTENSION, Hijack, HijackedStream, serve
from kubedock.wire import Stream, StreamDemuxer, frame

RAW_STREAM = [(b"Content-Type", b"application/vnd.docker.raw-stream"), (b"Api-Version", b"1.41")]
EXEC_REQUEST = (
    b"POST /exec/abc/start HTTP/1.1\r\nHost: docker\r\n%s"
    b"Content-Type: application/json\r\nContent-Length: 28\r\n\r\n"
    b'{"Detach":false,"Tty":false}'
)
UPGRADE = b"Connection: Upgrade\r\nUpgrade: tcp\r\n"
FRAMES = frame(Stream.STDOUT, b"out\n") + frame(Stream.STDERR, b"err\n")
BIG_ANSWER = b"x" * (16 * 1024 * 1024)  # more than the sockets' buffers take
UPGRADED_HEAD = (
    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
    b"Api-Version: 1.41\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
)


class Recorder:
    def __init__(self) -> None:
        self.clients: list[object] = []
        self.misuse: list[type[Exception]] = []
        self.served = False
        self.send_failures: list[type[BaseException]] = []
        self.gave_up = trio.Event()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def make_app(recorder: Recorder) -> QuartTrio:
    app = QuartTrio(__name__)

    async def take() -> HijackedStream:
        recorder.clients.append(request.scope["client"])
        await request.get_data()
        hijack = Hijack.of(request.scope)
        return await hijack.take(101 if hijack.upgrade_requested else 200, RAW_STREAM)

    @app.before_serving
    async def startup() -> None:
        recorder.served = True

    @app.after_serving
    async def shutdown() -> None:
        recorder.served = False

    @app.get("/version")
    @app.get("/v<api>/version")
    async def version(api: str = "") -> dict[str, str]:
        recorder.clients.append(request.scope["client"])
        return {"ApiVersion": "1.41"}

    @app.get("/slow")
    async def slow() -> str:
        await trio.sleep(0.2)
        return "slow"

    @app.get("/stream")
    async def streamed() -> tuple[AsyncIterator[bytes], int]:
        async def chunks() -> AsyncIterator[bytes]:
            for chunk in (b"one\n", b"two\n"):
                yield chunk

        return chunks(), 200

    @app.get("/big")
    async def big() -> bytes:
        return BIG_ANSWER

    @app.get("/paced/<int:chunks>")
    async def paced(chunks: int) -> tuple[AsyncIterator[bytes], int]:
        """`chunks` chunks with pauses around them; with ?together, written with the head."""
        if "together" in request.args:
            Hijack.of(request.scope).write_head_with_body()

        async def body() -> AsyncIterator[bytes]:
            for number in range(chunks):
                await trio.sleep(0.2)
                yield b"chunk %d\n" % number
            await trio.sleep(0.2)

        return body(), 200

    @app.post("/exec/<exec_id>/start")
    @app.post("/v<api>/exec/<exec_id>/start")
    async def exec_start(exec_id: str, api: str = "") -> tuple[dict[str, str], int] | str:
        if exec_id == "missing":
            return {"message": "No such exec instance: missing"}, 404
        stream = await take()
        # Output follows the head only after the process starts, as with Docker: docker-py reads
        # frames from the raw socket, so bytes that arrive along with the head would be lost.
        await trio.sleep(0.05)
        await stream.send_all(frame(Stream.STDOUT, b"out\n"))
        await stream.send_all(frame(Stream.STDERR, b"err\n"))
        await stream.aclose()
        return "this response is discarded"

    @app.post("/echo")
    async def echo() -> str:
        stream = await take()
        while data := await stream.receive_some():
            await stream.send_all(frame(Stream.STDOUT, data))
        await stream.send_all(frame(Stream.STDERR, b"bye\n"))
        return "the stream closes when the handler returns"

    @app.get("/extension")
    async def extension() -> str:
        return type(request.scope["extensions"][HIJACK_EXTENSION]).__name__

    @app.post("/misuse")
    async def misuse() -> str:
        hijack = Hijack.of(request.scope)
        for status, headers in [(204, []), (200, [(b"X-Bad", b"a\r\nb")]), (200, [(b"", b"")])]:
            try:
                await hijack.take(status, headers)
            except ValueError as error:
                recorder.misuse.append(type(error))
        stream = await hijack.take(200, [])
        try:
            await hijack.take(200, [])
        except RuntimeError as error:
            recorder.misuse.append(type(error))
        await stream.send_all(b"raw")
        return ""

    @app.post("/forever")
    async def forever() -> str:
        stream = await take()
        try:
            while True:
                await stream.send_all(frame(Stream.STDOUT, b"tick\n" * 1000))
                await trio.sleep(0.001)
        except trio.BrokenResourceError as error:
            recorder.send_failures.append(type(error))
        finally:
            recorder.gave_up.set()
        return ""

    return app


@pytest.fixture
async def address(nursery: trio.Nursery, recorder: Recorder) -> tuple[str, int]:
    (bound,) = await nursery.start(partial(serve, make_app(recorder), binds=["127.0.0.1:0"]))
    host, port = bound.rsplit(":", 1)
    return host, int(port)


async def receive_all(stream: trio.abc.ReceiveStream) -> bytes:
    received = b""
    with trio.fail_after(5):
        while data := await stream.receive_some():
            received += data
    return received


async def receive_until(stream: trio.abc.ReceiveStream, end: bytes, received: bytes = b"") -> bytes:
    with trio.fail_after(5):
        while end not in received:
            data = await stream.receive_some()
            assert data, f"EOF before {end!r}; got {received!r}"
            received += data
    return received


async def test_upgrade_answers_docker_bytes_exactly(address: tuple[str, int]) -> None:
    async with await trio.open_tcp_stream(*address) as client:
        await client.send_all(EXEC_REQUEST % UPGRADE)
        assert await receive_all(client) == UPGRADED_HEAD + FRAMES


async def test_without_upgrade_answers_200_then_raw_frames(address: tuple[str, int]) -> None:
    async with await trio.open_tcp_stream(*address) as client:
        await client.send_all(EXEC_REQUEST % b"")
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Api-Version: 1.41\r\n\r\n"
        )
        assert await receive_all(client) == head + FRAMES


async def test_taking_a_connection_that_served_a_request(address: tuple[str, int]) -> None:
    async with await trio.open_tcp_stream(*address) as client:
        await client.send_all(b"GET /version HTTP/1.1\r\nHost: docker\r\n\r\n")
        first = await receive_until(client, b'"1.41"}')
        assert first.startswith(b"HTTP/1.1 200 \r\n")
        await client.send_all(EXEC_REQUEST % UPGRADE)
        assert await receive_all(client) == UPGRADED_HEAD + FRAMES


async def test_stdin_half_close_and_pipelined_bytes(address: tuple[str, int]) -> None:
    async with await trio.open_tcp_stream(*address) as client:
        # "early" reaches the server together with the request, before the upgrade is answered.
        request_bytes = (
            b"POST /echo HTTP/1.1\r\nHost: docker\r\n%sContent-Length: 0\r\n\r\n" % UPGRADE
        )
        await client.send_all(request_bytes + b"early")
        received = await receive_until(client, frame(Stream.STDOUT, b"early"))
        assert received.startswith(UPGRADED_HEAD)
        await client.send_all(b"late")
        await receive_until(client, frame(Stream.STDOUT, b"late"))
        await client.send_eof()
        assert await receive_all(client) == frame(Stream.STDERR, b"bye\n")


async def test_an_answer_before_the_request_body_closes_the_connection(
    address: tuple[str, int],
) -> None:
    # Go clients write a request's head and body separately, so an error answered before the body
    # arrives is common. hypercorn then closes the connection from within the app's last send,
    # which quart-trio cancels once it sees the disconnect: the close must still happen, or the
    # client's next request on this connection is never answered.
    async with await trio.open_tcp_stream(*address) as client:
        head, body = (EXEC_REQUEST % b"").replace(b"/abc/", b"/missing/").split(b"\r\n\r\n")
        await client.send_all(head + b"\r\n\r\n")
        answer = await receive_until(client, b"No such exec instance: missing")
        assert answer.startswith(b"HTTP/1.1 404 ")
        await trio.sleep(0.2)  # hypercorn has ended the response with the body still unread
        await client.send_all(
            body + b"GET /version HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"
        )
        assert await receive_all(client) == b""


async def test_docker_py_exec_start_on_a_pooled_connection(
    address: tuple[str, int], recorder: Recorder
) -> None:
    def run_client() -> tuple[bytes, bytes]:
        with docker.APIClient(base_url="tcp://{}:{}".format(*address), version="1.41") as client:
            assert client.version()["ApiVersion"] == "1.41"
            return client.exec_start("abc", socket=False, demux=True)  # type: ignore[no-any-return]

    assert await trio.to_thread.run_sync(run_client) == (b"out\n", b"err\n")
    version_client, exec_client = recorder.clients
    assert version_client == exec_client


async def test_ordinary_routes_keep_alive_and_chunk(
    address: tuple[str, int], recorder: Recorder
) -> None:
    async with httpx.AsyncClient(base_url="http://{}:{}".format(*address)) as client:
        for _ in range(3):
            assert (await client.get("/version")).json() == {"ApiVersion": "1.41"}
        streamed = await client.get("/stream")
        assert streamed.headers["transfer-encoding"] == "chunked"
        assert streamed.content == b"one\ntwo\n"
    assert len(set(map(tuple, recorder.clients))) == 1  # type: ignore[arg-type]


async def test_client_disconnect_mid_stream(address: tuple[str, int], recorder: Recorder) -> None:
    async with await trio.open_tcp_stream(*address) as client:
        await client.send_all(b"POST /forever HTTP/1.1\r\nHost: docker\r\n%s\r\n" % UPGRADE)
        await receive_until(client, b"tick\n")
        client.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        await client.aclose()
        with trio.fail_after(5):
            await recorder.gave_up.wait()
        assert recorder.send_failures == [trio.BrokenResourceError]
        await test_upgrade_answers_docker_bytes_exactly(address)


async def test_client_going_away_ends_stdin(address: tuple[str, int]) -> None:
    async with await trio.open_tcp_stream(*address) as client:
        await client.send_all(b"POST /echo HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\nhi")
        await receive_until(client, frame(Stream.STDOUT, b"hi"))
        await client.aclose()
        await test_upgrade_answers_docker_bytes_exactly(address)


async def test_unix_socket(nursery: trio.Nursery, recorder: Recorder, tmp_path: Path) -> None:
    path = tmp_path / "docker.sock"
    bound = await nursery.start(partial(serve, make_app(recorder), binds=[f"unix:{path}"]))
    assert bound == [f"unix:{path}"]
    async with await trio.open_unix_socket(str(path)) as client:
        await client.send_all(EXEC_REQUEST % UPGRADE)
        assert await receive_all(client) == UPGRADED_HEAD + FRAMES

    def run_client() -> tuple[bytes, bytes]:
        with docker.APIClient(base_url=f"unix://{path}", version="1.41") as client:
            return client.exec_start("abc", socket=False, demux=True)  # type: ignore[no-any-return]

    assert await trio.to_thread.run_sync(run_client) == (b"out\n", b"err\n")


async def test_demuxing_what_docker_py_would_read(address: tuple[str, int]) -> None:
    async with await trio.open_tcp_stream(*address) as client:
        await client.send_all(EXEC_REQUEST % UPGRADE)
        received = await receive_all(client)
        assert StreamDemuxer().feed(received[len(UPGRADED_HEAD) :]) == [
            (Stream.STDOUT, b"out\n"),
            (Stream.STDERR, b"err\n"),
        ]


async def test_upgrade_request_can_still_get_an_ordinary_answer(address: tuple[str, int]) -> None:
    async with await trio.open_tcp_stream(*address) as client:
        await client.send_all(EXEC_REQUEST.replace(b"abc", b"missing") % UPGRADE)
        answer = await receive_until(client, b'missing"}')
        assert answer.startswith(b"HTTP/1.1 404 \r\n")
        await client.send_all(EXEC_REQUEST % UPGRADE)
        assert await receive_all(client) == UPGRADED_HEAD + FRAMES


async def test_the_extension_is_in_the_scope(address: tuple[str, int]) -> None:
    async with httpx.AsyncClient(base_url="http://{}:{}".format(*address)) as client:
        assert (await client.get("/extension")).text == "Hijack"


async def test_misuse_is_refused(address: tuple[str, int], recorder: Recorder) -> None:
    async with await trio.open_tcp_stream(*address) as client:
        await client.send_all(b"POST /misuse HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n")
        assert await receive_all(client) == b"HTTP/1.1 200 OK\r\n\r\nraw"
    assert recorder.misuse == [ValueError, ValueError, ValueError, RuntimeError]


async def test_shutdown_trigger_drains_and_runs_the_lifespan(recorder: Recorder) -> None:
    stop = trio.Event()
    # Under hypercorn's graceful timeout (3 s): nothing waits once the last client has left.
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            (bound,) = await nursery.start(
                partial(serve, make_app(recorder), ["127.0.0.1:0"], shutdown_trigger=stop.wait)
            )
            assert recorder.served
            host, port = bound.rsplit(":", 1)
            async with await trio.open_tcp_stream(host, int(port)) as client:
                await client.send_all(b"GET /slow HTTP/1.1\r\nHost: docker\r\n\r\n")
                await trio.sleep(0.05)
                stop.set()
                answer = await receive_until(client, b"slow")  # the request in flight is answered
            assert answer.startswith(b"HTTP/1.1 200 ")
    assert not recorder.served
    with pytest.raises(OSError):
        await trio.open_tcp_stream(host, int(port))


async def seconds_to_stop_beside_a_client_reading_nothing(
    serving: Callable[..., Awaitable[None]],
    connect: Callable[[str, int], Awaitable[trio.abc.Stream]],
) -> float:
    """How long `serving` takes to stop while a client has asked for a big answer and reads
    none of it (a stalled client, or one gone without a word); the client leaves after 5 s."""
    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as nursery:
            (bound,) = await nursery.start(serving)
            host, port = bound.rsplit(":", 1)
            client = await connect(host, int(port))
            await client.send_all(b"GET /big HTTP/1.1\r\nHost: docker\r\n\r\n")

            async def leave_later() -> None:
                await trio.sleep(5)
                await trio.aclose_forcefully(client)

            outer.start_soon(leave_later)
            await trio.sleep(0.5)  # the answer fills the buffers
            stopping = trio.current_time()
            nursery.cancel_scope.cancel()
        stopped = trio.current_time() - stopping
        outer.cancel_scope.cancel()
    await client.aclose()
    return stopped


async def connect_with_a_small_buffer(host: str, port: int) -> trio.SocketStream:
    stream = await trio.open_tcp_stream(host, port)
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return stream


async def test_a_client_reading_nothing_holds_no_shutdown(recorder: Recorder) -> None:
    # hypercorn writes under a cancel shield, which the server's end must get through.
    stopped = await seconds_to_stop_beside_a_client_reading_nothing(
        partial(serve, make_app(recorder), ["127.0.0.1:0"]), connect_with_a_small_buffer)
    assert stopped < 2


@pytest.mark.parametrize(
    "cli",
    [
        pytest.param(cli, marks=pytest.mark.skipif(not Path(cli).exists(), reason="not installed"))
        for cli in ["/usr/local/bin/docker", "/usr/bin/docker"]
    ],
)
async def test_docker_cli_exec_with_stdin(cli: str, nursery: trio.Nursery) -> None:
    app = QuartTrio(__name__)
    api_version = {"Api-Version": "1.41"}

    @app.route("/_ping", methods=["GET", "HEAD"])
    async def ping() -> tuple[str, int, dict[str, str]]:
        return "OK", 200, api_version

    @app.get("/v1.41/containers/abc/json")
    async def inspect() -> dict[str, object]:
        return {"Id": "abc", "State": {"Running": True}, "Config": {"Tty": False}}

    @app.post("/v1.41/containers/abc/exec")
    async def create() -> tuple[dict[str, str], int]:
        return {"Id": "e1"}, 201

    @app.post("/v1.41/exec/e1/start")
    async def start() -> str:
        await request.get_data()
        hijack = Hijack.of(request.scope)
        assert hijack.upgrade_requested
        stream = await hijack.take(101, RAW_STREAM)
        while data := await stream.receive_some():
            await stream.send_all(frame(Stream.STDOUT, data.upper()))
        await stream.send_all(frame(Stream.STDERR, b"done\n"))
        return ""

    @app.get("/v1.41/exec/e1/json")
    async def exec_inspect() -> dict[str, object]:
        return {"ID": "e1", "Running": False, "ExitCode": 3}

    (bound,) = await nursery.start(partial(serve, app, binds=["127.0.0.1:0"]))
    with trio.fail_after(20):
        result = await trio.run_process(
            [cli, "-H", f"tcp://{bound}", "exec", "-i", "abc", "cat"],
            stdin=b"hello\nworld\n",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "DOCKER_CONFIG": "/nonexistent"},
        )
    assert (result.returncode, result.stdout, result.stderr) == (3, b"HELLO\nWORLD\n", b"done\n")


async def test_an_unexpected_error_ends_its_connection_only(
    address: tuple[str, int], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    checked = H11Protocol._check_protocol

    async def broken(self: H11Protocol, event: h11.Request) -> None:
        if event.target == b"/broken":
            raise RuntimeError("a bug in the protocol")
        await checked(self, event)

    monkeypatch.setattr(H11Protocol, "_check_protocol", broken)
    async with await trio.open_tcp_stream(*address) as client:
        await client.send_all(b"GET /broken HTTP/1.1\r\nHost: docker\r\n\r\n")
        with trio.fail_after(5):
            assert await receive_all(client) == b""
    async with httpx.AsyncClient(base_url="http://{}:{}".format(*address)) as http:
        assert (await http.get("/version")).json() == {"ApiVersion": "1.41"}
    [failure] = [record for record in caplog.records if record.exc_info]
    assert failure.getMessage() == "HTTP connection failed"


async def test_reading_an_unanswered_body_after_the_answer_is_bounded_in_time(
    address: tuple[str, int], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_hijack, "LINGER_SECONDS", 0.5)
    async with await trio.open_tcp_stream(*address) as client:
        await client.send_all(
            b"POST /exec/missing/start HTTP/1.1\r\nHost: docker\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
        )
        # The answer, then a half-close: the server reads on for a while, then hangs up.
        assert (await receive_all(client)).startswith(b"HTTP/1.1 404 ")
        began = trio.current_time()
        with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
            while True:
                await client.send_all(b" " * 65536)
                await trio.sleep(0.05)
    assert trio.current_time() - began >= 0.3


async def _first_read(address: tuple[str, int], path: bytes) -> tuple[bytes, bytes]:
    """What one read returns first, and the whole answer."""
    async with await trio.open_tcp_stream(*address) as client:
        await client.send_all(b"GET %s HTTP/1.1\r\nHost: docker\r\n\r\n" % path)
        first = await client.receive_some()
        return first, await receive_until(client, b"0\r\n\r\n", first)


async def test_head_written_with_the_body(address: tuple[str, int]) -> None:
    first, whole = await _first_read(address, b"/paced/1?together")
    assert first == whole
    assert first.startswith(b"HTTP/1.1 200 ")
    assert first.endswith(b"\r\n\r\n8\r\nchunk 0\n\r\n0\r\n\r\n")
    # The first chunk waits for what follows it; from the second on, a body streams.
    first, whole = await _first_read(address, b"/paced/3?together")
    assert first.endswith(b"\r\n\r\n8\r\nchunk 0\n\r\n8\r\nchunk 1\n\r\n")
    assert whole == first + b"8\r\nchunk 2\n\r\n0\r\n\r\n"
    # Other responses still write their head at once.
    first, whole = await _first_read(address, b"/paced/1")
    assert first.endswith(b"\r\n\r\n") and whole.endswith(b"chunk 0\n\r\n0\r\n\r\n")
