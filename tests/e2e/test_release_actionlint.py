"""The workflows pass actionlint (built from the Go module proxy by build/release/actionlint),
their `run:` scripts checked by the shellcheck beside it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]


def test_the_workflows_pass_actionlint() -> None:
    built = subprocess.run([str(TOP / "build" / "release" / "actionlint")], capture_output=True,
                           text=True, timeout=900, check=True)
    tools = built.stdout.splitlines()[-1]
    workflows = sorted(str(path) for path in (TOP / ".github" / "workflows").glob("*.yml"))
    assert any(path.endswith("release.yml") for path in workflows)
    checked = subprocess.run(
        [f"{tools}/actionlint", "-color=false", *workflows], capture_output=True, text=True,
        timeout=120, check=False, cwd=TOP,
        env={**os.environ, "PATH": f"{tools}:{os.environ.get('PATH', '')}"})
    assert checked.returncode == 0, checked.stdout + checked.stderr
