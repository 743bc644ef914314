"""A throwaway public-key infrastructure for one local control plane.

Every cluster gets its own CA, so two clusters on one machine never trust each
other's clients, and nothing outlives ``down``. Keys are ECDSA P-256: they are
generated in milliseconds, which keeps a cold start well under a second of
crypto, and kube-apiserver accepts them for serving, client and service-account
tokens (ES256) alike. The same helpers issue the webhook's serving certificate
in tests. Certificates are built by the product's one X.509 issuer
(``graceful.certificates.issuer``), the one the webhook's CA uses too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from graceful.certificates import issuer

_VALIDITY = dt.timedelta(days=7)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, PEM encoded."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``stem.crt`` and ``stem.key`` (mode 0600) and return both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert.write_bytes(self.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(self.key_pem)
        return cert, key


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA that signs serving and client certificates."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, common_name: str = "graceful-testenv-ca") -> CertificateAuthority:
        now = dt.datetime.now(dt.UTC)
        cert, key = issuer.self_signed_ca(issuer.name(common_name),
                                          not_before=now - dt.timedelta(minutes=5),
                                          not_after=now + _VALIDITY)
        return cls(cert=cert, key=key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        *,
        organizations: Iterable[str] = (),
        hosts: Iterable[str] = (),
        server: bool = False,
        client: bool = False,
        validity: dt.timedelta = _VALIDITY,
    ) -> KeyPair:
        """Sign a leaf certificate; ``hosts`` become DNS or IP subject alternative names."""
        now = dt.datetime.now(dt.UTC)
        cert, key = issuer.issue(self.cert, self.key, issuer.name(common_name, organizations),
                                 hosts=hosts, server=server, client=client, key_usage=False,
                                 not_before=now - dt.timedelta(minutes=5),
                                 not_after=now + validity)
        return KeyPair(issuer.cert_pem(cert), issuer.key_pem(key))


def service_account_keys() -> KeyPair:
    """The key pair that signs service-account tokens (cert_pem holds the public key)."""
    key = issuer.new_key()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(public, issuer.key_pem(key))
