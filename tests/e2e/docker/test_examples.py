"""The sidecar examples of deploy/examples, on the local cluster.

The CI systems' own objects (Tekton's Task and TaskRun, actions-runner-controller's
AutoscalingRunnerSet) go through a server-side dry run against stand-in CRDs of the same group
and kind. The pod each example amounts to then runs for real, as deploy/rbac.yaml's
ServiceAccount, with a busybox job in place of the CI job: it finds kubedock through the
example's DOCKER_HOST and runs a container through it with the Docker API alone.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_cluster import Cluster, wait_for
from restricted import apply_rbac, remove_cluster_rbac

import kubedock

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "deploy" / "examples"
TEKTON = EXAMPLES / "tekton" / "task.yaml"
GITLAB_CI = EXAMPLES / "gitlab-ci" / ".gitlab-ci.yml"
GITLAB_RUNNER = EXAMPLES / "gitlab-ci" / "runner.toml"
RUNNER_SET = EXAMPLES / "github-actions" / "runner-set.yaml"
RBAC = ROOT / "deploy" / "rbac.yaml"
IMAGE = f"kubedock/kubedock:{kubedock.__version__}"

# Stand-ins for the CRDs of the CI systems: real group, version and kind, any content.
CUSTOM_KINDS = [("tekton.dev", "v1", "Task"), ("tekton.dev", "v1", "TaskRun"),
                ("actions.github.com", "v1alpha1", "AutoscalingRunnerSet")]

# The CI job's stand-in, with the Docker API alone (busybox wget): run `sh -c 'exit 7'` and wait
# for its exit code; run nginx with a published port and fetch its page through that port.
JOB = r"""
set -e
api="http://${DOCKER_HOST#tcp://}"
post() { wget -qO- --header 'Content-Type: application/json' --post-data "$2" "$api$1"; }
start() {  # create and start a container from the body $1; its id in $id
  id=$(post /containers/create "$1" | sed -n 's/.*"Id": *"\([0-9a-f]*\)".*/\1/p')
  echo "container $id"
  post "/containers/$id/start" ''
}
tries=0
until wget -qO /dev/null "$api/_ping" 2>/dev/null; do
  tries=$((tries + 1)); [ "$tries" -lt 60 ]; sleep 1
done
echo "ping $(wget -qO- "$api/_ping")"
echo "ryuk-disabled $TESTCONTAINERS_RYUK_DISABLED"
start '{"Image": "busybox:1.36", "Cmd": ["sh", "-c", "exit 7"]}'
echo "wait $(post "/containers/$id/wait" '')"
start '{"Image": "nginx:1.27", "ExposedPorts": {"80/tcp": {}},
        "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1"}]}}}'
port=$(wget -qO- "$api/containers/$id/json" | sed -n 's/.*"HostPort": *"\([0-9][0-9]*\)".*/\1/p')
tries=0
until page=$(wget -qO- "http://127.0.0.1:$port/" 2>/dev/null); do
  tries=$((tries + 1)); [ "$tries" -lt 30 ]; sleep 1
done
echo "published $(echo "$page" | grep -o 'Welcome to nginx' | head -n 1)"
"""


def load_all(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(path.read_text()))


def custom_resource_definition(group: str, version: str, kind: str) -> dict[str, Any]:
    plural = f"{kind.lower()}s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                      "listKind": f"{kind}List"},
            "versions": [{
                "name": version, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }],
        },
    }


@pytest.fixture(scope="module")
def custom_kinds(cluster: Cluster) -> Iterator[None]:
    definitions = [custom_resource_definition(*kind) for kind in CUSTOM_KINDS]
    names = [f"crd/{definition['metadata']['name']}" for definition in definitions]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(definitions))
    try:
        cluster.kubectl("wait", "--for=condition=Established", *names)
        yield
    finally:
        cluster.kubectl("delete", *names)


@pytest.fixture(scope="module")
def rbac(cluster: Cluster, namespace: str) -> Iterator[str]:
    """deploy/rbac.yaml in the module's namespace; its ServiceAccount's name."""
    apply_rbac(cluster, namespace)
    (account,) = (document["metadata"]["name"] for document in load_all(RBAC)
                  if document["kind"] == "ServiceAccount")
    name: str = account
    yield name
    remove_cluster_rbac(cluster, namespace)


def with_job(container: dict[str, Any]) -> dict[str, Any]:
    """The CI job container with its image and commands replaced by the busybox job."""
    job = {key: value for key, value in container.items()
           if key not in ("script", "command", "args")}
    return {**job, "image": "busybox:1.36", "command": ["sh", "-c", JOB]}


def tekton_pod() -> dict[str, Any]:
    """The pod Tekton makes of the Task (its entrypoint wrapping left out)."""
    task, task_run = load_all(TEKTON)
    steps = [{**with_job(step), "name": f"step-{step['name']}"} for step in task["spec"]["steps"]]
    sidecars = [{**sidecar, "name": f"sidecar-{sidecar['name']}"}
                for sidecar in task["spec"]["sidecars"]]
    return pod_manifest({"serviceAccountName": task_run["spec"]["serviceAccountName"],
                         "restartPolicy": "Never", "containers": steps + sidecars})


def gitlab_pod() -> dict[str, Any]:
    """The pod GitLab's Kubernetes executor makes of the job (its helper container left out)."""
    (job,) = yaml.safe_load(GITLAB_CI.read_text()).values()
    runner = tomllib.loads(GITLAB_RUNNER.read_text())["runners"][0]["kubernetes"]
    env = [{"name": name, "value": value} for name, value in job["variables"].items()]
    services = [{"name": f"svc-{index}", "image": service["name"], "args": service["command"],
                 "env": env} for index, service in enumerate(job["services"])]
    build = with_job({"name": "build", "env": env})
    return pod_manifest({"serviceAccountName": runner["service_account"],
                         "restartPolicy": "Never", "containers": [build, *services]})


def runner_set_pod() -> dict[str, Any]:
    """A runner pod of the AutoscalingRunnerSet's template."""
    (runner_set,) = load_all(RUNNER_SET)
    spec = copy.deepcopy(runner_set["spec"]["template"]["spec"])
    spec["containers"] = [with_job(container) if container["name"] == "runner" else container
                          for container in spec["containers"]]
    return pod_manifest(spec)


def pod_manifest(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": spec}


def test_examples_run_this_version() -> None:
    references = [word.strip("\"',[]") for path in (TEKTON, GITLAB_CI, RUNNER_SET)
                  for word in path.read_text().split() if "kubedock/kubedock" in word]
    assert references and set(references) == {IMAGE}


@pytest.mark.parametrize("example", [TEKTON, RUNNER_SET], ids=["tekton", "github-actions"])
@pytest.mark.usefixtures("custom_kinds")
def test_custom_objects_pass_a_server_dry_run(cluster: Cluster, namespace: str,
                                              example: Path) -> None:
    cluster.kubectl("-n", namespace, "apply", "--dry-run=server", "-f", str(example))


@pytest.mark.parametrize("example", [tekton_pod, gitlab_pod, runner_set_pod],
                         ids=["tekton", "gitlab-ci", "github-actions"])
@pytest.mark.usefixtures("current_images")
def test_job_runs_a_container_through_the_sidecar(
    cluster: Cluster, namespace: str, rbac: str, example: Callable[[], dict[str, Any]]
) -> None:
    pod = example()
    name = pod["metadata"]["name"] = f"ci-job-{example.__name__.replace('_', '-')}"
    assert pod["spec"]["serviceAccountName"] == rbac
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(pod))
    try:
        job = next(container["name"] for container in pod["spec"]["containers"]
                   if container["image"] == "busybox:1.36")
        terminated = wait_for_termination(cluster, namespace, name, job)
        logs = cluster.kubectl("-n", namespace, "logs", name, "-c", job).stdout
        assert terminated["exitCode"] == 0, logs
        lines = [line.partition(" ")[::2] for line in logs.splitlines()]
        output = dict(lines)
        assert output["ping"] == "OK"
        assert output["ryuk-disabled"] == "true"
        assert json.loads(output["wait"])["StatusCode"] == 7
        assert output["published"] == "Welcome to nginx"
        containers = [value for key, value in lines if key == "container"]
        assert len(containers) == 2 and all(containers)
    finally:
        # As when the CI system ends the job: kubedock is stopped and removes its containers.
        cluster.kubectl("-n", namespace, "delete", "pod", name, timeout=120)
    selector = f"kubedock.containerid in ({','.join(id[:12] for id in containers)})"
    wait_for(lambda: not cluster.kubectl("-n", namespace, "get", "pods", "-l", selector,
                                         "-o", "name").stdout.strip(),
             what=f"the containers' pods ({selector}) to be removed")


def wait_for_termination(cluster: Cluster, namespace: str, pod: str,
                         container: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def terminated() -> bool:
        status = json.loads(cluster.kubectl("-n", namespace, "get", "pod", pod,
                                            "-o", "json").stdout).get("status", {})
        for state in status.get("containerStatuses", ()):
            if state["name"] == container and "terminated" in state["state"]:
                found.update(state["state"]["terminated"])
        return bool(found)

    wait_for(terminated, what=f"container {container} of pod {pod} to finish", timeout=180)
    return found
