"""An in-memory stand-in for the few API calls the operator makes.

It keeps Leases with resourceVersions and answers 404/409 like the API server
does, records Events and status patches, keeps objects written by server-side
apply (PolicyReports) and deleted by DELETE, and can be told to fail.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from graceful.operator.kube import ApiError


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.calls: list[tuple[str, str]] = []
        self.down = False
        self.fail: dict[tuple[str, str], int] = {}
        self._version = 0

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: Mapping[str, str] | None = None,
                      content_type: str = "application/json") -> Any:
        self.calls.append((method, path))
        if self.down:
            raise ApiError(0, "connection refused")
        for (m, prefix), status in self.fail.items():
            if m == method and path.startswith(prefix):
                raise ApiError(status, "injected")
        if method == "POST" and path.endswith("/events"):
            self.events.append(copy.deepcopy(body))
            return body
        if method == "PATCH" and path.endswith("/status"):
            self.patches.append((path, copy.deepcopy(body)))
            return body
        if method == "PATCH" and content_type == "application/apply-patch+yaml":
            assert params is not None and params.get("fieldManager")
            stored = copy.deepcopy(body)
            stored["metadata"]["resourceVersion"] = self._next_version()
            self.objects[path] = stored
            return copy.deepcopy(stored)
        if method == "DELETE":
            if self.objects.pop(path, None) is None:
                raise ApiError(404, "not found")
            return {"kind": "Status", "status": "Success"}
        if method == "GET":
            if path not in self.objects:
                raise ApiError(404, "not found")
            return copy.deepcopy(self.objects[path])
        if method == "POST":
            name = body["metadata"]["name"]
            full = f"{path}/{name}"
            if full in self.objects:
                raise ApiError(409, "already exists")
            stored = copy.deepcopy(body)
            stored["metadata"]["resourceVersion"] = self._next_version()
            self.objects[full] = stored
            return copy.deepcopy(stored)
        if method == "PUT":
            current = self.objects.get(path)
            if current is None:
                raise ApiError(404, "not found")
            if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                raise ApiError(409, "the object has been modified")
            stored = copy.deepcopy(body)
            stored["metadata"]["resourceVersion"] = self._next_version()
            self.objects[path] = stored
            return copy.deepcopy(stored)
        raise ApiError(405, f"{method} {path} not faked")

    async def list_all(self, path: str, *, label_selector: str | None = None,
                       page: int = 500) -> list[dict[str, Any]]:
        self.calls.append(("LIST", path))
        if self.down:
            raise ApiError(0, "connection refused")
        key, _, value = (label_selector or "").partition("=")
        if path.endswith("/policyreports"):
            # the cluster-wide path lists every namespace's, as the API server does
            everywhere = "/namespaces/" not in path
            found = [o for p, o in self.objects.items() if "/policyreports/" in p
                     and (everywhere or p.startswith(path + "/"))]
            return [copy.deepcopy(o) for o in found
                    if not key or o["metadata"].get("labels", {}).get(key) == value]
        return [copy.deepcopy(e) for e in self.events
                if not key or e["metadata"].get("labels", {}).get(key) == value]
