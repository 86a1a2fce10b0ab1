"""``kubedock dns``: the DNS server fed by a watch of the namespace's kubedock pods."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from .. import kube
from ._server import Views, serve_dns
from ._view import PodEntry, View, pod_entry

log = logging.getLogger("kubedock.dns")

PORT = 1053  # unprivileged; the Service maps port 53 onto it
RESOLV_CONF = Path("/etc/resolv.conf")


@attrs.frozen
class ResolvConf:
    nameservers: tuple[str, ...]
    search: tuple[str, ...]


def read_resolv_conf(text: str) -> ResolvConf:
    nameservers: list[str] = []
    search: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            nameservers.append(words[1])
        elif words and words[0] in ("search", "domain"):
            search = words[1:]
    return ResolvConf(tuple(nameservers), tuple(search))


class PodIndex:
    """The namespace's kubedock pods as the watch reports them, and the view built from them.

    Each change builds a new view (copy-on-write): queries in flight keep the one they took,
    and those waiting for a starting pod look again.
    """

    def __init__(self, search: tuple[str, ...]) -> None:
        self._search = search
        self._entries: dict[str, PodEntry] = {}
        self.views = Views(View((), search))

    def on_pod(self, pod: Mapping[str, Any], deleted: bool) -> None:
        name = str((pod.get("metadata") or {}).get("name"))
        if deleted:
            if self._entries.pop(name, None) is None:
                return
        else:
            entry = pod_entry(pod)
            if self._entries.get(name) == entry:
                return
            self._entries[name] = entry
        self.views.replace(View(self._entries.values(), self._search))


async def serve(*, kubeconfig: str | None, namespace: str | None, host: str, port: int,
                upstream: tuple[str, int], search: tuple[str, ...],
                task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Watch the kubedock pods of the namespace and answer for them on ``host:port``."""
    cluster = await kube.Cluster.connect(kubeconfig=kubeconfig, namespace=namespace)
    index = PodIndex(search)
    try:
        async with trio.open_nursery() as nursery:
            # Listen only once the pods are known: readiness (a TCP probe) then means answers.
            await nursery.start(cluster.watch_pod_documents, "kubedock=true", index.on_pod)
            bound = await nursery.start(partial(serve_dns, index.views, upstream,
                                                host=host, port=port))
            log.info("kubedock dns on %s:%d for namespace %s, upstream %s:%d", host, bound,
                     cluster.namespace, *upstream)
            task_status.started(bound)
    finally:
        with trio.CancelScope(shield=True):
            await cluster.aclose()


def run(*, upstream: tuple[str, int] | None, search: tuple[str, ...] | None,
        verbosity: int = 1, **options: Any) -> int:
    """The role's process: upstream and search list default to the pod's resolv.conf."""
    resolv = read_resolv_conf(RESOLV_CONF.read_text()) if RESOLV_CONF.exists() else ResolvConf(
        (), ())
    if upstream is None:
        if not resolv.nameservers:
            raise SystemExit("kubedock dns: no upstream server: give --dns-upstream")
        upstream = (resolv.nameservers[0], 53)
    logging.basicConfig(level=logging.DEBUG if verbosity >= 3 else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        trio.run(partial(serve, upstream=upstream,
                         search=resolv.search if search is None else search, **options))
    except KeyboardInterrupt:
        return 130
    except kube.KubeError as error:
        log.error("%s", error)
        return 1
    return 0
