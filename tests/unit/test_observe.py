import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from kubedock.kube import observe, start_time, transition_time

PENDING_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "kubedock-db-3fa9c1d2b4e5",
        "namespace": "tests",
        "resourceVersion": "1234",
        "labels": {"kubedock": "true", "kubedock.containerid": "3fa9c1d2b4e5"},
    },
    "spec": {"containers": [{"name": "main", "image": "redis:7"}], "restartPolicy": "Never"},
    "status": {
        "phase": "Pending",
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "PodScheduled", "status": "True"},
        ],
        "hostIP": "10.0.2.15",
        "podIP": "10.244.0.12",
        "podIPs": [{"ip": "10.244.0.12"}],
        "startTime": "2026-11-25T10:00:00Z",
        "containerStatuses": [
            {
                "name": "main",
                "image": "redis:7",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {"waiting": {"reason": "ContainerCreating"}},
                "lastState": {},
            }
        ],
    },
}


def with_main_state(state: dict[str, Any], phase: str = "Running") -> dict[str, Any]:
    pod = copy.deepcopy(PENDING_POD)
    pod["status"]["phase"] = phase
    pod["status"]["containerStatuses"][0]["state"] = state
    return pod


def test_creating() -> None:
    seen = observe(PENDING_POD)
    assert seen.pod_name == "kubedock-db-3fa9c1d2b4e5"
    assert seen.phase == "Pending"
    assert seen.pod_ip == "10.244.0.12"
    assert (seen.state, seen.reason, seen.fatal, seen.deleted) == (
        "waiting",
        "ContainerCreating",
        False,
        False,
    )
    assert seen.exit_code is None


def test_just_created_pod_without_status() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {}}
    seen = observe(pod)
    assert (seen.phase, seen.state, seen.pod_ip, seen.fatal) == ("Pending", "waiting", None, False)


def test_running() -> None:
    seen = observe(with_main_state({"running": {"startedAt": "2026-11-25T10:00:02Z"}}))
    assert seen.state == "running"
    assert seen.started_at == datetime(2026, 11, 25, 10, 0, 2, tzinfo=UTC)
    assert seen.finished_at is None
    assert not seen.fatal


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("InvalidImageName", 'Failed to apply default image tag "UPPER:case"'),
        ("CreateContainerConfigError", 'secret "missing" not found'),
        ("ErrImageNeverPull", 'Container image "x:1" is not present with pull policy of Never'),
    ],
)
def test_waiting_errors_are_fatal(reason: str, message: str) -> None:
    seen = observe(with_main_state({"waiting": {"reason": reason, "message": message}}, "Pending"))
    assert (seen.state, seen.reason, seen.message, seen.fatal, seen.stalled) == (
        "waiting",
        reason,
        message,
        True,
        False,
    )


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (
            "ErrImagePull",
            'failed to pull and unpack image "docker.io/library/nope:1": '
            "429 Too Many Requests",
        ),
        ("ImagePullBackOff", 'Back-off pulling image "nope:1"'),
    ],
)
def test_pull_errors_stall_the_start(reason: str, message: str) -> None:
    seen = observe(with_main_state({"waiting": {"reason": reason, "message": message}}, "Pending"))
    assert (seen.state, seen.reason, seen.message, seen.fatal, seen.stalled) == (
        "waiting",
        reason,
        message,
        False,
        True,
    )


def test_terminated_with_exit_code() -> None:
    state = {
        "terminated": {
            "exitCode": 3,
            "reason": "Error",
            "startedAt": "2026-11-25T10:00:02Z",
            "finishedAt": "2026-11-25T10:00:03Z",
            "containerID": "containerd://abc",
        }
    }
    seen = observe(with_main_state(state, "Failed"))
    assert (seen.state, seen.exit_code, seen.reason, seen.fatal) == (
        "terminated",
        3,
        "Error",
        False,
    )
    assert seen.finished_at == datetime(2026, 11, 25, 10, 0, 3, tzinfo=UTC)


def test_completed() -> None:
    state = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    seen = observe(with_main_state(state, "Succeeded"))
    assert (seen.phase, seen.exit_code, seen.fatal) == ("Succeeded", 0, False)


def test_oom_killed() -> None:
    state = {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
    seen = observe(with_main_state(state, "Failed"))
    assert (seen.exit_code, seen.reason, seen.fatal) == (137, "OOMKilled", False)


def test_entrypoint_that_cannot_start_is_fatal() -> None:
    message = (
        "failed to create containerd task: failed to create shim task: OCI runtime create "
        'failed: exec: "nope": executable file not found in $PATH'
    )
    state = {"terminated": {"exitCode": 128, "reason": "StartError", "message": message}}
    seen = observe(with_main_state(state, "Failed"))
    assert (seen.state, seen.exit_code, seen.fatal) == ("terminated", 128, True)
    assert seen.message == message


def test_unschedulable() -> None:
    pod = copy.deepcopy(PENDING_POD)
    pod["status"] = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient memory.",
            }
        ],
        "qosClass": "Burstable",
    }
    seen = observe(pod)
    assert (seen.state, seen.reason, seen.fatal, seen.stalled) == (
        "waiting", "Unschedulable", False, True,
    )
    assert seen.message == "0/1 nodes are available: 1 Insufficient memory."
    assert seen.pod_ip is None


def test_init_container_failure() -> None:
    pod = with_main_state({"waiting": {"reason": "PodInitializing"}}, "Failed")
    pod["status"]["initContainerStatuses"] = [
        {
            "name": "setup",
            "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
            "ready": False,
            "restartCount": 0,
        }
    ]
    seen = observe(pod)
    assert (seen.state, seen.reason, seen.fatal, seen.stalled) == ("waiting", "Error", True, False)
    assert seen.message == "init container setup: exit code 1"


def test_init_container_pull_error() -> None:
    pod = with_main_state({"waiting": {"reason": "PodInitializing"}}, "Pending")
    pod["status"]["initContainerStatuses"] = [
        {
            "name": "setup",
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off"}},
        }
    ]
    seen = observe(pod)
    assert (seen.reason, seen.message, seen.fatal, seen.stalled) == (
        "ImagePullBackOff",
        "init container setup: Back-off",
        False,
        True,
    )


def test_init_container_still_running_is_not_fatal() -> None:
    pod = with_main_state({"waiting": {"reason": "PodInitializing"}}, "Pending")
    pod["status"]["initContainerStatuses"] = [
        {"name": "setup", "state": {"running": {"startedAt": "2026-11-25T10:00:01Z"}}}
    ]
    assert not observe(pod).fatal


def test_pod_failed_before_main_ran() -> None:
    pod = with_main_state({"waiting": {"reason": "ContainerCreating"}}, "Failed")
    pod["status"]["reason"] = "DeadlineExceeded"
    pod["status"]["message"] = "Pod was active on the node longer than the specified deadline"
    seen = observe(pod)
    assert (seen.reason, seen.fatal) == ("DeadlineExceeded", True)


def test_deleted() -> None:
    state = {"terminated": {"exitCode": 137, "reason": "Error"}}
    seen = observe(with_main_state(state, "Failed"), deleted=True)
    assert (seen.deleted, seen.exit_code) == (True, 137)


SECOND = datetime(2026, 11, 25, 10, 0, 2, tzinfo=UTC)


def test_a_transition_is_timed_by_kubedock_clock_with_sub_second_precision() -> None:
    seen = SECOND.replace(microsecond=734_512)
    assert transition_time(SECOND, seen) == seen
    assert transition_time(None, seen) == seen


def test_a_transition_is_never_earlier_than_the_pod_record() -> None:
    # A cluster whose clock runs ahead of kubedock's.
    assert transition_time(SECOND, SECOND.replace(second=1, microsecond=900_000)) == SECOND


def test_a_process_seen_running_started_when_the_watch_saw_it() -> None:
    running = observe(with_main_state({"running": {"startedAt": "2026-11-25T10:00:02Z"}}))
    seen = SECOND.replace(microsecond=400_000)
    requested = SECOND.replace(second=1, microsecond=200_000)
    assert start_time(running, seen=seen, requested=requested) == seen


def test_a_process_first_seen_ended_started_within_what_the_bounds_leave() -> None:
    state = {"terminated": {"exitCode": 0, "reason": "Completed",
                            "startedAt": "2026-11-25T10:00:02Z",
                            "finishedAt": "2026-11-25T10:00:02Z"}}
    ended = observe(with_main_state(state, "Succeeded"))
    requested = SECOND.replace(second=1, microsecond=200_000)
    seen = SECOND.replace(microsecond=900_000)
    started = start_time(ended, seen=seen, requested=requested)
    finished = transition_time(ended.finished_at, seen)
    # Between the pod's record (whole seconds) and the watch, with a fraction, as Docker's.
    assert (started, finished) == (SECOND.replace(microsecond=450_000), seen)
    later_request = SECOND.replace(microsecond=100_000)
    assert start_time(ended, seen=seen, requested=later_request) == SECOND.replace(
        microsecond=500_000)
    seen_later = SECOND.replace(second=5)
    assert start_time(ended, seen=seen_later, requested=requested) == SECOND.replace(
        microsecond=500_000)
    assert start_time(ended, seen=seen, requested=None) == seen


def test_a_process_first_seen_ended_without_a_record_started_between_request_and_watch() -> None:
    ended = observe(with_main_state({"terminated": {"exitCode": 0}}, "Succeeded"))
    requested = SECOND.replace(microsecond=100_000)
    started = start_time(ended, seen=SECOND.replace(microsecond=300_000), requested=requested)
    assert started == SECOND.replace(microsecond=200_000)
