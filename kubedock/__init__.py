"""kubedock: a Docker Engine API server that runs every container as a Kubernetes pod."""

__version__ = "0.1.0"
