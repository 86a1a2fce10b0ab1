"""Modules that a library imports at its top but uses on a path kubedock never takes, loaded on
first use instead of at start.

kr8s imports `cryptography.x509` for `whoami` with a client certificate; loading it maps
cryptography's compiled core, about 10 MiB of the server's memory. The server's own TLS code
imports it when it runs, which loads it then.
"""

from __future__ import annotations

import importlib.util
import sys

UNUSED_BY_THE_SERVER = ("cryptography.x509",)


def defer_import(name: str) -> None:
    """Make the import of module `name` execute it only on its first attribute access
    (`importlib.util.LazyLoader`); no-op if it is already imported or absent."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        # Bound to its package as an import binds it: `from package import child` would
        # otherwise look it up through the import system, which reads its `__spec__` and so
        # executes it at once.
        setattr(sys.modules[parent], child, module)
