"""`kubedock version`: what it says from a checkout, the stamp a build bundles, and its imports."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import kubedock
from kubedock import _build_info


def test_a_checkout_names_its_commit_and_no_build_time() -> None:
    info = _build_info.current()
    assert info.version == kubedock.__version__
    assert info.commit != ""
    assert info.built == _build_info.UNKNOWN


def test_the_stamp_carries_version_commit_and_utc_time() -> None:
    stamp = json.loads(_build_info.stamp_for_build(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)))
    assert stamp["version"] == kubedock.__version__
    assert stamp["built"] == "2026-01-02T03:04:05Z"
    assert _build_info.BuildInfo(**stamp).describe().splitlines() == [
        f"kubedock {kubedock.__version__}",
        f"commit: {stamp['commit']}",
        "built: 2026-01-02T03:04:05Z",
    ]


def test_version_leaves_the_server_stack_unimported() -> None:
    probe = (
        "import sys; from kubedock._cli import main; main(['version']); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'trio', 'quart', 'kr8s', "
        "'hypercorn', 'httpx'}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]"
