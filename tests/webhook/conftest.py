"""Builders shared by the webhook tests: reviews, policies, workloads, an app."""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jsonpatch
import pytest
from fastapi.testclient import TestClient

from graceful.core import GracefulPolicy
from graceful.webhook.app import create_app
from graceful.webhook.cache import PolicyCache
from graceful.webhook.review import AdmissionResponse, AdmissionReview
from graceful.webhook.server import WebhookServer

NAMESPACE = "team-a"

GVK = {
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "Pod": ("", "v1", "pods"),
}


def policy_object(name: str = "workers", namespace: str = NAMESPACE,
                  **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
            "spec": spec}


def policy(name: str = "workers", namespace: str = NAMESPACE, **spec: Any) -> GracefulPolicy:
    return GracefulPolicy.from_object(policy_object(name, namespace, **spec))


def deployment(name: str = "worker", *, annotations: dict[str, str] | None = None,
               containers: int = 1, kind: str = "Deployment") -> dict[str, Any]:
    template = {
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": f"app{i}" if i else "app",
                                 "image": "registry.example/app:1"}
                                for i in range(containers)]},
    }
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "annotations": dict(annotations or {})},
                "spec": template["spec"]}
    return {
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name, "annotations": dict(annotations or {})},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": template},
    }


def opted_in(name: str = "worker", timeout: str = "60", **kwargs: Any) -> dict[str, Any]:
    return deployment(name, annotations={"graceful.io/policy": "workers",
                                         "graceful.io/graceful-timeout": timeout}, **kwargs)


def review_dict(obj: dict[str, Any] | None, *, operation: str = "CREATE",
                namespace: str = NAMESPACE, uid: str | None = None, kind: str | None = None,
                dry_run: bool = False, old: dict[str, Any] | None = None,
                sub_resource: str | None = None) -> dict[str, Any]:
    kind = kind or (obj or {}).get("kind", "Deployment")
    group, version, resource = GVK.get(kind, ("example.com", "v1", "things"))
    metadata = (obj or {}).get("metadata")
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "name": metadata.get("name", "") if isinstance(metadata, dict) else "",
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def review(obj: dict[str, Any] | None, **kwargs: Any) -> AdmissionReview:
    return AdmissionReview.model_validate(review_dict(obj, **kwargs))


def decode_patch(response: AdmissionResponse | dict[str, Any]) -> list[dict[str, Any]]:
    data = response if isinstance(response, dict) else response.model_dump(by_alias=True)
    if data.get("patch") is None:
        assert data.get("patchType") is None
        return []
    assert data["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(data["patch"]))
    assert isinstance(ops, list) and ops, "an empty patch must be omitted"
    return ops


def patched(obj: dict[str, Any], response: AdmissionResponse | dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(obj), decode_patch(response))
    return result


@pytest.fixture
def cache() -> PolicyCache:
    return PolicyCache.of([policy()])


@pytest.fixture
def client(cache: PolicyCache) -> Iterator[TestClient]:
    with TestClient(create_app(cache)) as test_client:
        yield test_client


def start_in_thread(server: WebhookServer) -> threading.Thread:
    """Run ``server`` in a daemon thread and return once it listens (at most 10 s).

    The caller stops it: ``server.stop()``, then ``thread.join()``.
    """
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    return thread
