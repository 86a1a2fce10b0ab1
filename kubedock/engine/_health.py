"""Docker healthchecks, run as Kubernetes execs with Docker's timing rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import trio

from ._records import Container, Healthcheck

if TYPE_CHECKING:
    from ._engine import Engine

_OUTPUT_LIMIT = 4096
_LOG_ENTRIES = 5


def probe_argv(check: Healthcheck) -> list[str] | None:
    kind, *rest = check.test or ("NONE",)
    if kind == "CMD":
        return rest
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(rest)]
    return None


async def _probe(engine: Engine, container: Container, argv: list[str],
                 limit_seconds: float) -> tuple[int, bytes]:
    assert container.pod_name is not None
    output = b""
    with trio.move_on_after(limit_seconds) as scope:
        async with engine.cluster.exec(
            container.pod_name, argv, stdin=False, stdout=True, stderr=True, tty=False
        ) as channel:
            while (message := await channel.receive()) is not None:
                output = (output + message[1])[-_OUTPUT_LIMIT:]
    if scope.cancelled_caught:
        return -1, f"Health check exceeded timeout ({limit_seconds:g}s)".encode()
    return channel.exit_code if channel.exit_code is not None else -1, output


async def monitor_health(engine: Engine, container: Container) -> None:
    """Run the container's healthcheck until it stops, computing status as Docker does.

    During the start period failures do not count, and the first success ends the period.
    """
    check = container.config.healthcheck
    health = container.health
    argv = probe_argv(check) if check else None
    if check is None or health is None or argv is None:
        return
    started = trio.current_time()
    in_start_period = True
    # A later run (a restart) has a health record and a monitor of its own.
    while container.status == "running" and not container.removed and container.health is health:
        in_start_period = in_start_period and trio.current_time() - started < check.start_period
        interval = check.start_interval if in_start_period else check.interval
        await trio.sleep(interval)
        if container.status != "running" or container.health is not health:
            return
        begun = datetime.now(UTC)
        try:
            code, output = await _probe(engine, container, argv, check.timeout)
        except Exception as error:  # a failing probe is a health result, not a crash
            code, output = -1, str(error).encode()
        health.log = [*health.log, {
            "Start": begun.isoformat(), "End": datetime.now(UTC).isoformat(),
            "ExitCode": code, "Output": output.decode(errors="replace"),
        }][-_LOG_ENTRIES:]
        if code == 0:
            health.status, health.failing_streak = "healthy", 0
            in_start_period = False
        elif not in_start_period:
            health.failing_streak += 1
            if health.failing_streak >= check.retries:
                health.status = "unhealthy"
        container.notify()
