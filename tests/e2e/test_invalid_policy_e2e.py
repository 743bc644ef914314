"""An invalid policy's status through the real API server: the GRACE column is cleared.

The operator writes status with a JSON merge patch, which leaves alone every
key it does not mention. The status of an invalid policy therefore names
``gracePeriodSeconds`` with null, and the API server removes it, so
``kubectl get gp`` stops showing the grace period of the policy's last valid
spec.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from graceful.operator.audit import PolicyEntry, invalid_status
from tests.conftest import Kubectl

pytestmark = pytest.mark.e2e

CRD = Path(__file__).resolve().parents[2] / "crds" / "gracefulpolicy.yaml"


def test_the_status_of_an_invalid_policy_clears_its_grace_column(kubectl: Kubectl,
                                                                  namespace: str) -> None:
    kubectl("apply", "-f", str(CRD))
    kubectl("wait", "--for", "condition=established", "--timeout=60s",
            "crd/gracefulpolicies.graceful.io")
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
        "metadata": {"name": "apps", "namespace": namespace},
        "spec": {"mode": "Audit"}}))
    kubectl("patch", "gp", "apps", "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"gracePeriodSeconds": 45, "matched": 0}}))
    assert "45" in kubectl("get", "gp", "apps", "-n", namespace, "--no-headers").stdout.split()

    entry = PolicyEntry(name="apps", namespace=namespace, uid="", generation=1, policy=None,
                        error="spec.drain.maxGracePeriodSeconds: too small")
    status = invalid_status(entry, datetime(2030, 1, 1, tzinfo=UTC))
    kubectl("patch", "gp", "apps", "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}))

    stored = json.loads(kubectl("get", "gp", "apps", "-n", namespace, "-o", "json").stdout)
    assert "gracePeriodSeconds" not in stored["status"], stored["status"]
    assert stored["status"]["conditions"][0]["reason"] == "InvalidPolicy"
    header, row = kubectl("get", "gp", "apps", "-n", namespace).stdout.splitlines()
    start, end = header.index("GRACE"), header.index("MATCHED")
    assert row[start:end].strip() == "", f"GRACE still shown:\n{header}\n{row}"
