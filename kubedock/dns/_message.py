"""DNS messages (RFC 1035), sans-I/O: read a query, write an answer.

Only what a resolver for pod names needs: one question per query, A/AAAA/PTR answers, and the
header fields a stub resolver checks. Everything else is relayed to the upstream server as bytes.
"""

from __future__ import annotations

import ipaddress
import struct

import attrs

A, PTR, AAAA = 1, 12, 28
IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP = 0, 1, 2, 3, 4
UDP_LIMIT = 512  # without EDNS, RFC 1035 §4.2.1

_HEADER = struct.Struct(">HHHHHH")
_QR, _AA, _TC, _RD, _RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
_OPCODE_MASK = 0x7800
_MAX_POINTERS = 64


class MalformedMessage(ValueError):
    pass


@attrs.frozen
class Question:
    name: str  # lower case, no trailing dot; "" is the root
    qtype: int
    qclass: int


@attrs.frozen
class Query:
    id: int
    flags: int
    question: Question
    question_wire: bytes  # the question section as sent, echoed in the answer

    @property
    def recursion_desired(self) -> bool:
        return bool(self.flags & _RD)


@attrs.frozen
class Record:
    rtype: int
    data: bytes  # A: 4 bytes, AAAA: 16 bytes, PTR: an encoded name
    ttl: int = 5


def message_id(data: bytes) -> int | None:
    return struct.unpack_from(">H", data)[0] if len(data) >= 2 else None


def with_id(data: bytes, new_id: int) -> bytes:
    return struct.pack(">H", new_id) + data[2:]


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` and the offset just after it (pointers followed, loops refused)."""
    labels: list[str] = []
    end: int | None = None
    for _ in range(_MAX_POINTERS):
        if offset >= len(data):
            raise MalformedMessage("name runs past the end of the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise MalformedMessage("truncated compression pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise MalformedMessage("unknown label type")
        if length == 0:
            name = ".".join(labels)
            if len(name) > 253:
                raise MalformedMessage("name longer than 253 characters")
            return name, end if end is not None else offset + 1
        label = data[offset + 1:offset + 1 + length]
        if len(label) != length:
            raise MalformedMessage("label runs past the end of the message")
        labels.append(label.decode("ascii", "replace").lower())
        offset += 1 + length
    raise MalformedMessage("too many compression pointers")


def encode_name(name: str) -> bytes:
    out = bytearray()
    for label in filter(None, name.rstrip(".").split(".")):
        raw = label.encode("ascii")
        if len(raw) > 63:
            raise ValueError(f"label longer than 63 bytes in {name!r}")
        out += bytes([len(raw)]) + raw
    return bytes(out + b"\x00")


def parse_query(data: bytes) -> Query:
    """Read a standard query with exactly one question; anything else is malformed."""
    if len(data) < _HEADER.size:
        raise MalformedMessage("shorter than a DNS header")
    message_id_, flags, qdcount, _an, _ns, _ar = _HEADER.unpack_from(data)
    if flags & _QR:
        raise MalformedMessage("a response, not a query")
    if flags & _OPCODE_MASK:
        raise MalformedMessage("not a standard query")
    if qdcount != 1:
        raise MalformedMessage(f"{qdcount} questions; want exactly one")
    name, offset = _read_name(data, _HEADER.size)
    if offset + 4 > len(data):
        raise MalformedMessage("question runs past the end of the message")
    qtype, qclass = struct.unpack_from(">HH", data, offset)
    return Query(message_id_, flags, Question(name, qtype, qclass), data[_HEADER.size:offset + 4])


def answer(query: Query, records: list[Record], rcode: int = NOERROR, *,
           limit: int | None = None) -> bytes:
    """An authoritative answer to ``query``; over ``limit`` bytes it is truncated (TC set)."""
    flags = _QR | _AA | _RA | (query.flags & _RD) | rcode
    body = bytearray(query.question_wire)
    for record in records:
        # 0xC00C points at the question's name, right after the header.
        body += struct.pack(">HHHIH", 0xC00C, record.rtype, IN, record.ttl, len(record.data))
        body += record.data
    message = _HEADER.pack(query.id, flags, 1, len(records), 0, 0) + body
    if limit is not None and len(message) > limit:
        return _HEADER.pack(query.id, flags | _TC, 1, 0, 0, 0) + query.question_wire
    return message


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """A bare reply carrying ``rcode`` to a message that could not be read, if it has an id."""
    request_id = message_id(data)
    if request_id is None:
        return None
    return _HEADER.pack(request_id, _QR | _RA | rcode, 0, 0, 0, 0)


def address_record(ip: str, ttl: int = 5) -> Record:
    address = ipaddress.ip_address(ip)
    return Record(A if address.version == 4 else AAAA, address.packed, ttl)


def pointer_record(name: str, ttl: int = 5) -> Record:
    return Record(PTR, encode_name(name), ttl)


def reverse_address(name: str) -> str | None:
    """The address a PTR question asks about, or None when it names no single address."""
    if name.endswith(".in-addr.arpa"):
        octets = name.removesuffix(".in-addr.arpa").split(".")
        if len(octets) == 4:
            try:
                return str(ipaddress.IPv4Address(".".join(reversed(octets))))
            except ValueError:
                return None
    elif name.endswith(".ip6.arpa"):
        nibbles = name.removesuffix(".ip6.arpa").split(".")
        if len(nibbles) == 32 and all(len(n) == 1 for n in nibbles):
            try:
                return str(ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16)))
            except ValueError:
                return None
    return None
