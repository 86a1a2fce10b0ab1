"""Pure reading of a Pod object: what its `main` container is doing, in Docker's terms."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import attrs

from ._podspec import MAIN, SETUP
from ._supervision import NEVER_RAN_MARKER

ContainerState = Literal["waiting", "running", "terminated"]

# Waiting reasons after which the kubelet may retry, but the container will not start
# without someone changing the pod or the registry: a Docker start must fail now.
_FATAL_WAITING = frozenset(
    {
        "ErrImageNeverPull",
        "InvalidImageName",
        "ImageInspectError",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "PreStartHookError",
    }
)
# Waiting reasons that clear by themselves often enough (a rate-limited or briefly unavailable
# registry) that a start fails only when they last.
_STALLED_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "RegistryUnavailable"})
# Terminated reasons meaning the process never ran (bad entrypoint, runtime refusal).
_NEVER_RAN = frozenset({"StartError", "ContainerCannotRun"})


@attrs.frozen
class ContainerObservation:
    pod_name: str
    phase: str
    pod_ip: str | None
    state: ContainerState
    reason: str | None
    message: str | None
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None
    deleted: bool
    # The container cannot start, now or ever: `reason` and `message` say why.
    fatal: bool
    # The init container `setup` (see `ContainerSpec.needs_setup`); None in pods without it.
    setup: ContainerState | None = None
    # Not starting for a reason that may clear by itself: a failing image pull, or no node for
    # the pod yet (an autoscaler may add one). `reason` and `message` say which.
    stalled: bool = False


def observe(pod: Mapping[str, Any], *, deleted: bool = False) -> ContainerObservation:
    """Read the state of container `main` from a Pod (`deleted`: the object is gone)."""
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    main = _container_status(status.get("containerStatuses"), MAIN)
    state_name, detail = _state(main)

    reason = detail.get("reason") or None
    message = detail.get("message") or None
    fatal = state_name == "waiting" and reason in _FATAL_WAITING
    stalled = state_name == "waiting" and reason in _STALLED_WAITING
    if state_name == "terminated" and reason in _NEVER_RAN:
        fatal = True
    if state_name == "terminated" and message and message.startswith(NEVER_RAN_MARKER):
        # kubedock's supervisor could not execute the program: it never ran.
        fatal, reason, message = True, "StartError", message.removeprefix(NEVER_RAN_MARKER)

    if state_name == "waiting":
        blocker = _init_failure(status.get("initContainerStatuses")) or _unschedulable(status)
        if blocker is not None:
            reason, message, stalled = blocker
            fatal = not stalled
        elif phase == "Failed":
            # The pod ended (evicted, deadline, ...) before main ever ran.
            reason = status.get("reason") or reason or "Failed"
            message = status.get("message") or message
            fatal, stalled = True, False

    exit_code = detail.get("exitCode") if state_name == "terminated" else None
    return ContainerObservation(
        pod_name=str(metadata.get("name") or ""),
        phase=str(phase),
        pod_ip=status.get("podIP") or None,
        state=state_name,
        reason=reason,
        message=message,
        exit_code=int(exit_code) if exit_code is not None else None,
        started_at=_timestamp(detail.get("startedAt")),
        finished_at=_timestamp(detail.get("finishedAt")),
        deleted=deleted,
        fatal=fatal,
        setup=_setup_state(status.get("initContainerStatuses")),
        stalled=stalled,
    )


# The pod records its transitions with whole seconds, truncated.
_RECORD_RESOLUTION = timedelta(seconds=1)


def transition_time(recorded: datetime | None, seen: datetime) -> datetime:
    """When a transition happened, as Docker's StartedAt and FinishedAt tell it.

    `seen` is kubedock's clock when the watch saw the transition, with sub-second precision;
    the pod's own record (`recorded`) has whole seconds only, so it wins only when it is later
    (a watch that saw it first, or a cluster whose clock runs ahead).
    """
    return seen if recorded is None or recorded <= seen else recorded


def start_time(observation: ContainerObservation, *, seen: datetime,
               requested: datetime | None) -> datetime:
    """Docker's StartedAt, from the first observation that shows the process started.

    A process first seen running started when the watch saw it (`seen`). One first seen already
    ended (a short process, between two status updates of the kubelet) started at a moment the
    watch missed, after kubedock asked for the pod (`requested`), within the whole second the
    pod records, and before `seen`: the middle of what those bounds leave, so that StartedAt
    keeps Docker's sub-second precision and stays before FinishedAt.
    """
    if observation.state == "running" or requested is None:
        return transition_time(observation.started_at, seen)
    recorded = observation.started_at
    earliest = requested if recorded is None else max(recorded, requested)
    latest = seen if recorded is None else min(recorded + _RECORD_RESOLUTION, seen)
    return earliest + (latest - earliest) / 2 if latest > earliest else earliest


def _container_status(statuses: Any, name: str) -> Mapping[str, Any]:
    for item in statuses or ():
        if item.get("name") == name:
            return dict(item)
    return {}


def _state(container_status: Mapping[str, Any]) -> tuple[ContainerState, Mapping[str, Any]]:
    state = container_status.get("state") or {}
    for name in ("terminated", "running", "waiting"):
        if name in state:
            return name, state[name] or {}
    return "waiting", {}


def _setup_state(statuses: Any) -> ContainerState | None:
    setup = _container_status(statuses, SETUP)
    return _state(setup)[0] if setup else None


def _init_failure(statuses: Any) -> tuple[str, str, bool] | None:
    """Why an init container keeps the pod from starting: reason, message, and whether that
    may clear by itself (stalled)."""
    for item in statuses or ():
        state_name, detail = _state(item)
        name = item.get("name", "?")
        if state_name == "terminated" and detail.get("exitCode", 0) != 0:
            reason = detail.get("reason") or "Error"
            text = detail.get("message") or f"exit code {detail.get('exitCode')}"
            return reason, f"init container {name}: {text}", False
        waiting = detail.get("reason")
        if state_name == "waiting" and waiting in _FATAL_WAITING | _STALLED_WAITING:
            text = detail.get("message") or waiting
            return waiting, f"init container {name}: {text}", waiting in _STALLED_WAITING
    return None


def _unschedulable(status: Mapping[str, Any]) -> tuple[str, str, bool] | None:
    for condition in status.get("conditions") or ():
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            message = condition.get("message") or "pod cannot be scheduled"
            return "Unschedulable", message, True
    return None


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
