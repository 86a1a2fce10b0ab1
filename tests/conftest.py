"""Fixtures shared by every test tier."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import attrs
import pytest


@attrs.frozen
class TLSFiles:
    """A throwaway PKI: one CA signing the server's and a client's certificate, laid out as
    Docker clients want it in DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem), and a client
    certificate signed by another CA."""

    directory: Path

    ca = property(lambda self: self.directory / "ca.pem")
    client_cert = property(lambda self: self.directory / "cert.pem")
    client_key = property(lambda self: self.directory / "key.pem")
    server_cert = property(lambda self: self.directory / "server-cert.pem")
    server_key = property(lambda self: self.directory / "server-key.pem")
    stranger_cert = property(lambda self: self.directory / "stranger/cert.pem")
    stranger_key = property(lambda self: self.directory / "stranger/key.pem")


def _local_cluster_node_ip() -> list[str]:
    settings = (Path(__file__).resolve().parents[1] / "build/cluster/lib.sh").read_text()
    match = re.search(r"^NODE_IP=(\S+)$", settings, re.MULTILINE)
    return [match.group(1)] if match else []


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)


def _issue(directory: Path, ca: str, cert: str, key: str, extensions: list[str]) -> None:
    """Sign a new P-256 key by `ca` (its .pem and -key.pem) into `cert` and `key`."""
    _openssl(directory, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-subj", f"/CN={cert.replace('/', ' ')}", "-days", "2",
             "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem", "-out", cert,
             "-addext", "basicConstraints=critical,CA:FALSE",
             *[arg for extension in extensions for arg in ("-addext", extension)])


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    directory = tmp_path_factory.mktemp("tls")
    (directory / "stranger").mkdir()
    for ca in ("ca", "stranger/ca"):
        _openssl(directory, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{ca}-key.pem",
                 "-subj", f"/CN=kubedock test {ca.replace('/', ' ')}", "-days", "2",
                 "-out", f"{ca}.pem")
    # Every address of this host: pods reach a server on the node's address, which exists
    # only once the local cluster runs (maybe later in the session), so it is named too.
    host = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True)
    addresses = list(dict.fromkeys(["127.0.0.1", *_local_cluster_node_ip(),
                                    *host.stdout.split()]))
    names = ",".join([*(f"IP:{address}" for address in addresses), "DNS:localhost"])
    _issue(directory, "ca", "server-cert.pem", "server-key.pem",
           [f"subjectAltName={names}", "extendedKeyUsage=serverAuth"])
    _issue(directory, "ca", "cert.pem", "key.pem", ["extendedKeyUsage=clientAuth"])
    _issue(directory, "stranger/ca", "stranger/cert.pem", "stranger/key.pem",
           ["extendedKeyUsage=clientAuth"])
    return TLSFiles(directory)
