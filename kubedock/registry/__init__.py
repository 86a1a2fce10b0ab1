"""Image registries: the OCI distribution API, credentials, manifests and image configs."""

from ._archive import push_archive
from ._auth import (
    Challenge,
    Credentials,
    credentials_from_config,
    decode_registry_auth,
    docker_config_lookup,
    docker_config_path,
    parse_challenge,
    token_url,
)
from ._client import (
    DOCKER_HUB,
    RegistryClient,
    RegistryError,
    Repository,
    ResolvedImage,
    Silent,
    Unreachable,
    endpoint,
)
from ._image import ImageConfig, inspect_config, parse_image_config
from ._manifest import (
    ManifestError,
    Platform,
    host_platform_of_this_machine,
    normalise_platform,
    select_from_index,
)
from ._subtree import SubtreeMerger

__all__ = [
    "DOCKER_HUB",
    "Challenge",
    "Credentials",
    "ImageConfig",
    "ManifestError",
    "Platform",
    "RegistryClient",
    "RegistryError",
    "Repository",
    "ResolvedImage",
    "Silent",
    "SubtreeMerger",
    "Unreachable",
    "credentials_from_config",
    "decode_registry_auth",
    "docker_config_lookup",
    "docker_config_path",
    "endpoint",
    "host_platform_of_this_machine",
    "inspect_config",
    "normalise_platform",
    "parse_challenge",
    "parse_image_config",
    "push_archive",
    "select_from_index",
    "token_url",
]
