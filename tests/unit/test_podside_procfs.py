"""/proc parsing for `docker top`, on files captured from a real process whose name holds
spaces and parentheses."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubedock.podside import ProcError, parse_boot_time, parse_cmdline, parse_ids, parse_stat
from kubedock.podside._procfs import parse_mem_total_kib

PROC = Path(__file__).parent / "proc"


def test_stat_counts_fields_from_the_last_parenthesis() -> None:
    process = parse_stat((PROC / "pid_stat").read_text())
    assert process == {
        "pid": 24376, "comm": "we ird) (name", "state": "S", "ppid": 1, "pgrp": 24372,
        "sid": 27712, "tty_nr": 0, "tpgid": -1, "utime": 0, "stime": 0, "priority": 20,
        "nice": 0, "threads": 1, "start_ticks": 1282613, "vsize": 2990080, "rss_pages": 411,
    }


def test_status_command_line_and_system_facts() -> None:
    assert parse_ids((PROC / "pid_status").read_text()) == (0, 0)
    assert parse_cmdline((PROC / "pid_cmdline").read_bytes()) == ["/tmp/we ird) (name", "600"]
    assert parse_cmdline(b"") == []  # a kernel thread, or a zombie
    assert parse_boot_time((PROC / "stat").read_text()) == 1795998680
    assert parse_mem_total_kib((PROC / "meminfo").read_text()) == 24683652


@pytest.mark.parametrize("text", ["", "12 no parentheses", "12 (short) S 1 2"])
def test_malformed_stat_is_refused(text: str) -> None:
    with pytest.raises(ProcError):
        parse_stat(text)


def test_status_without_ids_is_refused() -> None:
    with pytest.raises(ProcError):
        parse_ids("Name:\tx\n")
