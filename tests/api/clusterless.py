"""An engine that never needs the cluster, for the routes that stop short of it (or with a
scripted cluster of a test's own)."""

from __future__ import annotations

import trio

from kubedock import kube
from kubedock.engine import Engine


def clusterless_engine(nursery: trio.Nursery, cluster: object = None) -> Engine:
    return Engine(cluster, kube.PodSettings(namespace="t", instance_id="i"),  # type: ignore[arg-type]
                  nursery=nursery, start_timeout=1, fail_fast_after=1, expose="pod-ip",
                  expose_host="127.0.0.1")
