"""The pod's end of a served archive: the announced listener, the one-time token, and the
chunks on the connection that presented it."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from contextlib import redirect_stdout

import pytest

from kubedock.podside import chunks, served


def _serve_in_thread(work: Callable[[socket.socket], object], *, pod_network: bool = False
                     ) -> tuple[threading.Thread, int, bytes, list[BaseException]]:
    """`served.serve(work)` in a thread; the port and token it announced."""
    read, write = os.pipe()
    failures: list[BaseException] = []

    def run() -> None:
        with open(write, "w") as announce:
            try:
                with redirect_stdout(announce):
                    served.serve(work, pod_network=pod_network)
            except BaseException as error:
                failures.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    with open(read) as announced:
        port, token = announced.readline().split()
    return thread, int(port), token.encode(), failures


def _received(connection: socket.socket) -> bytes:
    decoder, back = chunks.ChunkDecoder(), bytearray()
    while not decoder.ended:
        back.extend(b"".join(decoder.receive(connection.recv(65536))))
    return bytes(back)


def test_served_data_come_whole_through_the_connection() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)

    def work(connection: socket.socket) -> None:
        writer = served.ChunkWriter(connection)
        writer.write(data[:1000])
        writer.write(data[1000:])
        writer.close()

    thread, port, token, failures = _serve_in_thread(work)
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(token + b"\n")
        assert connection.recv(1) == served.READY
        assert _received(connection) == data
    thread.join()
    assert not failures


def test_a_wrong_token_is_dropped_and_leaves_the_token_for_the_next_connection() -> None:
    taken: list[bytes] = []

    def work(connection: socket.socket) -> None:
        reader = served.ChunkReader(connection)
        while data := reader.read(7):
            taken.append(data)

    thread, port, token, failures = _serve_in_thread(work)
    wrong = bytes(token[:-1]) + (b"0" if token[-1:] != b"0" else b"1")
    with socket.create_connection(("127.0.0.1", port)) as idle, \
            socket.create_connection(("127.0.0.1", port)) as guessing:
        # Dropped only once it has said as much as the token would have been: a first wrong
        # byte is not told apart from a last one.
        guessing.sendall(wrong[:1])
        guessing.settimeout(0.2)
        with pytest.raises(TimeoutError):
            guessing.recv(1)
        guessing.sendall(wrong[1:] + b"\n")
        guessing.settimeout(5)
        assert guessing.recv(1) == b""
        # One that says nothing at all holds up no one.
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(token + b"\n")
            assert connection.recv(1) == served.READY
            connection.sendall(chunks.chunked(b"hello, pod") + chunks.END_OF_CHUNKS)
            thread.join()
        assert idle.recv(1) == b""
    assert not failures
    assert b"".join(taken) == b"hello, pod"
    assert max(map(len, taken)) <= 7
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port)).close()


def test_without_the_token_in_time_the_program_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(served, "ACCEPT_SECONDS", 0.3)
    worked: list[socket.socket] = []
    thread, port, _, failures = _serve_in_thread(worked.append)
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(b"no")
        thread.join()
        assert connection.recv(1) == b""
    assert not worked
    assert isinstance(failures[0], TimeoutError)


def test_on_the_pod_network_it_listens_beyond_the_loopback() -> None:
    address = _an_address_not_loopback()
    if address is None:
        pytest.skip("this machine has no address beside its loopback")

    def work(connection: socket.socket) -> None:
        writer = served.ChunkWriter(connection)
        writer.write(b"x")
        writer.close()

    thread, port, token, failures = _serve_in_thread(work, pod_network=True)
    with socket.create_connection((address, port)) as connection:
        connection.sendall(token + b"\n")
        assert connection.recv(1) == served.READY
        assert _received(connection) == b"x"
    thread.join()
    assert not failures


def _an_address_not_loopback() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: the route picks the address
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address
