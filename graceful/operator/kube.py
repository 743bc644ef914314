"""The operator's own few API calls, and one way to log in for them and for kopf.

kopf watches; the operator itself only writes policy status, creates Events,
lists its Events once per leadership, and keeps its Lease. Those are plain
JSON requests, made here with aiohttp (which kopf already uses) on the same
event loop, so no thread pool and no generated client models are involved.

Credentials come from one place: ``kubernetes.config`` reads the kubeconfig
(or the in-cluster service account) into a ``Configuration``; the same object
gives kopf its ``ConnectionInfo`` (see :func:`connection_info`) and this
client its TLS context and bearer token. The token is read per request
through the configuration, so a rotated service-account token is picked up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
import kopf
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server (or a failed connection: status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class Api(Protocol):
    """The calls the operator makes: :class:`KubeApi`, or a fake in tests."""

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: Mapping[str, str] | None = None,
                      content_type: str = "application/json") -> Any: ...

    async def list_all(self, path: str, *, label_selector: str | None = None,
                       page: int = 500) -> list[dict[str, Any]]: ...

    async def count(self, path: str, *, label_selector: str | None = None,
                    page: int = 500) -> int: ...


def load_configuration(kubeconfig: str | None) -> k8s_client.Configuration:
    """The client configuration: the given kubeconfig, else in-cluster, else the default."""
    cfg = k8s_client.Configuration()
    if kubeconfig:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=cfg, persist_config=False)
        return cfg
    try:
        k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=cfg)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            client_configuration=cfg, persist_config=False)
    return cfg


def _bearer(cfg: k8s_client.Configuration) -> tuple[str | None, str | None]:
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization")
    if not header:
        return None, None
    parts = str(header).split(" ", 1)
    return (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def connection_info(cfg: k8s_client.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials from the same configuration the operator's own client uses."""
    scheme, token = _bearer(cfg)
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert or None,
        insecure=not cfg.verify_ssl,
        username=cfg.username or None,
        password=cfg.password or None,
        scheme=scheme,
        token=token,
        certificate_path=cfg.cert_file or None,
        private_key_path=cfg.key_file or None,
    )


def ssl_context(cfg: k8s_client.Configuration) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file or None)
    if not cfg.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class KubeApi:
    """A minimal JSON client for the API server, bound to one event loop."""

    def __init__(self, cfg: k8s_client.Configuration, *, timeout: float = 10.0,
                 limit: int = 16) -> None:
        self.cfg = cfg
        self.timeout = timeout
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=ssl_context(self.cfg), limit=self.limit)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type,
                   "User-Agent": "graceful-operator"}
        scheme, token = _bearer(self.cfg)
        if token:
            headers["Authorization"] = f"{scheme or 'Bearer'} {token}"
        return headers

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: Mapping[str, str] | None = None,
                      content_type: str = "application/json") -> Any:
        """One request; the decoded JSON answer, or :class:`ApiError`."""
        session = self._open()
        auth = (aiohttp.BasicAuth(self.cfg.username, self.cfg.password or "")
                if self.cfg.username else None)
        data = None if body is None else json.dumps(body)
        try:
            async with session.request(method, self.cfg.host.rstrip("/") + path,
                                       data=data, params=params, auth=auth,
                                       headers=self._headers(content_type)) as response:
                text = await response.text()
                if response.status >= 400:
                    message = text
                    with contextlib.suppress(ValueError, AttributeError):
                        message = json.loads(text).get("message", text)
                    raise ApiError(response.status, str(message)[:500])
                return json.loads(text) if text else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(0, f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc

    async def list_all(self, path: str, *, label_selector: str | None = None,
                       page: int = 500) -> list[dict[str, Any]]:
        """Every item of a list, page by page."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            params = {"limit": str(page)}
            if label_selector:
                params["labelSelector"] = label_selector
            if token:
                params["continue"] = token
            answer = await self.request("GET", path, params=params)
            items.extend(answer.get("items") or [])
            token = (answer.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    async def count(self, path: str, *, label_selector: str | None = None,
                    page: int = 500) -> int:
        """How many objects a list has: the API server's ``remainingItemCount`` when it gives
        one (not with a selector), else counted page by page."""
        params = {"limit": "1"}
        if label_selector:
            params["labelSelector"] = label_selector
        answer = await self.request("GET", path, params=params)
        meta = answer.get("metadata") or {}
        items = len(answer.get("items") or [])
        if not meta.get("continue"):
            return items
        remaining = meta.get("remainingItemCount")
        if isinstance(remaining, int):
            return items + remaining
        return len(await self.list_all(path, label_selector=label_selector, page=page))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
