import base64
import contextlib
import datetime
import json
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubedock.wire import (
    PathStat,
    WireFormatError,
    decode_path_stat,
    encode_path_stat,
    go_file_mode,
    posix_mode,
)

UTC = datetime.UTC


def test_engine_example_decodes_and_encodes_byte_for_byte() -> None:
    document = (
        b'{"name":"data.txt","size":38,"mode":420,"mtime":"2024-01-01T00:00:00Z","linkTarget":""}'
    )
    header = base64.b64encode(document).decode()
    path_stat = PathStat(
        "data.txt", 38, stat.S_IFREG | 0o644, datetime.datetime(2024, 1, 1, tzinfo=UTC)
    )
    assert decode_path_stat(header) == path_stat
    assert encode_path_stat(path_stat) == header


def test_directory_and_symlink_use_go_bits() -> None:
    moment = datetime.datetime(2024, 5, 6, 7, 8, 9, 120000, tzinfo=UTC)
    directory = PathStat("etc", 4096, stat.S_IFDIR | 0o755, moment)
    assert json.loads(base64.b64decode(encode_path_stat(directory))) == {
        "name": "etc",
        "size": 4096,
        "mode": 0x80000000 | 0o755,
        "mtime": "2024-05-06T07:08:09.12Z",
        "linkTarget": "",
    }
    link = PathStat("sh", 4, stat.S_IFLNK | 0o777, moment, "dash")
    assert json.loads(base64.b64decode(encode_path_stat(link)))["mode"] == 0x8000000 | 0o777


@pytest.mark.parametrize(
    ("st_mode", "go_mode"),
    [
        (stat.S_IFREG | 0o644, 0o644),
        (stat.S_IFDIR | 0o1777, (1 << 31) | (1 << 20) | 0o777),
        (stat.S_IFREG | 0o4755, (1 << 23) | 0o755),
        (stat.S_IFREG | 0o2755, (1 << 22) | 0o755),
        (stat.S_IFCHR | 0o666, (1 << 26) | (1 << 21) | 0o666),
        (stat.S_IFBLK | 0o660, (1 << 26) | 0o660),
        (stat.S_IFIFO | 0o600, (1 << 25) | 0o600),
        (stat.S_IFSOCK | 0o755, (1 << 24) | 0o755),
    ],
)
def test_mode_conversion(st_mode: int, go_mode: int) -> None:
    assert go_file_mode(st_mode) == go_mode
    assert posix_mode(go_mode) == st_mode


def test_nanoseconds_and_offsets_are_accepted() -> None:
    document = {"name": "a", "size": 1, "mode": 420, "mtime": "2024-01-01T02:00:00.123456789+02:00"}
    decoded = decode_path_stat(base64.b64encode(json.dumps(document).encode()))
    assert decoded.mtime == datetime.datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert decoded.link_target == ""


@pytest.mark.parametrize(
    "header",
    [
        "not base64!",
        base64.b64encode(b"[]").decode(),
        base64.b64encode(b'{"name":"a","size":1,"mode":420}').decode(),
        base64.b64encode(
            b'{"name":"a","size":"1","mode":420,"mtime":"2024-01-01T00:00:00Z"}'
        ).decode(),
        base64.b64encode(
            b'{"name":"a","size":1,"mode":-1,"mtime":"2024-01-01T00:00:00Z"}'
        ).decode(),
        base64.b64encode(
            b'{"name":"a","size":1,"mode":420,"mtime":"2024-13-01T00:00:00Z"}'
        ).decode(),
        base64.b64encode(
            b'{"name":"a","size":1,"mode":420,"mtime":"2024-01-01T00:00:00+99:00"}'
        ).decode(),
    ],
)
def test_malformed_headers(header: str) -> None:
    with pytest.raises(WireFormatError):
        decode_path_stat(header)


modes = st.sampled_from(
    [
        stat.S_IFREG,
        stat.S_IFDIR,
        stat.S_IFLNK,
        stat.S_IFCHR,
        stat.S_IFBLK,
        stat.S_IFIFO,
        stat.S_IFSOCK,
    ]
).flatmap(lambda kind: st.integers(0, 0o7777).map(lambda perm: kind | perm))
moments = st.datetimes(
    min_value=datetime.datetime(1900, 1, 1),
    max_value=datetime.datetime(2200, 1, 1),
    timezones=st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
        lambda minutes: datetime.timezone(datetime.timedelta(minutes=minutes))
    ),
)


@given(st.text(), st.integers(0, 2**63), modes, moments, st.text())
def test_round_trip(
    name: str, size: int, mode: int, mtime: datetime.datetime, link_target: str
) -> None:
    path_stat = PathStat(name, size, mode, mtime, link_target)
    assert decode_path_stat(encode_path_stat(path_stat)) == path_stat


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_garbage_raises_only_wire_format_error(header: str | bytes) -> None:
    for candidate in (
        header,
        base64.b64encode(header.encode() if isinstance(header, str) else header),
    ):
        with contextlib.suppress(WireFormatError):
            decode_path_stat(candidate)
