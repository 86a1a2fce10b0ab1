"""Image registries: the OCI distribution API, credentials, manifests and image configs."""

from ._archive import push_archive
from ._auth import (
    Challenge,
    Credentials,
    credentials_from_config,
    decode_registry_auth,
    docker_config_json,
    docker_config_lookup,
    docker_config_path,
    documents_lookup,
    first_credentials,
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
from ._index import PlatformManifest, PushedIndex, image_index, push_index
from ._manifest import (
    ManifestError,
    Platform,
    host_platform_of_this_machine,
    normalise_platform,
    select_from_index,
)
from ._save import SavedImage, archive_plan, check_layers_savable, stream_archive
from ._subtree import SubtreeMerger

__all__ = [
    "DOCKER_HUB",
    "Challenge",
    "Credentials",
    "ImageConfig",
    "ManifestError",
    "Platform",
    "PlatformManifest",
    "PushedIndex",
    "RegistryClient",
    "RegistryError",
    "Repository",
    "ResolvedImage",
    "SavedImage",
    "Silent",
    "SubtreeMerger",
    "Unreachable",
    "archive_plan",
    "check_layers_savable",
    "credentials_from_config",
    "decode_registry_auth",
    "docker_config_json",
    "docker_config_lookup",
    "docker_config_path",
    "documents_lookup",
    "endpoint",
    "first_credentials",
    "host_platform_of_this_machine",
    "image_index",
    "inspect_config",
    "normalise_platform",
    "parse_challenge",
    "parse_image_config",
    "push_archive",
    "push_index",
    "select_from_index",
    "stream_archive",
    "token_url",
]
