"""Image references and the images kubedock knows of.

kubedock never holds image content: the node pulls at pod start. What it keeps is the set of
references clients pulled or used, so that inspect/list answer the way clients expect.
"""

from __future__ import annotations

import hashlib
import re
import time

import attrs

from ._errors import InvalidParameter, NoSuchImage

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


@attrs.define
class Image:
    ref: ImageRef
    created: float


class ImageStore:
    def __init__(self) -> None:
        self._images: dict[str, Image] = {}

    def add(self, ref: ImageRef) -> Image:
        return self._images.setdefault(ref.canonical, Image(ref, time.time()))

    def get(self, name: str) -> Image:
        if name.startswith("sha256:") or re.fullmatch(r"[0-9a-f]{12,64}", name):
            wanted = name if name.startswith("sha256:") else f"sha256:{name}"
            for image in self._images.values():
                if image.ref.image_id.startswith(wanted):
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

    def remove(self, name: str) -> Image:
        image = self.get(name)
        del self._images[image.ref.canonical]
        return image

    def all(self) -> list[Image]:
        return list(self._images.values())
