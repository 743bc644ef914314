"""The product installed from manifests/ on the real node, as a user installs it.

``kubectl apply -f manifests/`` with nothing edited: both Deployments roll
out (two webhook and two operator replicas, the PDB), the operator writes
the certificate Secret, the API server calls the webhook through its
Service, a Deployment in a namespace with a policy is mutated, and
``kubectl get gracefulpolicies`` shows its row. Deleting webhook Pods during
creates fails nothing (PDB, ``failurePolicy: Ignore``), and the audit reports
whatever slipped through unmutated.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from tests.conftest import Kubectl
from tests.e2e.node.conftest import SYSTEM, apply_objects, get_json, policy, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.node]


def deployment(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace,
                     "annotations": {"graceful.io/policy": "apps",
                                     "graceful.io/graceful-timeout": "20"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 10,
                                       "containers": [{"name": "app",
                                                       "image": "graceful.local/busybox:1"}]}}},
    }


def test_install_rolls_out_and_mutates(installed: dict[str, float], node_kubectl: Kubectl,
                                       node_namespace: str) -> None:
    kubectl = node_kubectl
    for name in ("graceful-webhook", "graceful-operator"):
        deploy = get_json(kubectl, "-n", SYSTEM, "deployment", name)
        assert deploy is not None
        assert deploy["status"].get("readyReplicas") == 2, deploy["status"]
    pdb = get_json(kubectl, "-n", SYSTEM, "pdb")
    assert pdb is not None and len(pdb["items"]) == 1
    pods = get_json(kubectl, "-n", SYSTEM, "pods")
    assert pods is not None
    for pod in pods["items"]:   # the product's own Pods really run non-root and read-only
        assert pod["status"]["phase"] == "Running", pod["status"]
        for container in pod["spec"]["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True

    apply_objects(kubectl, policy(node_namespace, prestop=3, margin=4))
    wait_for(lambda: kubectl("-n", node_namespace, "apply", "--dry-run=server", "-f", "-",
                             input=json.dumps(deployment(node_namespace, "probe")),
                             check=False).returncode == 0, "the policy to be admitted")
    apply_objects(kubectl, deployment(node_namespace, "worker"))
    spec = get_json(kubectl, "-n", node_namespace, "deployment", "worker")
    assert spec is not None
    template = spec["spec"]["template"]["spec"]
    assert template["terminationGracePeriodSeconds"] == 3 + 20 + 4
    assert template["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 3}}

    def row() -> str | None:
        out = kubectl("-n", node_namespace, "get", "gracefulpolicies").stdout
        lines = out.splitlines()
        header, rest = lines[0].split(), [line.split() for line in lines[1:]]
        if not rest:
            return None
        values = dict(zip(header, rest[0], strict=False))
        return out if values.get("MATCHED") == "1" and values.get("COMPLIANT") == "1" else None

    out = wait_for(row, "the operator to report the Deployment in kubectl get gp", timeout=60)
    assert "MODE" in out and "GRACE" in out and "MISMATCHED" in out


def test_deleting_webhook_pods_during_creates_fails_nothing(
    installed: dict[str, float], node_kubectl: Kubectl, node_namespace: str,
) -> None:
    kubectl = node_kubectl
    apply_objects(kubectl, policy(node_namespace, prestop=3, margin=4))
    errors: list[str] = []
    created: list[str] = []
    stop = threading.Event()

    def create_many() -> None:
        for index in range(40):
            if stop.is_set():
                break
            name = f"w{index}"
            proc = kubectl("apply", "-f", "-", input=json.dumps(deployment(node_namespace, name)),
                           check=False)
            if proc.returncode == 0:
                created.append(name)
            else:
                errors.append(f"{name}: {proc.stderr}")

    worker = threading.Thread(target=create_many)
    worker.start()
    try:
        for _ in range(2):   # delete each webhook Pod in turn while creates go on
            pods = get_json(kubectl, "-n", SYSTEM, "pods", "-l",
                            "app.kubernetes.io/name=graceful-webhook")
            assert pods is not None and pods["items"]
            kubectl("-n", SYSTEM, "delete", "pod", pods["items"][0]["metadata"]["name"],
                    "--wait=false")
            kubectl("-n", SYSTEM, "rollout", "status", "deploy/graceful-webhook",
                    "--timeout=120s")
    finally:
        worker.join(timeout=300)
        stop.set()
    assert not errors, errors
    assert len(created) == 40

    def audit_agrees() -> bool:
        gp = get_json(kubectl, "-n", node_namespace, "gracefulpolicy", "apps")
        if gp is None:
            return False
        status = gp.get("status", {})
        unmutated = 0
        for name in created:
            deploy = get_json(kubectl, "-n", node_namespace, "deployment", name)
            assert deploy is not None
            spec = deploy["spec"]["template"]["spec"]
            if spec.get("terminationGracePeriodSeconds") != 27:
                unmutated += 1
        return status.get("matched") == 40 and status.get("mismatched") == unmutated

    wait_for(audit_agrees, "the audit to report exactly the Deployments that slipped through",
             timeout=90, interval=2)
