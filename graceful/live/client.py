"""Read-only access to the API server of the current kubeconfig, with errors a user can act on.

Why the official client (``kubernetes.client.ApiClient``, over urllib3): it is
already a dependency, the webhook's policy cache talks to the API server
through it, and ``kubernetes.config`` already reads kubeconfigs the way
kubectl does (``KUBECONFIG`` with several files, contexts, exec plugins,
client certificates). aiohttp, which the operator uses, would need an event
loop for a one-shot command and nothing more. Objects are fetched as raw JSON
(``_preload_content=False``), never as generated models: the engine reads
manifests' camelCase fields, and a model would drop fields it does not know.

Only ``get`` and ``list`` are sent: the commands work with the RBAC of the
built-in ``view`` ClusterRole plus read access to graceful.io policies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from graceful.live.target import Resource


class LiveError(RuntimeError):
    """Something the user must fix before the cluster can be read; one line, no traceback."""


class Forbidden(LiveError):
    """The credentials may not ``verb`` ``resource``; the message names the missing permission."""

    def __init__(self, verb: str, resource: str, namespace: str | None, detail: str) -> None:
        where = f"in namespace {namespace}" if namespace else "at cluster scope"
        super().__init__(
            f"forbidden: missing permission {verb!r} on {resource!r} {where}"
            f" (the built-in `view` ClusterRole covers workloads and Pods; graceful.io"
            f" policies need a role of their own, see the README): {detail}")
        self.verb, self.resource, self.namespace = verb, resource, namespace


class NotFound(LiveError):
    """The object (or the API of its kind) does not exist."""


_TIMEOUT = (5.0, 30.0)  # connect, read: a dead server is reported in seconds, not minutes


def default_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig's (current or given) context, like kubectl: else default."""
    from kubernetes import config  # noqa: PLC0415 - heavy import, only for live commands

    try:
        contexts, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig)
    except config.ConfigException as exc:
        raise LiveError(_config_problem(kubeconfig, exc)) from None
    chosen = active if context is None else next(
        (c for c in contexts or [] if c.get("name") == context), None)
    if chosen is None:
        raise LiveError(f"context {context!r} not found in the kubeconfig")
    namespace = (chosen.get("context") or {}).get("namespace")
    return str(namespace) if namespace else "default"


def _config_problem(kubeconfig: str | None, exc: Exception) -> str:
    source = kubeconfig or "KUBECONFIG or ~/.kube/config"
    return (f"no usable kubeconfig ({source}): {exc}; pass --kubeconfig FILE, set KUBECONFIG,"
            " or log in to a cluster first")


class Client:
    """GET requests to one API server, answered as JSON objects."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        from kubernetes import client, config  # noqa: PLC0415

        cfg = client.Configuration()
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=cfg,
                persist_config=False)
        except config.ConfigException as exc:
            raise LiveError(_config_problem(kubeconfig, exc)) from None
        except OSError as exc:
            raise LiveError(_config_problem(kubeconfig, exc)) from None
        cfg.retries = 1  # one quick retry; urllib3's default of 3 only delays the error
        self.server: str = cfg.host
        self._api = client.ApiClient(cfg)
        self._exception: type[Exception] = client.ApiException

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def get(self, path: str, *, verb: str, resource: str, namespace: str | None,
            query: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The JSON at ``path``; ``verb``/``resource`` name the permission in a 403's message."""
        import urllib3  # noqa: PLC0415 - the client's transport

        method, url, headers, body, post = self._api.param_serialize(
            "GET", path, query_params=list((query or {}).items()),
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        try:
            response: Any = self._api.call_api(method, url, header_params=headers, body=body,
                                               post_params=post, _request_timeout=_TIMEOUT)
            data = response.read()
        except self._exception as exc:  # the client's name for a TLS failure (status 0)
            raise LiveError(f"cannot reach the API server at {self.server}:"
                            f" {' '.join(str(getattr(exc, 'reason', exc)).split())}") from None
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise LiveError(f"cannot reach the API server at {self.server}: {reason}") from None
        status = response.status
        if status != 200:
            raise self._failure(status, _message(data) or str(response.reason), verb, resource,
                                namespace)
        found: dict[str, Any] = json.loads(data)
        return found

    def _failure(self, status: int, detail: str, verb: str, resource: str,
                 namespace: str | None) -> LiveError:
        if status == 403:
            return Forbidden(verb, resource, namespace, detail)
        if status == 404:
            return NotFound(detail)
        if status == 401:
            return LiveError(f"the API server at {self.server} rejected the credentials"
                             " (401 Unauthorized): log in again or check the kubeconfig's user")
        return LiveError(f"the API server at {self.server} answered {status}: {detail}")

    def list(self, resource: Resource, namespace: str | None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        """Every object of ``resource`` in ``namespace`` (all when None), with kind and apiVersion.

        A list's items carry neither; the engine needs both.
        """
        query = {"labelSelector": label_selector} if label_selector else None
        found = self.get(resource.path(namespace), verb="list", resource=resource.qualified,
                         namespace=namespace, query=query)
        return [{"apiVersion": resource.api_version, "kind": resource.kind, **item}
                for item in found.get("items") or []]

    def read(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        """One object; ``namespace`` None for a cluster-scoped kind (a Namespace)."""
        # RBAC checks a get of Namespace X as a request in namespace X: say so when forbidden
        scope = name if resource.kind == "Namespace" else namespace
        try:
            return self.get(resource.path(namespace, name), verb="get",
                            resource=resource.qualified, namespace=scope)
        except NotFound:
            where = f" in namespace {namespace}" if namespace else ""
            raise NotFound(f"{resource.kind.lower()} {name!r} not found{where}") from None


def _message(body: object) -> str | None:
    """The ``message`` of a Kubernetes Status body, if the body is one."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str):
        return None
    try:
        status = json.loads(body)
    except ValueError:
        return body.strip() or None
    return str(status.get("message")) if isinstance(status, dict) and status.get(
        "message") else None
