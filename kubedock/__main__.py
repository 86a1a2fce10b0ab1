"""``python -m kubedock``."""

from ._cli import main

main()
