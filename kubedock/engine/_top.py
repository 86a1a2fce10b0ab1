"""`docker top`: `ps` formatting of the processes the toolbox read from /proc (pure).

Docker runs the host's procps `ps` with the client's `ps_args` (default `-ef`) and keeps the
container's rows. kubedock formats the same columns itself: the System V forms (`-e`, `-A`,
`-f`, `-o FORMAT`), the BSD forms (`aux`, `ax`, `o FORMAT`) and the common format keys.
Anything else is refused with procps's words, as Docker passes them on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._errors import Conflict, InvalidParameter
from ._records import Container

if TYPE_CHECKING:
    from ._engine import Engine

Process = Mapping[str, Any]
Facts = Mapping[str, Any]
_Column = Callable[[Process, Facts], str]

# What moby checks before running ps: a header named PID must belong to the pid column.
_PID_HEADER = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


class PsFailed(InvalidParameter):
    """`ps` refused the arguments: ps's words, as Docker passes them on (Docker 20.10 with a
    500, as if its own ps had failed; kubedock with a 400, the client's arguments being
    what is wrong)."""


def _seconds_alive(process: Process, facts: Facts) -> float:
    started = facts["boot_time"] + process["start_ticks"] / facts["clock_ticks"]
    return max(float(facts["now"] - started), 0.0)


def _cpu_seconds(process: Process, facts: Facts) -> int:
    return int((process["utime"] + process["stime"]) / facts["clock_ticks"])


def _cpu_share(process: Process, facts: Facts) -> float:
    alive = _seconds_alive(process, facts)
    used = (process["utime"] + process["stime"]) / facts["clock_ticks"]
    return used * 100 / alive if alive > 0 else 0.0


def _rss_kib(process: Process, facts: Facts) -> int:
    return int(process["rss_pages"] * facts["page_size"] // 1024)


def _start(process: Process, facts: Facts) -> str:
    started = facts["boot_time"] + process["start_ticks"] / facts["clock_ticks"]
    then, now = time.localtime(started), time.localtime(facts["now"])
    if then[:3] == now[:3]:
        return time.strftime("%H:%M", then)
    return time.strftime("%b%d" if then.tm_year == now.tm_year else "%Y", then)


def _tty(process: Process, _facts: Facts) -> str:
    number = process["tty_nr"]
    major, minor = (number >> 8) & 0xFFF, (number & 0xFF) | ((number >> 12) & 0xFFF00)
    if 136 <= major <= 143:
        return f"pts/{(major - 136) * 256 + minor}"
    if major == 4:
        return f"tty{minor}"
    return "?"


def _long_time(process: Process, facts: Facts) -> str:
    seconds = _cpu_seconds(process, facts)
    days, seconds = divmod(seconds, 86400)
    clock = f"{seconds // 3600:02}:{seconds // 60 % 60:02}:{seconds % 60:02}"
    return f"{days}-{clock}" if days else clock


def _short_time(process: Process, facts: Facts) -> str:
    seconds = _cpu_seconds(process, facts)
    return f"{seconds // 60}:{seconds % 60:02}"


def _elapsed(process: Process, facts: Facts) -> str:
    seconds = int(_seconds_alive(process, facts))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    clock = f"{seconds // 60:02}:{seconds % 60:02}"
    if days:
        return f"{days}-{hours:02}:{clock}"
    return f"{hours:02}:{clock}" if hours else clock


def _state(process: Process, _facts: Facts) -> str:
    flags = str(process["state"])
    if process["nice"] < 0:
        flags += "<"
    elif process["nice"] > 0:
        flags += "N"
    if process["pid"] == process["sid"]:
        flags += "s"
    if process["threads"] > 1:
        flags += "l"
    if process["tpgid"] != -1 and process["tpgid"] == process["pgrp"]:
        flags += "+"
    return flags


def _args(process: Process, _facts: Facts) -> str:
    return " ".join(process["args"]) or f"[{process['comm']}]"


def _field(name: str) -> _Column:
    return lambda process, _facts: str(process[name])


_KEYS: dict[str, tuple[str, _Column]] = {
    "pid": ("PID", _field("pid")),
    "ppid": ("PPID", _field("ppid")),
    "pgid": ("PGID", _field("pgrp")),
    "pgrp": ("PGRP", _field("pgrp")),
    "sid": ("SID", _field("sid")),
    "sess": ("SESS", _field("sid")),
    "uid": ("UID", _field("uid")),
    "euid": ("EUID", _field("uid")),
    "user": ("USER", _field("user")),
    "euser": ("EUSER", _field("user")),
    "uname": ("USER", _field("user")),
    "gid": ("GID", _field("gid")),
    "egid": ("EGID", _field("gid")),
    "comm": ("COMMAND", _field("comm")),
    "ucomm": ("COMMAND", _field("comm")),
    "args": ("COMMAND", _args),
    "command": ("COMMAND", _args),
    "cmd": ("CMD", _args),
    "etime": ("ELAPSED", _elapsed),
    "etimes": ("ELAPSED", lambda p, f: str(int(_seconds_alive(p, f)))),
    "time": ("TIME", _long_time),
    "cputime": ("TIME", _long_time),
    "tty": ("TT", _tty),
    "tname": ("TTY", _tty),
    "tt": ("TT", _tty),
    "stat": ("STAT", _state),
    "s": ("S", _field("state")),
    "state": ("S", _field("state")),
    "vsz": ("VSZ", lambda p, _f: str(p["vsize"] // 1024)),
    "vsize": ("VSZ", lambda p, _f: str(p["vsize"] // 1024)),
    "rss": ("RSS", lambda p, f: str(_rss_kib(p, f))),
    "rssize": ("RSS", lambda p, f: str(_rss_kib(p, f))),
    "%cpu": ("%CPU", lambda p, f: f"{_cpu_share(p, f):.1f}"),
    "pcpu": ("%CPU", lambda p, f: f"{_cpu_share(p, f):.1f}"),
    "%mem": ("%MEM", lambda p, f: f"{_rss_kib(p, f) * 100 / f['mem_total_kib']:.1f}"),
    "pmem": ("%MEM", lambda p, f: f"{_rss_kib(p, f) * 100 / f['mem_total_kib']:.1f}"),
    "c": ("C", lambda p, f: str(int(_cpu_share(p, f)))),
    "nlwp": ("NLWP", _field("threads")),
    "thcount": ("THCNT", _field("threads")),
    "ni": ("NI", _field("nice")),
    "nice": ("NI", _field("nice")),
    "pri": ("PRI", _field("priority")),
    "stime": ("STIME", _start),
    "start_time": ("START", _start),
    "start": ("STARTED", _start),
    "bsdstart": ("START", _start),
}
_KEYS["bsdtime"] = ("TIME", _short_time)


def _preset(*keys: str) -> tuple[tuple[str, _Column], ...]:
    """Columns of ps's own formats; `key=HEADER` where ps titles a key its own way."""
    columns = []
    for item in keys:
        key, _, header = item.partition("=")
        columns.append((header or _KEYS[key][0], _KEYS[key][1]))
    return tuple(columns)


_FULL = _preset("user=UID", "pid", "ppid", "c", "stime", "tname", "time", "cmd")
_SHORT = _preset("pid", "tname", "time", "comm=CMD")
_BSD_USER = _preset("user", "pid", "%cpu", "%mem", "vsz", "rss", "tname", "stat", "bsdstart",
                    "bsdtime", "args")
_BSD = _preset("pid", "tname", "stat", "bsdtime", "args")
_SYSV_SELECTION = set("aAdeNgw")
_BSD_SELECTION = set("axgwe")


def _format(spec: str) -> list[tuple[str, _Column]]:
    columns = []
    items = spec.split(",")
    while items:
        item = items.pop(0)
        key, equals, header = item.partition("=")
        if equals:  # a header runs to the end of the format, commas included
            header = ",".join([header, *items])
            items = []
        if key.lower() not in _KEYS:
            raise PsFailed(f'ps: error: unknown user-defined format specifier "{key}"')
        default, column = _KEYS[key.lower()]
        columns.append((header if equals else default, column))
    return columns


def _columns(ps_args: str) -> list[tuple[str, _Column]]:
    words = ps_args.split()
    custom: list[tuple[str, _Column]] = []
    full = bsd = bsd_user = False
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        sysv = word.startswith("-")
        letters = word[1:] if sysv else word
        for position, letter in enumerate(letters):
            if letter in "oO":
                spec = letters[position + 1:]
                if not spec:
                    if index >= len(words):
                        raise PsFailed("ps: error: format specification must follow -o"
                                       if sysv else "ps: error: format specification must "
                                       "follow o")
                    spec, index = words[index], index + 1
                custom.extend(_format(spec))
                break
            if sysv and letter in ("f", "F"):
                full = True
            elif not sysv and letter == "u":
                bsd_user = True
            elif letter in (_SYSV_SELECTION if sysv else _BSD_SELECTION):
                bsd = bsd or not sysv
            else:
                raise PsFailed("ps: error: unsupported SysV option" if sysv
                               else "ps: error: unsupported option (BSD syntax)")
    if custom:
        return custom
    return list(_BSD_USER if bsd_user else _FULL if full else _BSD if bsd else _SHORT)


def check_ps_args(ps_args: str) -> None:
    """moby's check of `ps_args`, made before the container is looked at."""
    for key, value in _PID_HEADER.findall(ps_args):
        if key != "pid":
            raise PsFailed(f'specifying "{key}={value}" is not allowed')


async def container_top(engine: Engine, container: Container, ps_args: str
                        ) -> tuple[list[str], list[list[str]]]:
    """`docker top`: the processes of a running container, read by kubedock's toolbox."""
    check_ps_args(ps_args)
    if container.restarting:
        raise Conflict(f"Container {container.id} is restarting, wait until the container is "
                       "running")
    if container.status != "running":
        raise Conflict(f"Container {container.id} is not running")
    _columns(ps_args or "-ef")  # refused arguments leave no toolbox behind
    listing = await engine.toolbox.processes(container)
    if container.supervisor is not None:
        # kubedock's own: the supervisor (PID 1) and its `wait`; Docker shows the program.
        listing["processes"] = [process for process in listing["processes"]
                                if process["args"][:1] != [container.supervisor]]
    return top(ps_args, listing)


def top(ps_args: str, listing: Facts) -> tuple[list[str], list[list[str]]]:
    """Docker's Titles and Processes for `ps ps_args` over the toolbox's listing."""
    columns = _columns(ps_args or "-ef")
    titles = [title for title, _ in columns]
    if "PID" not in titles:
        raise PsFailed("Couldn't find PID field in ps output")
    processes = sorted(listing["processes"], key=lambda process: process["pid"])
    return titles, [[column(process, listing) for _, column in columns] for process in processes]
