"""Testcontainers for Java, Go and Node against kubedock, and against the reference engine.

Each language's suite lives in tests/ecosystem/<lang> and covers the same scenarios: an exposed
port with a port and a log wait strategy, exec (exit code, stdout, stderr), copies in and out, a
network alias reached from another container, a one-shot container's exit code and its stdout and
stderr logs, the library's postgres module, an image the library builds from a Dockerfile
(and, in Go, removes), a report copied out of a one-shot container after its exit, a copy into
and out of a running container of the no-shell image, a named volume written by one container
and read by the next, a published UDP port answered by the echo server of kubedock's own image
(KUBEDOCK_IMAGE), exec as another user (by uid and by name), and signals a shell script traps.
build/ecosystem fetches their dependencies once (cached under ~/.cache/kubedock-dev); the tools
then run offline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from kubedock_server import ROOT, Kubedock

from kubedock import __version__

pytestmark = pytest.mark.cluster

SUITE_TIMEOUT = 900  # about 100 s against kubedock on an idle machine
SCENARIOS = 15  # tests in each language's suite


def _command(language: str, settings: dict[str, str], project: Path) -> list[str]:
    if language == "java":
        return ["mvn", "-B", "-o", f"-Dmaven.repo.local={settings['MAVEN_REPO']}", "test"]
    if language == "go":
        return ["go", "test", "-count=1", "-v", f"-timeout={SUITE_TIMEOUT}s", "./..."]
    return ["node", "--test", str(project / "containers.test.js")]


def _offline_environment(language: str, settings: dict[str, str]) -> dict[str, str]:
    if language == "go":
        return {**settings, "GOFLAGS": "-mod=readonly", "GOPROXY": "off", "GOTOOLCHAIN": "local"}
    if language == "node":
        return settings
    return {}


def _passed(language: str, output: str) -> int:
    """How many tests the tool says passed."""
    if language == "java":
        counts = re.findall(r"Tests run: (\d+), Failures: 0, Errors: 0, Skipped: 0$", output, re.M)
        return int(counts[-1]) if counts else 0
    if language == "go":
        return len(re.findall(r"^--- PASS: ", output, re.M))
    counts = re.findall(r"^# pass (\d+)$", output, re.M)
    return int(counts[-1]) if counts else 0


@pytest.mark.parametrize("language", ["java", "go", "node"])
def test_testcontainers_suite(language: str, target: Kubedock, tmp_path: Path,
                             ecosystem_settings: Callable[[str], dict[str, str]]) -> None:
    settings = ecosystem_settings(language)
    project = tmp_path / "project"
    # A copy: Maven writes its target/ beside the sources.
    shutil.copytree(ROOT / "tests/ecosystem" / language, project)
    # An empty HOME: no ~/.testcontainers.properties or ~/.docker/config.json of the machine's
    # chooses another Docker host, a registry mirror or Ryuk.
    home = tmp_path / "home"
    home.mkdir()
    env = target.env(HOME=str(home), KUBEDOCK_IMAGE=f"kubedock/kubedock:{__version__}",
                     **_offline_environment(language, settings))
    env.pop("DOCKER_CONTEXT", None)
    done = subprocess.run(_command(language, settings, project), cwd=project, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=SUITE_TIMEOUT, check=False)
    if done.returncode != 0:
        reports = sorted((project / "target/surefire-reports").glob("*.txt"))
        details = "".join(report.read_text() for report in reports)
        pytest.fail(f"{language} suite failed ({done.returncode}) against {target.host}:\n"
                    f"{done.stdout[-12000:]}\n{details[-8000:]}", pytrace=False)
    assert _passed(language, done.stdout) == SCENARIOS, done.stdout[-4000:]

