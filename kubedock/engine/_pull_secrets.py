"""Registry credentials for the nodes and for kubedock's own registry client.

The kubelet pulls with the pod's image pull secrets: `--image-pull-secrets` (on every pod) and,
for an image a client pulled with credentials (``X-Registry-Auth``), a Secret of this instance
per registry holding them, put on the pods of that image. kubedock's registry client reads the
Docker configs of the pull secrets the pods get anyway (the flag's and the pods' service
account's), once at start.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import kube, registry
from ._errors import InvalidParameter
from ._images import ImageRef, parse_reference

log = logging.getLogger(__name__)


class PullSecrets:
    def __init__(self, cluster: kube.ClusterBoundary, settings: kube.PodSettings) -> None:
        self._cluster = cluster
        self._settings = settings
        self._by_image: dict[str, str] = {}  # canonical reference → Secret name
        self._held: dict[str, bytes] = {}  # Secret name → the Docker config it holds

    def of(self, image: str) -> tuple[str, ...]:
        """The Secrets of its own the pods of `image` (a reference) name."""
        try:
            name = self._by_image.get(parse_reference(image).canonical)
        except InvalidParameter:  # an image id
            return ()
        return (name,) if name else ()

    async def remember(self, ref: ImageRef, credentials: registry.Credentials) -> None:
        """Puts the credentials a client pulled `ref` with into the registry's Secret (made, or
        replaced with the latest credentials) and has the pods of `ref` name it."""
        name = kube.pull_secret_name(self._settings, ref.registry)
        config = registry.docker_config_json(ref.registry, credentials)
        if self._held.get(name) != config:
            manifest = kube.pull_secret_manifest(name, self._settings, config)
            if name in self._held:
                await self._cluster.replace_object(kube.SECRETS, manifest)
            else:
                try:
                    await self._cluster.create_object(kube.SECRETS, manifest)
                except kube.Conflict:  # made by this identity before a restart
                    await self._cluster.replace_object(kube.SECRETS, manifest)
            self._held[name] = config
        self._by_image[ref.canonical] = name


async def pull_secret_configs(cluster: kube.ClusterBoundary, settings: kube.PodSettings
                              ) -> list[Any]:
    """The Docker configs of the pods' pull secrets: `--image-pull-secrets`, then the service
    account's. A Secret or account kubedock may not read (or that is missing) is left out."""
    names = list(settings.image_pull_secrets)
    account = settings.service_account or "default"
    try:
        names += kube.service_account_pull_secrets(
            await cluster.get_object(kube.SERVICE_ACCOUNTS, account))
    except kube.KubeError as error:
        log.info("not reading the pull secrets of service account %s: %s", account, error)
    documents = []
    for name in dict.fromkeys(names):
        try:
            document = kube.docker_config_of_secret(await cluster.get_object(kube.SECRETS, name))
        except kube.KubeError as error:
            log.warning("cannot read image pull secret %s: %s", name, error)
            continue
        if document is not None:
            documents.append(document)
    return documents
