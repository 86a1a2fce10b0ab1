"""`kubedock init`: the init container that fills a pod's volumes before `main` starts.

kubedock attaches to this container's stdin and streams one tar into it: the contents of bind
mounts and of archives copied in before start. Reading stops at the tar's end-of-archive
marker, so the program exits (and `main` starts) without waiting for the stream to close.
"""

from __future__ import annotations

import sys

from ._archive import install_tools
from ._tar import ArchiveError, extract

DATA_DIR = "/.kubedock/data"


def run_init(target: str | None = None, *, tools: str | None = None) -> int:
    target = target or DATA_DIR
    # Unbuffered: a buffered read waits for a full buffer, while kubedock keeps stdin open
    # after the tar's end, which is where reading must stop.
    try:
        if tools:
            install_tools(tools)
        with open(0, "rb", buffering=0, closefd=False) as stdin:
            count = extract(stdin, target)
    except (ArchiveError, OSError) as error:
        print(f"kubedock init: {error}", file=sys.stderr)
        return 1
    print(f"kubedock init: {count} entries written to {target}", file=sys.stderr)
    return 0
