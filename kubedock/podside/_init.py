"""`kubedock init`: the init container that fills a pod's volumes before `main` starts.

kubedock attaches to this container's stdin and streams one tar into it: the contents of bind
mounts and of archives copied in before start. Reading stops at the tar's end-of-archive
marker, so the program exits (and `main` starts) without waiting for the stream to close.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ._tar import ArchiveError, extract

DATA_DIR = "/.kubedock/data"


def run_init(argv: Sequence[str]) -> int:
    target = argv[0] if argv else DATA_DIR
    try:
        count = extract(sys.stdin.buffer, target)
    except (ArchiveError, OSError) as error:
        print(f"kubedock init: {error}", file=sys.stderr)
        return 1
    print(f"kubedock init: {count} entries written to {target}", file=sys.stderr)
    return 0
