"""Base images read from, and built images pushed to, registries, and recorded in the image
store as pulled images are: a build's tags are then run as any other image."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

from .. import registry
from ..engine import EngineError, Image, ImageRef, ImageStore, NoSuchImage, parse_reference
from ..registry._auth import DOCKER_HUB_AUTH_KEYS
from ..registry._manifest import OCI_MANIFEST, ManifestError, digest_of, image_manifest, parse_json
from ._builder import BaseImage, BuildFailed, BuiltImage, Layer
from ._context import file_chunks

CredentialLookup = Callable[[str], registry.Credentials | None]
_REGISTRY_FAILURES = (registry.RegistryError, registry.Unreachable, registry.Silent,
                      ManifestError, httpx.HTTPError)


def build_credentials(header: str) -> CredentialLookup:
    """The ``X-Registry-Config`` header of a build: base64url JSON of the client's credentials
    by registry (Docker Hub under its historic keys); undecodable is none, as Docker has it."""
    text = header.strip()
    try:
        document = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))) \
            if text else {}
    except (ValueError, binascii.Error):
        document = {}
    by_registry = {}
    for key, entry in (document.items() if isinstance(document, dict) else ()):
        if isinstance(entry, dict):
            by_registry[key] = registry.Credentials(
                username=str(entry.get("username") or ""),
                password=str(entry.get("password") or ""),
                identity_token=str(entry.get("identitytoken") or ""))

    def lookup(host: str) -> registry.Credentials | None:
        keys = DOCKER_HUB_AUTH_KEYS if host == registry.DOCKER_HUB else (host,)
        return next((by_registry[key] for key in keys if key in by_registry), None)

    return lookup


class RegistryImages:
    def __init__(self, store: ImageStore, client: registry.RegistryClient,
                 credentials: CredentialLookup = lambda host: None) -> None:
        self._store = store
        self._client = client
        self._credentials = credentials

    async def base(self, name: str, *, pull: bool) -> BaseImage:
        try:
            ref = parse_reference(name)
            credentials = self._credentials(ref.registry)
            # As Docker: the image known here, else (and always with --pull) the registry's.
            known = None if pull else self._known(name)
            image = known or (await self._store.pull(ref, credentials))[0]
        except EngineError as error:
            raise BuildFailed(error.message) from None
        resolved = image.resolved
        if resolved is None:
            raise BuildFailed(f"{name}: no registry answered for the image kubedock builds on")
        try:
            config = await self._client.blob(resolved.repository,
                                             resolved.manifest.config.digest,
                                             credentials=credentials)
        except _REGISTRY_FAILURES as error:
            raise BuildFailed(f"reading {name}'s config: {error}") from None
        layers = tuple(Layer(diff_id, blob.digest, blob.size, blob.media_type,
                             repository=resolved.repository)
                       for diff_id, blob in zip(resolved.config.diff_ids,
                                                resolved.manifest.layers, strict=True))
        return BaseImage(resolved.config.id, parse_json(config, f"{name}'s config"), layers)

    async def known_config(self, name: str) -> Mapping[str, Any] | None:
        try:
            image = self._known(name)
        except EngineError:  # not a name at all
            return None
        if image is None or image.resolved is None:
            return None
        resolved = image.resolved
        try:
            config = await self._client.blob(
                resolved.repository, resolved.manifest.config.digest,
                credentials=self._credentials(resolved.repository.registry))
            return parse_json(config, f"{name}'s config")
        except _REGISTRY_FAILURES:
            return None  # as an image that is not there

    def _known(self, name: str) -> Image | None:
        try:
            image = self._store.get(name)
        except NoSuchImage:
            return None
        return image if image.resolved is not None else None

    def open_layer(self, layer: Layer) -> AbstractAsyncContextManager[AsyncIterable[bytes]]:
        return self._client.blob_stream(layer.repository, layer.digest,
                                        credentials=self._credentials(layer.repository.registry))

    async def store(self, image: BuiltImage, tags: Sequence[ImageRef]) -> None:
        """Pushes the image under each tag, where the image store keeps what kubedock makes
        (blobs the repository has are not sent again), and records it there: `docker rmi`
        (`compose down --rmi`) deletes the tag in the registry too."""
        for ref in tags:
            stored = self._store.storage(ref)
            repository = registry.Repository(stored.registry, stored.path)
            credentials = self._credentials(stored.registry)
            try:
                for layer in image.layers:
                    if layer.path is not None:
                        if not await self._client.has_blob(repository, layer.digest,
                                                           credentials=credentials):
                            await self._client.push_blob(repository, layer.digest, layer.size,
                                                         file_chunks(layer.path),
                                                         credentials=credentials)
                    else:
                        await self._client.copy_blob(
                            layer.repository, repository, layer.digest, layer.size,
                            source_credentials=self._credentials(layer.repository.registry),
                            credentials=credentials)
                config_digest = digest_of(image.config)
                if not await self._client.has_blob(repository, config_digest,
                                                   credentials=credentials):
                    await self._client.push_blob(repository, config_digest, len(image.config),
                                                 _once(image.config), credentials=credentials)
                manifest = image_manifest(
                    image.config, [(layer.digest, layer.size) for layer in image.layers],
                    OCI_MANIFEST, [layer.media_type for layer in image.layers])
                await self._client.push_manifest(repository, ref.tag or "latest", manifest,
                                                 OCI_MANIFEST, credentials=credentials)
                await self._store.record_made(ref, credentials)
            except _REGISTRY_FAILURES as error:
                raise BuildFailed(f"pushing {ref.familiar}: {error}") from None
            except EngineError as error:
                raise BuildFailed(error.message) from None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
