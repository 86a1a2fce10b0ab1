"""What a container's pod is made of: its record, networks, mounts and published ports as the
cluster-neutral spec that `kube.pod_manifest` renders."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .. import kube
from .._config import ExposeMode, KeepExitedFiles
from ._adopt import PORTS, RECORD, ports_annotation, record_annotation
from ._archive import ArchiveStore, mount_specs
from ._networks import NONE, NetworkStore
from ._records import Container, is_running
from ._supervision import supervised_argv
from ._volumes import VolumeStore

_DEFAULT_STOP_SECONDS = 10


def grace_seconds(container: Container) -> int:
    timeout = container.config.stop_timeout
    return _DEFAULT_STOP_SECONDS if timeout is None or timeout < 0 else timeout


class PodSpecs:
    """Assembles the pod spec of a container from the stores that hold its parts.

    `dns_names` says what the container's network peers resolve it by, `pull_secrets` which
    pull secrets of its own an image's pods name.
    """

    def __init__(self, networks: NetworkStore, archives: ArchiveStore, volumes: VolumeStore,
                 expose: ExposeMode, dns_names: Callable[[Container], tuple[str, ...]],
                 pull_secrets: Callable[[str], tuple[str, ...]],
                 keep_exited_files: KeepExitedFiles = "never") -> None:
        self._networks = networks
        self._archives = archives
        self._volumes = volumes
        self._expose = expose
        self._dns_names = dns_names
        self._pull_secrets = pull_secrets
        self._keep_exited_files = keep_exited_files

    def build(self, container: Container) -> kube.ContainerSpec:
        config = container.config
        spec = kube.ContainerSpec(
            container_id=container.id,
            name=container.name,
            image=config.pulled_as or config.image,
            entrypoint=config.entrypoint,
            cmd=config.cmd,
            env=config.env,
            working_dir=config.working_dir,
            user=config.user,
            labels=config.labels,
            tty=config.tty,
            open_stdin=config.open_stdin,
            stdin_once=config.stdin_once,
            ports=config.ports,
            memory_bytes=config.memory,
            nano_cpus=config.nano_cpus,
            cpu_shares=config.cpu_shares,
            memory_reservation=config.memory_reservation,
            supplemental_groups=config.group_add,
            drop_capabilities=config.cap_drop,
            extra_hosts=config.extra_hosts,
            hostname=config.hostname,
            stop_grace_seconds=grace_seconds(container),
            dns_names=self._dns_names(container),
            network_ids=tuple(network.id for network, _ in self._networks.of(container.id)),
            offline=self.offline(container),
            shared_process_namespace=config.init,
            mounts=mount_specs(container, self._archives.staged(container),
                               self._volumes.claim_of),
            pull_secrets=self._pull_secrets(config.pulled_as or config.image),
            annotations={
                RECORD: record_annotation(container, [
                    (network.id, network.name) for network, _ in self._networks.of(container.id)]),
                **({PORTS: ports_annotation(container.published)}
                   if container.published and is_running(container)
                   and self._expose != "pod-ip" else {}),
            },
        )
        return attrs.evolve(spec, supervised_argv=supervised_argv(
            config, self._keep_exited_files, spec.needs_setup))

    def offline(self, container: Container) -> bool:
        """Whether the container is on Docker's ``none`` network: loopback only."""
        return any(network.name == NONE for network, _ in self._networks.of(container.id))
