"""An image's configuration blob, read into what Docker reports and containers inherit (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._manifest import ManifestError, parse_json


@attrs.frozen
class ImageConfig:
    """The parts of an image config (``docker inspect``'s source) kubedock reads."""

    id: str  # the config's digest, Docker's image id
    os: str
    architecture: str
    variant: str
    created: str  # RFC 3339, as in the config; "" when absent
    author: str
    diff_ids: tuple[str, ...]
    # The container defaults (``config``), as the image holds them, keys in Docker's spelling.
    defaults: Mapping[str, Any]

    @property
    def env(self) -> tuple[str, ...]:
        return tuple(self._strings("Env") or ())

    @property
    def cmd(self) -> tuple[str, ...] | None:
        return self._strings("Cmd")

    @property
    def entrypoint(self) -> tuple[str, ...] | None:
        return self._strings("Entrypoint")

    @property
    def working_dir(self) -> str:
        return str(self.defaults.get("WorkingDir") or "")

    @property
    def user(self) -> str:
        return str(self.defaults.get("User") or "")

    @property
    def exposed_ports(self) -> tuple[str, ...]:
        ports = self.defaults.get("ExposedPorts")
        return tuple(ports) if isinstance(ports, dict) else ()

    @property
    def healthcheck(self) -> Mapping[str, Any] | None:
        check = self.defaults.get("Healthcheck")
        return check if isinstance(check, dict) and check.get("Test") else None

    @property
    def labels(self) -> Mapping[str, str]:
        labels = self.defaults.get("Labels")
        return labels if isinstance(labels, dict) else {}

    @property
    def stop_signal(self) -> str:
        return str(self.defaults.get("StopSignal") or "")

    @property
    def volumes(self) -> tuple[str, ...]:
        volumes = self.defaults.get("Volumes")
        return tuple(volumes) if isinstance(volumes, dict) else ()

    def _strings(self, key: str) -> tuple[str, ...] | None:
        value = self.defaults.get(key)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        return None


def parse_image_config(data: bytes, digest: str) -> ImageConfig:
    document = parse_json(data, f"image config {digest}")
    rootfs = document.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    defaults = document.get("config")
    return ImageConfig(
        id=digest,
        os=_text(document, "os"),
        architecture=_text(document, "architecture"),
        variant=_text(document, "variant"),
        created=_text(document, "created"),
        author=_text(document, "author"),
        diff_ids=tuple(d for d in diff_ids if isinstance(d, str)) if isinstance(diff_ids, list)
        else (),
        defaults=defaults if isinstance(defaults, dict) else {},
    )


# What Docker reports as an image's Config when the image config leaves a field out: the zero
# values of its container config, the omitempty ones left out.
_CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
    "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
    "OnBuild": None, "Labels": None,
}
_OMITTED_WHEN_EMPTY = ("ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled",
                       "MacAddress", "StopSignal", "StopTimeout", "Shell")


def inspect_config(image: ImageConfig) -> dict[str, Any]:
    document = {**_CONFIG_DEFAULTS, **image.defaults}
    for key in _OMITTED_WHEN_EMPTY:
        if not document.get(key):
            document.pop(key, None)
    return document


def _text(document: Mapping[str, Any], key: str) -> str:
    value = document.get(key)
    return value if isinstance(value, str) else ""


__all__ = ["ImageConfig", "ManifestError", "inspect_config", "parse_image_config"]
