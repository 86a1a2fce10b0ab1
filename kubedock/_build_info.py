"""Which kubedock this is: version, commit and build time.

A frozen build carries a stamp written by ``pyinstaller.spec`` next to this module; running from
a git checkout asks git instead, so ``kubedock version`` tells the truth in both cases. Kept free
of the server's imports: ``version`` must start fast.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import attrs

from . import __version__

STAMP_NAME = "build-info.json"
UNKNOWN = "unknown"
# Only these decide what a build contains, so only they make a commit "dirty".
_BUILD_INPUTS = ("kubedock", "pyproject.toml", "pyinstaller.spec")


@attrs.frozen
class BuildInfo:
    version: str
    commit: str
    built: str

    def describe(self) -> str:
        return f"kubedock {self.version}\ncommit: {self.commit}\nbuilt: {self.built}"


def current() -> BuildInfo:
    """The stamp of a frozen build, else what the checkout this module lives in says."""
    try:
        stamp = json.loads(Path(__file__).with_name(STAMP_NAME).read_text())
    except FileNotFoundError:
        return BuildInfo(__version__, _checkout_commit(), UNKNOWN)
    return BuildInfo(**stamp)


def stamp_for_build(now: datetime) -> str:
    """The JSON that a build bundles as :data:`STAMP_NAME`."""
    built = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    info = BuildInfo(__version__, _checkout_commit(), built)
    return json.dumps(attrs.asdict(info), sort_keys=True)


def _checkout_commit() -> str:
    top = Path(__file__).resolve().parent.parent
    if not (top / ".git").exists():
        return UNKNOWN
    try:
        commit = _git(top, "rev-parse", "--short=12", "HEAD")
        changed = _git(top, "status", "--porcelain", "--", *_BUILD_INPUTS)
    except (OSError, subprocess.CalledProcessError):
        return UNKNOWN
    return f"{commit}-dirty" if changed else commit


def _git(top: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(top), *args], capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout.strip()
