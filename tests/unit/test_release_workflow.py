"""The release workflow and what it runs: its scripts exist and do their part here, and the
README's install line fetches, checks and installs an asset named as the release names them."""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubedock import __version__

TOP = Path(__file__).resolve().parents[2]
RELEASE = TOP / "build" / "release"


def _workflow() -> dict[Any, Any]:
    document = yaml.safe_load((TOP / ".github" / "workflows" / "release.yml").read_text())
    assert isinstance(document, dict)
    return document


def test_a_version_tag_or_a_hand_run_starts_it() -> None:
    # YAML 1.1 reads the key `on` as True.
    triggers = _workflow()[True]
    assert triggers["push"] == {"tags": ["v*"]}
    assert triggers["workflow_dispatch"]["inputs"]["tag"]["required"] is True


def test_both_architectures_build_on_native_runners() -> None:
    assets = _workflow()["jobs"]["assets"]
    assert assets["strategy"]["matrix"]["runner"] == ["ubuntu-24.04", "ubuntu-24.04-arm"]
    assert _workflow()["jobs"]["publish"]["needs"] == "assets"


def test_every_script_the_steps_run_is_here_and_executable() -> None:
    scripts = {
        match
        for job in _workflow()["jobs"].values()
        for step in job["steps"]
        for match in re.findall(r"\bbuild/[\w/.-]+", step.get("run", ""))
    }
    assert scripts >= {"build/release/assets", "build/release/version",
                       "build/release/checksums", "build/release/publish-image", "build/setup"}
    for script in scripts:
        assert (TOP / script).is_file() and (TOP / script).stat().st_mode & 0o111, script


def _run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(arg) for arg in argv], capture_output=True, text=True, cwd=cwd,
                          timeout=60, check=False)


def test_the_tag_must_be_kubedocks_version() -> None:
    accepted = _run(RELEASE / "version", f"v{__version__}")
    assert (accepted.returncode, accepted.stdout) == (0, f"{__version__}\n")
    for tag in (__version__, f"v{__version__}.1", "v0.0.0-rc1"):
        refused = _run(RELEASE / "version", tag)
        assert refused.returncode == 1
        assert f"the tag {tag} is not kubedock's version" in refused.stderr


@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    """Assets named as build/release/assets names them, checksummed by build/release/checksums."""
    assets = tmp_path / "release" / f"v{__version__}"
    assets.mkdir(parents=True)
    machine = _run("uname", "-m").stdout.strip()
    (assets / f"kubedock-linux-{machine}").write_bytes(b"#!/bin/sh\necho kubedock\n")
    (assets / f"kubedock-image-linux-{machine}.tar").write_bytes(b"an image archive")
    summed = _run(RELEASE / "checksums", assets)
    assert summed.returncode == 0, summed.stderr
    return assets


def test_each_asset_has_a_checksum_file_and_all_are_in_sha256sums(release_dir: Path) -> None:
    assets = sorted(path.name for path in release_dir.glob("kubedock-*")
                    if not path.name.endswith(".sha256"))
    assert sorted(line.split()[1] for line in
                  (release_dir / "SHA256SUMS").read_text().splitlines()) == assets
    for asset in assets:
        assert _run("sha256sum", "-c", f"{asset}.sha256", cwd=release_dir).returncode == 0
    assert _run("sha256sum", "-c", "SHA256SUMS", cwd=release_dir).returncode == 0


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(release_dir: Path) -> Iterator[str]:
    """The release's assets over http on loopback, laid out as a release's download URLs."""
    handler = functools.partial(_QuietHandler, directory=str(release_dir.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _install_line() -> str:
    readme = (TOP / "README.md").read_text()
    install = readme[readme.index("\n## Install\n"):readme.index("\n## Using it\n")]
    [line] = [line for line in install.splitlines() if "sha256sum -c" in line]
    return line


def test_the_readmes_install_line_checks_and_installs(served: str, release_dir: Path,
                                                      tmp_path: Path) -> None:
    line = _install_line()
    assert f"v={__version__} " in line
    target = tmp_path / "bin" / "kubedock"
    target.parent.mkdir()
    local = re.sub(r"\bu=\S+;", f"u={served};", line).replace("/usr/local/bin/kubedock",
                                                               str(target))
    work = tmp_path / "work"
    work.mkdir()
    installed = _run("sh", "-c", local, cwd=work)
    assert installed.returncode == 0, installed.stderr
    assert _run(target).stdout == "kubedock\n"
    assert list(work.iterdir()) == []

    target.unlink()
    machine = _run("uname", "-m").stdout.strip()
    (release_dir / f"kubedock-linux-{machine}").write_bytes(b"#!/bin/sh\necho tampered\n")
    refused = _run("sh", "-c", local, cwd=work)
    assert refused.returncode != 0
    assert "FAILED" in refused.stdout
    assert not target.exists()
