"""What runs inside pods: the init container that fills volumes, the Docker socket sidecar,
and the tar code they share with the server. Standard library only, so that these roles start
fast."""

from ._archive import NOT_A_DIRECTORY, NOT_FOUND, run_archive, tool_argv
from ._dind import CLIENT_CERT, CLIENT_KEY, SERVER_CERT, parse_upstream, run_dind
from ._init import DATA_DIR, run_init
from ._tar import ArchiveError, extract, open_writer, relocate, safe_name

__all__ = [
    "CLIENT_CERT",
    "CLIENT_KEY",
    "DATA_DIR",
    "NOT_A_DIRECTORY",
    "NOT_FOUND",
    "SERVER_CERT",
    "ArchiveError",
    "extract",
    "open_writer",
    "parse_upstream",
    "relocate",
    "run_archive",
    "run_dind",
    "run_init",
    "safe_name",
    "tool_argv",
]
