"""One-shot containers whose output is read as soon as `wait` returns, as docker-py's
`containers.run` reads it (create, start, wait, logs): the scenario of the last-output e2e test
and of tests/bench/last_output_bench.py.

Cases: "lines" prints a line to stdout and one to stderr, "large" ends with one write of about
100 KiB, "tty" prints a line on a terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import docker

BUSYBOX = "busybox:1.36"
CASES = ("lines", "large", "tty")
_FILLER = b"abcdefghijklmnopqrstuvwxyz0123456789\n"
_LARGE = 100 * 1024
# How long a short log is given to fill up before it counts as lost rather than late.
_LATE_SECONDS = 3


@attrs.frozen
class Tally:
    runs: int
    missed: int  # short when read right after the wait
    lost: int  # still short a while later (with `remove`, the same as missed)


def _expected(case: str, index: int) -> bytes:
    if case == "lines":
        return f"out-{index}\nerr-{index}\n".encode()
    if case == "large":
        return (_FILLER * (_LARGE // len(_FILLER) + 1))[:_LARGE] + f"\nend-{index}\n".encode()
    return f"tty-{index}\r\n".encode()


def _options(case: str, index: int) -> dict[str, Any]:
    if case == "lines":
        return {"command": ["sh", "-c", f"echo out-{index}; echo err-{index} >&2"]}
    if case == "large":
        # dd writes what it read in one write.
        script = (f"yes {_FILLER.decode().strip()} | head -c {_LARGE} > /tmp/out; "
                  f"printf '\\nend-{index}\\n' >> /tmp/out; dd if=/tmp/out bs=1M 2>/dev/null")
        return {"command": ["sh", "-c", script]}
    return {"command": ["sh", "-c", f"echo tty-{index}"], "tty": True}


def _complete(case: str, index: int, log: bytes, report: Callable[[str], None]) -> bool:
    expected = _expected(case, index)
    if case == "lines":  # the two streams' lines may come in either order
        complete = sorted(log.splitlines()) == sorted(expected.splitlines())
    else:
        complete = log == expected
    if not complete:
        report(f"    {case} {index}: {len(log)} of {len(expected)} bytes")
    return complete


def one_run(client: docker.DockerClient, case: str, index: int, *, remove: bool,
            report: Callable[[str], None]) -> tuple[bool, bool]:
    """Whether the log read right after the wait held everything, and whether it did later
    (`remove`: docker-py's ``run(remove=True)``, whose container is gone by then)."""
    if remove:
        options = _options(case, index)
        output = client.containers.run(BUSYBOX, options.pop("command"), remove=True,
                                       stderr=True, **options)
        assert isinstance(output, bytes)
        complete = _complete(case, index, output, report)
        return complete, complete
    container = client.api.create_container(BUSYBOX, **_options(case, index))["Id"]
    try:
        client.api.start(container)
        assert client.api.wait(container, timeout=120)["StatusCode"] == 0
        if _complete(case, index, client.api.logs(container), report):
            return True, True
        time.sleep(_LATE_SECONDS)
        return False, _complete(case, index, client.api.logs(container), report)
    finally:
        client.api.remove_container(container, force=True)


def stress(client: docker.DockerClient, case: str, runs: int, parallel: int, *,
           remove: bool = False, report: Callable[[str], None] = print) -> Tally:
    """`runs` runs of `case`, `parallel` at a time."""
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(
            lambda index: one_run(client, case, index, remove=remove, report=report),
            range(runs)))
    tally = Tally(runs, sum(1 for at_once, _ in results if not at_once),
                  sum(1 for _, later in results if not later))
    report(f"  {case:6} {'run(remove=True)' if remove else 'wait, logs'}: {runs} runs, "
           f"{parallel} at a time: {tally.missed} missed at once, {tally.lost} lost")
    return tally
