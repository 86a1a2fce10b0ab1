"""Image facts from registries, with registry failures told as Docker tells them."""

from __future__ import annotations

import contextlib
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import attrs
import httpx
import trio

from .. import registry
from ._errors import (
    Conflict,
    ImageUnavailable,
    InvalidParameter,
    PullFailed,
    RegistryUnreachable,
)
from ._images import ImageRef, parse_reference


class RegistrySource:
    """Resolves references for the nodes' platform through one registry client."""

    def __init__(self, client: registry.RegistryClient, platform: registry.Platform, *,
                 timeout: float) -> None:
        self._client = client
        self._platform = platform
        self._timeout = timeout

    @property
    def client(self) -> registry.RegistryClient:
        """The registry client, for what builds read from and push to registries."""
        return self._client

    async def resolve(self, ref: ImageRef, credentials: registry.Credentials | None,
                      known: registry.ResolvedImage | None = None) -> registry.ResolvedImage:
        repository = registry.Repository(ref.registry, ref.path)
        reference = ref.digest or ref.tag or "latest"
        try:
            with trio.fail_after(self._timeout):
                return await self._client.resolve(repository, reference, self._platform,
                                                  credentials=credentials, known=known)
        except trio.TooSlowError:
            # A registry that takes the connection and then says nothing is broken, not out of
            # reach: the pull fails rather than leaving the node to find out at start.
            raise PullFailed(
                f"pulling {ref.familiar}: the registry "
                f"{registry.endpoint(ref.registry, self._client.mirrors)} did not answer within "
                f"{self._timeout:g}s") from None
        except registry.Unreachable as error:
            raise RegistryUnreachable(f"pulling {ref.familiar}: {error}") from None
        except registry.Silent as error:
            raise PullFailed(f"pulling {ref.familiar}: {error}") from None
        except registry.RegistryError as error:
            if ref.registry == registry.DOCKER_HUB and error.status == 404 \
                    and not await self._has_repository(ref, credentials):
                # What Docker Hub answers, and Docker says, for a repository it does not have;
                # a mirror answers "manifest unknown" for both a missing repository and tag.
                error = registry.RegistryError(
                    403, "DENIED", "requested access to the resource is denied")
            raise _docker_pull_error(ref, error) from None
        except registry.ManifestError as error:
            raise PullFailed(f"pulling {ref.familiar}: {error}") from None
        except httpx.HTTPError as error:
            raise PullFailed(f"pulling {ref.familiar}: {error}") from None


    @contextlib.asynccontextmanager
    async def layer(self, image: registry.ResolvedImage, digest: str
                    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """A layer of `image`, streamed from its registry; a registry that goes silent for
        the registry timeout ends it."""
        async with self._client.blob_stream(image.repository, digest) as chunks:
            yield _bounded_by_silence(chunks, self._timeout)

    async def push(self, image: registry.ResolvedImage, target: ImageRef,
                   credentials: registry.Credentials | None
                   ) -> tuple[registry.ResolvedImage, int]:
        source = image.repository
        repository = registry.Repository(target.registry, target.path)
        tag = target.tag or "latest"
        try:
            data, media_type = await self._client.manifest(source, image.manifest.digest)
            for blob in (image.manifest.config, *image.manifest.layers):
                await self._client.copy_blob(source, repository, blob.digest, blob.size,
                                             credentials=credentials)
            digest = await self._client.push_manifest(repository, tag, data, media_type,
                                                      credentials=credentials)
        except (registry.Unreachable, registry.Silent, httpx.HTTPError) as error:
            raise PullFailed(f"pushing {target.familiar}: {error}") from None
        except registry.RegistryError as error:
            if error.status in (401, 403):
                denied = error.message or "requested access to the resource is denied"
                raise PullFailed(f"denied: {denied}") from None
            raise PullFailed(f"pushing {target.familiar}: {error}") from None
        except registry.ManifestError as error:
            raise PullFailed(f"pushing {target.familiar}: {error}") from None
        return attrs.evolve(image, repository=repository, digest=digest), len(data)

    async def load(self, archive: Path, storage: Callable[[ImageRef], ImageRef]
                   ) -> tuple[list[ImageRef], list[str]]:
        """Pushes a `docker save` archive's tagged images where `storage` says each name goes
        (Docker Hub's registry is its mirror); the names pushed, and the ids of the images
        without a tag."""
        loaded: list[ImageRef] = []

        def target(tag: str) -> tuple[registry.Repository, str] | None:
            ref = parse_reference(tag)
            if ref.tag is None:
                return None
            loaded.append(ref)
            stored = storage(ref)
            return registry.Repository(stored.registry, stored.path), ref.tag

        try:
            # Unbounded as a whole (archives may be large): every read and write to the
            # registry is bounded by the client's --registry-timeout instead.
            untagged = (await registry.push_archive(self._client, archive, target)).untagged
        except (registry.ManifestError, tarfile.TarError, InvalidParameter) as error:
            raise InvalidParameter(f"invalid image archive: {error}") from None
        except (registry.Unreachable, registry.Silent, registry.RegistryError,
                httpx.HTTPError) as error:
            raise PullFailed(f"loading the archive: {error}") from None
        return loaded, untagged

    async def delete(self, ref: ImageRef, credentials: registry.Credentials | None) -> None:
        """Deletes a tag in its registry; a tag already gone is no failure."""
        try:
            with trio.fail_after(self._timeout):
                await self._client.delete_tag(registry.Repository(ref.registry, ref.path),
                                              ref.tag or "latest", credentials=credentials)
        except registry.RegistryError as error:
            if error.status == 404:
                return
            if error.status == 405 or error.code == "UNSUPPORTED":
                raise Conflict(f"unable to delete {ref.familiar} in its registry: the registry "
                               f"does not allow deletes ({error}); remove with force to forget "
                               "the tag here only") from None
            raise PullFailed(f"deleting {ref.familiar} in its registry: {error}") from None
        except trio.TooSlowError:
            raise PullFailed(f"deleting {ref.familiar}: the registry did not answer within "
                             f"{self._timeout:g}s") from None
        except (registry.Unreachable, registry.Silent, httpx.HTTPError) as error:
            raise PullFailed(f"deleting {ref.familiar} in its registry: {error}") from None

    async def save(self, images: list[tuple[registry.ResolvedImage, tuple[str, ...]]]
                   ) -> AsyncIterator[bytes]:
        """A `docker save` archive of `images` (each with the tags it is saved under), streamed
        from their registries. What can fail before the first byte fails here."""
        try:
            with trio.fail_after(self._timeout):
                saved = [registry.SavedImage(
                    image.repository,
                    await self._client.blob(image.repository, image.manifest.config.digest),
                    image.manifest.layers, tags) for image, tags in images]
            plan = registry.archive_plan(saved)
            registry.check_layers_savable(plan)
        except trio.TooSlowError:
            raise PullFailed(f"saving: the registry did not answer within {self._timeout:g}s"
                             ) from None
        except (registry.Unreachable, registry.Silent, registry.RegistryError,
                registry.ManifestError, httpx.HTTPError) as error:
            raise PullFailed(f"saving: {error}") from None
        return registry.stream_archive(self._client, plan)

    async def _has_repository(self, ref: ImageRef, credentials: registry.Credentials | None
                              ) -> bool:
        with trio.move_on_after(self._timeout):
            try:
                return await self._client.has_repository(
                    registry.Repository(ref.registry, ref.path), credentials=credentials)
            except (registry.RegistryError, registry.Unreachable):
                pass
        return True  # unknown: the manifest's own error stands


async def _bounded_by_silence(chunks: AsyncIterator[bytes], seconds: float
                              ) -> AsyncIterator[bytes]:
    while True:
        with trio.fail_after(seconds):
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
        yield chunk


def _docker_pull_error(ref: ImageRef, error: registry.RegistryError) -> Exception:
    """Docker's words for a registry's refusal (its distribution/errors.go)."""
    if error.code == "MANIFEST_UNKNOWN" or (error.status == 404 and error.code != "NAME_UNKNOWN"):
        return ImageUnavailable(f"manifest for {ref.familiar} not found: {error}")
    if error.code == "NAME_UNKNOWN":
        return ImageUnavailable(f"repository {ref.familiar_repository} not found: {error}")
    if error.code in ("DENIED", "UNAUTHORIZED") or error.status in (401, 403):
        # Docker Hub's answer for a repository it does not have, too.
        return ImageUnavailable(
            f"pull access denied for {ref.familiar_repository}, repository does not exist or "
            f"may require 'docker login': {error}")
    return PullFailed(f"pulling {ref.familiar}: {error}")
