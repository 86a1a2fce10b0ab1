"""The frozen kubedock (build/binary) runs with no Python around it: as a program and as an image.

The program runs with an empty environment, so nothing from the venv can leak into it; it serves
the docker CLI scenarios of docker/test_cli.py (their ``frozen`` cases). The image holds only the
one-folder build and the C library it loads, and runs on the reference engine.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

import kubedock

pytestmark = pytest.mark.cluster

CLEAN_ENV = {"PATH": "/usr/bin:/bin"}
IMAGE = f"kubedock/kubedock:{kubedock.__version__}"


def docker(host: str, *args: str) -> subprocess.CompletedProcess[str]:
    # subprocess kills on timeout: `docker run` would only pass a SIGTERM on to its container.
    env = {**os.environ, "DOCKER_HOST": host}
    return subprocess.run(
        ["docker", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_version_names_the_build(frozen_program: Path) -> None:
    done = subprocess.run(
        [str(frozen_program), "version"], env=CLEAN_ENV, capture_output=True, text=True, check=True
    )
    version, commit, built = done.stdout.splitlines()
    assert version == f"kubedock {kubedock.__version__}"
    assert re.fullmatch(r"commit: [0-9a-f]{12}(-dirty)?", commit)
    assert re.fullmatch(r"built: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", built)


@pytest.mark.oracle
def test_image_holds_only_the_frozen_program(docker_oracle: str) -> None:
    done = docker(docker_oracle, "run", "--rm", IMAGE, "version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"kubedock {kubedock.__version__}"

    shape = docker(docker_oracle, "image", "inspect", "--format",
                   "{{json .Config.Entrypoint}} {{json .Config.Cmd}}", IMAGE)  # fmt: skip
    assert shape.stdout.split() == ['["/kubedock"]', '["server"]']

    created = docker(docker_oracle, "create", IMAGE)
    container = created.stdout.strip()
    try:
        exported = subprocess.run(
            ["docker", "export", container], env={**os.environ, "DOCKER_HOST": docker_oracle},
            capture_output=True, timeout=120, check=True,
        ).stdout  # fmt: skip
    finally:
        docker(docker_oracle, "rm", container)
    with tarfile.open(fileobj=io.BytesIO(exported)) as layer:
        members = {member.name: member for member in layer.getmembers()}
    interpreters = [
        name for name, member in members.items()
        if member.isfile() and re.search(r"(^|/)python[\d.]*$", name)
    ]  # fmt: skip
    assert not interpreters
    assert members["tmp"].isdir() and members["tmp"].mode & 0o1777 == 0o1777
    assert members["opt/kubedock/kubedock"].isfile()
