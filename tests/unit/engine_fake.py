"""A scripted fake of the cluster boundary (`kube.ClusterBoundary`) for engine tests.

Pods are documents that move through the states a test scripts. Every change reaches the
engine the way the pod watch delivers it: read by `kube.observe`, handed to the callback of
`watch_pods`, `lag` seconds later and in order. Exec and attach sessions drop their input and
end without output (those a test says stay until the pod's `main` ends). Claims (named
volumes) and Secrets are kept as created (or replaced) and go at once when deleted.
What it was not scripted for (port-forward, deleting other kinds) raises
`NotImplementedError`.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import trio

from kubedock import kube

RUNNING: dict[str, Any] = {"running": {"startedAt": "2026-11-30T01:00:00+00:00"}}
PULL_FAILS: dict[str, Any] = {"waiting": {"reason": "ErrImagePull",
                                          "message": "pull access denied for nosuch"}}
PENDING = None
NODE = "node0"


def exited(code: int, reason: str = "Error") -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": reason,
                           "finishedAt": "2026-11-30T01:00:01+00:00"}}


class _FakeChannel(kube.ExecChannel):
    """What the engine sees of an exec or attach session: input taken and dropped, no output,
    then an exit code."""

    can_close_stdin = True

    def __init__(self, exit_code: int, *, stalled: bool, output: bytes = b"",
                 cut: bool = False, input_refused: bool = False,
                 main_end: trio.Event | None = None) -> None:
        # (no websocket under it) A session that is cut ends without the process's status.
        self.exit_code = None if cut or main_end is not None else exit_code
        # Set when `main` ends, which kills the session's process (SIGKILL: 137).
        self._main_end = main_end
        self.status_message = None
        self._stalled = stalled
        self._output = output
        self._input_refused = cut or input_refused
        self.start_failure = None

    async def receive(self) -> tuple[int, bytes] | None:
        if self._stalled:
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()
        output, self._output = self._output, b""
        if output:
            return 1, output
        if self._main_end is not None:
            await self._main_end.wait()
            self.exit_code = 137
        return None

    async def send_stdin(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        if self._input_refused:
            raise trio.BrokenResourceError("websocket is closed")

    async def close_stdin(self) -> None:
        await trio.lowlevel.checkpoint()

    async def resize(self, width: int, height: int) -> None:
        await trio.lowlevel.checkpoint()


# What `kubedock toolbox ps` reports of a container running one `sleep`.
SLEEP_PROCESSES = json.dumps({
    "now": 1796000100.0, "boot_time": 1796000000, "clock_ticks": 100, "page_size": 4096,
    "mem_total_kib": 1000000, "processes": [{
        "pid": 1, "comm": "sleep", "state": "S", "ppid": 0, "pgrp": 1, "sid": 1, "tty_nr": 0,
        "tpgid": -1, "utime": 1, "stime": 1, "priority": 20, "nice": 0, "threads": 1,
        "start_ticks": 500, "vsize": 4096000, "rss_pages": 100, "uid": 0, "gid": 0,
        "user": "root", "args": ["sleep", "600"]}],
}).encode()


class FakeCluster:
    def __init__(self, *, lag: float = 0.5) -> None:
        self.lag = lag
        # What `main` does once a new pod is created; PENDING: nothing until a test says so.
        self.main_on_create: dict[str, Any] | None = RUNNING
        # Exit code of an exec, by argv; 127 (no such command) unless a test says otherwise.
        self.exec_exit_code: Callable[[Sequence[str]], int] = lambda argv: 127
        # What an exec writes on stdout, by argv.
        self.exec_output: Callable[[Sequence[str]], bytes] = lambda argv: b""
        # Exec processes (by argv) that stay, once `exec_exit_code` said 0 (it ran), until the
        # pod's `main` ends: then they are killed with it.
        self.exec_stays: Callable[[Sequence[str]], bool] = lambda argv: False
        # State of a toolbox (ephemeral container) once added; None: it stays waiting.
        self.toolbox_on_add: dict[str, Any] | None = RUNNING
        self.pods: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.claims: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, Any]] = {}
        self.config_maps: dict[str, dict[str, Any]] = {}
        self.service_accounts: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.watch_stalled = False
        # Exec sessions that never end (a cluster that stopped answering them).
        self.exec_stalled = False
        # Exec sessions the API server cuts (it restarts): output ends at once, without the
        # process's exit status, and input is refused.
        self.exec_cut = False
        # Exec processes that end before they read their input (the session refuses it).
        self.exec_input_refused = False
        # What the kubelet's Summary API reports of each pod's `main`, by pod name: a summary
        # container's "cpu" and "memory" documents (see `sample_usage`); with
        # `samples_new_pods`, a pod that runs is sampled (idle) from its start.
        self.usage: dict[str, dict[str, Any]] = {}
        self.samples_new_pods = True
        # The condition the kubelet sets on a pod it cannot resize (None: every resize is done).
        self.resize_refusal: dict[str, Any] | None = None
        self.node: dict[str, Any] = {"metadata": {"name": NODE}, "status": {
            "capacity": {"cpu": "4", "memory": "8Gi"}}}
        self._failures: dict[str, list[tuple[Exception, bool]]] = {}
        self._main_ends: dict[str, trio.Event] = {}
        self._uids = itertools.count(1)
        self._send, self._receive = trio.open_memory_channel[
            tuple[float, dict[str, Any], bool]](1000)

    # -- scripting ----------------------------------------------------------------------------

    def fail(self, method: str, error: Exception, *, after_effect: bool = False) -> None:
        """The next call of `method` raises `error`; with `after_effect` it does its work
        first (an answer lost on the way back)."""
        self._failures.setdefault(method, []).append((error, after_effect))

    def set_main(self, pod_name: str, state: dict[str, Any], *, phase: str = "Running") -> None:
        pod = self.pods[pod_name]
        pod["status"]["phase"] = phase
        pod["status"]["containerStatuses"][0]["state"] = state
        self._changed(pod)

    def set_status(self, pod_name: str, status: dict[str, Any]) -> None:
        """Replace the pod's whole status: for what `set_main` cannot say (conditions, a
        pod that was never scheduled)."""
        pod = self.pods[pod_name]
        pod["status"] = {"podIP": pod["status"].get("podIP"), **copy.deepcopy(status)}
        self._changed(pod)

    def end_main(self, pod_name: str) -> None:
        """The process of the pod's `main` ends, which ends the sessions that stay in it; the
        kubelet has yet to report it (`set_main`)."""
        self._main_end(pod_name).set()

    def called(self, method: str) -> list[str]:
        """The subjects of the calls of `method` so far (pod names, exec command lines)."""
        return [subject for called, subject in self.calls if called == method]
    def sample_usage(self, pod_name: str, *, cpu_nanoseconds: int, nano_cores: int,
                     memory: int, working_set: int, at: str = "2026-11-30T01:00:10Z") -> None:
        """What the kubelet samples of the pod's `main` from now on."""
        self.usage[pod_name] = {
            "cpu": {"time": at, "usageCoreNanoSeconds": cpu_nanoseconds,
                    "usageNanoCores": nano_cores},
            "memory": {"time": at, "usageBytes": memory, "workingSetBytes": working_set,
                       "rssBytes": working_set},
            "rootfs": {"usedBytes": 4096},
        }

    async def watch_pods(
        self, label_selector: str, on_change: Callable[[kube.ContainerObservation], None],
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        async for due, pod, deleted in self._receive:
            await trio.sleep_until(due)
            if not self.watch_stalled:
                on_change(kube.observe(pod, deleted=deleted))

    # -- kube.ClusterBoundary ------------------------------------------------------------------

    async def create_pod(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        async with self._call("create_pod", name):
            if name in self.pods:
                raise kube.Conflict(f'pods "{name}" already exists', status=409,
                                    reason="AlreadyExists")
            pod = copy.deepcopy(dict(manifest))
            pod["metadata"]["uid"] = f"uid-{next(self._uids)}"
            pod["spec"]["nodeName"] = NODE
            self._main_ends.pop(name, None)
            pod["status"] = {"phase": "Pending", "podIP": f"10.244.0.{len(self.calls)}",
                             "containerStatuses": [{"name": kube.MAIN, "state": {
                                 "waiting": {"reason": "ContainerCreating"}}}]}
            self.pods[name] = pod
            self._changed(pod)
            if self.samples_new_pods:
                self.sample_usage(name, cpu_nanoseconds=0, nano_cores=0, memory=0,
                                  working_set=0)
            if self.main_on_create is not None:
                self.set_main(name, self.main_on_create)
            return copy.deepcopy(pod)

    async def patch_pod(self, name: str, patch: Mapping[str, Any]) -> None:
        async with self._call("patch_pod", name):
            pod = self._pod(name)
            if "activeDeadlineSeconds" in patch.get("spec", {}):
                self.set_main(name, exited(143), phase="Failed")
                return
            # As a strategic merge patch: annotations merge key by key unless replaced.
            annotations = dict(patch.get("metadata", {}).get("annotations") or {})
            if annotations.pop("$patch", None) != "replace":
                annotations = {**pod["metadata"].get("annotations", {}), **annotations}
            pod["metadata"]["annotations"] = annotations

    async def resize_pod(self, name: str, patch: Mapping[str, Any]) -> None:
        async with self._call("resize_pod", name):
            pod = self._pod(name)
            (change,) = patch["spec"]["containers"]
            for container in pod["spec"]["containers"]:
                if container["name"] == change["name"]:
                    container["resources"] = copy.deepcopy(change["resources"])
            generation = pod["metadata"]["generation"] = pod["metadata"].get("generation", 1) + 1
            pod["status"]["observedGeneration"] = generation
            pod["status"]["conditions"] = [{**self.resize_refusal, "observedGeneration": generation}
                                           ] if self.resize_refusal else []

    async def get_node(self, name: str) -> dict[str, Any]:
        async with self._call("get_node", name):
            assert name == NODE, name
            return copy.deepcopy(self.node)

    async def node_summary(self, name: str) -> dict[str, Any]:
        async with self._call("node_summary", name):
            assert name == NODE, name
            return {"node": {"nodeName": NODE, "startTime": "2026-11-30T00:00:00Z"}, "pods": [
                {"podRef": {"name": pod, "namespace": self.pods[pod]["metadata"].get(
                    "namespace", "t")},
                 "containers": [{"name": kube.MAIN, **copy.deepcopy(usage)}],
                 "network": {"name": "eth0", "rxBytes": 10, "txBytes": 20},
                 "process_stats": {"process_count": 1}}
                for pod, usage in self.usage.items() if pod in self.pods]}

    async def add_ephemeral_container(self, pod: str, container: Mapping[str, Any]) -> None:
        async with self._call("add_ephemeral_container", pod):
            document = self._pod(pod)
            document["spec"].setdefault("ephemeralContainers", []).append(dict(container))
            if self.toolbox_on_add is not None:
                document["status"]["ephemeralContainerStatuses"] = [
                    {"name": container["name"], "state": copy.deepcopy(self.toolbox_on_add)}]

    async def delete_pod(self, name: str, *, grace_seconds: int | None = None) -> bool:
        async with self._call("delete_pod", name):
            pod = self.pods.pop(name, None)
            if pod is None:
                return False
            main = (pod["status"].get("containerStatuses") or [{"state": {}}])[0]
            if "running" in main["state"]:
                main["state"] = exited(137 if grace_seconds == 0 else 143)
                self._changed(pod)
            self._changed(pod, deleted=True)
            for service in list(self.services.values()):
                owners = service["metadata"].get("ownerReferences") or ()
                if any(owner["uid"] == pod["metadata"]["uid"] for owner in owners):
                    del self.services[service["metadata"]["name"]]
            return True

    async def list_objects(self, kind: kube.Kind, label_selector: str) -> list[dict[str, Any]]:
        async with self._call("list_objects", kind.plural):
            wanted = dict(term.split("=", 1) for term in label_selector.split(","))
            objects = {kube.PODS: self.pods, kube.SECRETS: self.secrets,
                       kube.CONFIG_MAPS: self.config_maps}.get(kind, self.services)
            return [copy.deepcopy(item) for item in objects.values()
                    if wanted.items() <= (item["metadata"].get("labels") or {}).items()]

    async def get_object(self, kind: kube.Kind, name: str) -> dict[str, Any]:
        async with self._call("get_object", name):
            objects = self._objects(kind)
            if name not in objects:
                raise kube.NotFound(f"{kind.plural} {name!r} not found", status=404)
            return copy.deepcopy(objects[name])

    async def create_object(self, kind: kube.Kind, manifest: Mapping[str, Any]) -> dict[str, Any]:
        assert kind in (kube.SERVICES, kube.CLAIMS, kube.SECRETS, kube.CONFIG_MAPS), kind
        objects = self._objects(kind)
        name = manifest["metadata"]["name"]
        async with self._call("create_object", name):
            if name in objects:
                raise kube.Conflict(f'{kind.plural} "{name}" already exists', status=409)
            objects[name] = copy.deepcopy(dict(manifest))
            return copy.deepcopy(objects[name])

    async def replace_object(self, kind: kube.Kind, manifest: Mapping[str, Any]
                             ) -> dict[str, Any]:
        objects = self._objects(kind)
        name = manifest["metadata"]["name"]
        async with self._call("replace_object", name):
            if name not in objects:
                raise kube.NotFound(f"{kind.plural} {name!r} not found", status=404)
            objects[name] = copy.deepcopy(dict(manifest))
            return copy.deepcopy(objects[name])

    async def delete_object(
        self, kind: kube.Kind, name: str, *, grace_seconds: int | None = None,
        resource_version: str | None = None,
    ) -> None:
        if kind not in (kube.CLAIMS, kube.SECRETS, kube.SERVICES, kube.CONFIG_MAPS):
            raise NotImplementedError
        async with self._call("delete_object", name):
            self._objects(kind).pop(name, None)

    @contextlib.asynccontextmanager
    async def logs(
        self, pod: str, *, follow: bool = False, timestamps: bool = False,
        tail_lines: int | None = None, since_seconds: int | None = None,
        since_time: datetime | None = None, stream: kube.LogStream | None = None,
        container: str = kube.MAIN,
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        async def nothing() -> AsyncIterator[bytes]:
            return
            yield

        async with self._call("logs", pod):
            self._pod(pod)
        yield nothing()

    async def split_streams_supported(self) -> bool:
        return False

    @contextlib.asynccontextmanager
    async def exec(
        self, pod: str, argv: Sequence[str], *, stdin: bool = False, stdout: bool = True,
        stderr: bool = True, tty: bool = False, container: str = kube.MAIN,
    ) -> AsyncIterator[_FakeChannel]:
        async with self._call("exec", " ".join(argv)):
            self._pod(pod)
        exit_code = self.exec_exit_code(argv)
        stays = exit_code == 0 and self.exec_stays(argv)
        yield _FakeChannel(exit_code, stalled=self.exec_stalled,
                           output=self.exec_output(argv), cut=self.exec_cut,
                           input_refused=self.exec_input_refused,
                           main_end=self._main_end(pod) if stays else None)

    @contextlib.asynccontextmanager
    async def attach(
        self, pod: str, *, stdin: bool = False, stdout: bool = True, stderr: bool = True,
        tty: bool = False, container: str = kube.MAIN,
    ) -> AsyncIterator[_FakeChannel]:
        async with self._call("attach", pod):
            self._pod(pod)
        yield _FakeChannel(0, stalled=False)

    async def open_port_forward(self, pod: str, port: int) -> kube.PortForwardStream:
        raise NotImplementedError

    # -- plumbing -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _call(self, method: str, subject: str) -> AsyncIterator[None]:
        """Record the call; raise a scripted failure before or after its effect."""
        await trio.lowlevel.checkpoint()
        self.calls.append((method, subject))
        failures = self._failures.get(method)
        failure = failures.pop(0) if failures else None
        if failure is not None and not failure[1]:
            raise failure[0]
        yield
        if failure is not None:
            raise failure[0]

    def _objects(self, kind: kube.Kind) -> dict[str, dict[str, Any]]:
        return {kube.PODS: self.pods, kube.SERVICES: self.services, kube.CLAIMS: self.claims,
                kube.SECRETS: self.secrets, kube.SERVICE_ACCOUNTS: self.service_accounts,
                kube.CONFIG_MAPS: self.config_maps}[kind]

    def _pod(self, name: str) -> dict[str, Any]:
        if name not in self.pods:
            raise kube.NotFound(f'pods "{name}" not found', status=404, reason="NotFound")
        return self.pods[name]

    def _main_end(self, pod_name: str) -> trio.Event:
        return self._main_ends.setdefault(pod_name, trio.Event())

    def _changed(self, pod: dict[str, Any], *, deleted: bool = False) -> None:
        main = (pod["status"].get("containerStatuses") or [{}])[0]
        if deleted or "terminated" in (main.get("state") or {}):
            self._main_end(pod["metadata"]["name"]).set()
        self._send.send_nowait((trio.current_time() + self.lag, copy.deepcopy(pod), deleted))
