"""The GracefulPolicy CRD on a real API server: bad policies rejected, good ones defaulted.

Every spec in tests/cases/policies/invalid.yaml is applied with kubectl and
must be refused with a message naming the field; the same table is checked
against the pydantic models in tests/unit/test_policy.py, so the two agree.
The ClusterGracefulPolicy CRD, derived from it, must refuse the same specs
with the same messages and list with the same columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from graceful.core import GracefulPolicy, PolicySpec, WorkloadResult, summarize
from graceful.core.findings import Finding, FindingCode
from tests.cases import InvalidPolicy, load_invalid_policies
from tests.conftest import Kubectl

pytestmark = pytest.mark.e2e

CRD = Path(__file__).resolve().parents[2] / "crds" / "gracefulpolicy.yaml"
INVALID = load_invalid_policies()


@pytest.fixture(scope="module")
def crd(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(CRD))
    kubectl("wait", "--for", "condition=established", "--timeout=60s",
            "crd/gracefulpolicies.graceful.io")


def apply(kubectl: Kubectl, namespace: str, obj: dict[str, Any], check: bool = True) -> Any:
    return kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj), check=check)


def get(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    out = kubectl("get", "gracefulpolicy", name, "-n", namespace, "-o", "json").stdout
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.mark.parametrize("bad", INVALID, ids=[b.name for b in INVALID])
def test_bad_policy_is_rejected_naming_the_field(
        crd: None, kubectl: Kubectl, namespace: str, bad: InvalidPolicy) -> None:
    proc = apply(kubectl, namespace, bad.object(), check=False)
    message = proc.stderr
    assert proc.returncode != 0, f"{bad.name} was accepted:\n{proc.stdout}"
    assert bad.field in message, message
    assert bad.server in message, message
    listed = kubectl("get", "gracefulpolicies", "-n", namespace, "-o", "name").stdout
    assert listed.strip() == ""


def test_good_policy_is_accepted_with_defaults(
        crd: None, kubectl: Kubectl, namespace: str) -> None:
    apply(kubectl, namespace, {"apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
                               "metadata": {"name": "workers"}})
    stored = get(kubectl, namespace, "workers")
    assert stored["spec"] == PolicySpec().model_dump(
        by_alias=True, exclude_none=True,
        exclude={"containers": True, "proxy_containers": True,
                 "drain": {"platform_limits"}})  # empty lists: absent
    policy = GracefulPolicy.from_object(stored)
    assert policy.spec.default_grace_period() == 40
    by_short_name = kubectl("get", "gp", "-n", namespace).stdout.splitlines()
    assert by_short_name[0].split() == ["NAME", "MODE", "TIMEOUT", "GRACE", "MATCHED",
                                        "COMPLIANT", "MISMATCHED", "AGE"]
    assert by_short_name[1].split()[:3] == ["workers", "Enforce", "30"]


def test_full_policy_round_trips(crd: None, kubectl: Kubectl, namespace: str) -> None:
    spec = {"mode": "Audit", "selector": {"matchLabels": {"tier": "worker"}, "matchExpressions": [
        {"key": "team", "operator": "Exists"}]}, "gracefulTimeoutSeconds": 3600,
        "drain": {"preStopSleepSeconds": 10, "safetyMarginSeconds": 20,
                  "maxGracePeriodSeconds": 7200, "preStopAction": "Exec", "batchPreStop": True,
                  "setProxyDrain": True,
                  "platformLimits": [{"name": "cluster-autoscaler", "seconds": 600}]},
        "readiness": {"periodSeconds": 2, "failureThreshold": 5},
        "containers": ["app", "worker"], "proxyContainers": ["auth-proxy"],
        "userValues": "Overwrite"}
    apply(kubectl, namespace, {"apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
                               "metadata": {"name": "full"}, "spec": spec})
    stored = get(kubectl, namespace, "full")
    assert stored["spec"] == spec
    assert GracefulPolicy.from_object(stored).to_object()["spec"] == spec


def test_summarize_output_is_a_valid_status(crd: None, kubectl: Kubectl, namespace: str) -> None:
    apply(kubectl, namespace, {"apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
                               "metadata": {"name": "workers"}})
    policy = GracefulPolicy.from_object(get(kubectl, namespace, "workers"))
    results = [WorkloadResult("Deployment", f"w{i:03d}", [
        Finding(FindingCode.GracePeriodBelowBudget, "grace period 30s < budget 40s" + "!" * 300)])
        for i in range(60)] + [WorkloadResult("StatefulSet", "ok")]
    status = summarize(policy, results, now=datetime(2026, 1, 1, tzinfo=UTC))
    kubectl("patch", "gracefulpolicy", "workers", "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps({"status": status}))
    stored = get(kubectl, namespace, "workers")
    assert stored["status"] == status
    row = kubectl("get", "gp", "workers", "-n", namespace, "--no-headers").stdout.split()
    assert row[:7] == ["workers", "Enforce", "30", "40", "61", "1", "60"]


# --- ClusterGracefulPolicy: the same validation and columns, cluster-scoped -----------------

CLUSTER_CRD = CRD.parent / "clustergracefulpolicy.yaml"
EVERY_NAMESPACE = {"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                                         "operator": "Exists"}]}


@pytest.fixture(scope="module")
def cluster_crd(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(CLUSTER_CRD))
    kubectl("wait", "--for", "condition=established", "--timeout=60s",
            "crd/clustergracefulpolicies.graceful.io")


def cluster_policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "graceful.io/v1alpha1", "kind": "ClusterGracefulPolicy",
            "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def cluster_name(kubectl: Kubectl) -> Iterator[str]:
    """A ClusterGracefulPolicy name for one test; whatever got that name is deleted after."""
    name = f"cgp-{datetime.now(UTC).strftime('%H%M%S%f')}"
    yield name
    kubectl("delete", "cgp", name, "--ignore-not-found", check=False)


@pytest.mark.parametrize("bad", INVALID, ids=[b.name for b in INVALID])
def test_bad_cluster_policy_is_rejected_naming_the_field(
        cluster_crd: None, kubectl: Kubectl, cluster_name: str, bad: InvalidPolicy) -> None:
    obj = cluster_policy(cluster_name, {"namespaceSelector": EVERY_NAMESPACE, **bad.spec})
    proc = kubectl("apply", "-f", "-", input=yaml.safe_dump(obj), check=False)
    assert proc.returncode != 0, f"{bad.name} was accepted:\n{proc.stdout}"
    assert bad.field in proc.stderr, proc.stderr
    assert bad.server in proc.stderr, proc.stderr


def test_cluster_policy_needs_a_namespace_selector(cluster_crd: None, kubectl: Kubectl,
                                                   cluster_name: str) -> None:
    proc = kubectl("apply", "-f", "-", input=yaml.safe_dump(cluster_policy(cluster_name, {})),
                   check=False)
    assert proc.returncode != 0 and "spec.namespaceSelector: Required value" in proc.stderr, (
        proc.stderr)


def test_cluster_policy_is_defaulted_and_listed_like_a_policy(
        cluster_crd: None, kubectl: Kubectl, cluster_name: str) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(
        cluster_policy(cluster_name, {"namespaceSelector": EVERY_NAMESPACE})))
    stored = json.loads(kubectl("get", "cgp", cluster_name, "-o", "json").stdout)
    assert "namespace" not in stored["metadata"]
    policy = GracefulPolicy.from_object(stored)
    assert policy.cluster and policy.reference == f"cluster/{cluster_name}"
    assert policy.spec.default_grace_period() == 40  # the same defaults as a GracefulPolicy
    status = {"matched": 2, "compliant": 1, "mismatched": 1, "gracePeriodSeconds": 40,
              "mismatches": [{"kind": "Deployment", "name": "api", "namespace": "team-a",
                              "reasons": ["GracePeriodBelowBudget: 30s < budget 40s"]}]}
    kubectl("patch", "cgp", cluster_name, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}))
    lines = kubectl("get", "cgp", cluster_name).stdout.splitlines()
    assert lines[0].split() == ["NAME", "MODE", "TIMEOUT", "GRACE", "MATCHED", "COMPLIANT",
                                "MISMATCHED", "AGE"]
    assert lines[1].split()[:7] == [cluster_name, "Enforce", "30", "40", "2", "1", "1"]
    # a mismatch of a cluster policy says where it is
    del status["mismatches"][0]["namespace"]
    proc = kubectl("patch", "cgp", cluster_name, "--subresource=status", "--type=merge",
                   "-p", json.dumps({"status": status}), check=False)
    assert proc.returncode != 0 and "namespace: Required value" in proc.stderr, proc.stderr
