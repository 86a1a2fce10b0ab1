"""The API app over a cluster-less engine, served in a process of its own.

Run as a script: prints the bound ``host:port`` and serves until killed. Tests that measure the
server (its memory) start it this way, so the test's own client does not count.
"""

from __future__ import annotations

import trio
from clusterless import clusterless_engine

from kubedock.api import create_app, serve_http


async def main() -> None:
    async with trio.open_nursery() as nursery:
        engine = clusterless_engine(nursery)
        (bound,) = await nursery.start(serve_http, create_app(engine), ["127.0.0.1:0"])
        print(bound, flush=True)


if __name__ == "__main__":
    trio.run(main)
