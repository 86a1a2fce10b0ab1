"""The tar relay of a put against `relocate`, which it stands in for: same entries, same data,
same errors, whatever the cuts in the input."""

import gzip
import io
import os
import random
import tarfile

import pytest

from kubedock import podside
from kubedock.engine._tar_relay import State, TarRelay


def relayed(archive: bytes, cut: int | None = None) -> tuple[bytes, State]:
    """What a put sends for `archive` arriving in pieces: the relay's output, and from where
    it hands over, `relocate`'s."""
    chance = random.Random(len(archive) if cut is None else cut)
    relay, out, offset = TarRelay(), bytearray(), 0
    while offset < len(archive) and relay.state is State.READING:
        step = cut or chance.choice([1, 100, 512, 513, 65536, 300_000])
        out += b"".join(relay.feed(archive[offset:offset + step]))
        offset += step
    if relay.state is State.READING:
        out += b"".join(relay.finish())
    if relay.state is State.HANDED_OVER:
        sink = io.BytesIO()
        podside.relocate(io.BytesIO(relay.rest + archive[offset:]), sink)
        out += sink.getvalue()
    return bytes(out), relay.state


def relocated(archive: bytes) -> bytes:
    sink = io.BytesIO()
    podside.relocate(io.BytesIO(archive), sink)
    return sink.getvalue()


def entries(archive: bytes) -> list[tuple[str, bytes, str, int, bytes | None]]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r|") as reader:
        result = []
        for member in reader:
            content = reader.extractfile(member) if member.isfile() else None
            result.append((member.name, member.type, member.linkname, member.mode,
                           content.read() if content else None))
        return result


def build(members: list[tuple[str, bytes, bytes | str]],
          fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    """(name, type, data of a file or link target) each."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o640
            if kind == tarfile.REGTYPE:
                assert isinstance(payload, bytes)
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
            else:
                info.linkname = payload if isinstance(payload, str) else ""
                archive.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 256 * 1024 - 1, 256 * 1024,
                                  256 * 1024 + 1, 3 * 1024 * 1024 + 7])
def test_one_file_passes_through_byte_exact(size: int) -> None:
    archive = build([("blob.bin", tarfile.REGTYPE, os.urandom(size))])
    out, state = relayed(archive)
    assert state is State.DONE
    # Header and data as they came, then the end marker.
    assert out == archive[:512 + size + -size % 512] + bytes(1024)
    assert entries(out) == entries(relocated(archive))


def test_a_tree_with_every_kind_of_entry() -> None:
    archive = build([
        ("dir", tarfile.DIRTYPE, b""),
        ("dir/file", tarfile.REGTYPE, b"content"),
        ("./dir/dotted", tarfile.REGTYPE, b"dotted"),
        ("/absolute/name", tarfile.REGTYPE, b"absolute"),
        ("dir/../moved", tarfile.REGTYPE, b"moved"),
        ("link", tarfile.SYMTYPE, "/etc/passwd"),
        ("hard", tarfile.LNKTYPE, "./dir/file"),
        ("fifo", tarfile.FIFOTYPE, b""),
        ("device", tarfile.CHRTYPE, b""),
        ("./", tarfile.DIRTYPE, b""),
        ("a" * 90 + "/" + "b" * 90, tarfile.REGTYPE, b"split name"),  # ustar's prefix field
        ("last", tarfile.REGTYPE, b""),
    ])
    for cut in (None, 1, 512, 4096):
        out, state = relayed(archive, cut)
        assert state is State.DONE
        assert entries(out) == entries(relocated(archive))
    names = [entry[0] for entry in entries(out)]
    assert "device" not in names and "" not in names
    assert {"dir/dotted", "absolute/name", "moved"} <= set(names)


@pytest.mark.parametrize("archive", [
    build([("x" * 120, tarfile.REGTYPE, b"long")], tarfile.PAX_FORMAT),
    build([("x" * 120, tarfile.REGTYPE, b"long")], tarfile.GNU_FORMAT),
    build([("first", tarfile.REGTYPE, b"1"), ("y" * 120, tarfile.SYMTYPE, "t")],
          tarfile.PAX_FORMAT),
    gzip.compress(build([("zipped", tarfile.REGTYPE, b"z" * 2000)])),
])
def test_what_the_relay_does_not_read_is_handed_to_relocate(archive: bytes) -> None:
    out, state = relayed(archive)
    assert state is State.HANDED_OVER
    assert entries(out) == entries(relocated(archive))


def test_anything_after_the_end_or_an_unreadable_header_is_ignored() -> None:
    archive = build([("a", tarfile.REGTYPE, b"1")])
    out, state = relayed(archive[:1024] + bytes(1024) + b"garbage" * 100)
    assert state is State.DONE
    assert entries(out) == [("a", tarfile.REGTYPE, "", 0o640, b"1")]
    out, state = relayed(archive[:1024] + b"\xff" * 512)
    assert entries(out) == entries(relocated(archive[:1024] + b"\xff" * 512))
    # Cut right after a member: tarfile takes that as the end as well.
    out, state = relayed(archive[:1024])
    assert state is State.DONE and entries(out) == entries(relocated(archive[:1024]))


@pytest.mark.parametrize(("archive", "message"), [
    (build([("../escape", tarfile.REGTYPE, b"x")]), "points outside the target"),
    (build([("ok", tarfile.REGTYPE, b"x"), ("dir/../../up", tarfile.SYMTYPE, "t")]),
     "points outside the target"),
    (build([("hard", tarfile.LNKTYPE, "./")]), "points at the target itself"),
    (build([("cut", tarfile.REGTYPE, b"x" * 5000)])[:2000], "truncated tar archive at 'cut'"),
])
def test_refused_like_relocate_refuses(archive: bytes, message: str) -> None:
    with pytest.raises(podside.ArchiveError, match=message):
        relocated(archive)
    with pytest.raises(podside.ArchiveError, match=message):
        relayed(archive)


@pytest.mark.parametrize("archive", [b"", b"not a tar", b"\xff" * 600])
def test_no_archive_at_all_is_relocates_to_judge(archive: bytes) -> None:
    with pytest.raises(podside.ArchiveError, match="not a tar archive"):
        relayed(archive)
