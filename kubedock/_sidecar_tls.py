"""The Docker socket sidecars' identity when the API serves TLS: one client certificate per
kubedock instance, made at start and never written to kubedock's disk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs

from .podside import CLIENT_CERT, CLIENT_KEY, SERVER_CERT

# Longer than any kubedock instance is expected to run; a restart makes a new one.
_VALIDITY = timedelta(days=365)


@attrs.frozen
class SidecarIdentity:
    certificate: str  # PEM; the API trusts it as a client certificate
    files: dict[str, str]  # what the sidecar's --tls-dir holds (a Secret per pod)


def new_sidecar_identity(instance_id: str, server_cert_file: str) -> SidecarIdentity:
    """A self-signed client certificate and key for this instance's sidecars, which trust
    exactly kubedock's own certificate (read from `server_cert_file`)."""
    # Imported here: only a server with TLS pays for loading it.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"kubedock-dind-{instance_id}")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))  # clocks of nodes differ a little
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return SidecarIdentity(pem, {
        CLIENT_CERT: pem, CLIENT_KEY: key_pem, SERVER_CERT: Path(server_cert_file).read_text(),
    })
