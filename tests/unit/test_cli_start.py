"""The commands that run inside pods start without the server's configuration."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kubedock._cli import build_parser


@pytest.mark.parametrize("argv", [["toolbox"], ["archive", "stat", "/"], ["init", "--help"],
                                  ["offline", "--help"], ["dind", "--help"],
                                  ["buildstep", "--help"]])
def test_a_pod_role_leaves_the_server_configuration_unimported(argv: list[str]) -> None:
    probe = (
        "import sys\nfrom kubedock._cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted({'attrs', 'kubedock._config', 'logging', 'trio'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, stdin=subprocess.DEVNULL)
    assert done.stdout.splitlines()[-1] == "[]"


def test_the_light_parser_lists_the_same_commands() -> None:
    assert build_parser(server_options=False).format_help() == build_parser().format_help()


def test_the_light_parser_parses_a_pod_role_alike() -> None:
    argv = ["archive", "put", "/data", "--no-overwrite-dir-non-dir"]
    light = build_parser(server_options=False).parse_args(argv)
    assert light == build_parser().parse_args(argv)
