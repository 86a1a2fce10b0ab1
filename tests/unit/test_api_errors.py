"""The one mapping from failures below the API to Docker's error answers."""

from kubedock import kube
from kubedock.api._errors import docker_error


def test_failures_of_tasks_run_side_by_side_answer_with_the_first_cause() -> None:
    # A copy's upload and its reader run side by side; the reader finds the cluster gone.
    group = ExceptionGroup("copy", [ExceptionGroup("session", [
        kube.ClusterUnreachable("the API server stopped answering")])])
    error = docker_error(group)
    assert (error.status, error.message) == (
        503, "Kubernetes API unreachable: the API server stopped answering")


def test_an_unreachable_api_server_is_named_once() -> None:
    error = docker_error(kube.ClusterUnreachable(
        "Kubernetes API server unreachable: all attempts to connect to 127.0.0.1:6443 failed"))
    assert (error.status, error.message) == (
        503, "Kubernetes API unreachable: all attempts to connect to 127.0.0.1:6443 failed")
