"""Pushes `docker save` archives' Docker Hub images to a registry that mirrors Docker Hub.

    python -m kubedock.registry.seed http://127.0.0.1:5000 image.tar...

How the local test cluster's registry gets the project's test images (build/registry/up).
Images of other registries in the archives are left out. A second run pushes nothing new.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import trio

from ..engine import parse_reference
from ._archive import push_archive
from ._client import DOCKER_HUB, RegistryClient, Repository


def _docker_hub_repository(tag: str) -> tuple[Repository, str] | None:
    ref = parse_reference(tag)
    if ref.registry != DOCKER_HUB or ref.tag is None:
        return None
    return Repository(DOCKER_HUB, ref.path), ref.tag


async def seed(url: str, archives: list[Path]) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        client = RegistryClient(http, mirrors={DOCKER_HUB: url})
        for archive in archives:
            for tag, digest in (await push_archive(client, archive,
                                                   _docker_hub_repository)).pushed:
                print(f"{tag} {digest}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    trio.run(seed, sys.argv[1], [Path(a) for a in sys.argv[2:]])
