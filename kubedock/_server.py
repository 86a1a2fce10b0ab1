"""``kubedock server``: one trio nursery runs the API listeners, the pod watch and all streams.

The listeners start first, with only what answering `/_ping` needs imported; the cluster stack
(kr8s, httpx, Quart, the engine) loads meanwhile, off the event loop.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ._config import Config, split_host_port
from ._logging import configure as configure_logging
from .api import ServerTLS, StartGate, front_door, serve_http

if TYPE_CHECKING:
    import httpx

    from . import kube
    from ._sidecar_tls import SidecarIdentity
    from .engine import Engine, RegistrySource

log = logging.getLogger("kubedock")

_SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
_SHUTDOWN_MARGIN = 10.0
_CLOSE_SECONDS = 5.0


def pod_settings(config: Config, namespace: str, instance_id: str,
                 sidecar: SidecarIdentity | None = None) -> kube.PodSettings:
    from . import kube

    template: dict[str, Any] | None = None
    if config.pod_template:
        template = _load_pod_template(config.pod_template)
    return kube.PodSettings(
        **config.settings_for("pods"),
        namespace=namespace,
        instance_id=instance_id,
        pod_template=template,
        dind_image=None if config.disable_dind else config.dind_image or config.init_image,
        kubedock_url=config.url_for_pods(lambda: socket.gethostbyname(socket.gethostname())),
        dind_credentials=sidecar.files if sidecar else None,
    )


def _load_pod_template(path: str) -> dict[str, Any]:
    import json

    text = Path(path).read_text()
    try:
        document = json.loads(text)
    except ValueError:
        import yaml  # kr8s depends on PyYAML

        document = yaml.safe_load(text)
    if not isinstance(document, dict) or document.get("kind", "Pod") != "Pod":
        raise SystemExit(f"kubedock: {path}: the pod template must be a 'kind: Pod' document")
    return document


async def serve(config: Config, *, task_status: trio.TaskStatus[list[str]]
                = trio.TASK_STATUS_IGNORED) -> int:
    """Serve until a shutdown signal; return the process exit code (128 + signal).

    The listeners come first and answer `/_ping` and `/version` at once; every other request
    waits (for at most --timeout) until the cluster part has started: connect, prune, lock, pod
    watch, adoption. `task_status` reports the bound addresses once all of that is done, and
    a failure on the way ends the process as it would without the listeners.
    The first signal stops the listeners and streams and deletes what this instance created;
    a second one, while that runs, ends the process at once.
    """
    for note in config.notes:
        log.info("%s", note)
    with trio.open_signal_receiver(*_SHUTDOWN_SIGNALS) as signals:
        instance_id = config.instance_id or secrets.token_hex(6)
        sidecar = _sidecar_identity(config, instance_id)
        gate = StartGate(config.timeout, "loading its modules")
        received: list[int] = []
        watchdogs: list[threading.Timer] = []
        engine: Engine | None = None
        # Listeners and streams end at once; cleanup has --shutdown-timeout, then a margin.
        limit = config.shutdown_timeout + _SHUTDOWN_MARGIN
        closing = contextlib.AsyncExitStack()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope, received,
                                   watchdogs, limit)
                bound = await nursery.start(serve_http, front_door(gate), config.binds,
                                            _server_tls(config, sidecar))
                # An import holds the event loop; in a thread, it leaves the listeners free.
                await trio.to_thread.run_sync(_load_the_cluster_stack)
                engine = await _start_engine(config, instance_id, sidecar, gate, nursery,
                                             closing)
                if engine is None:
                    nursery.cancel_scope.cancel()
                    return 1
                from .api import BindPolicy, docker_routes

                bind_policy = BindPolicy.on_this_host(config.own_secrets, config.bind_roots)
                from .build import LayerCache

                gate.open(docker_routes(engine, bind_policy,
                                        build_cache=LayerCache(config.build_cache_size)))
                log.info("kubedock %s serving %s in namespace %s", instance_id,
                         ", ".join(bound), engine.settings.namespace)
                task_status.started(bound)
            signum = received[0]
            if engine is not None:
                async with trio.open_nursery() as cleanup:
                    cleanup.start_soon(_exit_on_second_signal, signals)
                    await _clean_up(config, engine)
                    cleanup.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_SECONDS):
                await closing.aclose()
            for watchdog in watchdogs:
                watchdog.cancel()
    return 128 + signum


def _load_the_cluster_stack() -> None:
    from ._deferred import UNUSED_BY_THE_SERVER, defer_import

    for name in UNUSED_BY_THE_SERVER:
        defer_import(name)
    from .api import load_routes  # the routes import the engine, the gateway and kr8s

    load_routes()


async def _start_engine(config: Config, instance_id: str, sidecar: SidecarIdentity | None,
                        gate: StartGate, nursery: trio.Nursery,
                        closing: contextlib.AsyncExitStack) -> Engine | None:
    """The cluster part of the start, `gate.step` telling where it is; None when the lock is
    not acquired in time."""
    import httpx

    from . import kube
    from ._metrics import CONTAINERS, serve_metrics
    from .engine import (
        Engine,
        ImageStore,
        PrePuller,
        ReaperSettings,
        pull_secret_configs,
        serve_reaper,
    )

    gate.step = "connecting to the Kubernetes API server"
    cluster = await kube.Cluster.connect(
        kubeconfig=config.kubeconfig, namespace=config.namespace,
        qps=config.kube_api_qps, burst=config.kube_api_burst,
    )
    closing.push_async_callback(cluster.aclose)
    settings = pod_settings(config, cluster.namespace, instance_id, sidecar)
    # A pull is bounded as a whole by --registry-timeout (RegistrySource); pushes and loads
    # of any size by silence: no byte read or written for that long.
    registry_http = httpx.AsyncClient(
        timeout=httpx.Timeout(config.registry_timeout, connect=10), follow_redirects=True)
    closing.push_async_callback(registry_http.aclose)
    if config.network_names == "dns":
        gate.step = "starting kubedock's DNS"
        settings = attrs.evolve(settings, dns_config=await _dns_config(config, cluster))
    gate.step = "reading the cluster"
    engine = Engine(
        cluster, settings, nursery=nursery, expose=config.expose,
        expose_host=config.expose_host, **config.settings_for("engine"),
        claims=kube.ClaimSettings(config.volume_storage_class,
                                  config.volume_access_mode, config.volume_size),
        images=ImageStore(_registry_source(
            config, registry_http, await pull_secret_configs(cluster, settings)),
            config.own_registry),
    )
    if config.pre_pull:
        engine.pre_puller = PrePuller(cluster, settings, nursery=nursery,
                                      timeout=config.timeout,
                                      fail_fast_after=config.fail_fast_after)
    if config.lock:
        gate.step = "waiting for the lock kubedock-lock"
        if not await _take_lock(config, cluster, instance_id, nursery):
            log.error("lock kubedock-lock not acquired within %gs", config.lock_timeout)
            return None
    gate.step = "pruning and adopting what earlier instances left"
    await _prune_at_start(config, cluster, instance_id)
    await nursery.start(kube.serve_heartbeat, cluster, instance_id, config.heartbeat)
    engine.pod_watch = await nursery.start(
        cluster.watch_pods, engine.label_selector, engine.observe
    )
    adopted = await engine.adopt()
    if adopted:
        log.info("took over %d containers of the previous kubedock %s", adopted,
                 instance_id)
    await nursery.start(serve_reaper, engine, ReaperSettings(**config.settings_for("reaper")))
    CONTAINERS.source = lambda: collections.Counter(
        (container.status,) for container in engine.containers())
    if config.metrics_addr:
        host, port = split_host_port(config.metrics_addr)
        metrics_port = await nursery.start(serve_metrics, host, port)
        log.info("metrics at http://%s:%d/metrics", host, metrics_port)
    return engine


def _sidecar_identity(config: Config, instance_id: str) -> SidecarIdentity | None:
    if not (config.tls_enable and config.tls_cert_file):
        return None
    from ._sidecar_tls import new_sidecar_identity

    return new_sidecar_identity(instance_id, config.tls_cert_file)


def _registry_source(config: Config, http: httpx.AsyncClient, pull_secrets: list[Any]
                     ) -> RegistrySource:
    """Credentials: a client's own with each request, else the Docker config file's, else
    those of the pods' pull secrets."""
    from . import registry
    from .engine import RegistrySource

    own = config.own_registry
    client = registry.RegistryClient(
        http, mirrors={**config.registry_mirrors, **({own.host: own.url} if own and own.url
                                                      else {})},
        credentials=registry.first_credentials(
            registry.docker_config_lookup(registry.docker_config_path(os.environ)),
            registry.documents_lookup(pull_secrets)))
    # The nodes are taken to share kubedock's platform (the usual case; kubedock does not read
    # Node objects, which its service account may not see).
    return RegistrySource(client, registry.host_platform_of_this_machine(),
                          timeout=config.registry_timeout)


def _server_tls(config: Config, sidecar: SidecarIdentity | None) -> ServerTLS | None:
    if not config.tls_enable:
        return None
    assert config.tls_cert_file and config.tls_key_file  # Config checks this
    return ServerTLS(config.tls_cert_file, config.tls_key_file, config.tls_ca_file,
                     own_clients=sidecar.certificate if sidecar else "")


async def _dns_config(config: Config, cluster: kube.Cluster) -> dict[str, Any]:
    from . import kube
    from .dns import default_image, ensure_dns, pod_dns_config

    image = config.dns_image or default_image()
    try:
        with trio.fail_after(config.timeout):
            nameserver = await ensure_dns(cluster, image)
    except trio.TooSlowError:
        raise kube.KubeError(
            f"kubedock's DNS (pod kubedock-dns, image {image}) is not Ready after "
            f"{config.timeout:g}s; see 'kubectl -n {cluster.namespace} describe pod "
            "kubedock-dns', or run with --network-names services"
        ) from None
    log.info("containers resolve names through kubedock's DNS at %s", nameserver)
    return pod_dns_config(nameserver, cluster.namespace, config.cluster_domain)


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope,
                            received: list[int], watchdogs: list[threading.Timer],
                            limit: float) -> None:
    signum = await _next_signal(signals)
    log.info("received %s, shutting down", signal.Signals(signum).name)
    received.append(signum)
    watchdogs.append(_exit_if_stuck(limit, signum))
    scope.cancel()


def _exit_if_stuck(seconds: float, signum: int) -> threading.Timer:
    """The last resort of a shutdown: end the process once `seconds` have passed.

    Libraries close connections under cancel shields, and a peer that vanished without a word
    (traffic dropped) can hold such a close forever; a thread still gets the process out.
    """
    def exit_now() -> None:
        log.error("shutdown did not finish within %gs; exiting without waiting further",
                  seconds)
        logging.shutdown()
        os._exit(128 + signum)

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True
    timer.start()
    return timer


async def _take_lock(config: Config, cluster: kube.Cluster, instance_id: str,
                     nursery: trio.Nursery) -> bool:
    from . import kube

    with trio.move_on_after(config.lock_timeout):
        await nursery.start(kube.hold_lock, cluster, instance_id)
        return True
    return False


async def _prune_at_start(config: Config, cluster: kube.Cluster, instance_id: str) -> None:
    from . import kube

    if config.prune_start_all:
        await kube.prune_all(cluster, instance_id)
    elif config.prune_start:
        await kube.reap_dead_instances(cluster, instance_id, config.heartbeat)


async def _clean_up(config: Config, engine: Engine) -> None:
    from . import kube

    started = trio.current_time()
    with trio.move_on_after(config.shutdown_timeout) as bound:
        try:
            await engine.shutdown()
        except kube.KubeError as error:
            log.error("cleanup failed, objects may be left behind: %s", error)
            return
    if bound.cancelled_caught:
        log.error("cleanup not confirmed within %gs, objects may be left behind",
                  config.shutdown_timeout)
    else:
        log.info("cleanup confirmed in %.1fs", trio.current_time() - started)


async def _next_signal(signals: AsyncIterator[int]) -> int:
    async for signum in signals:
        return signum
    raise RuntimeError("the signal receiver closed")


async def _exit_on_second_signal(signals: AsyncIterator[int]) -> None:
    signum = await _next_signal(signals)
    log.warning("received %s during cleanup, exiting now", signal.Signals(signum).name)
    os._exit(128 + signum)


def run(config: Config) -> int:
    configure_logging(config.verbosity, config.log_format)
    try:
        return trio.run(serve, config)
    except KeyboardInterrupt:
        return 130
    except BaseException as error:
        # A refusal of the API server while starting (RBAC, quota), raised on its own or
        # through the nursery.
        refusals = _refusals_only(error)
        if not refusals:
            raise
        for refusal in refusals:
            log.error("%s", refusal)
        return 1
    finally:
        if config.unix_socket:
            Path(config.unix_socket).unlink(missing_ok=True)


def _refusals_only(error: BaseException) -> list[BaseException]:
    """The Kubernetes errors `error` holds, or none if it holds anything else."""
    from .kube import KubeError

    leaves = _leaves(error)
    return leaves if all(isinstance(leaf, KubeError) for leaf in leaves) else []


def _leaves(error: BaseException) -> list[BaseException]:
    if not isinstance(error, BaseExceptionGroup):
        return [error]
    return [leaf for member in error.exceptions for leaf in _leaves(member)]
