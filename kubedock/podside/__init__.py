"""What runs inside pods: the init containers that fill volumes and take a pod off the
network, the Docker socket sidecar, the toolbox added to running pods, and the code they share
with the server. Standard library only, so that these roles start fast."""

from . import _buildwire as buildwire
from . import _chunks as chunks
from . import _served as served
from ._archive import NOT_A_DIRECTORY, NOT_FOUND, run_archive, tool_argv
from ._buildstep import run_buildstep
from ._dind import CLIENT_CERT, CLIENT_KEY, SERVER_CERT, parse_upstream, run_dind
from ._init import DATA_DIR, run_init
from ._offline import run_offline
from ._procfs import ProcError, parse_boot_time, parse_cmdline, parse_ids, parse_stat
from ._tar import ArchiveError, extract, open_writer, relocate, safe_name
from ._toolbox import CANNOT_START, run_toolbox
from ._users import ExecUser, UserError, resolve_user

__all__ = [
    "CANNOT_START",
    "CLIENT_CERT",
    "CLIENT_KEY",
    "DATA_DIR",
    "NOT_A_DIRECTORY",
    "NOT_FOUND",
    "SERVER_CERT",
    "ArchiveError",
    "ExecUser",
    "ProcError",
    "UserError",
    "buildwire",
    "chunks",
    "extract",
    "open_writer",
    "parse_boot_time",
    "parse_cmdline",
    "parse_ids",
    "parse_stat",
    "parse_upstream",
    "relocate",
    "resolve_user",
    "run_archive",
    "run_buildstep",
    "run_dind",
    "run_init",
    "run_offline",
    "run_toolbox",
    "safe_name",
    "served",
    "tool_argv",
]
