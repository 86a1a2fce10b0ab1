"""kubedock's own registry (``--registry``): where the images that exist only in kubedock are
kept, and from which the nodes pull them.

Docker keeps what it builds and loads on its host; a name reaches a registry only by an explicit
`docker push`. kubedock has no host to keep images on, so with its own registry it stores each
such image there under a name of its own, derived from the name the client gave, while clients
keep seeing their name. The derived name holds the client's registry as a path component, so that
``myapp``, ``localhost/myapp`` and ``ghcr.io/me/myapp`` never meet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._errors import InvalidParameter

if TYPE_CHECKING:
    from ._images import ImageRef


@attrs.frozen
class OwnRegistry:
    host: str  # as references name it: 127.0.0.1:5000, registry.example.com
    prefix: str  # path under which kubedock keeps its images ("" for the root)
    # The base URL when one was given with its scheme (plain http to a registry that is not on
    # loopback); None: https, or http on loopback, as for any registry.
    url: str | None = None

    def __str__(self) -> str:
        return f"{self.host}/{self.prefix}" if self.prefix else self.host


def parse_own_registry(text: str) -> OwnRegistry:
    """``[http(s)://]HOST[:PORT][/PREFIX]``. The host must read as a registry in an image name
    (a dot, a port or ``localhost``), or the nodes would look for the images on Docker Hub."""
    text = text.strip().rstrip("/")
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    elif scheme not in ("http", "https"):
        raise ValueError("want [http(s)://]HOST[:PORT][/PREFIX]")
    from ._images import parse_reference  # it keeps images here: imports this module

    host, _, prefix = rest.partition("/")
    try:
        parsed = parse_reference(f"{rest}/image")
    except InvalidParameter:
        raise ValueError("want [http(s)://]HOST[:PORT][/PREFIX] with a lower-case PREFIX") \
            from None
    if parsed.registry != host:
        raise ValueError(f"{host!r} is not a registry host: want a name with a dot, a port, "
                         "or localhost")
    return OwnRegistry(host, prefix, f"{scheme}://{host}" if scheme else None)


def stored_reference(ref: ImageRef, own: OwnRegistry) -> ImageRef:
    """The name under which kubedock keeps, in its registry, the image a client named `ref`:
    ``myapp:1`` is ``<host>/<prefix>/docker.io/library/myapp:1``, ``localhost:5000/x:2`` is
    ``<host>/<prefix>/localhost_5000/x:2`` (a port's colon cannot be in a path; no host name has
    an underscore)."""
    origin = ref.registry.lower().replace(":", "_")
    path = "/".join(part for part in (own.prefix, origin, ref.path) if part)
    return attrs.evolve(ref, registry=own.host, path=path)
