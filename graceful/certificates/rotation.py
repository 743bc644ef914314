"""The webhook's certificates: what the Secret should hold, decided without I/O.

Why the operator keeps a CA at all: the API server calls the webhook over TLS
and trusts only the ``caBundle`` of the MutatingWebhookConfiguration. A
certificate signed by a private CA, with that CA in the ``caBundle``, needs no
cluster-wide or public trust and nothing installed besides this product.

The Secret (``graceful-webhook-tls``, type ``kubernetes.io/tls``) holds:

``tls.crt``, ``tls.key``
    the serving certificate and its key, mounted by the webhook's Pods;
``ca.crt``
    every CA the webhook configuration must trust right now (one, or two
    during a CA rotation), PEM concatenated: this is the ``caBundle``;
``ca.key``
    the key of the newest CA, the one that signs serving certificates. It
    lives in the same Secret because the operator's RBAC names only that
    Secret; the webhook's Pods see it too, which gives them nothing they do
    not have already (their own serving key is what the API server trusts).

Rotation, decided from the Secret alone (so a restart or a new leader takes
the same decision, and a still-valid certificate is never rotated twice):

- the serving certificate is renewed when less than a third of its lifetime
  remains, or when it does not cover the Service's names, or does not match
  its key, or was not signed by a CA in the bundle;
- the signing CA is renewed when less than a third of *its* lifetime remains:
  a new CA is *added* to the bundle and becomes the signer, the old one stays
  trusted until it expires (its key is dropped: it signs nothing any more);
- a serving certificate from the old CA is replaced by one from the new CA
  only once the webhook configuration already trusts the new CA (the caller
  passes the CAs that every webhook's ``caBundle`` contains). Until then the
  old certificate keeps being served, and both CAs are trusted: no admission
  request fails during a rotation;
- a Secret whose CA part is unusable (missing, unparseable, a key that matches
  no CA in ``ca.crt``) is replaced as a whole, and the decision says why.

Keys are ECDSA P-256: generated in a millisecond, accepted by every API
server and by the webhook's TLS server.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from graceful.certificates import issuer

#: The Secret's keys.
TLS_CRT: Final = "tls.crt"
TLS_KEY: Final = "tls.key"
CA_CRT: Final = "ca.crt"
CA_KEY: Final = "ca.key"
SECRET_TYPE: Final = "kubernetes.io/tls"  # noqa: S105 (a type, not a password)

#: Certificates are valid from this long before they were made: clocks of the
#: operator, the webhook and the API server need not agree to the second.
BACKDATE: Final = dt.timedelta(minutes=5)
#: Renew when less than this fraction of the lifetime remains.
RENEW_FRACTION: Final = 1 / 3

CA_COMMON_NAME: Final = "graceful-webhook-ca"

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class LifetimeError(ValueError):
    """A lifetime the operator does not accept; the message says why."""


_LIFETIME = re.compile(r"(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?"
                       r"(?:(?P<s>[0-9]+)s)?")


def parse_lifetime(text: str) -> dt.timedelta:
    """``"90d"``, ``"8760h"``, ``"1h30m"``, ``"45s"`` or whole seconds, as a positive timedelta."""
    value = text.strip()
    if value.isascii() and value.isdigit():
        seconds = int(value)
    else:
        match = _LIFETIME.fullmatch(value) if value.isascii() and len(value) <= 32 else None
        if match is None or not any(match.groupdict().values()):
            raise LifetimeError(f"{text!r}: expected a duration like 90d, 8760h, 30m or 45s")
        d, h, m, s = (int(match.group(g) or 0) for g in ("d", "h", "m", "s"))
        seconds = ((d * 24 + h) * 60 + m) * 60 + s
    if seconds <= 0:
        raise LifetimeError(f"{text!r}: must be positive")
    if seconds > 100 * 365 * 86400:
        raise LifetimeError(f"{text!r}: longer than 100 years")
    return dt.timedelta(seconds=seconds)


def service_hosts(service: str, namespace: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The names the API server may use for the Service, then ``extra`` (DNS names or IPs)."""
    names = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
             f"{service}.{namespace}.svc.cluster.local", *extra]
    return tuple(dict.fromkeys(name.strip() for name in names if name.strip()))


@dataclass(frozen=True)
class CertificatePolicy:
    """What the operator wants the Secret to hold."""

    hosts: tuple[str, ...]
    """Subject alternative names of the serving certificate (DNS names or IP addresses)."""
    serving_lifetime: dt.timedelta = dt.timedelta(days=90)
    ca_lifetime: dt.timedelta = dt.timedelta(days=365 * 3)

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("the serving certificate needs at least one name")
        if self.serving_lifetime <= dt.timedelta(0):
            raise ValueError("the serving certificate lifetime must be positive")
        if self.ca_lifetime < 3 * self.serving_lifetime:
            # The signing CA always has a third of its lifetime left (else it is renewed
            # first), so a serving certificate is never cut short by its CA's expiry.
            raise ValueError("the CA lifetime must be at least 3 times the serving"
                             " certificate lifetime")

    @property
    def serving_renew_before(self) -> dt.timedelta:
        return self.serving_lifetime * RENEW_FRACTION

    @property
    def ca_renew_before(self) -> dt.timedelta:
        return self.ca_lifetime * RENEW_FRACTION


# --- reading what is there -----------------------------------------------------------------


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, hex: how two copies of a CA are recognised as one."""
    return cert.fingerprint(hashes.SHA256()).hex()


def _public_der(key: Any) -> bytes:
    der: bytes = key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def key_matches(cert: x509.Certificate, key: SigningKey) -> bool:
    return _public_der(cert.public_key()) == _public_der(key.public_key())


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM blob; an empty list if there is none or it does not parse."""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        return []
    try:
        return list(x509.load_pem_x509_certificates(pem))
    except ValueError:
        return []


def load_key(pem: bytes) -> SigningKey | None:
    """An unencrypted EC or RSA private key, or None."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) else None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def cert_hosts(cert: x509.Certificate) -> set[str]:
    """The DNS names and IP addresses a certificate is valid for."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    names.update(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    return names


def _wanted_hosts(hosts: Iterable[str]) -> set[str]:
    wanted = set()
    for host in hosts:
        try:
            wanted.add(str(ipaddress.ip_address(host)))
        except ValueError:
            wanted.add(host.lower())
    return wanted


def _serves_tls(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True  # no restriction
    return ExtendedKeyUsageOID.SERVER_AUTH in usages


def _describe(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common = str(names[0].value) if names else "(no common name)"
    return f"{common} ({fingerprint(cert)[:12]})"


@dataclass(frozen=True)
class Stored:
    """The Secret's data, parsed; ``problems`` say what cannot be used."""

    bundle: tuple[x509.Certificate, ...] = ()
    """The CAs of ``ca.crt`` that are CAs, in order."""
    signer: x509.Certificate | None = None
    """The CA of the bundle whose key is ``ca.key``."""
    signer_key: SigningKey | None = None
    serving: x509.Certificate | None = None
    serving_key_pem: bytes = b""
    serving_pem: bytes = b""
    problems: tuple[str, ...] = ()
    """Why the CA part is unusable: the Secret must be replaced as a whole."""
    serving_problems: tuple[str, ...] = ()
    """Why the serving pair is unusable (independently of its age)."""
    dropped: tuple[str, ...] = ()
    """Certificates of ``ca.crt`` that are not CAs (they are left out)."""

    @property
    def usable(self) -> bool:
        return not self.problems


def decode_data(data: Mapping[str, Any] | None) -> dict[str, bytes]:
    """A Secret's ``data`` (base64 values) as bytes; undecodable values are left out."""
    decoded: dict[str, bytes] = {}
    for key, value in (data or {}).items():
        if isinstance(value, str):
            try:
                decoded[key] = base64.b64decode(value, validate=True)
            except ValueError:
                continue
    return decoded


def encode_data(files: Mapping[str, bytes]) -> dict[str, str]:
    return {key: base64.b64encode(value).decode("ascii") for key, value in sorted(files.items())}


def inspect(files: Mapping[str, bytes], hosts: Iterable[str], now: dt.datetime) -> Stored:
    """Parse and check the Secret's files against the Service's names at ``now``."""
    problems: list[str] = []
    dropped: list[str] = []
    bundle: list[x509.Certificate] = []
    for cert in load_certificates(files.get(CA_CRT, b"")):
        if _is_ca(cert):
            bundle.append(cert)
        else:
            dropped.append(_describe(cert))
    if not bundle:
        problems.append(f"{CA_CRT}: no CA certificate" if CA_CRT in files else f"no {CA_CRT}")
    signer_key = load_key(files[CA_KEY]) if CA_KEY in files else None
    signer = None
    if signer_key is None:
        problems.append(f"{CA_KEY}: not an EC or RSA private key" if CA_KEY in files
                        else f"no {CA_KEY}")
    else:
        signer = next((ca for ca in reversed(bundle) if key_matches(ca, signer_key)), None)
        if signer is None and bundle:
            problems.append(f"{CA_KEY} matches no CA in {CA_CRT}")
    if signer is not None and now >= signer.not_valid_after_utc:
        problems.append(f"the CA {_describe(signer)} expired at {signer.not_valid_after_utc}")

    serving_problems: list[str] = []
    serving_pem = files.get(TLS_CRT, b"")
    key_pem = files.get(TLS_KEY, b"")
    chain = load_certificates(serving_pem)
    serving = chain[0] if chain else None
    serving_key = load_key(key_pem) if key_pem else None
    if serving is None:
        serving_problems.append(f"{TLS_CRT}: no certificate" if serving_pem else f"no {TLS_CRT}")
    else:
        if serving_key is None:
            serving_problems.append(f"{TLS_KEY}: no usable private key")
        elif not key_matches(serving, serving_key):
            serving_problems.append(f"{TLS_KEY} does not match {TLS_CRT}")
        if not any(issued_by(serving, ca) for ca in bundle):
            serving_problems.append(f"{TLS_CRT} was not signed by a CA in {CA_CRT}")
        if now >= serving.not_valid_after_utc:
            serving_problems.append(f"{TLS_CRT} expired at {serving.not_valid_after_utc}")
        elif now < serving.not_valid_before_utc:
            serving_problems.append(f"{TLS_CRT} is not valid before"
                                    f" {serving.not_valid_before_utc}")
        missing = sorted(_wanted_hosts(hosts) - cert_hosts(serving))
        if missing:
            serving_problems.append(f"{TLS_CRT} does not cover {', '.join(missing)}")
        if _is_ca(serving) or not _serves_tls(serving):
            serving_problems.append(f"{TLS_CRT} is not a TLS server certificate")
    return Stored(bundle=tuple(bundle), signer=signer if not problems else None,
                  signer_key=signer_key if not problems else None, serving=serving,
                  serving_key_pem=key_pem, serving_pem=serving_pem, problems=tuple(problems),
                  serving_problems=tuple(serving_problems), dropped=tuple(dropped))


# --- deciding -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What to change in the Secret, and why; nothing when ``changed`` is False."""

    replace: bool = False
    """Start over: a new CA alone in the bundle, a new serving certificate."""
    new_ca: bool = False
    """Add a new signing CA to the bundle (the old ones stay until they expire)."""
    drop: tuple[str, ...] = ()
    """Fingerprints of CAs to take out of the bundle (expired)."""
    tidy: bool = False
    """Rewrite ``ca.crt`` without the certificates in it that are not CAs."""
    reissue: bool = False
    """Sign a new serving certificate with the (possibly new) signing CA."""
    waiting: bool = False
    """A new serving certificate is due but waits until the configuration trusts the new CA."""
    reasons: tuple[str, ...] = ()
    next_check: dt.datetime | None = None
    """When this decision may change by the passing of time alone."""

    @property
    def changed(self) -> bool:
        return self.replace or self.new_ca or self.reissue or self.tidy or bool(self.drop)


def decide(stored: Stored | None, policy: CertificatePolicy, now: dt.datetime, *,
           trusted: frozenset[str] | None) -> Decision:
    """What the Secret needs at ``now``.

    ``stored`` is None when there is no Secret. ``trusted`` holds the
    fingerprints of the CAs that every webhook of the configuration trusts, or
    None when there is no configuration to wait for.
    """
    if stored is None:
        return Decision(replace=True, reasons=("no Secret yet",),
                        next_check=now + policy.serving_lifetime - policy.serving_renew_before)
    if not stored.usable:
        return Decision(replace=True, reasons=stored.problems,
                        next_check=now + policy.serving_lifetime - policy.serving_renew_before)
    assert stored.signer is not None
    reasons: list[str] = [f"{CA_CRT}: left out {name}: not a CA" for name in stored.dropped]
    checks: list[dt.datetime] = []

    drop = tuple(fingerprint(ca) for ca in stored.bundle
                 if ca is not stored.signer and now >= ca.not_valid_after_utc)
    if drop:
        reasons.append(f"{len(drop)} expired CA(s) left the bundle")
    checks.extend(ca.not_valid_after_utc for ca in stored.bundle
                  if ca is not stored.signer and now < ca.not_valid_after_utc)

    ca_due = stored.signer.not_valid_after_utc - policy.ca_renew_before
    new_ca = now >= ca_due
    if new_ca:
        reasons.append(f"the CA expires at {stored.signer.not_valid_after_utc}: a new CA"
                       " joins the bundle")
    else:
        checks.append(ca_due)

    reissue_why: list[str] = list(stored.serving_problems)
    serving = stored.serving
    if serving is not None and not stored.serving_problems:
        serving_due = serving.not_valid_after_utc - policy.serving_renew_before
        if now >= serving_due:
            reissue_why.append(f"{TLS_CRT} expires at {serving.not_valid_after_utc}")
        else:
            checks.append(serving_due)
        if not issued_by(serving, stored.signer):
            reissue_why.append(f"{TLS_CRT} was signed by a previous CA")
    usable_now = serving is not None and not stored.serving_problems
    waiting = False
    if reissue_why:
        # The certificate will be signed by the newest CA: if the configuration does not
        # trust that one yet and the current certificate still works, keep serving it.
        signer_print = "(new)" if new_ca else fingerprint(stored.signer)
        published = trusted is None or signer_print in trusted
        if usable_now and not published:
            waiting = True
            reasons.append(f"{'; '.join(reissue_why)}: waiting until the webhook configuration"
                           " trusts the new CA")
        else:
            reasons.extend(reissue_why)
    reissue = bool(reissue_why) and not waiting
    return Decision(new_ca=new_ca, drop=drop, tidy=bool(stored.dropped), reissue=reissue,
                    waiting=waiting,
                    reasons=tuple(reasons), next_check=min(checks) if checks else None)


# --- making -----------------------------------------------------------------------------


def _pem_key(key: SigningKey) -> bytes:
    return issuer.key_pem(key)


def _pem_cert(cert: x509.Certificate) -> bytes:
    return issuer.cert_pem(cert)


def new_ca(now: dt.datetime, lifetime: dt.timedelta) -> tuple[x509.Certificate,
                                                                 ec.EllipticCurvePrivateKey]:
    """A self-signed CA valid from ``now - BACKDATE`` to ``now + lifetime``."""
    subject = issuer.name(f"{CA_COMMON_NAME}@{int(now.timestamp())}", ["graceful-operator"])
    return issuer.self_signed_ca(subject, not_before=now - BACKDATE, not_after=now + lifetime)


def new_serving(ca: x509.Certificate, ca_key: SigningKey, hosts: Iterable[str],
                now: dt.datetime, lifetime: dt.timedelta) -> tuple[bytes, bytes]:
    """A serving certificate (PEM) for ``hosts`` and its key (PEM), never outliving ``ca``."""
    hosts = list(hosts)
    cert, key = issuer.issue(ca, ca_key, issuer.name(hosts[0][:64]), hosts=hosts, server=True,
                             not_before=max(now - BACKDATE, ca.not_valid_before_utc),
                             not_after=min(now + lifetime, ca.not_valid_after_utc))
    return _pem_cert(cert), _pem_key(key)


def render(stored: Stored | None, decision: Decision, policy: CertificatePolicy,
           now: dt.datetime) -> dict[str, bytes]:
    """The Secret's files after ``decision`` (new keys are generated here)."""
    if stored is None or decision.replace or stored.signer is None or stored.signer_key is None:
        ca, ca_key = new_ca(now, policy.ca_lifetime)
        cert_pem, key_pem = new_serving(ca, ca_key, policy.hosts, now, policy.serving_lifetime)
        return {TLS_CRT: cert_pem, TLS_KEY: key_pem, CA_CRT: _pem_cert(ca),
                CA_KEY: _pem_key(ca_key)}
    bundle = [ca for ca in stored.bundle if fingerprint(ca) not in decision.drop]
    signer: x509.Certificate = stored.signer
    signer_key: SigningKey = stored.signer_key
    if decision.new_ca:
        signer, signer_key = new_ca(now, policy.ca_lifetime)
        bundle.append(signer)
    cert_pem, key_pem = stored.serving_pem, stored.serving_key_pem
    if decision.reissue:
        cert_pem, key_pem = new_serving(signer, signer_key, policy.hosts, now,
                                        policy.serving_lifetime)
    return {TLS_CRT: cert_pem, TLS_KEY: key_pem,
            CA_CRT: b"".join(_pem_cert(ca) for ca in bundle), CA_KEY: _pem_key(signer_key)}


# --- the webhook configuration ------------------------------------------------------------------


def _bundle_of(webhook: Mapping[str, Any]) -> bytes:
    value = (webhook.get("clientConfig") or {}).get("caBundle") or ""
    try:
        return base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except ValueError:
        return b""


def trusted_by(configuration: Mapping[str, Any] | None) -> frozenset[str] | None:
    """Fingerprints of the CAs that *every* webhook of the configuration trusts.

    None for no configuration (nobody to wait for); empty when a webhook
    trusts nothing yet.
    """
    if configuration is None:
        return None
    webhooks = configuration.get("webhooks") or []
    sets = [frozenset(fingerprint(c) for c in load_certificates(_bundle_of(w)))
            for w in webhooks if isinstance(w, Mapping)]
    if not sets:
        return None
    return frozenset.intersection(*sets)


def with_ca_bundle(configuration: Mapping[str, Any], bundle: bytes) -> dict[str, Any] | None:
    """The configuration with ``bundle`` as every webhook's caBundle; None if it already is."""
    webhooks = configuration.get("webhooks") or []
    if all(isinstance(w, Mapping) and _bundle_of(w) == bundle for w in webhooks):
        return None
    encoded = base64.b64encode(bundle).decode("ascii")
    updated = dict(configuration)
    updated["webhooks"] = []
    for webhook in webhooks:
        hook = dict(webhook) if isinstance(webhook, Mapping) else {}
        hook["clientConfig"] = {**(hook.get("clientConfig") or {}), "caBundle": encoded}
        updated["webhooks"].append(hook)
    return updated


@dataclass(frozen=True)
class Summary:
    """A line for the log about what a Secret holds."""

    cas: int
    serving_until: dt.datetime | None
    hosts: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, files: Mapping[str, bytes]) -> Summary:
        chain = load_certificates(files.get(TLS_CRT, b""))
        serving = chain[0] if chain else None
        return cls(cas=len(load_certificates(files.get(CA_CRT, b""))),
                   serving_until=serving.not_valid_after_utc if serving else None,
                   hosts=tuple(sorted(cert_hosts(serving))) if serving else ())

    def __str__(self) -> str:
        return (f"{self.cas} CA(s) in the bundle, serving certificate valid until"
                f" {self.serving_until} for {', '.join(self.hosts)}")


def digest(files: Mapping[str, bytes]) -> str:
    """A short digest of the Secret's files, to recognise an unchanged Secret in logs."""
    h = hashlib.sha256()
    for key in sorted(files):
        h.update(key.encode() + b"\0" + files[key] + b"\0")
    return h.hexdigest()[:12]
