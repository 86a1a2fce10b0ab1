"""What `ps` needs of a process, read from /proc texts (pure: the reading is the caller's)."""

from __future__ import annotations

from typing import Any


class ProcError(ValueError):
    """A /proc text this parser does not understand."""


def parse_stat(text: str) -> dict[str, Any]:
    """The fields of /proc/PID/stat that `ps` shows. The command name sits in parentheses and
    may itself hold spaces and parentheses, so the fields are counted from the last `)`."""
    open_at, close_at = text.find("("), text.rfind(")")
    if open_at < 0 or close_at < open_at:
        raise ProcError(f"not a /proc/PID/stat line: {text[:80]!r}")
    fields = text[close_at + 2:].split()
    if len(fields) < 22:
        raise ProcError(f"/proc/PID/stat has {len(fields)} fields after the name")
    def number(field: int) -> int:  # `man 5 proc` numbers the fields from 1 (pid)
        return int(fields[field - 3])

    return {
        "pid": int(text[:open_at]),
        "comm": text[open_at + 1:close_at],
        "state": fields[0],
        "ppid": number(4),
        "pgrp": number(5),
        "sid": number(6),
        "tty_nr": number(7),
        "tpgid": number(8),
        "utime": number(14),
        "stime": number(15),
        "priority": number(18),
        "nice": number(19),
        "threads": number(20),
        "start_ticks": number(22),
        "vsize": number(23),
        "rss_pages": number(24),
    }


def parse_ids(status: str) -> tuple[int, int]:
    """The effective uid and gid from /proc/PID/status."""
    ids: dict[str, int] = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid"):
            ids[key] = int(value.split()[1])
    if len(ids) != 2:
        raise ProcError("/proc/PID/status has no Uid or Gid line")
    return ids["Uid"], ids["Gid"]


def parse_cmdline(raw: bytes) -> list[str]:
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]] if raw else []


def parse_boot_time(proc_stat: str) -> int:
    for line in proc_stat.splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise ProcError("/proc/stat has no btime")


def parse_mem_total_kib(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    raise ProcError("/proc/meminfo has no MemTotal")
