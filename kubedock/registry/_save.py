"""`docker save` archives written from a registry, streamed: the layout Docker 20.10 writes
(``manifest.json``, ``repositories``, ``<config digest>.json``, one directory per layer with
``VERSION``, ``json`` and the uncompressed ``layer.tar``), members in name order as Docker tars
its export directory.

The layout is pure (`archive_plan`); `stream_archive` fills in the layers. A tar header needs a
member's size first: layers the registry holds uncompressed go straight through, compressed
ones are decompressed into a temporary file first, so memory stays bounded either way.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
import zlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import IO

import attrs
import trio

from ._auth import Credentials
from ._client import RegistryClient, Repository
from ._manifest import Descriptor, ManifestError, parse_json

_CHUNK = 1 << 20
# Docker writes a file's mode with its type bits, owned by root.
_FILE_MODE, _DIRECTORY_MODE = 0o100644, 0o40755
_COMPRESSED = ("gzip",)


@attrs.frozen
class SavedImage:
    """One image to save: where its blobs are, its config as the registry holds it, the layers
    (in the registry's form) and the names it is saved under (none when saved by id)."""

    repository: Repository
    config: bytes
    layers: tuple[Descriptor, ...]
    repo_tags: tuple[str, ...]


@attrs.frozen
class Layer:
    """A layer as the archive holds it: in its directory, uncompressed (its digest a diff_id)."""

    directory: str
    diff_id: str
    source: Repository
    blob: Descriptor


@attrs.frozen
class ArchivePlan:
    """Every member of the archive in order: small documents by content, layers to fetch."""

    members: tuple[tuple[str, bytes | Layer | None], ...]  # None: a directory
    mtime: int


def layer_directory(parent: str, diff_id: str) -> str:
    """A layer's directory: a digest of its chain, so that images sharing a base share it.
    (Docker names them by ids of legacy v1 configs; loaders read manifest.json instead.)"""
    return hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def archive_plan(images: Sequence[SavedImage]) -> ArchivePlan:
    entries: list[dict[str, object]] = []
    repositories: dict[str, dict[str, str]] = {}
    members: dict[str, bytes | Layer | None] = {}
    created = 0
    for image in images:
        config = parse_json(image.config, "image config")
        diff_ids = _diff_ids(config, len(image.layers))
        created = max(created, _seconds(config.get("created")))
        config_name = hashlib.sha256(image.config).hexdigest() + ".json"
        members[config_name] = image.config
        parent = ""
        layer_names = []
        for index, (diff_id, blob) in enumerate(zip(diff_ids, image.layers, strict=True)):
            directory = layer_directory(parent, diff_id)
            members[f"{directory}/"] = None
            members[f"{directory}/VERSION"] = b"1.0"
            members[f"{directory}/json"] = _legacy_json(directory, parent, config,
                                                        last=index == len(diff_ids) - 1)
            members[f"{directory}/layer.tar"] = Layer(directory, diff_id, image.repository, blob)
            layer_names.append(f"{directory}/layer.tar")
            parent = directory
        entries.append({"Config": config_name, "RepoTags": list(image.repo_tags) or None,
                        "Layers": layer_names})
        for tag in image.repo_tags:
            repository, _, name = tag.rpartition(":")
            repositories.setdefault(repository, {})[name] = parent
    members["manifest.json"] = _compact(entries)
    if repositories:
        members["repositories"] = _compact(repositories)
    return ArchivePlan(tuple(sorted(members.items())), created)


def _diff_ids(config: dict[str, object], layers: int) -> list[str]:
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != layers \
            or not all(isinstance(d, str) for d in diff_ids):
        raise ManifestError("the image config's rootfs.diff_ids do not match its layers")
    return diff_ids


def _seconds(created: object) -> int:
    if not isinstance(created, str) or not created:
        return 0
    try:
        return max(0, int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()))
    except ValueError:
        return 0


def _legacy_json(directory: str, parent: str, config: dict[str, object], *, last: bool
                 ) -> bytes:
    """The v1 image document Docker still writes beside each layer; the top layer carries
    the image's config, as Docker's does."""
    document: dict[str, object] = {"id": directory}
    if parent:
        document["parent"] = parent
    document["created"] = config.get("created") or "1970-01-01T00:00:00Z"
    if last:
        document.update({key: config[key] for key in ("config", "architecture", "os")
                         if key in config})
    return _compact(document)


def _compact(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def tar_header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = size, mtime
    info.uname = info.gname = "root"
    directory = name.endswith("/")
    if directory:
        info.type = tarfile.DIRTYPE
    header = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    # tarfile keeps only permission bits in the mode field; Docker's headers carry the type too.
    header[100:108] = b"%07o\0" % (_DIRECTORY_MODE if directory else _FILE_MODE)
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\0" % sum(header[:tarfile.BLOCKSIZE])
    return bytes(header)


def tar_padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


TAR_END = b"\0" * (2 * tarfile.BLOCKSIZE)


def check_layers_savable(plan: ArchivePlan) -> None:
    """Refuses, before any byte goes out, layers kubedock cannot turn into tars, and
    uncompressed ones that are not what the config says (their digest is their diff_id)."""
    for _, member in plan.members:
        if not isinstance(member, Layer):
            continue
        compression = _compression(member.blob)
        if compression not in ("", *_COMPRESSED):
            raise ManifestError(f"layer {member.blob.digest} has media type "
                                f"{member.blob.media_type}, which kubedock cannot decompress")
        if not compression and member.blob.digest != member.diff_id:
            raise _not_its_content(member)


def _compression(blob: Descriptor) -> str:
    media_type = blob.media_type
    if media_type.endswith(("+gzip", ".tar.gzip")):
        return "gzip"
    if media_type.endswith(("+zstd", ".tar.zstd")):
        return "zstd"
    return ""


async def stream_archive(client: RegistryClient, plan: ArchivePlan, *,
                         credentials: Credentials | None = None) -> AsyncIterator[bytes]:
    """The archive's bytes (`check_layers_savable` first); a layer whose content does not match
    its digest ends the stream with ManifestError (nothing can be said once the answer has
    begun)."""
    for name, member in plan.members:
        if member is None or isinstance(member, bytes):
            content = member or b""
            yield tar_header(name, len(content), plan.mtime) + content + tar_padding(len(content))
            continue
        if not _compression(member.blob):
            yield tar_header(name, member.blob.size, plan.mtime)
            async with client.blob_stream(member.source, member.blob.digest,
                                          credentials=credentials) as chunks:
                async for chunk in chunks:
                    yield chunk
            yield tar_padding(member.blob.size)
            continue
        with tempfile.TemporaryFile() as spooled:
            size = await _decompress_into(client, member, spooled, credentials)
            spooled.seek(0)
            yield tar_header(name, size, plan.mtime)
            while chunk := await trio.to_thread.run_sync(spooled.read, _CHUNK):
                yield chunk
            yield tar_padding(size)
    yield TAR_END


async def _decompress_into(client: RegistryClient, layer: Layer, file: IO[bytes],
                           credentials: Credentials | None) -> int:
    # wbits 47: a gzip or zlib stream, told by its header.
    decompressor = zlib.decompressobj(47)
    digest, size = hashlib.sha256(), 0
    async with client.blob_stream(layer.source, layer.blob.digest,
                                  credentials=credentials) as chunks:
        async for chunk in chunks:
            data = chunk
            while data:
                try:
                    out = decompressor.decompress(data, _CHUNK)
                except zlib.error as error:
                    raise ManifestError(f"layer {layer.blob.digest}: {error}") from None
                data = decompressor.unconsumed_tail
                digest.update(out)
                size += len(out)
                await trio.to_thread.run_sync(file.write, out)
                if decompressor.eof:
                    break
    if f"sha256:{digest.hexdigest()}" != layer.diff_id:
        raise _not_its_content(layer)
    return size


def _not_its_content(layer: Layer) -> ManifestError:
    return ManifestError(f"layer {layer.blob.digest} does not hold the content of "
                         f"{layer.diff_id}")
