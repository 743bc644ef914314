"""The GracefulPolicy CRD on a real API server: bad policies rejected, good ones defaulted.

Every spec in tests/cases/policies/invalid.yaml is applied with kubectl and
must be refused with a message naming the field; the same table is checked
against the pydantic models in tests/unit/test_policy.py, so the two agree.
"""

from __future__ import annotations

import json
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
