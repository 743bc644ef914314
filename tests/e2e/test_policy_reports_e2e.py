"""PolicyReports against a real kube-apiserver serving the real wg-policy CRD.

The CRD is the one Kyverno installs (``testenv/crds``, which ``graceful demo``
installs too), so every report the operator writes passes the API server's
validation of that schema, and what is
checked is what a platform engineer runs: ``kubectl get policyreports -A``. The
operator is the one of ``test_audit_e2e`` (a subprocess restricted to the
test's namespace, resyncing every second); every wait is for the report itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from testenv.demo import REPORT_CRD
from tests.conftest import Kubectl
from tests.e2e.test_audit_e2e import (
    PATIENCE,
    Start,
    apply,
    compliant,
    counts,
    crd,  # noqa: F401
    deployment,
    policy,
    start_operator,  # noqa: F401  (fixtures)
    wait_until,
)

pytestmark = pytest.mark.e2e

REPORT = "graceful-operator"


@pytest.fixture(scope="module")
def report_crd(kubectl: Kubectl) -> Iterator[None]:
    kubectl("apply", "-f", str(REPORT_CRD))
    kubectl("wait", "--for", "condition=established", "--timeout=60s",
            "crd/policyreports.wgpolicyk8s.io")
    try:
        yield
    finally:
        # Other modules' operators must find no such API (the default of a cluster).
        kubectl("delete", "-f", str(REPORT_CRD), "--ignore-not-found", "--wait=true")


def reports(kubectl: Kubectl, namespace: str) -> dict[str, dict[str, Any]]:
    items = json.loads(kubectl("get", "policyreports", "-n", namespace, "-o", "json").stdout)
    return {item["metadata"]["name"]: item for item in items["items"]}


def outcomes(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    report = reports(kubectl, namespace).get(REPORT, {})
    return {r["resources"][0]["name"]: r["result"] for r in report.get("results", [])}


def columns(text: str) -> list[list[tuple[str, str]]]:
    """A table kubectl printed, as (header, cell) pairs per row, cut at the header's
    positions (the PolicyReport CRD has a NAME column of its own, after kubectl's)."""
    header, *lines = text.rstrip().splitlines()
    names = header.split()
    starts, at = [], 0
    for name in names:
        at = header.index(name, at)
        starts.append(at)
        at += len(name)
    return [[(name, line[start:end].strip()) for name, start, end
             in zip(names, starts, [*starts[1:], None], strict=True)] for line in lines]


def test_reports_follow_the_workloads_and_show_in_kubectl(
        report_crd: None, start_operator: Start,  # noqa: F811
        kubectl: Kubectl, namespace: str) -> None:
    operator = start_operator("op-a")
    operator.wait_leading()
    apply(kubectl, policy(namespace), compliant(namespace, "good"),
          deployment(namespace, "legacy"), deployment(namespace, "bystander", policy=None))
    wait_until(lambda: outcomes(kubectl, namespace) == {"good": "pass", "legacy": "fail"},
               PATIENCE, "a pass for good and a fail for legacy, nothing for bystander")

    report = reports(kubectl, namespace)[REPORT]
    assert report["metadata"]["labels"] == {"app.kubernetes.io/managed-by": REPORT}
    failed = next(r for r in report["results"] if r["result"] == "fail")
    assert failed["policy"] == "workers" and failed["source"] == REPORT
    assert "GracePeriodBelowBudget" in failed["rule"].split(",")
    assert failed["resources"][0]["uid"]
    printed = kubectl("get", "policyreports", "-A").stdout
    row = next((r for r in columns(printed) if r[0] == ("NAMESPACE", namespace)), [])
    assert dict(row[1:2] + row[4:6]) == {"NAME": REPORT, "PASS": "1", "FAIL": "1"}, printed

    apply(kubectl, compliant(namespace, "legacy"))
    wait_until(lambda: outcomes(kubectl, namespace) == {"good": "pass", "legacy": "pass"},
               PATIENCE, "legacy fixed")
    kubectl("delete", "deployment", "legacy", "-n", namespace)
    wait_until(lambda: outcomes(kubectl, namespace) == {"good": "pass"}, PATIENCE,
               "the deleted workload's result gone")
    kubectl("delete", "deployment", "good", "-n", namespace)
    wait_until(lambda: REPORT not in reports(kubectl, namespace), PATIENCE,
               "the report gone with the last opted-in workload")
    assert counts(kubectl, namespace) == ("0", "0", "0")


def test_a_restart_rewrites_no_report(report_crd: None, start_operator: Start,  # noqa: F811
                                      kubectl: Kubectl, namespace: str) -> None:
    first = start_operator("op-a")
    first.wait_leading()
    apply(kubectl, policy(namespace), compliant(namespace, "good"),
          deployment(namespace, "legacy"))
    wait_until(lambda: outcomes(kubectl, namespace) == {"good": "pass", "legacy": "fail"},
               PATIENCE, "the first report")
    first.wait_for_audits(2)  # two resyncs compared everything: nothing is in flight
    before = reports(kubectl, namespace)[REPORT]
    first.stop()

    second = start_operator("op-b")
    second.wait_leading()
    second.wait_for_log(rf"first audit of namespace {namespace} done")
    second.wait_for_audits(2)
    after = reports(kubectl, namespace)[REPORT]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], (
        "the new operator rewrote an unchanged report")
    assert after["results"] == before["results"]
