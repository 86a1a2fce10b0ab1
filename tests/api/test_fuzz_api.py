"""Every route kubedock serves, fed what careless and hostile clients send.

Each route (taken from the app's url_map, so a new route is fuzzed as soon as it exists, and
refused here until it has a strategy) gets bodies that are malformed JSON, JSON of the wrong
type at every level, docker-java's nulls, unknown members, huge and negative numbers, odd and
unicode strings, and query strings to match (garbage filters, numbers that are not, booleans
spelled oddly), on known and unknown ids. The answer must never be a 5xx (but Docker's 501
for what kubedock does not do), every error must be Docker's `{"message": ...}` in JSON, no
task may log an exception, and the server must answer a ping after each request.

The server runs in a thread of its own (its own trio loop) for the whole module, over the
scripted cluster of the engine tests, with a running container, a created one, an exec, a
network and an image that each example may use, damage or remove (they are put back).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from clusterless import clusterless_engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubedock.api import create_app, serve_http
from kubedock.api._app import routes_app
from kubedock.engine import (
    ContainerConfig,
    Engine,
    ExecConfig,
    NotFound,
    NotModified,
    parse_reference,
)

sys.path.append(str(Path(__file__).resolve().parents[1] / "unit"))
from engine_fake import SLEEP_PROCESSES, FakeCluster

# A few seconds in all; KD_FUZZ_EXAMPLES=2000 digs deeper.
EXAMPLES_PER_ROUTE = int(os.environ.get("KD_FUZZ_EXAMPLES", "20"))
_FUZZ = settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, derandomize=True,
                 database=None, suppress_health_check=[HealthCheck.too_slow,
                                                       HealthCheck.data_too_large])
S = st.SearchStrategy

# -- values ---------------------------------------------------------------------------------

ODD_STRINGS = ["", " ", "0", "-1", "1", "1.5", "1e3", "99999999999999999999999",
               "-99999999999999999999", "9223372036854775808", "true", "TRUE", "yes", "No",
               "none", "nil", "null", "{", "[]", "{}", '{"a":1}', "\x00", "é", "🙂", "%",
               "0x10", " 7 ", "NaN", "inf", "-inf", "/", "..", "../..", "a" * 300, "²", "٣",
               "\u202e", "ﬀ"]
odd_strings: S[str] = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=20))
numbers: S[Any] = st.one_of(
    st.integers(-2**70, 2**70), st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, -2**63 - 1,
                                                 10**30]),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1.5, -0.5, 1e300]),
)
scalars: S[Any] = st.one_of(st.none(), st.booleans(), numbers, odd_strings)
json_values: S[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(odd_strings, inner, max_size=3)),
    max_leaves=8,
)


def either(plausible: S[Any]) -> S[Any]:
    """What a client means, or anything at all (null included: docker-java's unset)."""
    return st.one_of(plausible, plausible, json_values)


def shaped(members: dict[str, S[Any]]) -> S[dict[str, Any]]:
    """Objects with some of `members` (each plausible or garbage) and maybe unknown ones."""
    known = st.fixed_dictionaries({}, optional={k: either(v) for k, v in members.items()})
    unknown = st.dictionaries(odd_strings, json_values, max_size=2)
    return st.tuples(unknown, known).map(lambda pair: {**pair[0], **pair[1]})


strings = either(odd_strings)
string_lists = st.lists(either(odd_strings), max_size=3)
string_maps = st.dictionaries(odd_strings, either(odd_strings), max_size=3)
ports = st.sampled_from(["80/tcp", "53/udp", "80", "0/tcp", "70000/tcp", "80/xyz", "a/tcp", "",
                         "²/tcp"])
images = st.sampled_from(["busybox:1.36", "redis:7", "", "UPPER:case", "a@sha256:00",
                          "busybox@sha256:" + "0" * 64, "registry:5000/x/y:z", ":", "@"])
signals = st.sampled_from(["", "KILL", "SIGKILL", "9", "TERM", "sigint", "0", "-1", "99999",
                           "SIGNOPE", "HUP"])

# -- bodies ---------------------------------------------------------------------------------

MALFORMED = [b"", b" ", b"{", b"}", b"null", b"[]", b"[", b'{"a":', b"\xff\xfe", b"NaN",
             b'{"Image": "busybox"', b'{"Image": "busybox"}}', b"\x00", b'"text"', b"1e999",
             b"9" * 5000]


def json_body(document: S[dict[str, Any]]) -> S[bytes]:
    encoded = document.map(lambda d: json.dumps(d).encode())
    return st.one_of(
        encoded, encoded, encoded,
        json_values.map(lambda v: json.dumps(v).encode()),
        st.sampled_from(MALFORMED), st.binary(max_size=32),
        encoded.map(lambda b: b[: len(b) // 2]),
    )


no_body: S[bytes] = st.one_of(st.just(b""), st.just(b""), st.sampled_from(MALFORMED))

healthcheck = shaped({
    "Test": st.one_of(st.lists(st.sampled_from(["CMD", "CMD-SHELL", "NONE", "true", ""]),
                               max_size=3), odd_strings),
    "Interval": numbers, "Timeout": numbers, "Retries": numbers, "StartPeriod": numbers,
    "StartInterval": numbers,
})
endpoint_settings = shaped({
    "Aliases": string_lists, "IPAMConfig": shaped({"IPv4Address": odd_strings}),
    "Links": string_lists, "MacAddress": odd_strings, "DriverOpts": string_maps,
    "NetworkID": odd_strings,
})
host_config = shaped({
    "Binds": st.lists(st.sampled_from(["/tmp:/x", "v:/data", "/data", "rel:/x", "/tmp:/x:ro",
                                       "/proc:/p", "a:b:c:d", "/nonexistent:/y", ":", ""]),
                      max_size=2),
    "PortBindings": st.dictionaries(ports, either(st.lists(shaped({
        "HostIp": st.sampled_from(["", "0.0.0.0", "::", "nope"]),
        "HostPort": st.sampled_from(["", "8080", "0", "-1", "70000", "1-2", "x", " ", "²"]),
    }), max_size=2)), max_size=2),
    "Memory": numbers, "MemorySwap": numbers, "MemoryReservation": numbers,
    "NanoCpus": numbers, "CpuQuota": numbers, "CpuPeriod": numbers, "CpuShares": numbers,
    "NetworkMode": st.sampled_from(["", "bridge", "default", "host", "none", "container:x",
                                    "fuzz-net", "nosuch"]),
    "RestartPolicy": shaped({"Name": st.sampled_from(["", "no", "always", "on-failure"]),
                             "MaximumRetryCount": numbers}),
    "AutoRemove": st.booleans(),
    "LogConfig": shaped({"Type": st.sampled_from(["", "json-file", "none", "syslog", "x"]),
                         "Config": string_maps}),
    "CapDrop": st.lists(st.sampled_from(["ALL", "NET_RAW", "cap_chown", "NOPE"]), max_size=2),
    "CapAdd": string_lists, "GroupAdd": st.lists(st.sampled_from(["0", "root", "staff", "-1",
                                                                  "99999999999999999999"]),
                                                 max_size=2),
    "ExtraHosts": st.lists(st.sampled_from(["a:1.2.3.4", "b=::1", "c:host-gateway", ":", "x"]),
                           max_size=2),
    "Mounts": st.lists(either(shaped({
        "Type": st.sampled_from(["bind", "volume", "tmpfs", "npipe", ""]),
        "Source": st.sampled_from(["/tmp", "v", "", "/proc"]),
        "Target": st.sampled_from(["/x", "x", "", "/"]), "ReadOnly": st.booleans(),
    })), max_size=2),
    "Tmpfs": st.dictionaries(st.sampled_from(["/t", "t", ""]), odd_strings, max_size=2),
    "ConsoleSize": st.lists(numbers, max_size=3),
    "Privileged": st.booleans(), "PidsLimit": numbers, "IpcMode": odd_strings,
    "ShmSize": numbers, "Dns": string_lists,
})
create_body = shaped({
    "Image": images, "Hostname": odd_strings, "Domainname": odd_strings, "User": odd_strings,
    "AttachStdin": st.booleans(), "Tty": st.booleans(), "OpenStdin": st.booleans(),
    "StdinOnce": st.booleans(), "Env": st.lists(st.sampled_from(["A=1", "B", "=x", ""]),
                                                max_size=3),
    "Cmd": st.one_of(string_lists, odd_strings), "Entrypoint": st.one_of(string_lists,
                                                                         odd_strings),
    "Labels": string_maps, "WorkingDir": odd_strings, "StopSignal": signals,
    "StopTimeout": numbers, "ExposedPorts": st.dictionaries(ports, st.just({}), max_size=2),
    "Volumes": st.dictionaries(st.sampled_from(["/data", "data", ""]), st.just({}), max_size=2),
    "Healthcheck": healthcheck, "NetworkDisabled": st.booleans(), "MacAddress": odd_strings,
    "HostConfig": host_config,
    "NetworkingConfig": shaped({"EndpointsConfig": st.dictionaries(
        st.sampled_from(["bridge", "fuzz-net", "nosuch", ""]), either(endpoint_settings),
        max_size=2)}),
})
exec_body = shaped({
    "Cmd": st.one_of(string_lists, odd_strings), "Env": string_lists,
    "WorkingDir": odd_strings, "User": odd_strings, "Tty": st.booleans(),
    "AttachStdin": st.booleans(), "AttachStdout": st.booleans(),
    "AttachStderr": st.booleans(), "Privileged": st.booleans(),
    "DetachKeys": st.sampled_from(["", "ctrl-p,ctrl-q", "ctrl-", "a,b", "ctrl-@", "x"]),
    "ConsoleSize": st.lists(numbers, max_size=3),
})
exec_start_body = shaped({"Detach": st.booleans(), "Tty": st.booleans(),
                          "ConsoleSize": st.lists(numbers, max_size=3)})
update_body = shaped({
    "Memory": numbers, "MemoryReservation": numbers, "MemorySwap": numbers, "NanoCpus": numbers,
    "CpuShares": numbers, "CpuQuota": numbers, "CpuPeriod": numbers, "BlkioWeight": numbers,
    "PidsLimit": numbers, "CpusetCpus": odd_strings,
    "RestartPolicy": shaped({"Name": st.sampled_from(["", "no", "always", "on-failure", "x"]),
                             "MaximumRetryCount": numbers}),
})
network_body = shaped({
    "Name": odd_strings, "CheckDuplicate": st.booleans(),
    "Driver": st.sampled_from(["", "bridge", "overlay", "host"]), "Internal": st.booleans(),
    "Attachable": st.booleans(), "Ingress": st.booleans(), "EnableIPv6": st.booleans(),
    "IPAM": shaped({"Driver": odd_strings, "Options": string_maps, "Config": st.lists(shaped({
        "Subnet": st.sampled_from(["10.9.0.0/16", "nope", ""]), "Gateway": odd_strings,
        "IPRange": odd_strings, "AuxiliaryAddresses": string_maps}), max_size=2)}),
    "Options": string_maps, "Labels": string_maps,
})

volume_body = shaped({
    "Name": st.one_of(st.sampled_from(["fuzz-vol", "v", "a/b", "_x"]), odd_strings),
    "Driver": st.sampled_from(["", "local", "nfs"]), "DriverOpts": string_maps,
    "Labels": string_maps,
})


def container_ref_body(world: World) -> S[dict[str, Any]]:
    return shaped({"Container": container_refs(world), "Force": st.booleans(),
                   "EndpointConfig": endpoint_settings})


def _tar(name: str, data: bytes) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        entry = tarfile.TarInfo(name)
        entry.size = len(data)
        archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


archives: S[bytes] = st.one_of(
    st.just(_tar("hello.txt", b"hello\n")), st.just(_tar("../escape", b"x")),
    st.just(_tar("/abs", b"x")), st.binary(max_size=600), st.just(b""),
    st.just(_tar("a", b"x")[:700]),
)

# -- queries --------------------------------------------------------------------------------

times: S[str] = st.one_of(st.sampled_from(["0", "1", "1700000000", "1700000000.5",
                                          "1700000000.000000001", "10m", "-1h", "1h30m",
                                          "2026-11-30", "2026-11-30T01:00:00Z",
                                          "2026-13-45T99:99:99", "1e300", "-1e300", "9" * 40,
                                          "999999999h", "0001-01-01"]),
                          odd_strings)
FILTER_KEYS = ["label", "label!", "status", "name", "id", "ancestor", "exited", "network",
               "health", "before", "since", "until", "reference", "dangling", "type", "driver",
               "scope", "event", "container", "image", "volume", "is-task"]
filter_documents = st.dictionaries(
    st.one_of(st.sampled_from(FILTER_KEYS), odd_strings),
    st.one_of(st.lists(st.one_of(odd_strings, times), max_size=2),
              st.dictionaries(odd_strings, st.booleans(), max_size=2), json_values),
    max_size=3,
)
filters: S[str] = st.one_of(filter_documents.map(json.dumps), json_values.map(json.dumps),
                            odd_strings)
booleans: S[str] = st.one_of(st.sampled_from(["1", "0", "true", "false", "True", "FALSE",
                                              "yes", "no", "on", "off", "", "t", "2"]),
                             odd_strings)
integers: S[str] = st.one_of(numbers.map(str), odd_strings)


def query(params: dict[str, S[str]]) -> S[list[tuple[str, str]]]:
    """Some of `params` (maybe repeated), maybe with unknown ones."""
    known = st.fixed_dictionaries({}, optional={k: st.lists(v, min_size=1, max_size=2)
                                                for k, v in params.items()})
    unknown = st.lists(st.tuples(odd_strings, odd_strings), max_size=1)
    return st.tuples(known, unknown).map(
        lambda pair: [(k, v) for k, values in pair[0].items() for v in values] + pair[1])


# -- the routes -----------------------------------------------------------------------------

@attrs.frozen
class World:
    """The objects examples refer to (put back after each example)."""

    running: str
    created: str
    exec_id: str
    network: str
    image: str = "busybox:1.36"


def container_refs(world: World) -> S[str]:
    return st.one_of(st.sampled_from([world.running, world.created, world.running[:12]]),
                     st.sampled_from(["nosuch", "a", "0" * 64]), odd_strings)


def path_values(world: World, rule: str, variable: str) -> S[str]:
    if variable == "exec_id":
        return st.one_of(st.just(world.exec_id), st.sampled_from(["nosuch", "0" * 64]),
                         odd_strings)
    if variable == "name":  # an image
        return st.one_of(st.just(world.image), images, odd_strings)
    if rule.startswith("/volumes/"):
        return st.one_of(st.sampled_from(["fuzz-vol", "v", "nosuch"]), odd_strings)
    if rule.startswith("/networks/"):
        return st.one_of(st.sampled_from([world.network, "bridge", "host", "none"]),
                         st.sampled_from(["nosuch", "0" * 64]), odd_strings)
    return container_refs(world)


@attrs.frozen
class Shape:
    """What a route is sent: its query and its body."""

    query: Callable[[World], S[list[tuple[str, str]]]] = lambda world: query({})
    body: Callable[[World], S[bytes]] = lambda world: no_body


def _q(**params: S[str]) -> Callable[[World], S[list[tuple[str, str]]]]:
    return lambda world: query(params)


STOP = _q(t=integers, timeout=integers, signal=signals.map(str))
SHAPES: dict[str, Shape] = {
    "system.ping": Shape(),
    "system.version": Shape(),
    "system.info": Shape(),
    "system.events": Shape(_q(since=times, until=times, filters=filters)),
    "images.pull": Shape(_q(fromImage=st.one_of(images, odd_strings), tag=odd_strings,
                            fromSrc=odd_strings, platform=odd_strings)),
    "images.list_images": Shape(_q(all=booleans, filters=filters, digests=booleans)),
    "images.inspect_image": Shape(),
    "images.remove_image": Shape(_q(force=booleans, noprune=booleans)),
    "images.prune_images": Shape(_q(filters=filters)),
    "images.tag_image": Shape(_q(repo=st.one_of(images, odd_strings), tag=odd_strings)),
    "images.push_image": Shape(_q(tag=odd_strings)),
    "images.load_images": Shape(_q(quiet=booleans)),
    "images.save_image": Shape(),
    "images.save_images": Shape(_q(names=st.one_of(images, odd_strings))),
    "build.build": Shape(_q(t=st.one_of(images, odd_strings), dockerfile=odd_strings,
                            buildargs=odd_strings, labels=odd_strings, target=odd_strings,
                            q=booleans, nocache=booleans, pull=booleans, platform=odd_strings,
                            version=odd_strings, memory=integers)),
    "build.prune": Shape(_q(all=booleans)),
    "containers.create": Shape(_q(name=st.one_of(st.sampled_from(["fuzzy", "/fuzzy", "a b"]),
                                                 odd_strings), platform=odd_strings),
                               lambda world: json_body(create_body)),
    "containers.inspect": Shape(_q(size=booleans)),
    "containers.list_containers": Shape(_q(all=booleans, limit=integers, size=booleans,
                                           filters=filters)),
    "containers.start": Shape(_q(detachKeys=odd_strings)),
    "containers.stop": Shape(STOP),
    "containers.restart": Shape(STOP),
    "containers.kill": Shape(_q(signal=signals)),
    "containers.rename": Shape(_q(name=odd_strings)),
    "containers.top": Shape(_q(ps_args=st.one_of(st.sampled_from(["-ef", "aux", "-o pid,user",
                                                                   "-o user=PID", "bogus"]),
                                                  odd_strings))),
    "containers.remove": Shape(_q(v=booleans, force=booleans, link=booleans)),
    "containers.prune": Shape(_q(filters=filters)),
    "containers.wait": Shape(_q(condition=st.one_of(
        st.sampled_from(["not-running", "next-exit", "removed"]), odd_strings))),
    "containers.logs": Shape(_q(follow=booleans, stdout=booleans, stderr=booleans, since=times,
                                until=times, timestamps=booleans, tail=integers)),
    "stats.stats": Shape(lambda world: query({"stream": booleans, "one-shot": booleans})),
    "update.update": Shape(body=lambda world: json_body(update_body)),
    "disk_usage.disk_usage": Shape(_q(type=st.one_of(
        st.sampled_from(["container", "image", "volume", "build-cache"]), odd_strings))),
    "exec.create_exec": Shape(body=lambda world: json_body(exec_body)),
    "exec.start_exec": Shape(body=lambda world: json_body(exec_start_body)),
    "exec.inspect_exec": Shape(),
    "exec.resize_exec": Shape(_q(h=integers, w=integers)),
    "exec.attach": Shape(_q(stdin=booleans, stdout=booleans, stderr=booleans, logs=booleans,
                            stream=booleans, detachKeys=odd_strings)),
    "exec.resize_container": Shape(_q(h=integers, w=integers)),
    "networks.list_networks": Shape(_q(filters=filters)),
    "networks.inspect": Shape(_q(verbose=booleans, scope=odd_strings)),
    "networks.create": Shape(body=lambda world: json_body(network_body)),
    "networks.connect": Shape(body=lambda world: json_body(container_ref_body(world))),
    "networks.disconnect": Shape(body=lambda world: json_body(container_ref_body(world))),
    "networks.remove": Shape(),
    "networks.prune": Shape(_q(filters=filters)),
    "volumes.create": Shape(body=lambda world: json_body(volume_body)),
    "volumes.list_volumes": Shape(_q(filters=filters)),
    "volumes.inspect": Shape(),
    "volumes.remove": Shape(_q(force=booleans)),
    "volumes.prune": Shape(_q(filters=filters)),
    "archive.put_archive": Shape(_q(path=st.one_of(st.sampled_from(["/", "/tmp", "tmp", ""]),
                                                   odd_strings),
                                    noOverwriteDirNonDir=booleans, copyUIDGID=booleans),
                                 lambda world: archives),
    "archive.stat_archive": Shape(_q(path=st.one_of(st.sampled_from(["/", "/etc/hostname"]),
                                                    odd_strings))),
    "archive.get_archive": Shape(_q(path=st.one_of(st.sampled_from(["/", "/etc/hostname"]),
                                                   odd_strings))),
}


def _routes() -> list[tuple[str, str, str]]:
    """(method, rule, endpoint) of every route the app serves."""
    app = routes_app(None)  # type: ignore[arg-type]  # only its url_map is read
    return sorted({(method, rule.rule, rule.endpoint) for rule in app.url_map.iter_rules()
                   for method in rule.methods or () if method != "OPTIONS"})


ROUTES = _routes()

# -- the server -----------------------------------------------------------------------------


class Served:
    """The API over a scripted cluster, in a thread with its own trio loop."""

    def __init__(self) -> None:
        self._handoff: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="fuzzed-server", daemon=True)
        self.failure: BaseException | None = None

    def __enter__(self) -> Served:
        self._thread.start()
        self._token, self.engine, bound, self._scope = self._handoff.get(timeout=30)
        self.base_url = f"http://{bound}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as failure:  # the server died: examples fail on their ping
            self.failure = failure
            self._handoff.put(None)

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            cluster = FakeCluster(lag=0)
            cluster.exec_exit_code = lambda argv: 0 if argv[1:] == ["toolbox", "ps"] else 127
            cluster.exec_output = (
                lambda argv: SLEEP_PROCESSES if argv[1:] == ["toolbox", "ps"] else b"")
            engine = clusterless_engine(nursery, cluster)
            await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
            (bound,) = await nursery.start(serve_http, create_app(engine), ["127.0.0.1:0"])
            self._handoff.put((trio.lowlevel.current_trio_token(), engine, bound,
                               nursery.cancel_scope))

    def world(self) -> World:
        """The example objects, each put back as it was if an example changed it."""
        return trio.from_thread.run(_restore, self.engine, trio_token=self._token)


_names: dict[str, str] = {}


async def _restore(engine: Engine) -> World:
    engine.images.add(parse_reference("busybox:1.36"))

    def existing(key: str) -> Any:
        try:
            return engine.get(_names[key]) if key in _names else None
        except NotFound:
            return None

    running = existing("running") or engine.create(None, ContainerConfig(
        image="busybox:1.36", tty=True, open_stdin=True))
    if running.status != "running":
        with contextlib.suppress(NotModified):
            await engine.start(running)
    created = existing("created")
    if created is None or created.status != "created":
        if created is not None:
            await engine.remove(created, force=True)
        created = engine.create(None, ContainerConfig(image="redis:7"))
    try:
        exec_id = engine.execs.get(_names.get("exec", "")).id
    except NotFound:
        exec_id = engine.create_exec(running, ExecConfig(cmd=("sh",), tty=True)).id
    try:
        network = engine.networks.get(_names.get("network", ""))
    except NotFound:
        network = engine.networks.create(f"fuzz-net-{len(_names)}-{running.id[:6]}")
    _names.update(running=running.id, created=created.id, exec=exec_id, network=network.id)
    return World(running.id, created.id, exec_id, network.id)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with Served() as server:
        yield server
    if server.failure is not None:
        raise server.failure


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base_url, timeout=10) as http:
        yield http


class _Errors(logging.Handler):
    """Exceptions logged by the server while an example ran (a route or task that failed)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def logged_errors() -> Iterator[_Errors]:
    handler = _Errors()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


# -- the property ---------------------------------------------------------------------------

def test_every_route_has_a_shape() -> None:
    missing = sorted({endpoint for _, _, endpoint in ROUTES} - set(SHAPES))
    assert not missing, f"routes without a fuzzing shape in SHAPES: {missing}"


def _path(rule: str, values: dict[str, str]) -> str:
    from urllib.parse import quote

    path = rule
    for variable, value in values.items():
        safe = "/" if f"<path:{variable}>" in rule else ""
        for form in (f"<{variable}>", f"<path:{variable}>"):
            path = path.replace(form, quote(value, safe=safe) or "%20")
    return path


@pytest.mark.parametrize(("method", "rule", "endpoint"), ROUTES,
                         ids=[f"{m} {r}" for m, r, _ in ROUTES])
@_FUZZ
@given(data=st.data())
def test_route_survives_any_request(served: Served, client: httpx.Client,
                                    logged_errors: _Errors, method: str, rule: str, endpoint: str,
                                    data: st.DataObject) -> None:
    shape = SHAPES.get(endpoint)
    assert shape is not None, f"no fuzzing shape for {endpoint}: add one to SHAPES"
    world = served.world()
    variables = [part.strip("<>").rpartition(":")[2] for part in rule.split("/")
                 if part.startswith("<")]
    path = _path(rule, {variable: data.draw(path_values(world, rule, variable), label=variable)
                        for variable in variables})
    params = data.draw(shape.query(world), label="query")
    body = data.draw(shape.body(world), label="body")
    logged_errors.records.clear()
    with client.stream(method, path, params=params, content=body,
                       headers={"Content-Type": "application/json"}) as response:
        status = response.status_code
        if status >= 400 and method != "HEAD":
            response.read()
    assert status < 500 or status == 501, (status, response.text if response.is_closed else "")
    if status >= 400:
        assert response.headers["content-type"] == "application/json"
        if method != "HEAD":
            document = json.loads(response.content)
            assert isinstance(document, dict) and isinstance(document.get("message"), str)
    assert client.get("/_ping").status_code == 200
    assert not logged_errors.records, [r.getMessage() for r in logged_errors.records]
