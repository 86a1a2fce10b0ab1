"""``python -m kubedock``, and the entry point of the frozen program (hence the absolute import)."""

from kubedock._cli import main

main()
