"""TLS 1.2+ from certificate files that may be replaced while the server runs.

Why reload: the serving certificate is short-lived (cert-manager renews it,
the operator may rotate it), and the API server must keep trusting the
webhook across a renewal without a restart of the webhook's Pods.

How: uvicorn is given one *listening* context. Its SNI callback, which
OpenSSL runs on every ClientHello (with or without a server name, and the
API server sends none when it calls an IP), hands the connection the
*current* context. A watcher polls the files' stat every few seconds and, when
they change, builds a new context from them and makes it current. A pair that
does not load (a key and a certificate written one after the other, caught in
between) is ignored until the next poll, so the old certificate keeps being
served. Open connections keep the certificate they were made with; new ones
get the new one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path

log = logging.getLogger(__name__)

#: Oldest protocol accepted: TLS 1.0 and 1.1 are deprecated (RFC 8996).
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class CertificateError(ValueError):
    """The certificate or key files cannot be used; the message says which and why."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context, TLS 1.2 or newer, serving ``cert`` with ``key``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    for path in (cert, key):
        if not Path(path).is_file():
            raise CertificateError(f"{path}: no such file")
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except FileNotFoundError as exc:
        raise CertificateError(f"{exc.filename}: no such file") from None
    except PermissionError as exc:
        raise CertificateError(f"{exc.filename}: permission denied") from None
    except ssl.SSLError as exc:
        raise CertificateError(f"{cert} / {key}: not a matching PEM certificate and key"
                               f" ({exc.reason or exc})") from None
    except OSError as exc:
        raise CertificateError(f"{cert} / {key}: {exc.strerror or exc}") from None
    return context


class ReloadingCertificate:
    """A listening SSLContext whose certificate follows ``cert`` and ``key`` on disk."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert = Path(cert)
        self.key = Path(key)
        self._current = server_context(self.cert, self.key)
        self._stamp = self._stat()
        self.reloads = 0
        """How many times a new certificate was loaded."""
        self.context = server_context(self.cert, self.key)
        """The context to listen with; it hands each handshake the current certificate."""
        self.context.sni_callback = self._select

    def _select(self, connection: ssl.SSLObject, _server_name: str | None,
                _context: ssl.SSLContext) -> None:
        connection.context = self._current

    def _stat(self) -> tuple[tuple[int, int, int], ...] | None:
        """What identifies the files' contents: inode, size, mtime (symlinks followed)."""
        try:
            stats = [os.stat(path) for path in (self.cert, self.key)]
        except OSError:
            return None
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)

    def reload_if_changed(self) -> bool:
        """Load the files if they changed since the last load; True when a new one was loaded."""
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return False
        try:
            context = server_context(self.cert, self.key)
        except CertificateError as exc:  # half-written: keep serving the old one, retry later
            log.warning("certificate not reloaded: %s", exc)
            return False
        self._current = context
        self._stamp = stamp
        self.reloads += 1
        log.info("serving a new certificate from %s", self.cert)
        return True

    async def watch(self, interval: float = 5.0) -> None:
        """Check the files every ``interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.reload_if_changed()
            except Exception:  # the watcher must outlive any surprise
                log.exception("certificate reload failed")
