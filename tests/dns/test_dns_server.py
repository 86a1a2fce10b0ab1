"""The DNS role on loopback, asked by a real client (dnspython), with a fake upstream server."""

from __future__ import annotations

import gc
import struct
from collections.abc import AsyncIterator
from functools import partial

import dns.asyncbackend
import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import trio
from test_dns_view import SEARCH, pod

from kubedock.dns import View, Views, pod_entry, serve_dns
from kubedock.dns import _server as server
from kubedock.dns._role import PodIndex

BACKEND = dns.asyncbackend.get_backend("trio")
APP, DB, OTHER, STRANGER = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"
HOLD = 1.0  # how long the server under test waits for a starting pod


def upstream_answer(data: bytes) -> bytes:
    """What the fake cluster DNS says: NXDOMAIN, SERVFAIL or an address, by name."""
    query = dns.message.from_wire(data)
    reply = dns.message.make_response(query)
    name = query.question[0].name.to_text()
    if name.startswith("nx."):
        reply.set_rcode(dns.rcode.NXDOMAIN)
    elif name.startswith("fail."):
        reply.set_rcode(dns.rcode.SERVFAIL)
    else:
        reply.answer.append(dns.rrset.from_text(name, 30, "IN", "A", "192.0.2.7"))
    return reply.to_wire()


async def serve_fake_upstream(*, task_status: trio.TaskStatus[int]) -> None:
    # The server's own binding: a port free for both UDP and TCP, tried again when TCP's is taken.
    udp, listeners = await server._bind("127.0.0.1", 0)
    port = udp.getsockname()[1]

    async def tcp(stream: trio.SocketStream) -> None:
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
            data += await stream.receive_some()
        reply = upstream_answer(data[2:])
        await stream.send_all(struct.pack(">H", len(reply)) + reply)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, tcp, listeners)
        task_status.started(port)
        with udp:
            while True:
                data, source = await udp.recvfrom(65535)
                await udp.sendto(upstream_answer(data), source)


@pytest.fixture
async def dns_port() -> AsyncIterator[int]:
    pods = [pod(APP, ["app-pod", "app"], ["net-a"]), pod(DB, ["db-pod", "db"], ["net-a"]),
            pod(OTHER, ["other"], ["net-b"])]
    views = Views(View(map(pod_entry, pods), SEARCH))
    async with trio.open_nursery() as nursery:
        upstream = await nursery.start(serve_fake_upstream)
        port = await nursery.start(partial(serve_dns, views, ("127.0.0.1", upstream),
                                           host="127.0.0.1", port=0))
        yield port
        nursery.cancel_scope.cancel()


async def ask(port: int, name: str, rdtype: str = "A", *, source: str = APP,
              tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(query, "127.0.0.1", port=port, source=source, timeout=5, backend=BACKEND)


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(item.address for rrset in reply.answer for item in rrset)


async def test_a_by_network(dns_port: int) -> None:
    assert addresses(await ask(dns_port, "db.")) == [DB]
    assert addresses(await ask(dns_port, "db.ns1.svc.cluster.local.")) == [DB]
    hidden = await ask(dns_port, "db.", source=OTHER)
    assert hidden.rcode() == dns.rcode.NXDOMAIN


async def test_ptr(dns_port: int) -> None:
    reply = await ask(dns_port, "3.0.0.127.in-addr.arpa.", "PTR")
    assert [item.target.to_text() for item in reply.answer[0]] == ["db-pod.", "db."]


async def test_upstream_keeps_rcode(dns_port: int) -> None:
    assert (await ask(dns_port, "nx.example.")).rcode() == dns.rcode.NXDOMAIN
    assert (await ask(dns_port, "fail.example.")).rcode() == dns.rcode.SERVFAIL
    assert addresses(await ask(dns_port, "ok.example.")) == ["192.0.2.7"]
    assert addresses(await ask(dns_port, "ok.example.", tcp=True)) == ["192.0.2.7"]


async def test_tcp(dns_port: int) -> None:
    assert addresses(await ask(dns_port, "app.", tcp=True, source=DB)) == [APP]
    nodata = await ask(dns_port, "app.", "AAAA", tcp=True, source=DB)
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer


async def test_unknown_source_goes_upstream(dns_port: int) -> None:
    reply = await ask(dns_port, "db.", source=STRANGER)
    assert addresses(reply) == ["192.0.2.7"]


async def test_malformed_packets_leave_the_server_up(dns_port: int) -> None:
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind((APP, 0))
        pointer_loop = b"\x00\x01\x01\x00\x00\x01" + b"\x00" * 6 + b"\xc0\x0c\x00\x01\x00\x01"
        for junk in (b"", b"x", b"\x12\x34" + b"\xff" * 30, pointer_loop):
            await sock.sendto(junk, ("127.0.0.1", dns_port))
        with trio.fail_after(5):
            reply = await sock.recv(512)
        assert reply[3] & 0x0F == dns.rcode.FORMERR
    stream = await trio.open_tcp_stream("127.0.0.1", dns_port)
    async with stream:
        await stream.send_all(b"\x00\x05abc")  # shorter than announced, then closed
    assert addresses(await ask(dns_port, "db.")) == [DB]


async def test_ipv6_source() -> None:
    pods = [pod("::1", ["app6"], ["net-6"]), pod("10.244.7.7", ["db6"], ["net-6"])]
    views = Views(View(map(pod_entry, pods), SEARCH))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_dns, views, ("::1", 9), host="::1", port=0))
        query = dns.message.make_query("db6.", "A")
        for send in (dns.asyncquery.udp, dns.asyncquery.tcp):
            reply = await send(query, "::1", port=port, timeout=5, backend=BACKEND)
            assert addresses(reply) == ["10.244.7.7"]
        nursery.cancel_scope.cancel()


@pytest.fixture
async def role() -> AsyncIterator[tuple[PodIndex, int]]:
    """The role's pod index and server, fed pod documents by the test instead of a watch."""
    index = PodIndex(SEARCH)
    async with trio.open_nursery() as nursery:
        upstream = await nursery.start(serve_fake_upstream)
        port = await nursery.start(partial(serve_dns, index.views, ("127.0.0.1", upstream),
                                           host="127.0.0.1", port=0, hold=HOLD))
        yield index, port
        nursery.cancel_scope.cancel()


async def ask_later(port: int, name: str, answers: list[dns.message.Message], *,
                    tcp: bool = False) -> None:
    answers.append(await ask(port, name, tcp=tcp))


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_first_query_waits_until_the_asker_is_reported(role: tuple[PodIndex, int],
                                                             tcp: bool) -> None:
    index, port = role
    index.on_pod(pod(DB, ["db-pod", "db"], ["net-a"]), False)
    index.on_pod(pod("", ["app-pod", "app"], ["net-a"]), False)  # created, address unreported
    answers: list[dns.message.Message] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(ask_later, port, "db.ns1.svc.cluster.local.", answers, tcp=tcp))
        await trio.sleep(0.3)
        assert not answers  # not relayed upstream, where "db" is another name or none
        index.on_pod(pod(APP, ["app-pod", "app"], ["net-a"], ready=False), False)
    assert addresses(answers[0]) == [DB]


async def test_query_for_a_starting_peer_waits_until_it_is_ready(role: tuple[PodIndex, int]
                                                                 ) -> None:
    index, port = role
    index.on_pod(pod(APP, ["app-pod", "app"], ["net-a"]), False)
    index.on_pod(pod("", ["db-pod", "db"], ["net-a"]), False)
    answers: list[dns.message.Message] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask_later, port, "db.", answers)
        await trio.sleep(0.3)
        index.on_pod(pod(DB, ["db-pod", "db"], ["net-a"], ready=False), False)
        await trio.sleep(0.3)
        assert not answers
        index.on_pod(pod(DB, ["db-pod", "db"], ["net-a"]), False)
    assert addresses(answers[0]) == [DB]


async def test_waits_are_bounded(role: tuple[PodIndex, int]) -> None:
    index, port = role
    index.on_pod(pod(DB, ["db-pod", "db"], ["net-a"]), False)
    index.on_pod(pod("", ["app-pod", "app"], ["net-a"]), False)  # and never reported
    with trio.fail_after(HOLD + 2):
        started = trio.current_time()
        reply = await ask(port, "db.")
    assert trio.current_time() - started >= HOLD
    assert addresses(reply) == ["192.0.2.7"]  # as things stand: an unknown asker goes upstream
    index.on_pod(pod(APP, ["app"], ["net-a"], ready=False), False)
    index.on_pod(pod("", ["db2"], ["net-a"]), False)
    with trio.fail_after(HOLD + 2):
        refused = await ask(port, "db2.")
    assert refused.rcode() == dns.rcode.SERVFAIL  # the peer is still starting: try again


async def test_waiting_queries_are_few(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "_MAX_HELD", 1)
    index = PodIndex(SEARCH)
    index.on_pod(pod(DB, ["db-pod", "db"], ["net-a"]), False)
    index.on_pod(pod("", ["app-pod", "app"], ["net-a"]), False)
    answers: list[dns.message.Message] = []
    async with trio.open_nursery() as nursery:
        upstream = await nursery.start(serve_fake_upstream)
        port = await nursery.start(partial(serve_dns, index.views, ("127.0.0.1", upstream),
                                           host="127.0.0.1", port=0, hold=10.0))
        nursery.start_soon(ask_later, port, "db.", answers)
        await trio.sleep(0.3)
        with trio.fail_after(2):  # the second is not held: the first took the only place
            assert addresses(await ask(port, "db.", source=OTHER)) == ["192.0.2.7"]
        assert not answers
        nursery.cancel_scope.cancel()


async def test_a_port_whose_tcp_side_is_taken_is_given_up_for_another(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The UDP port the kernel picks may be in use for TCP (here: by a listener taken on purpose,
    # under load: by any of the machine's outgoing connections).
    open_tcp_listeners = trio.open_tcp_listeners
    taken: list[trio.socket.SocketType] = []

    async def taken_once(port: int, *, host: str) -> list[trio.SocketListener]:
        if not taken:
            taken.append(trio.socket.socket())
            await taken[0].bind((host, port))
            taken[0].listen()
        return await open_tcp_listeners(port, host=host)

    monkeypatch.setattr(trio, "open_tcp_listeners", taken_once)
    udp, listeners = await server._bind("127.0.0.1", 0)
    with udp, taken[0]:
        ports = {listener.socket.getsockname()[1] for listener in listeners}
        assert ports == {udp.getsockname()[1]} != {taken[0].getsockname()[1]}
        for listener in listeners:
            await listener.aclose()


async def test_a_bind_cancelled_half_way_leaves_no_socket_open() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await server._bind("127.0.0.1", 0)
    gc.collect()  # an unclosed socket would warn now, failing the test
