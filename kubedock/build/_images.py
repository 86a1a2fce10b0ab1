"""Base images read from, and built images pushed to, registries, and recorded in the image
store as pulled images are: a build's tags are then run as any other image."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager

import httpx

from .. import registry
from ..engine import EngineError, ImageRef, ImageStore, parse_reference
from ..registry._manifest import OCI_MANIFEST, ManifestError, digest_of, image_manifest, parse_json
from ._builder import BaseImage, BuildFailed, BuiltImage, Layer
from ._context import file_chunks

_REGISTRY_FAILURES = (registry.RegistryError, registry.Unreachable, registry.Silent,
                      ManifestError, httpx.HTTPError)


class RegistryImages:
    def __init__(self, store: ImageStore, client: registry.RegistryClient) -> None:
        self._store = store
        self._client = client

    async def base(self, name: str, *, pull: bool) -> BaseImage:
        try:
            ref = parse_reference(name)
            image = (await self._store.pull(ref, None))[0] if pull \
                else await self._store.ensure(ref, None)
        except EngineError as error:
            raise BuildFailed(error.message) from None
        resolved = image.resolved
        if resolved is None:
            raise BuildFailed(f"{name}: no registry answered for the image kubedock builds on")
        try:
            config = await self._client.blob(resolved.repository,
                                             resolved.manifest.config.digest)
        except _REGISTRY_FAILURES as error:
            raise BuildFailed(f"reading {name}'s config: {error}") from None
        layers = tuple(Layer(diff_id, blob.digest, blob.size, blob.media_type,
                             repository=resolved.repository)
                       for diff_id, blob in zip(resolved.config.diff_ids,
                                                resolved.manifest.layers, strict=True))
        return BaseImage(resolved.config.id, parse_json(config, f"{name}'s config"), layers)

    def open_layer(self, layer: Layer) -> AbstractAsyncContextManager[AsyncIterable[bytes]]:
        return self._client.open_blob(layer.repository, layer.digest)

    async def store(self, image: BuiltImage, tags: Sequence[ImageRef]) -> None:
        """Pushes the image under each tag (blobs the repository has are not sent again) and
        records it as pulled."""
        for ref in tags:
            repository = registry.Repository(ref.registry, ref.path)
            try:
                for layer in image.layers:
                    if layer.path is not None:
                        if not await self._client.has_blob(repository, layer.digest):
                            await self._client.push_blob(repository, layer.digest, layer.size,
                                                         file_chunks(layer.path))
                    else:
                        await self._client.copy_blob(layer.repository, repository,
                                                     layer.digest, layer.size)
                config_digest = digest_of(image.config)
                if not await self._client.has_blob(repository, config_digest):
                    await self._client.push_blob(repository, config_digest, len(image.config),
                                                 _once(image.config))
                manifest = image_manifest(
                    image.config, [(layer.digest, layer.size) for layer in image.layers],
                    OCI_MANIFEST, [layer.media_type for layer in image.layers])
                await self._client.push_manifest(repository, ref.tag or "latest", manifest,
                                                 OCI_MANIFEST)
                await self._store.pull(ref, None)
            except _REGISTRY_FAILURES as error:
                raise BuildFailed(f"pushing {ref.familiar}: {error}") from None
            except EngineError as error:
                raise BuildFailed(error.message) from None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
