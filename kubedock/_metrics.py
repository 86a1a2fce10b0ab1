"""What a running kubedock is doing, in Prometheus' text exposition format.

Counters and histograms are process-wide, like the instruments of a Prometheus client library:
the code that counts (routes, port exposers, the reaper, the cluster gateway) needs no handle
passed down to it. Values computed at scrape time (containers by state) come from a source the
server registers. Rendering is pure; `serve_metrics` is the opt-in listener (`--metrics-addr`).
"""

from __future__ import annotations

import bisect
import contextlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs
import h11
import trio

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(names: Sequence[str], values: Labels, extra: str = "") -> str:
    pairs = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value == int(value) else repr(value)


@attrs.define
class Counter:
    name: str
    help: str
    label_names: tuple[str, ...] = ()
    _values: dict[Labels, float] = attrs.field(factory=dict, init=False)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted(self._values.items()):
            yield f"{self.name}{_label_text(self.label_names, labels)} {_number(value)}"


@attrs.define
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...]
    label_names: tuple[str, ...] = ()
    # per label values: counts per bucket (not cumulative), then the sum
    _counts: dict[Labels, list[int]] = attrs.field(factory=dict, init=False)
    _sums: dict[Labels, float] = attrs.field(factory=dict, init=False)

    def observe(self, value: float, *labels: str) -> None:
        counts = self._counts.setdefault(labels, [0] * (len(self.buckets) + 1))
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self._sums[labels] = self._sums.get(labels, 0.0) + value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, counts in sorted(self._counts.items()):
            cumulative = 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                cumulative += count
                le = f'le="{_number(bound)}"'
                yield (f"{self.name}_bucket{_label_text(self.label_names, labels, le)} "
                       f"{cumulative}")
            text = _label_text(self.label_names, labels)
            yield f"{self.name}_sum{text} {_number(self._sums[labels])}"
            yield f"{self.name}_count{text} {cumulative}"


@attrs.define
class Gauge:
    """Values read when scraped from `source`: label values → value."""

    name: str
    help: str
    label_names: tuple[str, ...] = ()
    source: Callable[[], Mapping[Labels, float]] | None = None

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for labels, value in sorted((self.source() if self.source else {}).items()):
            yield f"{self.name}{_label_text(self.label_names, labels)} {_number(value)}"


CONTAINERS = Gauge("kubedock_containers", "Containers by Docker state.", ("state",))
API_REQUESTS = Counter("kubedock_api_requests_total", "Docker API requests answered.",
                       ("method", "route", "status"))
API_LATENCY = Histogram(
    "kubedock_api_request_duration_seconds",
    "Time from a Docker API request to the head of its answer.",
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    ("method", "route"),
)
KUBE_API_ERRORS = Counter("kubedock_kube_api_errors_total",
                          "Failed Kubernetes API requests, by HTTP status (0: no answer).",
                          ("status",))
EXPOSED_CONNECTIONS = Counter("kubedock_exposed_port_connections_total",
                              "Connections to exposed container ports, by exposure mode.",
                              ("mode",))
EXPOSED_BYTES = Counter("kubedock_exposed_port_bytes_total",
                        "Bytes carried to and from exposed container ports.", ("direction",))
REAPED = Counter("kubedock_reaper_removals_total",
                 "Containers the reaper removed for being older than --reapmax.")

_ALL: tuple[Counter | Histogram | Gauge, ...] = (
    CONTAINERS, API_REQUESTS, API_LATENCY, KUBE_API_ERRORS, EXPOSED_CONNECTIONS, EXPOSED_BYTES,
    REAPED,
)


def render() -> bytes:
    return "".join(line + "\n" for metric in _ALL for line in metric.render()).encode()


async def serve_metrics(host: str, port: int, *,
                        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Answer every HTTP request on `host:port` with the metrics (GET /metrics) or 404."""
    [listener] = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listener.socket.getsockname()[1])
    await trio.serve_listeners(_answer, [listener])


_READ_SECONDS = 10


async def _answer(stream: trio.SocketStream) -> None:
    async with stream:
        connection = h11.Connection(h11.SERVER)
        request = None
        with trio.move_on_after(_READ_SECONDS):
            try:
                while request is None:
                    event = connection.next_event()
                    if event is h11.NEED_DATA:
                        connection.receive_data(await stream.receive_some())
                    elif isinstance(event, h11.Request):
                        request = event
                    else:
                        return
            except (h11.RemoteProtocolError, trio.BrokenResourceError):
                return
        if request is None:
            return
        if request.method in (b"GET", b"HEAD") and request.target.split(b"?")[0] == b"/metrics":
            status, body, kind = 200, render(), CONTENT_TYPE
        else:
            status, body, kind = 404, b"not found: GET /metrics\n", "text/plain"
        headers = [("Content-Type", kind), ("Content-Length", str(len(body))),
                   ("Connection", "close")]
        data = connection.send(h11.Response(status_code=status, headers=headers)) or b""
        if request.method != b"HEAD":
            data += connection.send(h11.Data(data=body)) or b""
        data += connection.send(h11.EndOfMessage()) or b""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(data)
