"""Kubeconfig files and a minimal HTTPS client for the control plane's own checks.

Credentials are embedded (``*-data`` fields) so the file works from any
directory and for every client: kubectl, the official Python client and kopf.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def render(*, name: str, server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes,
           user: str) -> str:
    """A one-cluster, one-user kubeconfig with embedded credentials."""
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name,
             "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}
        ],
        "users": [
            {"name": user,
             "user": {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}}
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


class ApiClient:
    """Just enough HTTPS to wait for readiness without a Kubernetes client library."""

    def __init__(self, server: str, ca: Path, cert: Path, key: Path) -> None:
        self.server = server.rstrip("/")
        self._ctx = ssl.create_default_context(cafile=str(ca))
        self._ctx.load_cert_chain(str(cert), str(key))

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        """``(status, body)``; connection errors are status 0."""
        try:
            with urllib.request.urlopen(  # noqa: S310 - https to our own loopback server
                self.server + path, context=self._ctx, timeout=timeout
            ) as resp:
                return int(resp.status), resp.read().decode(errors="replace")
        except urllib.error.HTTPError as err:
            return int(err.code), err.read().decode(errors="replace")
        except (urllib.error.URLError, OSError, TimeoutError):
            return 0, ""

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        return json.loads(body) if status == 200 else None
