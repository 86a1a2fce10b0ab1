"""JSON request bodies are bounded: refused by Content-Length unread, or by count when chunked.

The server runs in a process of its own so that its memory can be measured apart from the
client's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import trio

LIMIT = 4 * 1024 * 1024
HUGE = 256 * 1024 * 1024
CHUNK = 64 * 1024
MiB = 1024 * 1024


class Server:
    def __init__(self, process: subprocess.Popen[str], address: str) -> None:
        self.process = process
        self.url = f"http://{address}"
        host, port = address.rsplit(":", 1)
        self.host, self.port = host, int(port)

    def memory(self, field: str) -> int:
        """`VmRSS` (now) or `VmHWM` (the peak so far) of the server process, in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise LookupError(field)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    script = Path(__file__).with_name("app_process.py")
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        yield Server(process, process.stdout.readline().strip())
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


async def receive_all(stream: trio.SocketStream) -> bytes:
    data = b""
    try:
        while chunk := await stream.receive_some():
            data += chunk
    except trio.BrokenResourceError:
        pass  # reset after the answer: the server closed with the client's bytes unread
    return data


async def post_spaces(server: Server, total: int, *, chunked: bool) -> bytes:
    """POST `total` bytes of JSON whitespace to create a container; the answer as it arrives.

    Like Go's and httpx's clients, the sender stops when the server closes the connection and
    reads the answer.
    """
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % total
    piece = b" " * CHUNK
    if chunked:
        piece = b"%x\r\n%s\r\n" % (CHUNK, piece)
    async with await trio.open_tcp_stream(server.host, server.port) as stream:
        await stream.send_all(b"POST /containers/create HTTP/1.1\r\nHost: docker\r\n"
                              b"Content-Type: application/json\r\n%s\r\n\r\n" % framing)

        async def send_body() -> None:
            try:
                for _ in range(total // CHUNK):
                    await stream.send_all(piece)
                await stream.send_all(b"0\r\n\r\n" if chunked else b"")
            except trio.BrokenResourceError:
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_body)
            answer = await receive_all(stream)
            nursery.cancel_scope.cancel()
    return answer


def refused_as_too_large(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert b"\r\ncontent-type: application/json\r\n" in head.lower()
    assert b"\r\nconnection: close\r\n" in head.lower()
    assert json.loads(body) == {"message": f"request body too large: more than {LIMIT} bytes"}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_256_mib_body_is_refused_in_bounded_memory(server: Server, chunked: bool) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        # A first request settles what serving at all costs.
        warm_up = f"warm-up-{chunked}"
        assert (await client.post("/networks/create", json={"Name": warm_up})).status_code == 201
        before = server.memory("VmRSS")
        with trio.fail_after(30):
            refused_as_too_large(await post_spaces(server, HUGE, chunked=chunked))
        growth = server.memory("VmHWM") - before
        assert growth < 10 * MiB, f"the server grew by {growth / MiB:.1f} MiB"
        # The refused connection was closed; the server goes on serving the others.
        assert (await client.get(f"/networks/{warm_up}")).status_code == 200


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_client_that_sends_all_before_reading_gets_the_answer(
    server: Server, chunked: bool
) -> None:
    # Python's http.client (urllib) does this: the server reads on after answering, dropping
    # the rest of the body, until the client is done and reads the answer.
    size = 2 * LIMIT
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
    body = b" " * size
    if chunked:
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (size, body)
    async with await trio.open_tcp_stream(server.host, server.port) as stream:
        with trio.fail_after(30):
            await stream.send_all(b"POST /containers/create HTTP/1.1\r\nHost: docker\r\n"
                                  b"Content-Type: application/json\r\n%s\r\n\r\n" % framing
                                  + body)
            refused_as_too_large(await receive_all(stream))


async def test_too_large_by_content_length_is_answered_before_the_body(server: Server) -> None:
    async with await trio.open_tcp_stream(server.host, server.port) as stream:
        await stream.send_all(
            b"POST /v1.44/containers/create HTTP/1.1\r\nHost: docker\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1)
        )
        # Not a byte of the body is sent: the answer comes anyway, and the connection ends.
        with trio.fail_after(10):
            refused_as_too_large(await receive_all(stream))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_at_the_limit_is_read_and_the_connection_kept(
    server: Server, chunked: bool
) -> None:
    async def pieces(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), CHUNK):
            yield data[start:start + CHUNK]

    document = json.dumps({"Name": f"at-limit-{chunked}"}).encode()
    padded = document + b" " * (LIMIT - len(document))

    async with httpx.AsyncClient(base_url=server.url) as client:
        content = pieces(padded) if chunked else padded
        created = await client.post("/networks/create", content=content,
                                    headers={"Content-Type": "application/json"})
        assert created.status_code == 201, created.text
        assert "connection" not in created.headers
        assert (await client.get(f"/networks/at-limit-{chunked}")).status_code == 200
