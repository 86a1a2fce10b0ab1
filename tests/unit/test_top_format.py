"""`docker top` formatting: ps's columns over what the toolbox read from /proc."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kubedock.engine._top import PsFailed, check_ps_args, top

BOOT = 1_796_000_000  # 2026-11-30 00:53:20 UTC


def _process(pid: int, args: list[str], **fields: Any) -> dict[str, Any]:
    process = {"pid": pid, "comm": args[0].rpartition("/")[2][:15] if args else "kworker",
               "state": "S", "ppid": 0, "pgrp": pid, "sid": pid, "tty_nr": 0, "tpgid": -1,
               "utime": 150, "stime": 50, "priority": 20, "nice": 0, "threads": 1,
               "start_ticks": 10_000, "vsize": 2_322_432, "rss_pages": 345, "uid": 0, "gid": 0,
               "user": "root", "args": args}
    process.update(fields)
    return process


LISTING = {
    "now": BOOT + 400.0, "boot_time": BOOT, "clock_ticks": 100, "page_size": 4096,
    "mem_total_kib": 1_000_000,
    "processes": [
        _process(7, ["sleep", "600"], ppid=1, uid=1000, user="user", tty_nr=34816 + 3,
                 tpgid=7, start_ticks=30_000, utime=0, stime=0, threads=3, nice=5),
        _process(1, ["/usr/bin/sleep-forever"]),
        _process(9, [], state="Z", ppid=1),
    ],
}


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_default_is_ef() -> None:
    assert top("", LISTING) == top("-ef", LISTING) == (
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        [["root", "1", "0", "0", "00:55", "?", "00:00:02", "/usr/bin/sleep-forever"],
         ["user", "7", "1", "0", "00:58", "pts/3", "00:00:00", "sleep 600"],
         ["root", "9", "1", "0", "00:55", "?", "00:00:02", "[kworker]"]],
    )


def test_bsd_user_format() -> None:
    titles, rows = top("aux", LISTING)
    assert titles == ["USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START",
                      "TIME", "COMMAND"]
    assert rows[0] == ["root", "1", "0.7", "0.1", "2268", "1380", "?", "Ss", "00:55", "0:02",
                       "/usr/bin/sleep-forever"]
    assert rows[1][7] == "SNsl+"


@pytest.mark.parametrize(("ps_args", "titles", "first"), [
    ("-e", ["PID", "TTY", "TIME", "CMD"], ["1", "?", "00:00:02", "sleep-forever"]),
    ("ax", ["PID", "TTY", "STAT", "TIME", "COMMAND"],
     ["1", "?", "Ss", "0:02", "/usr/bin/sleep-forever"]),
    ("-o pid,user,comm", ["PID", "USER", "COMMAND"], ["1", "root", "sleep-forever"]),
    ("-eo pid,uid,gid,etime,args", ["PID", "UID", "GID", "ELAPSED", "COMMAND"],
     ["1", "0", "0", "05:00", "/usr/bin/sleep-forever"]),
    ("o pid=ID,comm -o pid", ["ID,comm", "PID"], ["1", "1"]),
    ("-opid,nlwp,stat", ["PID", "NLWP", "STAT"], ["1", "1", "Ss"]),
])
def test_common_forms(ps_args: str, titles: list[str], first: list[str]) -> None:
    assert top(ps_args, LISTING)[0] == titles
    assert top(ps_args, LISTING)[1][0] == first


@pytest.mark.parametrize(("ps_args", "message"), [
    ("bogus", "ps: error: unsupported option (BSD syntax)"),
    ("-Z", "ps: error: unsupported SysV option"),
    ("-o nosuch", 'ps: error: unknown user-defined format specifier "nosuch"'),
    ("-o", "ps: error: format specification must follow -o"),
    ("-o user", "Couldn't find PID field in ps output"),
    ("-o pid=PROCESS", "Couldn't find PID field in ps output"),
])
def test_refusals_carry_ps_words(ps_args: str, message: str) -> None:
    with pytest.raises(PsFailed, match=f"^{re.escape(message)}$"):
        top(ps_args, LISTING)


def test_only_the_pid_column_may_be_titled_pid() -> None:
    check_ps_args("-o pid=PID")
    with pytest.raises(PsFailed, match=r'^specifying "user=PID" is not allowed$'):
        check_ps_args("-o user=PID")
