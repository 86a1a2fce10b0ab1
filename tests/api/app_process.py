"""The API app over a cluster-less engine, served in a process of its own.

Run as a script: prints the bound ``host:port`` and serves until killed. Tests that measure the
server (its memory) start it this way, so the test's own client does not count.
"""

from __future__ import annotations

import trio

from kubedock import kube
from kubedock.api import create_app, serve_http
from kubedock.engine import Engine


async def main() -> None:
    async with trio.open_nursery() as nursery:
        engine = Engine(None, kube.PodSettings(namespace="t", instance_id="i"),  # type: ignore[arg-type]
                        nursery=nursery, start_timeout=1, fail_fast_after=1, expose="pod-ip",
                        expose_host="127.0.0.1")
        (bound,) = await nursery.start(serve_http, create_app(engine), ["127.0.0.1:0"])
        print(bound, flush=True)


if __name__ == "__main__":
    trio.run(main)
