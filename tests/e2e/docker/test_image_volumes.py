"""Volumes as the image declares them: anonymous volumes at its VOLUME paths, the image's files
copied into a new volume at its first mount, and volume events; the same scenarios against
the Docker engine."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubedock_server import Kubedock, docker_cli, served_by

pytestmark = pytest.mark.cluster

# Three layers: busybox's, one that fills /seed, one that deletes a directory of it (a whiteout).
_DOCKERFILE = b"""FROM busybox:1.36
RUN mkdir -p /seed/nested /seed/gone && echo hello > /seed/hello.txt \\
    && echo old > /seed/gone/old && echo deep > /seed/nested/deeper.txt \\
    && chmod 600 /seed/nested/deeper.txt && ln -s hello.txt /seed/link-to-hello \\
    && chown -R 1000:1000 /seed/nested
RUN rm -r /seed/gone
VOLUME /seed
"""
_LISTING = ("cat /seed/hello.txt; stat -c '%n %a %u' /seed/nested/deeper.txt; "
            "readlink /seed/link-to-hello; ls /seed")


@pytest.fixture(scope="module")
def seeded_image(cluster: Any, kubedock: Kubedock, docker_oracle: str) -> Iterator[str]:
    """An image with content at its VOLUME, built by the reference engine and loaded into
    kubedock (so into the cluster's registry)."""
    name = f"{cluster.registry}/kd-seeded/app:{int(time.time() * 1000)}"
    oracle = Kubedock(docker_oracle, 0, "", "", kubedock.log, reference=True)
    built = subprocess.run(["docker", "build", "-q", "-t", name, "-"], input=_DOCKERFILE,
                           env={**oracle.env(), "DOCKER_BUILDKIT": "0"}, capture_output=True,
                           timeout=120, check=False)
    assert built.returncode == 0, built.stderr
    try:
        saved = docker_cli(oracle, "save", name)
        assert saved.returncode == 0, saved.stderr
        loaded = docker_cli(kubedock, "load", input=saved.stdout)
        assert loaded.returncode == 0, loaded.stderr
        yield name
    finally:
        docker_cli(oracle, "rmi", name)


@pytest.fixture(params=["kubedock", "docker_oracle"], ids=["kubedock", "docker"])
def target(request: pytest.FixtureRequest) -> Kubedock:
    return served_by(request, request.param)


def run(target: Kubedock, *args: str) -> subprocess.CompletedProcess[bytes]:
    return docker_cli(target, *args)


def _ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def test_an_image_volume_is_anonymous_listed_and_goes_with_rm_v(target: Kubedock,
                                                                seeded_image: str) -> None:
    name = f"imgvol-{secrets.token_hex(3)}"
    _ok(run(target, "create", "--name", name, seeded_image, "sleep", "60"))
    try:
        (inspected,) = json.loads(_ok(run(target, "inspect", name)))
        (mount,) = inspected["Mounts"]
        assert (mount["Type"], mount["Destination"], mount["Driver"], mount["RW"]) == (
            "volume", "/seed", "local", True)
        assert re.fullmatch("[0-9a-f]{64}", mount["Name"])
        listed = _ok(run(target, "volume", "ls", "-q", "--filter", "dangling=false")).split()
        assert mount["Name"] in listed
        _ok(run(target, "rm", "-v", name))
        gone = run(target, "volume", "inspect", mount["Name"])
        assert gone.returncode != 0
        assert "no such volume" in gone.stderr.decode().lower()
    finally:
        run(target, "rm", "-f", "-v", name)


def test_the_image_s_files_are_copied_into_a_new_named_volume_once(
        target: Kubedock, seeded_image: str) -> None:
    volume = f"seeded-{secrets.token_hex(3)}"
    try:
        _ok(run(target, "run", "--rm", "-v", f"{volume}:/seed", seeded_image, "true"))
        listing = _ok(run(target, "run", "--rm", "-v", f"{volume}:/seed", "busybox:1.36", "sh",
                          "-c", f"{_LISTING}; echo changed > /seed/hello.txt"))
        assert listing.splitlines() == ["hello", "/seed/nested/deeper.txt 600 1000",
                                        "hello.txt", "hello.txt", "link-to-hello", "nested"]
        # The volume has content now: a new container of the image finds it as it was left.
        again = _ok(run(target, "run", "--rm", "-v", f"{volume}:/seed", seeded_image, "cat",
                        "/seed/hello.txt"))
        assert again == "changed\n"
    finally:
        run(target, "volume", "rm", "-f", volume)


def test_nocopy_leaves_a_new_volume_empty(target: Kubedock, seeded_image: str) -> None:
    volume = f"nocopy-{secrets.token_hex(3)}"
    try:
        listing = _ok(run(target, "run", "--rm", "-v", f"{volume}:/seed:nocopy", seeded_image,
                          "ls", "-A", "/seed"))
        assert listing == ""
    finally:
        run(target, "volume", "rm", "-f", volume)


def test_an_anonymous_volume_starts_with_the_image_s_files(target: Kubedock,
                                                           seeded_image: str) -> None:
    listing = _ok(run(target, "run", "--rm", seeded_image, "sh", "-c", _LISTING))
    assert listing.splitlines() == ["hello", "/seed/nested/deeper.txt 600 1000",
                                    "hello.txt", "hello.txt", "link-to-hello", "nested"]
    empty = _ok(run(target, "run", "--rm", "-v", "/tmp", seeded_image, "ls", "-A", "/tmp"))
    assert empty == ""  # busybox's /tmp holds nothing


def _events(target: Kubedock, since: float, until: float) -> list[dict[str, Any]]:
    out = _ok(run(target, "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                  "--filter", "type=volume", "--format", "{{json .}}"))
    return [json.loads(line) for line in out.splitlines()]


def test_volume_events_as_docker_sends_them(target: Kubedock) -> None:
    volume = f"events-{secrets.token_hex(3)}"
    since = time.time() - 1
    created = _ok(run(target, "run", "-d", "-v", f"{volume}:/data:ro", "-v", "/scratch",
                      "busybox:1.36", "true")).strip()
    try:
        _ok(run(target, "wait", created))
        (inspected,) = json.loads(_ok(run(target, "inspect", created)))
        anonymous = next(m["Name"] for m in inspected["Mounts"] if m["Destination"] == "/scratch")
        _ok(run(target, "rm", "-v", created))
        _ok(run(target, "volume", "rm", volume))
        # Other tests' containers may mount and unmount volumes meanwhile.
        seen = [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"])
                for e in _events(target, since, time.time() + 1)
                if e["Actor"]["ID"] in (volume, anonymous)]
    finally:
        run(target, "rm", "-f", created)
        run(target, "volume", "rm", "-f", volume)
    local = {"driver": "local"}
    mounts = sorted((action, volume_id, attributes) for action, volume_id, attributes in seen
                    if action == "mount")
    assert sorted(mounts, key=lambda event: event[2]["destination"]) == [
        ("mount", volume, {"container": created, "destination": "/data", "driver": "local",
                           "propagation": "", "read/write": "false"}),
        ("mount", anonymous, {"container": created, "destination": "/scratch",
                              "driver": "local", "propagation": "", "read/write": "true"}),
    ]
    assert sorted((a, v) for a, v, _ in seen if a == "create") == sorted(
        [("create", volume), ("create", anonymous)])
    assert sorted((a, v, attributes) for a, v, attributes in seen if a == "unmount") == sorted(
        [("unmount", volume, {"container": created, "driver": "local"}),
         ("unmount", anonymous, {"container": created, "driver": "local"})],
        key=lambda event: event[1])
    assert [(a, v, attributes) for a, v, attributes in seen if a == "destroy"] == [
        ("destroy", anonymous, local), ("destroy", volume, local)]
    order = [a for a, _, _ in seen]
    assert order.index("mount") < order.index("unmount") < order.index("destroy")
