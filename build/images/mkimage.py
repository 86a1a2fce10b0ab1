#!/usr/bin/env python3
"""Pack a root filesystem directory into a `docker save` archive (one layer), reproducibly.

The archive loads with `docker load` and `ctr images import`. Every byte is a function of the
rootfs contents, modes, the owners given here and the image config: entries are sorted, times are
zero and owners are root unless `owners` says otherwise. The layer is streamed through a temporary
file next to the output, so rootfs size never turns into memory use.

    mkimage.py OUT.tar ROOTFS --tag redis:7 [--tag ...] [--entrypoint JSON] [--cmd JSON]
               [--env K=V]... [--workdir DIR] [--user U] [--expose 6379/tcp]...
               [--volume /data]... [--label K=V]... [--stop-signal SIGQUIT]
               [--owner PATH=UID:GID]...
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import platform
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

EPOCH = "1970-01-01T00:00:00Z"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CHUNK = 1 << 20
# The programs in an image are the host's (or Debian's for the host): Go's name of its machine.
HOST_ARCHITECTURE = {"x86_64": "amd64", "aarch64": "arm64"}.get(
    platform.machine(), platform.machine()
)


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """The runtime half of an image config (what `docker image inspect` shows under Config)."""

    entrypoint: Sequence[str] | None = None
    cmd: Sequence[str] | None = None
    env: Sequence[str] = (DEFAULT_PATH,)
    working_dir: str = ""
    user: str = ""
    exposed_ports: Sequence[str] = ()
    volumes: Sequence[str] = ()
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    stop_signal: str | None = None

    def to_json(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "Env": list(self.env),
            "Entrypoint": None if self.entrypoint is None else list(self.entrypoint),
            "Cmd": None if self.cmd is None else list(self.cmd),
            "WorkingDir": self.working_dir,
            "User": self.user,
            "Labels": dict(sorted(self.labels.items())) or None,
        }
        if self.exposed_ports:
            config["ExposedPorts"] = {port: {} for port in sorted(self.exposed_ports)}
        if self.volumes:
            config["Volumes"] = {volume: {} for volume in sorted(self.volumes)}
        if self.stop_signal is not None:
            config["StopSignal"] = self.stop_signal
        return config


@dataclasses.dataclass(frozen=True)
class WrittenImage:
    image_id: str  # "sha256:<hex of the config blob>", what `docker images --no-trunc` shows
    diff_id: str  # "sha256:<hex of the uncompressed layer tar>"
    tags: tuple[str, ...]


class _HashingWriter(io.RawIOBase):
    """Write-through file wrapper that hashes and counts what passes."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._sink.write(view)
        self.digest.update(view)
        self.size += len(view)
        return len(view)


def _walk_sorted(root: Path) -> Iterator[Path]:
    """Every path below root (root excluded), parents before children, by byte order of names."""
    with os.scandir(root) as entries:
        children = sorted(entries, key=lambda entry: os.fsencode(entry.name))
    for entry in children:
        path = Path(entry.path)
        yield path
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_sorted(path)


def _owner_of(arcname: str, owners: Mapping[str, tuple[int, int]]) -> tuple[int, int]:
    """The owner of the longest `owners` prefix covering arcname, else root."""
    best: tuple[int, int] = (0, 0)
    best_length = -1
    for prefix, owner in owners.items():
        prefix = prefix.strip("/")
        if (arcname == prefix or arcname.startswith(prefix + "/")) and len(prefix) > best_length:
            best, best_length = owner, len(prefix)
    return best


def write_layer(rootfs: Path, sink: IO[bytes], owners: Mapping[str, tuple[int, int]]) -> str:
    """Stream rootfs as a tar into sink; return its diff id."""
    hashing = _HashingWriter(sink)
    with tarfile.open(fileobj=hashing, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for path in _walk_sorted(rootfs):
            arcname = path.relative_to(rootfs).as_posix()
            info = layer.gettarinfo(str(path), arcname=arcname)
            info.uid, info.gid = _owner_of(arcname, owners)
            info.uname = info.gname = ""
            info.mtime = 0
            if info.isreg():
                with path.open("rb") as content:
                    layer.addfile(info, content)
            elif info.isdir() or info.issym() or info.islnk():
                layer.addfile(info)
            else:
                raise ValueError(f"{arcname}: only files, directories and links belong in a layer")
    return "sha256:" + hashing.digest.hexdigest()


def image_config_json(config: ImageConfig, diff_id: str) -> bytes:
    document = {
        "architecture": HOST_ARCHITECTURE,
        "os": "linux",
        "created": EPOCH,
        "config": config.to_json(),
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": EPOCH, "created_by": "build/images/mkimage.py"}],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _repositories_json(tags: Sequence[str], layer_dir: str) -> bytes:
    repositories: dict[str, dict[str, str]] = {}
    for tag in tags:
        repository, _, version = tag.rpartition(":")
        if not repository or "/" in version:
            raise ValueError(f"{tag!r} is not NAME:TAG")
        repositories.setdefault(repository, {})[version] = layer_dir
    return json.dumps(repositories, sort_keys=True, separators=(",", ":")).encode()


def _archive_member(archive: tarfile.TarFile, name: str, size: int, content: IO[bytes]) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    archive.addfile(info, content)


def _archive_directory(archive: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    archive.addfile(info)


def _archive_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    _archive_member(archive, name, len(data), io.BytesIO(data))


def write_image(
    out: Path,
    rootfs: Path,
    tags: Sequence[str],
    config: ImageConfig,
    owners: Mapping[str, tuple[int, int]] | None = None,
) -> WrittenImage:
    """Write a `docker save` archive of rootfs to out (atomically: a temp file renamed at the end).

    Metadata comes first in the archive so readers that stop early (`tar --occurrence`) find
    manifest.json without reading the layer.
    """
    if not tags:
        raise ValueError("an image needs at least one tag")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out.parent) as layer_file:
        diff_id = write_layer(rootfs, layer_file, owners or {})
        layer_size = layer_file.tell()
        layer_file.seek(0)
        config_blob = image_config_json(config, diff_id)
        config_hex = hashlib.sha256(config_blob).hexdigest()
        layer_dir = diff_id.removeprefix("sha256:")
        manifest = [
            {
                "Config": f"{config_hex}.json",
                "RepoTags": list(tags),
                "Layers": [f"{layer_dir}/layer.tar"],
            }
        ]
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as archive:
            _archive_bytes(archive, "manifest.json", json.dumps(manifest).encode())
            _archive_bytes(archive, "repositories", _repositories_json(tags, layer_dir))
            _archive_bytes(archive, f"{config_hex}.json", config_blob)
            _archive_directory(archive, layer_dir)
            _archive_bytes(archive, f"{layer_dir}/VERSION", b"1.0")
            _archive_member(archive, f"{layer_dir}/layer.tar", layer_size, layer_file)
        partial.replace(out)
    return WrittenImage(image_id=f"sha256:{config_hex}", diff_id=diff_id, tags=tuple(tags))


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _owner(text: str) -> tuple[str, tuple[int, int]]:
    path, ids = _key_value(text)
    uid, _, gid = ids.partition(":")
    return path, (int(uid), int(gid or uid))


def _json_list(text: str) -> list[str] | None:
    value = json.loads(text)
    if value is not None and not (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    ):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON list of strings or null")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path)
    parser.add_argument("rootfs", type=Path)
    parser.add_argument("--tag", action="append", required=True, dest="tags")
    parser.add_argument("--entrypoint", type=_json_list, default=None)
    parser.add_argument("--cmd", type=_json_list, default=None)
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--workdir", default="")
    parser.add_argument("--user", default="")
    parser.add_argument("--expose", action="append", default=[])
    parser.add_argument("--volume", action="append", default=[])
    parser.add_argument("--label", action="append", type=_key_value, default=[])
    parser.add_argument("--stop-signal", default=None)
    parser.add_argument("--owner", action="append", type=_owner, default=[])
    args = parser.parse_args(argv)
    config = ImageConfig(
        entrypoint=args.entrypoint,
        cmd=args.cmd,
        env=[DEFAULT_PATH, *args.env],
        working_dir=args.workdir,
        user=args.user,
        exposed_ports=args.expose,
        volumes=args.volume,
        labels=dict(args.label),
        stop_signal=args.stop_signal,
    )
    written = write_image(args.out, args.rootfs, args.tags, config, dict(args.owner))
    print(written.image_id)


if __name__ == "__main__":
    main()
