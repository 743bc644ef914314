"""Realistic AdmissionReviews for the load tests: Deployments of 5 to 50 KB.

Real Deployments are large because of env vars, volume mounts, probes and
annotations (last-applied-configuration doubles them). The generator pads with
exactly those, so the webhook parses what it would parse in production.
"""

from __future__ import annotations

import json
import uuid
from typing import Any


def deployment(containers: int, *, target_bytes: int, policy: str = "bench",
               namespace: str = "bench", name: str = "api") -> dict[str, Any]:
    """A Deployment with ``containers`` app containers, padded to about ``target_bytes``."""
    def container(i: int, env_count: int) -> dict[str, Any]:
        return {
            "name": f"app-{i}",
            "image": f"registry.example.com/team/app-{i}:1.{i}.0",
            "command": ["gunicorn"],
            "args": ["app:wsgi", "--bind=0.0.0.0:8000", "--graceful-timeout", "120"],
            "ports": [{"containerPort": 8000 + i, "name": f"http-{i}"}],
            "env": [{"name": f"SETTING_{j}", "value": f"value-{j}-" + "x" * 40}
                    for j in range(env_count)],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8000 + i},
                               "periodSeconds": 10, "failureThreshold": 3},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            "volumeMounts": [{"name": "config", "mountPath": f"/etc/app-{i}"}],
        }

    def build(env_count: int) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name, "namespace": namespace,
                "labels": {"app": name},
                "annotations": {"graceful.io/policy": policy,
                                "graceful.io/graceful-timeout": "3600"},
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [container(i, env_count) for i in range(containers)],
                        "volumes": [{"name": "config", "configMap": {"name": f"{name}-config"}}],
                    },
                },
            },
        }

    # Every env entry adds the same number of bytes: measure it once, then solve for the count.
    one, two = len(json.dumps(build(1))), len(json.dumps(build(2)))
    per_entry = max(1, two - one)
    env_count = max(1, 1 + (target_bytes - one) // per_entry)
    return build(env_count)


def review(obj: dict[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    """Wrap ``obj`` in an admission.k8s.io/v1 AdmissionReview as the API server sends it."""
    kind = obj["kind"]
    group, _, version = obj["apiVersion"].rpartition("/")
    resource = {"Deployment": "deployments", "StatefulSet": "statefulsets",
                "DaemonSet": "daemonsets", "Pod": "pods"}[kind]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": "bench", "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
