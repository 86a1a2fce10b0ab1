"""GET /containers/{id}/stats: the kubelet's samples (see engine._stats) in Docker's shape."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from quart import Blueprint, Response, request

from ..engine import Container, Sample, follow_usage
from ._app import engine
from ._errors import bad_request
from ._parse import query_bool

blueprint = Blueprint("stats", __name__)

_ZERO_TIME = "0001-01-01T00:00:00Z"
_NANOSECONDS = 1_000_000_000
# A sample's CPU rate is the kubelet's over its own last interval; Docker's clients compute a
# rate from cpu_stats and precpu_stats, so precpu_stats is where that rate puts the container
# this long before the sample.
_PRECPU_WINDOW = timedelta(seconds=1)


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _no_cpu() -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def _cpu(total_usage: int, system_usage: int, cpus: int) -> dict[str, Any]:
    # The kubelet does not split user from kernel time, nor count per CPU or throttling.
    document = _no_cpu()
    document["cpu_usage"]["total_usage"] = max(0, total_usage)
    document.update(system_cpu_usage=system_usage, online_cpus=cpus)
    return document


def stats_document(container: Container, sample: Sample | None, *,
                   one_shot: bool = False) -> dict[str, Any]:
    """One stats answer; a container that is not running (or not sampled yet) has zeros, as
    Docker gives for a stopped one. `one_shot`: no precpu_stats, as Docker's one-shot."""
    document: dict[str, Any] = {
        "read": _ZERO_TIME, "preread": _ZERO_TIME, "pids_stats": {},
        "blkio_stats": {key: None for key in (
            "io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
            "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
            "io_time_recursive", "sectors_recursive")},
        "num_procs": 0, "storage_stats": {}, "cpu_stats": _no_cpu(), "precpu_stats": _no_cpu(),
        "memory_stats": {}, "name": f"/{container.name}", "id": container.id,
    }
    if sample is None:
        return document
    usage, cpus = sample.usage, sample.cpus
    # Docker's system_cpu_usage is the host's CPU time (busy or idle) since boot: elapsed
    # time times CPUs, so that a delta of it is the CPU time there was to use.
    elapsed = usage.sampled - usage.node_started
    system_usage = int(elapsed.total_seconds() * _NANOSECONDS) * cpus
    document["read"] = _time(usage.sampled)
    document["cpu_stats"] = _cpu(usage.cpu_nanoseconds, system_usage, cpus)
    if not one_shot:
        window = int(_PRECPU_WINDOW.total_seconds() * _NANOSECONDS)
        document["preread"] = _time(usage.sampled - _PRECPU_WINDOW)
        document["precpu_stats"] = _cpu(
            usage.cpu_nanoseconds - usage.cpu_nano_cores * window // _NANOSECONDS,
            system_usage - window * cpus, cpus)
    if usage.processes is not None:
        document["pids_stats"] = {"current": usage.processes}
    document["memory_stats"] = {
        "usage": usage.memory_usage,
        # cgroup v2's names; clients show usage less inactive_file: the working set.
        "stats": {
            "inactive_file": max(0, usage.memory_usage - usage.memory_working_set),
            "anon": usage.memory_rss,
            "pgfault": usage.page_faults,
            "pgmajfault": usage.major_page_faults,
        },
        "limit": sample.memory_limit,
    }
    document["networks"] = {
        interface.name: {
            "rx_bytes": interface.rx_bytes, "rx_packets": 0, "rx_errors": interface.rx_errors,
            "rx_dropped": 0, "tx_bytes": interface.tx_bytes, "tx_packets": 0,
            "tx_errors": interface.tx_errors, "tx_dropped": 0,
        }
        for interface in usage.networks
    }
    return document


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode() + b"\n"


@blueprint.route("/containers/<ref>/stats", methods=["GET"])
async def stats(ref: str) -> Response:
    containers = engine()  # the app context does not reach into the streamed body
    container = containers.get(ref)
    stream = query_bool(request.args, "stream", True)
    one_shot = query_bool(request.args, "one-shot")
    if stream and one_shot:
        raise bad_request("cannot have stream=true and one-shot=true")
    if not stream:
        sample = await containers.usage.first_sample(container)
        return Response(_line(stats_document(container, sample, one_shot=one_shot)),
                        content_type="application/json")
    # The first sample is read before the answer starts, so that a cluster that refuses
    # (no RBAC for the node proxy) gives an error status rather than a cut stream.
    samples = follow_usage(containers.usage, container)
    first = await anext(samples)

    async def body() -> AsyncIterator[bytes]:
        async with contextlib.aclosing(samples):
            yield _line(stats_document(container, first))
            async for sample in samples:
                yield _line(stats_document(container, sample))

    return Response(body(), content_type="application/json")
