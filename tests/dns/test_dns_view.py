"""The DNS role's pure parts: messages, pod documents, views, answers."""

from __future__ import annotations

import contextlib

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubedock.dns import (
    MalformedMessage,
    PodEntry,
    Question,
    View,
    parse_query,
    pod_entry,
    resolve,
    settled,
)

SEARCH = ("ns1.svc.cluster.local", "svc.cluster.local", "cluster.local")


def pod(ip: str, names: list[str], networks: list[str], *, ready: bool | None = None,
        deleting: bool = False, phase: str = "Running", name: str = "") -> dict[str, object]:
    """A kubedock pod document; ``ip`` "" for one whose address the kubelet has not reported
    (and so not Ready unless told)."""
    ready = bool(ip) if ready is None else ready
    annotations = {f"kubedock.hostalias/{i}": n for i, n in enumerate(names)}
    annotations.update({f"kubedock.network/{i}": n for i, n in enumerate(networks)})
    metadata: dict[str, object] = {"name": name or names[0], "annotations": annotations}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, object] = {
        "phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status.update(podIP=ip, podIPs=[{"ip": ip}])
    return {"metadata": metadata, "status": status}


def view(*pods: dict[str, object]) -> View:
    return View(map(pod_entry, pods), SEARCH)


def ask(v: View, source: str, name: str, rdtype: str = "A") -> dns.message.Message | None:
    query = dns.message.make_query(name, rdtype)
    reply = resolve(v, source, parse_query(query.to_wire()), limit=512)
    return None if reply is None else dns.message.from_wire(reply)


def addresses(reply: dns.message.Message | None) -> list[str]:
    assert reply is not None
    return sorted(item.address for rrset in reply.answer for item in rrset)


NETWORKS = view(
    pod("10.244.0.10", ["db-pod", "db", "DB.Local"], ["net-a"]),
    pod("10.244.0.11", ["app-pod", "app"], ["net-a"]),
    pod("10.244.0.20", ["db-pod2", "db"], ["net-b"]),
    pod("10.244.0.21", ["app-pod2", "app"], ["net-b"]),
    pod("10.244.0.30", ["loner"], ["net-c"]),
    pod("10.244.0.40", ["late", "db"], ["net-a"], ready=False),
    pod("10.244.0.41", ["going", "db"], ["net-a"], deleting=True),
)


def test_pod_entry_reads_kubedock_annotations() -> None:
    entry = pod_entry(pod("10.244.0.5", ["h", "a", "b"], ["n1", "n2"]))
    assert entry == PodEntry(("10.244.0.5",), ("h", "a", "b"), frozenset({"n1", "n2"}), "ready")
    assert pod_entry({"metadata": {"name": "x"}, "status": {}}) == PodEntry((), (), frozenset(),
                                                                           "starting")
    finished = pod_entry(pod("10.244.0.5", ["h"], ["n1"], ready=False, phase="Succeeded"))
    assert finished == PodEntry((), ("h",), frozenset({"n1"}), "gone")


def test_each_network_sees_its_own_db() -> None:
    assert addresses(ask(NETWORKS, "10.244.0.11", "db.")) == ["10.244.0.10"]
    assert addresses(ask(NETWORKS, "10.244.0.21", "db.")) == ["10.244.0.20"]
    # Through the search list, and case-insensitively.
    assert addresses(ask(NETWORKS, "10.244.0.11", "DB.ns1.svc.cluster.local.")) == ["10.244.0.10"]
    assert addresses(ask(NETWORKS, "10.244.0.11", "db.local.")) == ["10.244.0.10"]


def test_owned_names_are_hidden_from_other_networks() -> None:
    reply = ask(NETWORKS, "10.244.0.30", "db.")
    assert reply is not None and reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.flags & dns.flags.AA


def test_peer_not_ready_yet_is_servfail() -> None:
    starting = view(pod("10.244.1.1", ["app"], ["n"]), pod("10.244.1.2", ["db"], ["n"],
                                                           ready=False))
    reply = ask(starting, "10.244.1.1", "db.")
    assert reply is not None and reply.rcode() == dns.rcode.SERVFAIL
    # The ones of other networks, starting or not, stay invisible.
    hidden = ask(NETWORKS, "10.244.0.30", "late.")
    assert hidden is not None and hidden.rcode() == dns.rcode.NXDOMAIN


def test_aaaa_of_owned_name_is_nodata() -> None:
    reply = ask(NETWORKS, "10.244.0.11", "db.", "AAAA")
    assert reply is not None and reply.rcode() == dns.rcode.NOERROR and not reply.answer


def test_foreign_names_and_unknown_sources_go_upstream() -> None:
    assert ask(NETWORKS, "10.244.0.11", "kubernetes.default.svc.cluster.local.") is None
    assert ask(NETWORKS, "10.244.9.9", "db.") is None


def test_ptr_only_within_the_network() -> None:
    name = dns.reversename.from_address("10.244.0.10").to_text()
    reply = ask(NETWORKS, "10.244.0.11", name, "PTR")
    assert reply is not None
    assert [item.target.to_text() for item in reply.answer[0]] == ["db-pod.", "db.", "db.local."]
    assert ask(NETWORKS, "10.244.0.30", name, "PTR") is None


def test_ipv6_mapped_source_is_the_same_pod() -> None:
    from kubedock.dns._view import normal_ip

    assert normal_ip("::ffff:10.244.0.11") == "10.244.0.11"


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\x12\x34" + b"\x00" * 9,
    # A response, two questions, a pointer loop, a label past the end.
    b"\x00\x01\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01",
    b"\x00\x01\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01",
    b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
    b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3fabc",
])
def test_malformed_queries(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_query(data)


@given(st.binary(max_size=64))
def test_parse_never_fails_otherwise(data: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        parse_query(data)


@given(st.from_regex(r"[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){0,3}", fullmatch=True),
       st.sampled_from(["A", "AAAA", "PTR", "MX", "TXT"]))
def test_question_round_trip(name: str, rdtype: str) -> None:
    query = dns.message.make_query(name + ".", rdtype)
    parsed = parse_query(query.to_wire())
    assert parsed.question.name == name
    assert parsed.question.qtype == dns.rdatatype.from_text(rdtype)
    assert parsed.id == query.id


def test_large_answer_is_truncated_over_udp_only() -> None:
    many = view(pod("10.244.2.1", ["client"], ["big"]),
                *(pod(f"10.244.3.{i}", [f"replica-{i}", "many"], ["big"]) for i in range(40)))
    query = parse_query(dns.message.make_query("many.", "A").to_wire())
    udp = resolve(many, "10.244.2.1", query, limit=512)
    assert udp is not None and len(udp) <= 512
    assert dns.message.from_wire(udp).flags & dns.flags.TC
    tcp = resolve(many, "10.244.2.1", query, limit=None)
    assert tcp is not None and len(addresses(dns.message.from_wire(tcp))) == 40


def question(name: str, rdtype: str = "A") -> Question:
    return parse_query(dns.message.make_query(name, rdtype).to_wire()).question


def test_first_query_of_a_starting_pod_waits_for_its_address() -> None:
    # The kubelet has not reported the asker's address yet: it is likely the pod that starts.
    starting = view(pod("10.244.4.1", ["db"], ["n"]), pod("", ["app"], ["n"]))
    assert starting.unaddressed == 1
    assert not settled(starting, "10.244.4.2", question("db.ns1.svc.cluster.local."))
    assert not settled(starting, "10.244.4.2", question(
        dns.reversename.from_address("10.244.4.1").to_text(), "PTR"))
    # Names that no kubedock pod holds go upstream whoever asks.
    assert settled(starting, "10.244.4.2", question("example.com."))
    assert ask(starting, "10.244.4.2", "db.") is None
    reported = view(pod("10.244.4.1", ["db"], ["n"]), pod("10.244.4.2", ["app"], ["n"]))
    assert settled(reported, "10.244.4.2", question("db.ns1.svc.cluster.local."))
    assert addresses(ask(reported, "10.244.4.2", "db.")) == ["10.244.4.1"]


def test_unknown_asker_with_no_pod_starting_is_settled() -> None:
    quiet = view(pod("10.244.4.1", ["db"], ["n"]), pod("", ["outside"], [], name="outside"))
    assert quiet.unaddressed == 0  # a starting pod outside any network asks upstream anyway
    assert settled(quiet, "10.244.9.9", question("db."))
    assert ask(quiet, "10.244.9.9", "db.") is None


def test_pod_outside_networks_is_settled_and_asks_upstream() -> None:
    mixed = view(pod("10.244.4.1", ["db"], ["n"]), pod("", ["app"], ["n"]),
                 pod("10.244.4.3", [], [], name="outside"))
    assert settled(mixed, "10.244.4.3", question("db."))
    assert ask(mixed, "10.244.4.3", "db.") is None


def test_peer_not_ready_waits_then_resolves() -> None:
    starting = view(pod("10.244.1.1", ["app"], ["n"]), pod("", ["db"], ["n"], ready=False))
    assert not settled(starting, "10.244.1.1", question("db."))
    # Another network's starting db is none of the asker's business.
    assert settled(view(pod("10.244.1.1", ["app"], ["n"]), pod("", ["db"], ["m"], ready=False)),
                   "10.244.1.1", question("db."))
    ready = view(pod("10.244.1.1", ["app"], ["n"]), pod("10.244.1.2", ["db"], ["n"]))
    assert settled(ready, "10.244.1.1", question("db."))


def test_gone_peers_resolve_nowhere_without_waiting() -> None:
    for gone in (pod("10.244.1.2", ["db"], ["n"], deleting=True),
                 pod("10.244.1.2", ["db"], ["n"], ready=False, phase="Failed")):
        v = view(pod("10.244.1.1", ["app"], ["n"]), gone)
        assert settled(v, "10.244.1.1", question("db."))
        reply = ask(v, "10.244.1.1", "db.")
        assert reply is not None and reply.rcode() == dns.rcode.NXDOMAIN


def test_an_address_freed_by_a_finished_pod_is_the_new_pods() -> None:
    # Statuses keep the address of a finished pod; the next sandbox may get it.
    reused = view(pod("10.244.5.5", ["old"], ["secret"], ready=False, phase="Succeeded"),
                  pod("10.244.5.5", ["going"], ["secret"], deleting=True),
                  pod("10.244.5.5", ["new"], ["n"]), pod("10.244.5.6", ["peer"], ["n"]),
                  pod("10.244.5.7", ["db"], ["secret"]))
    reply = ask(reused, "10.244.5.5", "db.")
    assert reply is not None and reply.rcode() == dns.rcode.NXDOMAIN
    assert addresses(ask(reused, "10.244.5.5", "peer.")) == ["10.244.5.6"]
