"""Pure translation of one Docker container into one Kubernetes Pod manifest."""

from __future__ import annotations

import copy
import posixpath
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from ._errors import Unsupported
from ._ownership import owner_reference

MAIN = "main"
SETUP = "setup"
OFFLINE = "offline"
# Where the init container writes what it receives; `main` mounts pieces of it (subPath).
DATA_VOLUME = "kubedock-data"
DATA_DIR = "/.kubedock/data"
# The init container copies kubedock itself here, for `docker cp` with a running container.
TOOLS_VOLUME = "kubedock-tools"
TOOLS_DIR = "/.kubedock/bin"
# The sidecar relaying a Docker socket to kubedock; `main` sees the socket through this volume.
DIND = "dind"
DIND_VOLUME = "kubedock-dind"
# With TLS, the sidecar's credentials: a Secret named after the pod, owned by it.
DIND_TLS_VOLUME = "kubedock-dind-tls"
DIND_TLS_DIR = "/.kubedock/dind-tls"
# Where the init image keeps kubedock (its entrypoint); hooks name the program explicitly.
INIT_PROGRAM = "/kubedock"
_SOCKET_WAIT_SECONDS = 30

# Per-container labels understood by the Go kubedock; kept so existing setups keep working.
LABEL_PREFIX = "com.joyrex2001.kubedock."
REQUEST_CPU = LABEL_PREFIX + "request-cpu"
REQUEST_MEMORY = LABEL_PREFIX + "request-memory"
REQUEST_EPHEMERAL_STORAGE = LABEL_PREFIX + "request-ephemeral-storage"
PULL_POLICY = LABEL_PREFIX + "pull-policy"
RUNAS_USER = LABEL_PREFIX + "runas-user"
NODE_SELECTOR = LABEL_PREFIX + "node-selector"
ACTIVE_DEADLINE_SECONDS = LABEL_PREFIX + "active-deadline-seconds"
NAME_PREFIX = LABEL_PREFIX + "name-prefix"
SERVICE_ACCOUNT = LABEL_PREFIX + "service-account"

_PULL_POLICIES = {
    "ifnotpresent": "IfNotPresent",
    "notpresent": "IfNotPresent",
    "default": "IfNotPresent",
    "always": "Always",
    "allways": "Always",
    "never": "Never",
}

_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_POD_NAME_PART_MAX = 32


@attrs.frozen
class PortSpec:
    port: int
    protocol: str  # "tcp" | "udp" | "sctp"


@attrs.frozen
class PodSettings:
    """Server-wide pod settings (flags and environment of `kubedock server`)."""

    namespace: str
    instance_id: str
    pull_policy: str | None = None
    service_account: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    request_cpu: str | None = None
    request_memory: str | None = None
    request_ephemeral_storage: str | None = None
    node_selector: Mapping[str, str] = attrs.field(factory=dict)
    runas_user: str | None = None
    active_deadline_seconds: int | None = None
    pod_name_prefix: str = "kubedock"
    labels: Mapping[str, str] = attrs.field(factory=dict)
    annotations: Mapping[str, str] = attrs.field(factory=dict)
    pod_template: Mapping[str, Any] | None = None
    # The pod's dnsConfig when names resolve through kubedock's DNS role (dnsPolicy None).
    dns_config: Mapping[str, Any] | None = None
    # Image of the init container `setup` (`kubedock init`).
    init_image: str = ""
    # Image of the sidecar `dind` that serves a bound Docker socket; None: such binds refused.
    dind_image: str | None = None
    # The Go kubedock's --ignore-container-memory: HostConfig.Memory sets no pod limit.
    ignore_container_memory: bool = False
    # Where pods reach kubedock's API; None when they cannot (no Docker socket for containers).
    kubedock_url: str | None = None
    # When that API is TLS: the files of the sidecar's --tls-dir (its certificate and key,
    # kubedock's certificate), given to each pod with a Docker socket in a Secret.
    dind_credentials: Mapping[str, str] | None = None


@attrs.frozen
class MountSpec:
    """A path of `main` backed by a pod volume.

    `copy`: a piece (`sub_path`) of the data volume, filled by the init container with what
    kubedock streams to it (bind sources, archives copied in before start). `volume` with a
    `claim`: that PersistentVolumeClaim (a named volume; `sub_path` a directory in it). `volume`
    without one and `tmpfs`: an emptyDir of its own (on disk, or in memory), empty at start.
    `docker-socket`:
    a Docker API socket at `target`, served by the sidecar `dind` in a directory both mount
    (so the rest of `target`'s directory is hidden, as with Go kubedock).
    """

    target: str
    kind: Literal["copy", "volume", "tmpfs", "docker-socket"]
    sub_path: str = ""
    read_only: bool = False
    claim: str = ""
    # A volume the init container fills first, with what the image holds at `target`; it
    # mounts the volume at `seed_directory(index)` of its data directory.
    seeded: bool = False


@attrs.frozen
class ContainerSpec:
    """One Docker container, as the engine understood its create body."""

    container_id: str
    name: str
    image: str
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    working_dir: str | None = None
    user: str | None = None
    labels: Mapping[str, str] = attrs.field(factory=dict)
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    ports: tuple[PortSpec, ...] = ()
    memory_bytes: int | None = None
    nano_cpus: int | None = None
    cpu_shares: int | None = None
    memory_reservation: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    drop_capabilities: tuple[str, ...] = ()
    extra_hosts: tuple[tuple[str, str], ...] = ()
    hostname: str | None = None
    stop_grace_seconds: int | None = None
    # Names other containers of its networks resolve it by, and those networks' ids.
    dns_names: tuple[str, ...] = ()
    network_ids: tuple[str, ...] = ()
    # Docker's `--network none`: the pod keeps nothing but its loopback interface.
    offline: bool = False
    # The pod's containers share one process namespace (Docker's --init: pause is PID 1).
    shared_process_namespace: bool = False
    mounts: tuple[MountSpec, ...] = ()
    # kubedock's own annotations of the pod (what a restarted kubedock rebuilds the record from).
    annotations: Mapping[str, str] = attrs.field(factory=dict)
    # Pull secrets of the image's own (made of the credentials a client pulled it with).
    pull_secrets: tuple[str, ...] = ()
    # The program (entrypoint and cmd, resolved) that kubedock's supervisor runs as the child
    # of `main`'s PID 1, so that the container outlives it (see `_supervision`); empty: none.
    supervised_argv: tuple[str, ...] = ()
    # The ConfigMap that holds the supervisor for a pod without the init container; empty:
    # the installer container copies it (see `_supervision`).
    supervisor_config_map: str = ""

    @property
    def short_id(self) -> str:
        return self.container_id[:12]

    @property
    def needs_setup(self) -> bool:
        """Whether the pod has the init container `setup`, which waits for a tar stream."""
        return any(mount.kind == "copy" or mount.seeded for mount in self.mounts)


def seed_directory(index: int) -> str:
    """Where the init container mounts the volume of mount `index` that it fills, within its
    data directory (also the names of the entries meant for it in the tar stream)."""
    return f"v{index}"


def is_valid_label_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_NAME_PART.match(name))


def is_valid_label_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and bool(_NAME_PART.match(value)))


def pod_name(spec: ContainerSpec, settings: PodSettings, *, run: str = "") -> str:
    """`<prefix>-<docker name>-<short id>`, squeezed into a DNS-1123 label, then `-<run>` for
    a pod that must not take that name (a restart's next pod, made while the last is there).

    The short id keeps it unique per container, so a re-created container with the same
    Docker name never collides with a pod that is still terminating.
    """
    prefix = spec.labels.get(NAME_PREFIX, settings.pod_name_prefix)
    readable = _dns_label_chars(f"{prefix}-{spec.name}")[:_POD_NAME_PART_MAX].strip("-")
    name = f"{readable}-{spec.short_id}" if readable else spec.short_id
    return f"{name}-{run}" if run else name


def _dns_label_chars(text: str) -> str:
    text = re.sub(r"[_.]", "-", text.lower())
    text = re.sub(r"[^a-z0-9-]", "", text)
    return re.sub(r"-{2,}", "-", text).strip("-")


def pod_manifest(spec: ContainerSpec, settings: PodSettings, *, run: str = "") -> dict[str, Any]:
    """The Pod for `spec`, named as `pod_name` says. Raises `Unsupported` for settings
    Kubernetes cannot express.

    Precedence, lowest first: the pod template, server settings, the container's
    `com.joyrex2001.kubedock.*` labels, the Docker create body. kubedock's own labels
    (`kubedock`, `kubedock.id`, `kubedock.containerid`) always win, since cleanup and the
    pod watch select on them.
    """
    template = copy.deepcopy(dict(settings.pod_template or {}))
    metadata = dict(template.get("metadata") or {})
    pod_spec = dict(template.get("spec") or {})
    template_containers = pod_spec.get("containers") or [{}]

    metadata.pop("generateName", None)
    metadata.update(
        name=pod_name(spec, settings, run=run),
        namespace=settings.namespace,
        labels=_labels(spec, settings, metadata.get("labels") or {}),
        annotations=_annotations(spec, settings, metadata.get("annotations") or {}),
    )
    pod_spec["containers"] = [_main_container(spec, settings, dict(template_containers[0]))]
    pod_spec["restartPolicy"] = "Never"
    # Docker containers see neither service env vars nor an API token; a template may opt in.
    pod_spec.setdefault("enableServiceLinks", False)
    pod_spec.setdefault("automountServiceAccountToken", False)

    service_account = settings.service_account or spec.labels.get(SERVICE_ACCOUNT)
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    if settings.image_pull_secrets or spec.pull_secrets:
        secrets = list(pod_spec.get("imagePullSecrets") or [])
        secrets.extend({"name": name} for name in (*settings.image_pull_secrets,
                                                   *spec.pull_secrets))
        pod_spec["imagePullSecrets"] = secrets
    node_selector = _node_selector(spec, settings)
    if node_selector:
        pod_spec["nodeSelector"] = {**(pod_spec.get("nodeSelector") or {}), **node_selector}
    deadline = _active_deadline(spec, settings)
    if deadline is not None:
        pod_spec["activeDeadlineSeconds"] = deadline
    runas = spec.labels.get(RUNAS_USER, settings.runas_user)
    if runas:
        uid, _ = _numeric_user(runas)
        pod_spec["securityContext"] = {**(pod_spec.get("securityContext") or {}), "runAsUser": uid}
    if spec.supplemental_groups:
        security = dict(pod_spec.get("securityContext") or {})
        groups = [*(security.get("supplementalGroups") or []), *spec.supplemental_groups]
        security["supplementalGroups"] = list(dict.fromkeys(groups))
        pod_spec["securityContext"] = security
    if spec.stop_grace_seconds is not None:
        pod_spec["terminationGracePeriodSeconds"] = max(0, spec.stop_grace_seconds)
    if spec.extra_hosts:
        pod_spec["hostAliases"] = _host_aliases(spec.extra_hosts)
    if settings.dns_config is not None:
        pod_spec["dnsPolicy"] = "None"
        pod_spec["dnsConfig"] = copy.deepcopy(dict(settings.dns_config))
    if spec.hostname and _DNS_LABEL.match(spec.hostname.lower()) and len(spec.hostname) <= 63:
        pod_spec["hostname"] = spec.hostname.lower()
    elif not spec.hostname:
        # Docker names a container's host by its short id; the pod name would be Kubernetes'.
        pod_spec["hostname"] = spec.short_id
    if spec.shared_process_namespace:
        pod_spec["shareProcessNamespace"] = True
    if spec.offline:
        pod_spec["initContainers"] = [_offline_container(settings),
                                      *(pod_spec.get("initContainers") or [])]
    if spec.mounts:
        _add_mounts(spec, settings, pod_spec, metadata["name"])
    if spec.supervised_argv:
        from ._supervision import supervise

        supervise(spec, settings, pod_spec)

    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def _offline_container(settings: PodSettings) -> dict[str, Any]:
    """The init container that takes the pod's network interfaces down: the containers of a
    pod share its network namespace, so `main` starts with loopback alone."""
    if not settings.init_image:
        raise Unsupported("network mode 'none' needs an init image (--initimage)")
    container: dict[str, Any] = {
        "name": OFFLINE,
        "image": settings.init_image,
        "args": ["offline"],
        "securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
    }
    pull_policy = _pull_policy(settings.pull_policy)
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    return container


def _labels(
    spec: ContainerSpec, settings: PodSettings, template_labels: Mapping[str, str]
) -> dict[str, str]:
    labels = dict(template_labels)
    labels.update(settings.labels)
    labels.update(
        (key, value)
        for key, value in spec.labels.items()
        if is_valid_label_key(key) and is_valid_label_value(value)
    )
    labels.update(
        {
            "kubedock": "true",
            "kubedock.id": settings.instance_id,
            "kubedock.containerid": spec.short_id,
        }
    )
    return labels


def _annotations(
    spec: ContainerSpec, settings: PodSettings, template_annotations: Mapping[str, str]
) -> dict[str, str]:
    annotations = dict(template_annotations)
    annotations.update(settings.annotations)
    # Annotation keys follow label-key rules; Docker label keys that do not are left out
    # rather than failing the pod (the engine keeps the full Docker labels itself).
    annotations.update(
        (key, value) for key, value in spec.labels.items() if is_valid_label_key(key)
    )
    annotations.update(spec.annotations)
    annotations["kubedock.containername"] = spec.name
    if spec.network_ids:
        annotations.update(network_annotations(
            (spec.hostname or pod_name(spec, settings), *spec.dns_names), spec.network_ids
        ))
    return annotations


HOST_ALIAS_PREFIX = "kubedock.hostalias/"
NETWORK_PREFIX = "kubedock.network/"


def network_annotations(names: Sequence[str], network_ids: Sequence[str]) -> dict[str, str]:
    """The DNS annotations of a pod (kubedock-dns's keys): its names and its networks' ids."""
    annotations = {
        f"{HOST_ALIAS_PREFIX}{index}": name
        for index, name in enumerate(dict.fromkeys(n.lower() for n in names))
    }
    annotations.update(
        (f"{NETWORK_PREFIX}{index}", network_id) for index, network_id in enumerate(network_ids)
    )
    return annotations


def _main_container(
    spec: ContainerSpec, settings: PodSettings, base: dict[str, Any]
) -> dict[str, Any]:
    container = base
    container.update(name=MAIN, image=spec.image)
    pull_policy = _pull_policy(spec.labels.get(PULL_POLICY, settings.pull_policy))
    if pull_policy:
        container["imagePullPolicy"] = pull_policy

    if spec.entrypoint is not None and not spec.entrypoint:
        # An empty Docker entrypoint means "run Cmd as is"; Kubernetes says that with command.
        if spec.cmd:
            container["command"] = list(spec.cmd)
    else:
        if spec.entrypoint is not None:
            container["command"] = list(spec.entrypoint)
        if spec.cmd is not None:
            container["args"] = list(spec.cmd)

    env = [_env_var(item) for item in spec.env if "=" in item]
    if env:
        container["env"] = [*(container.get("env") or []), *env]
    if spec.working_dir:
        container["workingDir"] = spec.working_dir
    container["tty"] = spec.tty
    container["stdin"] = spec.open_stdin
    container["stdinOnce"] = spec.open_stdin and spec.stdin_once
    if spec.ports:
        container["ports"] = [
            {
                "name": f"kd-{port.protocol.lower()}-{port.port}",
                "containerPort": port.port,
                "protocol": port.protocol.upper(),
            }
            for port in spec.ports
        ]
    resources = _resources(spec, settings, container.get("resources") or {})
    if resources:
        container["resources"] = resources
    security = dict(container.get("securityContext") or {})
    if spec.user:
        uid, gid = _numeric_user(spec.user)
        security["runAsUser"] = uid
        if gid is not None:
            security["runAsGroup"] = gid
    if spec.drop_capabilities:
        capabilities = dict(security.get("capabilities") or {})
        dropped = [*(capabilities.get("drop") or []), *spec.drop_capabilities]
        capabilities["drop"] = list(dict.fromkeys(dropped))
        security["capabilities"] = capabilities
    if security:
        container["securityContext"] = security
    return container


def _env_var(item: str) -> dict[str, str]:
    name, _, value = item.partition("=")
    return {"name": name, "value": value}


def _pull_policy(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return _PULL_POLICIES[value.strip().lower()]
    except KeyError:
        raise Unsupported(f"unknown pull policy {value!r}") from None


def _numeric_user(user: str) -> tuple[int, int | None]:
    """`uid`, `uid:gid` or `root`; Kubernetes cannot resolve user names from the image."""
    name, _, group = user.partition(":")
    try:
        uid = 0 if name == "root" else int(name)
        gid = None if not group else 0 if group == "root" else int(group)
    except ValueError:
        raise Unsupported(
            f"user {user!r}: only numeric uid[:gid] (or root) can run on Kubernetes"
        ) from None
    return uid, gid


def _resources(
    spec: ContainerSpec, settings: PodSettings, base: Mapping[str, Any]
) -> dict[str, dict[str, str]]:
    requests = dict(base.get("requests") or {})
    limits = dict(base.get("limits") or {})
    for resource, label, default in (
        ("cpu", REQUEST_CPU, settings.request_cpu),
        ("memory", REQUEST_MEMORY, settings.request_memory),
        ("ephemeral-storage", REQUEST_EPHEMERAL_STORAGE, settings.request_ephemeral_storage),
    ):
        request, limit = _request_limit(spec.labels.get(label, default))
        if request:
            requests[resource] = request
        if limit:
            limits[resource] = limit
    # Docker's Memory and NanoCpus are hard caps (cgroup limits), so they become limits;
    # Kubernetes then defaults the request to the same value unless one was given.
    if spec.memory_bytes and not settings.ignore_container_memory:
        limits["memory"] = str(spec.memory_bytes)
    if spec.nano_cpus:
        limits["cpu"] = f"{spec.nano_cpus}n"
    # CpuShares weighs containers against each other as a CPU request does (the kubelet turns
    # requests into cgroup weights); MemoryReservation is the memory a container should keep.
    # A request above the limit makes an invalid pod, where Docker has no such rule for shares.
    if spec.cpu_shares:
        millicores = -(-spec.cpu_shares * 1000 // 1024)
        if spec.nano_cpus:
            millicores = min(millicores, -(-spec.nano_cpus // 1_000_000))
        requests["cpu"] = f"{millicores}m"
    if spec.memory_reservation:
        requests["memory"] = str(min(spec.memory_reservation, spec.memory_bytes or sys.maxsize))
    return resources_document(requests, limits)


def resources_document(requests: Mapping[str, str], limits: Mapping[str, str]
                       ) -> dict[str, Any]:
    """A container's `resources`, without the empty halves."""
    return {**({"requests": dict(requests)} if requests else {}),
            **({"limits": dict(limits)} if limits else {})}


def _request_limit(value: str | None) -> tuple[str, str]:
    """`"request[,limit]"`; a lone limit also serves as the request."""
    if not value:
        return "", ""
    request, _, limit = value.replace(" ", "").partition(",")
    return request or limit, limit


def _node_selector(spec: ContainerSpec, settings: PodSettings) -> dict[str, str]:
    label = spec.labels.get(NODE_SELECTOR)
    if label is None:
        return dict(settings.node_selector)
    pairs = (item.partition("=") for item in label.split(",") if item.strip())
    return {key.strip(): value.strip() for key, _, value in pairs}


def _active_deadline(spec: ContainerSpec, settings: PodSettings) -> int | None:
    label = spec.labels.get(ACTIVE_DEADLINE_SECONDS)
    if label is None:
        return settings.active_deadline_seconds
    try:
        seconds = int(label)
    except ValueError:
        raise Unsupported(f"{ACTIVE_DEADLINE_SECONDS}: not a number: {label!r}") from None
    return seconds if seconds >= 0 else None


def _host_aliases(extra_hosts: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    by_ip: dict[str, list[str]] = {}
    for hostname, ip in extra_hosts:
        by_ip.setdefault(ip, []).append(hostname)
    return [{"ip": ip, "hostnames": hostnames} for ip, hostnames in by_ip.items()]


def _add_mounts(spec: ContainerSpec, settings: PodSettings, pod_spec: dict[str, Any],
                name: str) -> None:
    volumes = list(pod_spec.get("volumes") or [])
    main = pod_spec["containers"][0]
    mounts = list(main.get("volumeMounts") or [])
    sidecars: list[dict[str, Any]] = []
    seeded: list[dict[str, Any]] = []
    for index, mount in enumerate(spec.mounts):
        entry: dict[str, Any] = {"mountPath": mount.target, "readOnly": mount.read_only}
        if mount.kind == "copy":
            entry.update(name=DATA_VOLUME, subPath=mount.sub_path)
        elif mount.kind == "docker-socket":
            if sidecars:
                raise Unsupported("kubedock gives a container one Docker socket, not two")
            sidecars.append(_dind_sidecar(mount.target, settings))
            entry = {"name": DIND_VOLUME, "mountPath": posixpath.dirname(mount.target)}
            volumes.append({"name": DIND_VOLUME, "emptyDir": {}})
            if settings.dind_credentials:
                volumes.append({"name": DIND_TLS_VOLUME,
                                "secret": {"secretName": name, "defaultMode": 0o400}})
        elif mount.claim:
            entry["name"] = f"kd-volume-{index}"
            if mount.sub_path:
                entry["subPath"] = mount.sub_path
            volumes.append({"name": entry["name"],
                            "persistentVolumeClaim": {"claimName": mount.claim}})
        else:
            entry["name"] = f"kd-volume-{index}"
            empty_dir = {"medium": "Memory"} if mount.kind == "tmpfs" else {}
            volumes.append({"name": entry["name"], "emptyDir": empty_dir})
        if mount.seeded:
            seeded.append({**{k: v for k, v in entry.items() if k != "readOnly"},
                           "mountPath": posixpath.join(DATA_DIR, seed_directory(index))})
        mounts.append(entry)
    if spec.needs_setup:
        if not settings.init_image:
            raise Unsupported("binds and copies before start need an init image (--initimage)")
        volumes.append({"name": DATA_VOLUME, "emptyDir": {}})
        volumes.append({"name": TOOLS_VOLUME, "emptyDir": {}})
        tools = {"name": TOOLS_VOLUME, "mountPath": TOOLS_DIR}
        mounts.append({**tools, "readOnly": True})
        setup: dict[str, Any] = {
            "name": SETUP,
            "image": settings.init_image,
            "args": ["init", DATA_DIR, "--tools", TOOLS_DIR],
            # kubedock attaches and streams one tar; the program ends at the tar's end.
            "stdin": True,
            "stdinOnce": True,
            "volumeMounts": [{"name": DATA_VOLUME, "mountPath": DATA_DIR}, tools, *seeded],
        }
        pull_policy = _pull_policy(settings.pull_policy)
        if pull_policy:
            setup["imagePullPolicy"] = pull_policy
        pod_spec["initContainers"] = [*(pod_spec.get("initContainers") or []), setup]
    if sidecars:
        pod_spec["initContainers"] = [*(pod_spec.get("initContainers") or []), *sidecars]
    main["volumeMounts"] = mounts
    pod_spec["volumes"] = volumes


def dind_secret(pod: Mapping[str, Any], settings: PodSettings) -> dict[str, Any] | None:
    """The Secret holding the Docker socket sidecar's TLS credentials, owned by `pod` (as the
    API server returned it), or None when the pod mounts none."""
    volumes = (pod.get("spec") or {}).get("volumes") or ()
    if not settings.dind_credentials or not any(v["name"] == DIND_TLS_VOLUME for v in volumes):
        return None
    metadata = pod["metadata"]
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": metadata["name"], "namespace": settings.namespace,
                     "labels": dict(metadata.get("labels") or {}),
                     "ownerReferences": [owner_reference(pod)]},
        "stringData": dict(settings.dind_credentials),
    }


def _dind_sidecar(socket_path: str, settings: PodSettings) -> dict[str, Any]:
    if not settings.kubedock_url:
        raise Unsupported("pods cannot reach kubedock's API to serve a Docker socket")
    if not settings.dind_image:
        raise Unsupported("binding the Docker socket is disabled (--disable-dind)")
    socket_dir = posixpath.dirname(socket_path)
    sidecar: dict[str, Any] = {
        "name": DIND,
        "image": settings.dind_image,
        "args": ["dind", "--unix-socket", socket_path, "--kubedock-url", settings.kubedock_url],
        # A native sidecar: it starts before main and is stopped once main has ended, so the
        # pod still completes when main does.
        "restartPolicy": "Always",
        # main starts only after this hook has returned, that is with the socket in place.
        "lifecycle": {"postStart": {"exec": {"command": [
            INIT_PROGRAM, "dind", "--unix-socket", socket_path,
            "--wait", str(_SOCKET_WAIT_SECONDS),
        ]}}},
        "volumeMounts": [{"name": DIND_VOLUME, "mountPath": socket_dir}],
    }
    if settings.dind_credentials:
        sidecar["args"] += ["--tls-dir", DIND_TLS_DIR]
        sidecar["volumeMounts"].append(
            {"name": DIND_TLS_VOLUME, "mountPath": DIND_TLS_DIR, "readOnly": True})
    pull_policy = _pull_policy(settings.pull_policy)
    if pull_policy:
        sidecar["imagePullPolicy"] = pull_policy
    return sidecar
