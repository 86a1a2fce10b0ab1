"""``kubedock server``: one trio nursery runs the API listeners, the pod watch and all streams."""

from __future__ import annotations

import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio

from . import kube
from ._config import Config
from .api import create_app, serve_http
from .engine import Engine

log = logging.getLogger("kubedock")

_SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
_CLEANUP_TIMEOUT = 30.0


def pod_settings(config: Config, namespace: str, instance_id: str) -> kube.PodSettings:
    template: dict[str, Any] | None = None
    if config.pod_template:
        template = _load_pod_template(config.pod_template)
    return kube.PodSettings(
        namespace=namespace,
        instance_id=instance_id,
        pull_policy=config.pull_policy,
        service_account=config.service_account,
        image_pull_secrets=config.image_pull_secrets,
        request_cpu=config.request_cpu,
        request_memory=config.request_memory,
        request_ephemeral_storage=config.request_ephemeral_storage,
        node_selector=config.node_selector,
        runas_user=config.runas_user,
        active_deadline_seconds=config.active_deadline_seconds,
        pod_name_prefix=config.pod_name_prefix,
        labels=config.labels,
        annotations=config.annotations,
        pod_template=template,
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

    The first signal stops the listeners and streams and deletes what this instance created;
    a second one, while that runs, ends the process at once.
    """
    with trio.open_signal_receiver(*_SHUTDOWN_SIGNALS) as signals:
        cluster = await kube.Cluster.connect(
            kubeconfig=config.kubeconfig, namespace=config.namespace,
            qps=config.kube_api_qps, burst=config.kube_api_burst,
        )
        instance_id = secrets.token_hex(6)
        settings = pod_settings(config, cluster.namespace, instance_id)
        try:
            async with trio.open_nursery() as nursery:
                engine = Engine(
                    cluster, settings, nursery=nursery, start_timeout=config.timeout,
                    expose=config.expose, expose_host=config.expose_host,
                )
                await nursery.start(cluster.watch_pods, engine.label_selector, engine.observe)
                bound = await nursery.start(serve_http, create_app(engine), config.binds)
                log.info("kubedock %s serving %s in namespace %s", instance_id,
                         ", ".join(bound), cluster.namespace)
                task_status.started(bound)
                signum = await _next_signal(signals)
                log.info("received %s, shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
            async with trio.open_nursery() as cleanup:
                cleanup.start_soon(_exit_on_second_signal, signals)
                with trio.move_on_after(_CLEANUP_TIMEOUT):
                    await engine.shutdown()
                cleanup.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await cluster.aclose()
    return 128 + signum


async def _next_signal(signals: AsyncIterator[int]) -> int:
    async for signum in signals:
        return signum
    raise RuntimeError("the signal receiver closed")


async def _exit_on_second_signal(signals: AsyncIterator[int]) -> None:
    signum = await _next_signal(signals)
    log.warning("received %s during cleanup, exiting now", signal.Signals(signum).name)
    os._exit(128 + signum)


def run(config: Config) -> int:
    logging.basicConfig(
        level=logging.DEBUG if config.verbosity >= 3 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Every Kubernetes request is logged by httpx at INFO; that is only useful when debugging.
    logging.getLogger("httpx").setLevel(logging.INFO if config.verbosity >= 4 else logging.WARNING)
    try:
        return trio.run(serve, config)
    except KeyboardInterrupt:
        return 130
    except kube.KubeError as error:
        log.error("%s", error)
        return 1
    finally:
        if config.unix_socket:
            Path(config.unix_socket).unlink(missing_ok=True)
