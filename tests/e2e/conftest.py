"""Fixtures for end-to-end tests: the local Kubernetes cluster and the reference Docker engine.

Both are started by the repository's own scripts (build/cluster/up, build/oracle/up), which reuse
what already runs, so a test session costs nothing when they are up and about 15 s when not.
"""

from __future__ import annotations

import functools
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_cluster import Cluster, succeeds, wait_for

REPO = Path(__file__).resolve().parents[2]
SCRIPT_TIMEOUT = 1800  # a first run on a fresh machine builds Kubernetes and the images
BINARY_BUILD_TIMEOUT = 900  # a cold PyInstaller build takes under a minute on an idle machine


# Real clients (docker-py, urllib) in this process may leave a socket to the garbage collector,
# whose ResourceWarning then fails whichever later test is running at that moment. kubedock
# itself runs in processes of its own here, so this hides none of its sockets; the unit and API
# tests, which run kubedock in-process, keep the warning as an error.
_CLIENT_SOCKETS_AT_GC = pytest.mark.filterwarnings("ignore:unclosed <socket:ResourceWarning")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    e2e = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(e2e):
            item.add_marker(_CLIENT_SOCKETS_AT_GC)


def script_outputs(script: Path, *args: str) -> dict[str, str]:
    """Run one of the repository's setup scripts and read the KEY=value lines it prints."""
    if not script.exists():
        pytest.fail(f"{script.relative_to(REPO)} is missing; the e2e tests need it", pytrace=False)
    done = subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"{script.relative_to(REPO)} failed ({done.returncode}):\n{done.stderr[-4000:]}",
            pytrace=False,
        )
    return key_values(done.stdout)


def key_values(output: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in output.splitlines() if "=" in line and " " not in line)
    return {key: value for key, value in pairs}


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    # status is instant and read-only; up takes a lock and starts what is missing.
    status = REPO / "build/cluster/status"
    done = subprocess.run([str(status)], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode == 0:
        outputs = key_values(done.stdout)
    else:
        outputs = script_outputs(REPO / "build/cluster/up")
    return Cluster(kubeconfig=Path(outputs["KUBECONFIG"]), kubectl_path=Path(outputs["KUBECTL"]),
                   registry=outputs.get("REGISTRY", ""))


@pytest.fixture(scope="session")
def current_images(cluster: Cluster) -> None:
    """The cluster holds the current build of every image of build/images, kubedock's own
    included: build/cluster/up imports again what was rebuilt since (fast when nothing was)."""
    script_outputs(REPO / "build/cluster/up")


@pytest.fixture(scope="module")
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test module, usable for pods as soon as it is handed out."""
    module = request.module.__name__.rpartition(".")[2].replace("_", "-")
    name = f"e2e-{module[:40]}-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    try:
        wait_for(
            lambda: succeeds(cluster, "-n", name, "get", "serviceaccount", "default"),
            what=f"the default ServiceAccount in {name}",
        )
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="session")
def frozen_program() -> Path:
    """The one-file kubedock; build/binary returns at once when the sources are unchanged."""
    done = subprocess.run([str(REPO / "build/binary")], capture_output=True, text=True,
                          timeout=BINARY_BUILD_TIMEOUT, check=False)
    if done.returncode != 0:
        pytest.fail(f"build/binary failed ({done.returncode}):\n{done.stderr[-4000:]}",
                    pytrace=False)
    return Path(done.stdout.splitlines()[-1])


@pytest.fixture(scope="session")
def docker_oracle() -> str:
    """DOCKER_HOST of the reference Docker engine, the oracle for expected Docker behaviour."""
    return script_outputs(REPO / "build/oracle/up")["DOCKER_HOST"]


@pytest.fixture(scope="session")
def ecosystem_settings() -> Callable[[str], dict[str, str]]:
    """build/ecosystem for a language of tests/ecosystem: fetches its dependencies on first use
    (cached like the cluster) and gives the settings its tools then need to run offline."""
    return functools.cache(lambda language: script_outputs(REPO / "build/ecosystem", language))


@pytest.fixture(scope="session")
def compose_plugins() -> Path:
    """A directory with `docker compose` as a docker CLI plugin, for a test's own DOCKER_CONFIG
    (build/compose builds it from its Go module on first use, cached like the cluster)."""
    return Path(script_outputs(REPO / "build/compose")["CLI_PLUGINS_DIR"])
