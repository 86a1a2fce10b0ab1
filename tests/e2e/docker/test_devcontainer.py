"""The dev containers CLI (`@devcontainers/cli`) against kubedock, and against the reference
engine: `devcontainer up` of an image-based devcontainer.json (the workspace folder mounted,
containerEnv, postCreateCommand, remoteUser) and of a compose-based one, then `devcontainer
exec`. The CLI comes from npm with the Node Testcontainers dependencies (build/ecosystem node),
the compose plugin from build/compose, both cached like the cluster.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kubedock_server import Kubedock

pytestmark = pytest.mark.cluster

_COMPOSE_FILE = """\
services:
  dev:
    image: busybox:1.36
    command: ["sleep", "infinity"]
    volumes: ["..:/workspaces/{workspace}"]
  web:
    image: nginx:1.27
"""


class DevContainer:
    def __init__(self, target: Kubedock, program: Path, tmp: Path, config: dict[str, Any],
                 files: Mapping[str, str], docker_config: Mapping[str, Any]) -> None:
        self.program = program
        # A name of its own: a compose-based dev container's project is named after it.
        self.name = f"ws{secrets.token_hex(3)}"
        self.workspace = tmp / self.name
        (self.workspace / ".devcontainer").mkdir(parents=True)
        (self.workspace / ".devcontainer/devcontainer.json").write_text(json.dumps(config))
        for name, text in files.items():
            (self.workspace / name).write_text(text.format(workspace=self.name))
        (self.workspace / "hello.txt").write_text("hello from the workspace\n")
        (tmp / "docker").mkdir()
        (tmp / "docker/config.json").write_text(json.dumps(docker_config))
        (tmp / "home").mkdir()
        # Its own HOME and DOCKER_CONFIG: nothing of the machine's applies.
        self.env = target.env(DOCKER_CONFIG=str(tmp / "docker"), HOME=str(tmp / "home"))
        self.in_container = f"/workspaces/{self.name}"

    def run(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["node", str(self.program), command, "--workspace-folder",
                               str(self.workspace), *args], env=self.env, capture_output=True,
                              text=True, timeout=300, check=False)

    def up(self) -> dict[str, Any]:
        done = self.run("up")
        outcome: dict[str, Any] = json.loads(done.stdout.splitlines()[-1]) if done.stdout \
            else {}
        assert done.returncode == 0 and outcome.get("outcome") == "success", done.stderr[-4000:]
        return outcome

    def remove(self) -> None:
        """What `up` made: its containers (by the CLI's label or its compose project) and
        their networks and volumes."""
        def docker(*args: str) -> list[str]:
            done = subprocess.run(["docker", *args], env=self.env, capture_output=True,
                                  text=True, timeout=120, check=False)
            return done.stdout.split()

        for label in (f"devcontainer.local_folder={self.workspace}",
                      f"com.docker.compose.project={self.name}_devcontainer"):
            if containers := docker("ps", "-aq", "--filter", f"label={label}"):
                docker("rm", "-f", "-v", *containers)
            if networks := docker("network", "ls", "-q", "--filter", f"label={label}"):
                docker("network", "rm", *networks)


Make = Callable[..., DevContainer]


@pytest.fixture
def devcontainer(target: Kubedock, ecosystem_settings: Callable[[str], dict[str, str]],
                 tmp_path: Path) -> Iterator[Make]:
    program = Path(ecosystem_settings("node")["NODE_PATH"]) / "@devcontainers/cli/devcontainer.js"
    made: list[DevContainer] = []

    def make(config: dict[str, Any], files: Mapping[str, str] | None = None,
             docker_config: Mapping[str, Any] | None = None) -> DevContainer:
        made.append(DevContainer(target, program, tmp_path, config, files or {},
                                 docker_config or {}))
        return made[-1]

    yield make
    for each in made:
        each.remove()


def test_up_then_exec(devcontainer: Make) -> None:
    dev = devcontainer({"image": "busybox:1.36", "containerEnv": {"GREETING": "hi"},
                        "postCreateCommand": "echo post-create-ran > /tmp/post-create"})
    outcome = dev.up()
    assert (outcome["remoteUser"], outcome["remoteWorkspaceFolder"]) == (
        "root", dev.in_container)
    done = dev.run("exec", "sh", "-c", "pwd; cat hello.txt /tmp/post-create; echo $GREETING; "
                   "id -u; echo to-stderr >&2; exit 3")
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == [dev.in_container, "hello from the workspace",
                                        "post-create-ran", "hi", "0"]
    assert "to-stderr" in done.stderr


def test_remote_user(devcontainer: Make) -> None:
    # Without updateRemoteUserUID: false the CLI builds an image to change the user's uid to
    # the caller's (image builds are another matter than this test's).
    dev = devcontainer({"image": "busybox:1.36", "remoteUser": "user",
                        "updateRemoteUserUID": False})
    assert dev.up()["remoteUser"] == "user"
    done = dev.run("exec", "sh", "-c", "pwd; id -un; id -u")
    assert (done.returncode, done.stdout.splitlines()) == (
        0, [dev.in_container, "user", "1000"]), done.stderr


def test_compose_based(devcontainer: Make, compose_plugins: Path) -> None:
    """A dev container that is one service of a compose project, beside the one it uses."""
    dev = devcontainer(
        {"dockerComposeFile": "compose.yaml", "service": "dev",
         "workspaceFolder": "/workspaces/${localWorkspaceFolderBasename}",
         "postCreateCommand": "wget -qO- http://web/ > /tmp/fetched"},
        files={".devcontainer/compose.yaml": _COMPOSE_FILE},
        docker_config={"cliPluginsExtraDirs": [str(compose_plugins)]})
    outcome = dev.up()
    assert outcome["composeProjectName"] == f"{dev.name}_devcontainer"
    done = dev.run("exec", "sh", "-c", "pwd; cat hello.txt; grep -q 'Welcome to nginx' "
                   "/tmp/fetched && echo fetched")
    assert (done.returncode, done.stdout.splitlines()) == (
        0, [dev.in_container, "hello from the workspace", "fetched"]), done.stderr
