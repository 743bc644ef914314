"""The one X.509 issuer of the project: make a CA, sign a leaf.

Two PKIs use it: the webhook's certificate authority (``rotation``, in
clusters) and the local control plane's throwaway PKI
(``testenv.pki``, in tests). They differ in lifetimes and names,
not in how a certificate is built, so the extensions that make a certificate
acceptable to kube-apiserver and to Python's TLS (basic constraints, key
usage, extended key usage, subject alternative names as DNS or IP, subject
and authority key identifiers) are written once, here.

Keys are ECDSA P-256: generated in milliseconds, and accepted by
kube-apiserver for serving, client and service-account tokens (ES256) alike.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: Any) -> bytes:
    """A private key as unencrypted PKCS#8 PEM."""
    return bytes(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, key_cert_sign=ca, crl_sign=ca,
                         content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, encipher_only=False,
                         decipher_only=False)


def self_signed_ca(subject: x509.Name, *, not_before: dt.datetime, not_after: dt.datetime
                   ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A CA that may sign leaves only (``path_length=0``), and its key."""
    key = new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def subject_alternative_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """Each host as an IP address SAN if it is one, else as a DNS name."""
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    return sans


def issue(ca: x509.Certificate, ca_key: Any, subject: x509.Name, *,
          not_before: dt.datetime, not_after: dt.datetime, hosts: Iterable[str] = (),
          server: bool = False, client: bool = False,
          key_usage: bool = True) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate signed by ``ca`` for ``hosts``, and its new key."""
    key = new_key()
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
    )
    if key_usage:
        builder = builder.add_extension(_key_usage(ca=False), critical=True)
    sans = subject_alternative_names(hosts)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key
