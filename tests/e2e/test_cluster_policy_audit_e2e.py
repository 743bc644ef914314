"""A ClusterGracefulPolicy in the operator's audit, against a real kube-apiserver.

What a platform engineer sees in ``kubectl get cgp``: the counts of the
workloads the cluster policy serves in the namespaces it selects, dropping
when a namespaced GracefulPolicy takes workloads over (what the namespace
says wins) and when the namespace is relabelled out of its reach. The
operator is the one of ``test_audit_e2e`` (a subprocess restricted to the
test's namespace); every wait is for the status itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Kubectl
from tests.e2e.test_audit_e2e import (
    PATIENCE,
    Operator,
    apply,
    compliant,
    counts,
    crd,  # noqa: F401
    deployment,
    operator,  # noqa: F401  (fixtures)
    printed_table,
    start_operator,  # noqa: F401
    wait_until,
)

pytestmark = pytest.mark.e2e

WEB = {"tier": "web"}


def labelled(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The Deployment with workload labels a selector can match."""
    body["metadata"]["labels"] = {**WEB, "app": name}
    return body


def cgp_table(kubectl: Kubectl) -> dict[str, dict[str, str]]:
    """``kubectl get cgp`` as printed, one dict of columns per row."""
    return printed_table(kubectl("get", "cgp").stdout)


def cgp_counts(kubectl: Kubectl, name: str) -> tuple[str, str, str]:
    row = cgp_table(kubectl).get(name, {})
    return (row.get("MATCHED", ""), row.get("COMPLIANT", ""), row.get("MISMATCHED", ""))


@pytest.fixture
def cluster_policy(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """A ClusterGracefulPolicy for the namespaces labelled for this test only."""
    name = f"e2e-{namespace}"
    apply(kubectl, {
        "apiVersion": "graceful.io/v1alpha1", "kind": "ClusterGracefulPolicy",
        "metadata": {"name": name},
        "spec": {"mode": "Audit", "gracefulTimeoutSeconds": 30,
                 "namespaceSelector": {"matchLabels": {"graceful-e2e/budget": namespace}},
                 "selector": {"matchLabels": WEB}},
    })
    try:
        yield name
    finally:
        kubectl("delete", "cgp", name, "--ignore-not-found", "--wait=false")


def test_kubectl_get_cgp_counts_what_it_serves_until_the_namespace_takes_over(
        operator: Operator, kubectl: Kubectl, namespace: str,  # noqa: F811
        cluster_policy: str) -> None:
    kubectl("label", "namespace", namespace, f"graceful-e2e/budget={namespace}")
    apply(kubectl, labelled(compliant(namespace, "good", policy=None), "good"),
          labelled(deployment(namespace, "legacy", policy=None), "legacy"))
    wait_until(lambda: cgp_counts(kubectl, cluster_policy) == ("2", "1", "1"), PATIENCE,
               "kubectl get cgp: MATCHED 2, COMPLIANT 1, MISMATCHED 1")
    stored = json.loads(kubectl("get", "cgp", cluster_policy, "-o", "json").stdout)
    assert [(m["namespace"], m["kind"], m["name"]) for m in stored["status"]["mismatches"]] == [
        (namespace, "Deployment", "legacy")]
    assert stored["status"]["conditions"][0]["reason"] == "WorkloadsMismatched"

    # a GracefulPolicy of the namespace whose selector matches wins over the cluster's
    apply(kubectl, {"apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
                    "metadata": {"name": "local", "namespace": namespace},
                    "spec": {"mode": "Audit", "gracefulTimeoutSeconds": 30,
                             "selector": {"matchLabels": {"app": "legacy"}}}})
    wait_until(lambda: cgp_counts(kubectl, cluster_policy) == ("1", "1", "0"), PATIENCE,
               "the cgp's counts drop to the workload it still serves")
    wait_until(lambda: counts(kubectl, namespace, "local") == ("1", "0", "1"), PATIENCE,
               "the namespaced policy counts the workload it took over")

    # the namespace relabelled out of the cluster policy's namespaceSelector
    kubectl("label", "namespace", namespace, "graceful-e2e/budget-")
    wait_until(lambda: cgp_counts(kubectl, cluster_policy) == ("0", "0", "0"), PATIENCE,
               "the cgp serves no workload once the namespace is not selected")
    assert counts(kubectl, namespace, "local") == ("1", "0", "1")
