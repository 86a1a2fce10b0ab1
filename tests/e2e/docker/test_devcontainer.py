"""The dev containers CLI (`@devcontainers/cli`) against kubedock, and against the reference
engine: `devcontainer up` of an image-based devcontainer.json (the workspace folder mounted,
containerEnv, postCreateCommand, remoteUser), then `devcontainer exec`. The CLI comes from npm
with the Node Testcontainers dependencies (build/ecosystem node, cached like the cluster).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubedock_server import Kubedock, docker_cli

pytestmark = pytest.mark.cluster

WORKSPACE = "workspace"
_IN_CONTAINER = f"/workspaces/{WORKSPACE}"


class DevContainer:
    def __init__(self, target: Kubedock, program: Path, tmp: Path, config: dict[str, Any]
                 ) -> None:
        self.target = target
        self.program = program
        self.workspace = tmp / WORKSPACE
        (self.workspace / ".devcontainer").mkdir(parents=True)
        (self.workspace / ".devcontainer/devcontainer.json").write_text(json.dumps(config))
        (self.workspace / "hello.txt").write_text("hello from the workspace\n")
        (tmp / "docker").mkdir()
        (tmp / "home").mkdir()
        # Its own HOME and DOCKER_CONFIG: nothing of the machine's applies.
        self.env = target.env(DOCKER_CONFIG=str(tmp / "docker"), HOME=str(tmp / "home"))
        self.container_id = ""

    def run(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["node", str(self.program), command, "--workspace-folder",
                               str(self.workspace), *args], env=self.env, capture_output=True,
                              text=True, timeout=300, check=False)

    def up(self) -> dict[str, Any]:
        done = self.run("up")
        outcome: dict[str, Any] = json.loads(done.stdout.splitlines()[-1]) if done.stdout \
            else {}
        self.container_id = outcome.get("containerId", "")
        assert done.returncode == 0 and outcome.get("outcome") == "success", done.stderr[-4000:]
        return outcome

    def remove(self) -> None:
        if self.container_id:
            docker_cli(self.target, "rm", "-f", "-v", self.container_id)


@pytest.fixture
def devcontainer(target: Kubedock, ecosystem_settings: Callable[[str], dict[str, str]],
                 tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], DevContainer]]:
    program = Path(ecosystem_settings("node")["NODE_PATH"]) / "@devcontainers/cli/devcontainer.js"
    made: list[DevContainer] = []

    def make(config: dict[str, Any]) -> DevContainer:
        made.append(DevContainer(target, program, tmp_path, config))
        return made[-1]

    yield make
    for each in made:
        each.remove()


def test_up_then_exec(devcontainer: Callable[[dict[str, Any]], DevContainer]) -> None:
    dev = devcontainer({"image": "busybox:1.36", "containerEnv": {"GREETING": "hi"},
                        "postCreateCommand": "echo post-create-ran > /tmp/post-create"})
    outcome = dev.up()
    assert (outcome["remoteUser"], outcome["remoteWorkspaceFolder"]) == ("root", _IN_CONTAINER)
    done = dev.run("exec", "sh", "-c", "pwd; cat hello.txt /tmp/post-create; echo $GREETING; "
                   "id -u; echo to-stderr >&2; exit 3")
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == [_IN_CONTAINER, "hello from the workspace",
                                        "post-create-ran", "hi", "0"]
    assert "to-stderr" in done.stderr


def test_remote_user(devcontainer: Callable[[dict[str, Any]], DevContainer]) -> None:
    # Without updateRemoteUserUID: false the CLI builds an image to change the user's uid to
    # the caller's (image builds are another matter than this test's).
    dev = devcontainer({"image": "busybox:1.36", "remoteUser": "user",
                        "updateRemoteUserUID": False})
    assert dev.up()["remoteUser"] == "user"
    done = dev.run("exec", "sh", "-c", "pwd; id -un; id -u")
    assert (done.returncode, done.stdout.splitlines()) == (0, [_IN_CONTAINER, "user", "1000"]), \
        done.stderr
