"""Image references and the images kubedock knows of.

kubedock never holds image content: the node pulls at pod start. What it keeps is what the
registry says of each image a client pulled or used (manifest digest and config), so that
inspect/list answer with facts and containers inherit the image's defaults. An image the registry
could not be asked about (no registry reachable) is known by its reference alone.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

import attrs

from ..registry import Credentials, ImageConfig, ResolvedImage
from ._errors import (
    Conflict,
    ImageUnavailable,
    InvalidParameter,
    NoSuchImage,
    RegistryUnreachable,
    Unsupported,
)
from ._own_registry import OwnRegistry, stored_reference

_DEFAULT_REGISTRY = "docker.io"
# A lowercase path of components, an optional registry host, tag or digest.
_REFERENCE = re.compile(
    r"^(?:(?P<host>[a-zA-Z0-9.-]+(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*:[0-9a-fA-F]{32,}))?$"
)


@attrs.frozen
class ImageRef:
    registry: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def canonical(self) -> str:
        """Fully qualified, as the kubelet reports it: ``docker.io/library/redis:7``."""
        return f"{self.registry}/{self.path}{self._suffix}"

    @property
    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def familiar_repository(self) -> str:
        if self.registry == _DEFAULT_REGISTRY:
            return self.path.removeprefix("library/")
        return f"{self.registry}/{self.path}"

    @property
    def familiar(self) -> str:
        """The short form Docker prints and clients cache: ``redis:7``."""
        return self.familiar_repository + self._suffix

    @property
    def image_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical.encode()).hexdigest()


def parse_reference(text: str) -> ImageRef:
    """Parse and normalise an image reference; untagged means ``latest`` as in Docker."""
    match = _REFERENCE.match(text)
    if not text or match is None:
        raise InvalidParameter(f"invalid reference format: {text!r}")
    host, path = match.group("host"), match.group("path")
    # Docker's rule: the first component is a registry only if it looks like a host.
    if host is not None and "." not in host and ":" not in host and host != "localhost":
        path, host = f"{host}/{path}", None
    if host is not None and host.lower() != host and "." not in host:
        raise InvalidParameter(f"invalid reference format: {text!r}")
    registry = host or _DEFAULT_REGISTRY
    if registry == _DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    tag, digest = match.group("tag"), match.group("digest")
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(registry, path, tag, digest)


_IMAGE_ID = re.compile(r"sha256:[0-9a-f]{1,64}|[0-9a-f]{12,64}")


class ImageSource(Protocol):
    """Where image facts come from: a registry, seen through kubedock's mirrors and credentials.
    Raises `ImageUnavailable` when the registry answers that it has no such image, and
    `RegistryUnreachable` when no answer came."""

    async def resolve(self, ref: ImageRef, credentials: Credentials | None,
                      known: ResolvedImage | None = None) -> ResolvedImage: ...

    async def load(self, archive: Path, storage: Callable[[ImageRef], ImageRef]
                   ) -> tuple[list[ImageRef], list[str]]:
        """Pushes an image archive's tagged images, each where `storage` says its name goes;
        the names pushed, and the ids of the images it has no tag for."""

    async def push(self, image: ResolvedImage, target: ImageRef,
                   credentials: Credentials | None) -> tuple[ResolvedImage, int]:
        """Copies the image into `target`'s repository and tags it; the image as pushed, and
        its manifest's size."""

    async def save(self, images: list[tuple[ResolvedImage, tuple[str, ...]]]
                   ) -> AsyncIterator[bytes]:
        """A `docker save` archive of the images, each under its tags, streamed."""

    async def delete(self, ref: ImageRef, credentials: Credentials | None) -> None:
        """Deletes a tag in its registry (Conflict when the registry allows no deletes)."""

    def layer(self, image: ResolvedImage, digest: str
              ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """One of the image's layers, as the registry streams it."""


@attrs.define
class Image:
    ref: ImageRef
    created: float
    resolved: ResolvedImage | None = None  # None: the registry was not reachable
    # A tag not pushed yet: its content is in the resolved image's repository, not in its own.
    tagged_only: bool = False
    # A tag kubedock put in its registry (push, load): `docker rmi` deletes it there too.
    pushed: bool = False
    # Where kubedock keeps an image it made (build, load) in its own registry (--registry), when
    # not under its own name: the nodes pull it from there.
    stored: ImageRef | None = None

    @property
    def id(self) -> str:
        return self.resolved.config.id if self.resolved else self.ref.image_id

    @property
    def config(self) -> ImageConfig | None:
        return self.resolved.config if self.resolved else None

    @property
    def repo_digest(self) -> str | None:
        if self.tagged_only or self.stored:
            return None
        if self.resolved:
            return f"{self.ref.familiar_repository}@{self.resolved.digest}"
        return f"{self.ref.familiar_repository}@{self.ref.digest}" if self.ref.digest else None

    @property
    def size(self) -> int:
        """The layers as the registry holds them (compressed, for most registries)."""
        if self.resolved is None:
            return 0
        return sum(layer.size for layer in self.resolved.manifest.layers)


class ImageStore:
    """Images by reference. Manifests by digest never change, so an entry is refreshed only when
    its tag is pulled again (each pull asks the registry what the tag names now); creating a
    container from a known reference uses the entry as it is, as Docker uses its local image."""

    def __init__(self, source: ImageSource | None = None,
                 own_registry: OwnRegistry | None = None) -> None:
        self._images: dict[str, Image] = {}
        self.source = source
        self.own_registry = own_registry

    def storage(self, ref: ImageRef) -> ImageRef:
        """Where an image kubedock makes under the name `ref` goes: into its own registry when
        it has one, else into the registry the name says."""
        return stored_reference(ref, self.own_registry) if self.own_registry else ref

    async def record_made(self, ref: ImageRef, credentials: Credentials | None) -> Image:
        """Records the image just pushed to `storage(ref)` under the client's name `ref`:
        `docker rmi` deletes it there."""
        if self.source is None:
            raise Unsupported("images kubedock makes need a registry kubedock can push to")
        stored = self.storage(ref)
        image = Image(ref, time.time(), await self.source.resolve(stored, credentials),
                      pushed=True, stored=stored if stored != ref else None)
        self._images[ref.canonical] = image
        return image

    def add(self, ref: ImageRef) -> Image:
        return self._images.setdefault(ref.canonical, Image(ref, time.time()))

    async def pull(self, ref: ImageRef, credentials: Credentials | None) -> tuple[Image, bool]:
        """Asks the registry for `ref` and records the answer; says whether the image is new
        (another config or manifest than the entry had). Without a registry, only records."""
        known = self._images.get(ref.canonical)
        if self.source is None:
            return self.add(ref), known is None
        resolved = await self.source.resolve(ref, credentials,
                                             known.resolved if known else None)
        changed = known is None or known.resolved is None \
            or known.resolved.digest != resolved.digest
        if known is not None and not changed:
            return known, False
        image = Image(ref, time.time(), resolved)
        self._images[ref.canonical] = image
        return image, True

    def tag(self, name: str, ref: ImageRef) -> Image:
        """Another name for a known image, as `docker tag` makes it (local until pushed)."""
        image = self.get(name)
        tagged = Image(ref, time.time(), image.resolved,
                       tagged_only=image.resolved is not None and (
                           image.tagged_only or image.ref.canonical != ref.canonical))
        if tagged.ref.canonical != image.ref.canonical:
            self._images[ref.canonical] = tagged
        return self._images[ref.canonical]

    async def push(self, ref: ImageRef, credentials: Credentials | None) -> tuple[Image, int]:
        """Pushes a tag kubedock knows into its repository (the content comes from the registry
        it was pulled from)."""
        image = self.get(ref.familiar)
        if self.source is None or image.resolved is None:
            raise NoSuchImage(ref.familiar)
        resolved, size = await self.source.push(image.resolved, ref, credentials)
        pushed = Image(ref, image.created, resolved, pushed=True)
        self._images[ref.canonical] = pushed
        return pushed, size

    async def load(self, archive: Path) -> tuple[list[Image], list[Image]]:
        """The images of a `docker save` archive, pushed to their registries and recorded: the
        tagged ones, and those without a tag, which kubedock must know already (by id, as a
        `docker save` of an id writes them): an image lives in a registry, under a name."""
        if self.source is None:
            raise Unsupported("docker load needs a registry kubedock can push to")
        refs, untagged = await self.source.load(archive, self.storage)
        loaded = [await self.record_made(ref, None) for ref in refs]
        try:
            by_id = [self.get(image_id) for image_id in untagged]
        except NoSuchImage as error:
            raise Unsupported(f"{error.message.removeprefix('No such image: ')} has no tag in "
                              "the archive: kubedock keeps images in registries, by name "
                              "(save it by name)") from None
        return loaded, by_id

    async def save(self, names: list[str]) -> AsyncIterator[bytes]:
        """A `docker save` archive of the named images, streamed from their registries: a tag
        is saved under its name, an image named by id under none, an image once."""
        if self.source is None:
            raise Unsupported("docker save needs a registry kubedock can read from")
        chosen: dict[str, tuple[ResolvedImage, list[str]]] = {}
        for name in names:
            image = self.get(name)
            if image.resolved is None:
                raise Unsupported(f"{name}: kubedock knows this image by name only (no registry "
                                  "answered for it), so it has no content to save")
            _, tags = chosen.setdefault(image.id, (image.resolved, []))
            if not _IMAGE_ID.fullmatch(name) and image.ref.tag and not image.ref.digest \
                    and image.ref.familiar not in tags:
                tags.append(image.ref.familiar)
        return await self.source.save([(resolved, tuple(tags))
                                       for resolved, tags in chosen.values()])

    async def ensure(self, ref: ImageRef, credentials: Credentials | None) -> Image:
        """The image a new container runs: the known one as it is (only a pull asks again),
        else what the registry says now. A registry that cannot be reached leaves the node to
        pull: the image is then known by name."""
        known = self._images.get(ref.canonical)
        if known is not None:
            return known
        try:
            image, _ = await self.pull(ref, credentials)
        except RegistryUnreachable:
            return self.add(ref)
        except ImageUnavailable:
            raise NoSuchImage(ref.familiar) from None
        return image

    async def of_container(self, name: str) -> Image | None:
        """The image a create names: by id among the known ones (None if unknown: the name is
        then the node's business), else by reference (`ensure`)."""
        if _IMAGE_ID.fullmatch(name):
            try:
                return self.get(name)
            except NoSuchImage:
                return None
        return await self.ensure(parse_reference(name), None)

    def get(self, name: str) -> Image:
        if _IMAGE_ID.fullmatch(name):
            wanted = name if name.startswith("sha256:") else f"sha256:{name}"
            for image in self._images.values():
                if image.id.startswith(wanted):
                    return image
            raise NoSuchImage(name)
        try:
            ref = parse_reference(name)
        except InvalidParameter:
            raise NoSuchImage(name) from None
        try:
            return self._images[ref.canonical]
        except KeyError:
            raise NoSuchImage(name) from None

    def node_reference(self, image: Image) -> str | None:
        """What a node pulls to run an image not in a registry under its name (a `docker tag`,
        a build's or load's name kept in kubedock's registry): a tag of the image in the
        repository that holds it, else that repository by digest (a tag there may be built
        anew); None for an image nodes pull as it is named."""
        resolved = image.resolved
        if _pulled_as_named(image) or resolved is None:
            return None
        for other in self._images.values():
            if _pulled_as_named(other) and other.resolved is not None \
                    and (other.resolved.repository, other.resolved.digest) \
                    == (resolved.repository, resolved.digest):
                return other.ref.familiar
        return f"{resolved.repository.familiar}@{resolved.digest}"

    def remove(self, name: str) -> Image:
        image = self.get(name)
        del self._images[image.ref.canonical]
        return image

    async def delete(self, name: str, credentials: Credentials | None, *, force: bool) -> Image:
        """`docker rmi`: a tag kubedock pushed is deleted in its registry first; with `force`,
        a registry that refuses leaves it there and the tag is forgotten here all the same."""
        image = self.get(name)
        if image.pushed and self.source is not None:
            try:
                await self.source.delete(image.stored or image.ref, credentials)
            except Conflict:
                if not force:
                    raise
        return self.remove(image.ref.canonical)

    def all(self) -> list[Image]:
        return list(self._images.values())


def _pulled_as_named(image: Image) -> bool:
    return not (image.tagged_only or image.stored)
