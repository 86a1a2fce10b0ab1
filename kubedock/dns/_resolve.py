"""The answer to one query from one source, decided on a view: pure."""

from __future__ import annotations

from ._message import (
    IN,
    NXDOMAIN,
    PTR,
    SERVFAIL,
    Query,
    Question,
    address_record,
    answer,
    pointer_record,
    reverse_address,
)
from ._view import View

TTL = 5  # short: containers come and go within a test run


def settled(view: View, source_ip: str, question: Question) -> bool:
    """Whether the answer is final, or may change once a starting pod is reported.

    It may change when the name is a kubedock pod's and either the asker is not known while
    some starting pod's address is not reported yet (the asker is likely that pod, running its
    first instruction), or a peer of the asker holds the name but is not Ready yet. Docker
    knows a container before it starts; the server waits a little for such answers instead.
    """
    if question.qclass != IN:
        return True
    if question.qtype == PTR:
        ip = reverse_address(question.name)
        about_a_pod = ip is not None and view.identifies(ip)
        return not (about_a_pod and view.unaddressed and not view.identifies(source_ip))
    name = view.own_name(question.name)
    if name is None:
        return True
    if not view.identifies(source_ip):
        return not view.unaddressed
    return bool(view.addresses(source_ip, name)) or not view.pending(source_ip, name)


def resolve(view: View, source_ip: str, query: Query, *, limit: int | None) -> bytes | None:
    """Our answer, or None when the query belongs to the upstream server.

    A name that some kubedock pod holds is ours: the querier gets its network peers'
    addresses, NODATA for AAAA (pods here have IPv4 addresses), SERVFAIL while the peer
    holding it is not Ready yet, and NXDOMAIN when no pod of its networks holds the name, so
    a name never leaks from one network into another.
    """
    question = query.question
    if question.qclass != IN or not view.knows(source_ip):
        return None
    if question.qtype == PTR:
        ip = reverse_address(question.name)
        names = view.names(source_ip, ip) if ip else ()
        if not names:
            return None
        return answer(query, [pointer_record(name, TTL) for name in names], limit=limit)
    name = view.own_name(question.name)
    if name is None:
        return None
    addresses = view.addresses(source_ip, name)
    if not addresses:
        # A peer that is starting: SERVFAIL makes the client try again, NXDOMAIN would not.
        rcode = SERVFAIL if view.pending(source_ip, name) else NXDOMAIN
        return answer(query, [], rcode, limit=limit)
    records = [address_record(ip, TTL) for ip in addresses]
    return answer(query, [r for r in records if r.rtype == question.qtype], limit=limit)
