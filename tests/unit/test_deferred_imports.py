"""The server loads its stack without the modules it never uses, which still work on use."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from kubedock._server import _load_the_cluster_stack
_load_the_cluster_stack()
print("cryptography.hazmat.bindings._rust" in sys.modules)
from cryptography.x509.oid import NameOID
print(sys.modules["kr8s._api"].x509.OID_COMMON_NAME == NameOID.COMMON_NAME)
print("cryptography.hazmat.bindings._rust" in sys.modules)
"""


def test_the_server_stack_defers_cryptography_until_it_is_used() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          check=True, stdin=subprocess.DEVNULL)
    assert done.stdout.split() == ["False", "True", "True"]
