"""The `X-Docker-Container-Path-Stat` header of the archive endpoints.

Its value is base64 of JSON `{name, size, mode, mtime, linkTarget}`, where `mode` is a Go
`os.FileMode` (type bits at the top of 32 bits) and `mtime` is RFC 3339 with up to nanoseconds.
"""

import base64
import binascii
import datetime
import json
import re
import stat
from typing import Any, TypeVar

import attrs

from ._errors import WireFormatError

PATH_STAT_HEADER = "X-Docker-Container-Path-Stat"

_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_NAMED_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHAR_DEVICE = 1 << 21
_GO_STICKY = 1 << 20

_GO_TYPES = (  # most specific first: a character device also has the device bit
    (_GO_DEVICE | _GO_CHAR_DEVICE, stat.S_IFCHR),
    (_GO_DIR, stat.S_IFDIR),
    (_GO_SYMLINK, stat.S_IFLNK),
    (_GO_DEVICE, stat.S_IFBLK),
    (_GO_NAMED_PIPE, stat.S_IFIFO),
    (_GO_SOCKET, stat.S_IFSOCK),
)
_GO_SPECIAL = ((_GO_SETUID, stat.S_ISUID), (_GO_SETGID, stat.S_ISGID), (_GO_STICKY, stat.S_ISVTX))


def go_file_mode(st_mode: int) -> int:
    """Go's `os.FileMode` for a POSIX `st_mode`."""
    mode = st_mode & 0o777
    file_type = stat.S_IFMT(st_mode)
    mode |= next((go for go, posix in _GO_TYPES if posix == file_type), 0)
    mode |= sum(go for go, posix in _GO_SPECIAL if st_mode & posix)
    return mode


def posix_mode(go_mode: int) -> int:
    """The POSIX `st_mode` for a Go `os.FileMode`; Go-only bits (append, temporary...) drop."""
    mode = go_mode & 0o777
    mode |= next((posix for go, posix in _GO_TYPES if go_mode & go == go), stat.S_IFREG)
    mode |= sum(posix for go, posix in _GO_SPECIAL if go_mode & go)
    return mode


@attrs.frozen
class PathStat:
    name: str
    size: int
    mode: int
    """POSIX `st_mode`, converted to and from Go's layout on the wire."""
    mtime: datetime.datetime
    """Timezone-aware; the wire's nanoseconds are cut to microseconds."""
    link_target: str = ""


def encode_path_stat(path_stat: PathStat) -> str:
    document = {
        "name": path_stat.name,
        "size": path_stat.size,
        "mode": go_file_mode(path_stat.mode),
        "mtime": _format_rfc3339(path_stat.mtime),
        "linkTarget": path_stat.link_target,
    }
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


def decode_path_stat(value: str | bytes) -> PathStat:
    try:
        document = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError) as error:
        raise WireFormatError(f"path stat is not base64 JSON: {value!r}") from error
    if not isinstance(document, dict):
        raise WireFormatError(f"path stat is not an object: {document!r}")
    name = _field(document, "name", str)
    size = _field(document, "size", int)
    mode = _field(document, "mode", int)
    link_target = document.get("linkTarget") or ""
    if not isinstance(link_target, str) or not 0 <= mode < 1 << 32:
        raise WireFormatError(f"bad path stat {document!r}")
    return PathStat(
        name, size, posix_mode(mode), _parse_rfc3339(_field(document, "mtime", str)), link_target
    )


_T = TypeVar("_T")


def _field(document: dict[str, Any], key: str, kind: type[_T]) -> _T:
    value = document.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise WireFormatError(f"path stat field {key!r} is not a {kind.__name__}: {value!r}")
    return value


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))",
    re.ASCII,
)


def _format_rfc3339(moment: datetime.datetime) -> str:
    """Go's RFC 3339 form in UTC: fraction only when needed, without trailing zeros."""
    if moment.utcoffset() is None:
        raise ValueError("path stat mtime must be timezone-aware")
    utc = moment.astimezone(datetime.UTC)
    fraction = f".{utc.microsecond:06d}".rstrip("0") if utc.microsecond else ""
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}{fraction}Z"
    )


def _parse_rfc3339(text: str) -> datetime.datetime:
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise WireFormatError(f"bad RFC 3339 time {text!r}")
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    fraction, utc, sign, offset_hours, offset_minutes = match.group(7, 8, 9, 10, 11)
    offset = datetime.timedelta(0)
    if not utc:
        offset = datetime.timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
        offset = -offset if sign == "-" else offset
    microsecond = int((fraction or "0").ljust(6, "0")[:6])
    try:
        zone = datetime.timezone(offset)
        return datetime.datetime(year, month, day, hour, minute, second, microsecond, zone)
    except ValueError as error:
        raise WireFormatError(f"bad RFC 3339 time {text!r}") from error
