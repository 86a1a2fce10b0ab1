"""Volume copy-up: a new volume starts with what the image holds at its path, as Docker's does.

kubedock reads that directory from the image's layers in the registry, top layer first, each
streamed once through a worker thread (never a layer whole in memory), whiteouts applied (see
`registry.SubtreeMerger`). The merged directory is kept in a temporary file per image and path,
so only a container's first start from an image pays for the reading; an image with nothing
there (most images that declare a VOLUME) is remembered as such. The pod's init container
receives the file with the other files of the start, into the volume, which it mounts too.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable

import httpx
import trio

from .. import registry
from ._archive import through_thread
from ._errors import EngineError, NoSuchImage
from ._images import ImageStore
from ._records import ContainerConfig, Mount

log = logging.getLogger(__name__)


# What ends the reading of an image's layers: the registry, the network, a layer that is not
# a tar kubedock can read (zstd, say), a full disk.
_UNREADABLE = (EngineError, registry.ManifestError, registry.RegistryError,
               registry.Unreachable, registry.Silent, httpx.HTTPError, trio.TooSlowError,
               OSError)


def _leaves(group: BaseExceptionGroup[Exception]) -> list[Exception]:
    return [leaf for error in group.exceptions
            for leaf in (_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])]


class SeedStore:
    """What images hold at volume paths, as tar files (names relative to the path)."""

    def __init__(self) -> None:
        self._directory: str | None = None
        self._seeds: dict[tuple[str, str], str | None] = {}
        self._locks: dict[tuple[str, str], trio.Lock] = {}

    async def for_start(self, images: ImageStore, config: ContainerConfig,
                        new: Callable[[Mount], bool]) -> dict[int, str]:
        """The files to copy into the volumes of a container's next pod, by mount index: for
        each volume mount that `new` says starts empty (and not ``nocopy``), what the image
        holds at its target, where it holds something."""
        image = _image_of(images, config)
        if image is None:
            return {}
        seeds = {}
        for index, mount in enumerate(config.mounts):
            if mount.kind != "volume" or mount.no_copy or not new(mount):
                continue
            seed = await self.seed(images, image, mount.target)
            if seed is not None:
                seeds[index] = seed
        return seeds

    async def seed(self, images: ImageStore, image: registry.ResolvedImage,
                   path: str) -> str | None:
        """A tar of what `image` holds at `path`, or None when it holds nothing there (or its
        layers cannot be read: then the volume starts empty, as before copy-up)."""
        key = (image.config.id, path)
        async with self._locks.setdefault(key, trio.Lock()):
            if key not in self._seeds:
                read, seed = await self._assemble(images, image, path)
                if read:
                    self._seeds[key] = seed
        return self._seeds.get(key)

    async def _assemble(self, images: ImageStore, image: registry.ResolvedImage, path: str
                        ) -> tuple[bool, str | None]:
        """Whether the layers could be read, and the seed file (None: nothing there)."""
        source = images.source
        assert source is not None
        if self._directory is None:
            self._directory = tempfile.mkdtemp(prefix="kubedock-seeds-")
            # Removed when the store goes, at the latest when kubedock exits.
            weakref.finalize(self, shutil.rmtree, self._directory, ignore_errors=True)
        descriptor, file_name = tempfile.mkstemp(dir=self._directory, suffix=".tar")
        failures: list[Exception] = []
        try:
            with os.fdopen(descriptor, "wb") as sink:
                merger = registry.SubtreeMerger(path, sink)
                for layer in reversed(image.manifest.layers):
                    async with source.layer(image, layer.digest) as chunks:
                        await through_thread(chunks, merger.add_layer)
                merger.close()
        except* _UNREADABLE as group:
            failures.extend(_leaves(group))
        if failures:
            os.unlink(file_name)
            log.warning("the content of %s at %s is not copied into new volumes: %s",
                        image.repository.familiar, path, failures[0])
            return False, None
        if merger.entries == 0:
            os.unlink(file_name)
            return True, None
        return True, file_name


def _image_of(images: ImageStore, config: ContainerConfig) -> registry.ResolvedImage | None:
    """The image the container was created from, as its registry describes it."""
    if config.image_config is None or images.source is None:
        return None
    try:
        image = images.get(config.image).resolved
    except NoSuchImage:
        return None
    if image is None or image.config.id != config.image_config.id:
        return None
    return image
