"""The audit of a namespace: core's verdicts, stale Pods, the cache and the statuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from graceful.core import FindingCode
from graceful.operator import projection
from graceful.operator.audit import (
    AuditCache,
    PolicyEntry,
    audit_workload,
    key_of,
    policy_entry,
    policy_statuses,
    stale_finding,
    status_differs,
)
from tests.operator import objects

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def project(body: dict[str, Any]) -> dict[str, Any]:
    kept = projection.workload(body, body["kind"])
    assert kept is not None
    return kept


def entries(*bodies: dict[str, Any]) -> list[PolicyEntry]:
    return [policy_entry(b) for b in bodies]


def test_policy_entry_keeps_a_bad_spec_with_its_error_and_ignores_a_bad_status() -> None:
    good = policy_entry(objects.policy(status={"matched": -5}))
    assert good.policy is not None and good.error is None and good.status == {"matched": -5}
    bad = policy_entry(objects.policy(drain={"maxGracePeriodSeconds": 10}))
    assert bad.policy is None and bad.error and "maxGracePeriodSeconds" in bad.error


def test_findings_come_from_core() -> None:
    policies = entries(objects.policy())
    audit = audit_workload(project(objects.deployment()), [policies[0].policy], [])  # type: ignore[list-item]
    assert [f.code for f in audit.findings] == [FindingCode.PreStopMissing,
                                                FindingCode.GracePeriodBelowBudget]
    assert audit.verdict.reasons == ("container app: no preStop hook",
                                     "grace period 30s < budget 40s")
    assert audit.policy_found and audit.verdict.opted_in and audit.verdict.policy == "workers"


def test_a_missing_policy_is_a_verdict_but_no_policy_counts_it() -> None:
    body = project(objects.deployment(policy="nope"))
    audit = audit_workload(body, [], [])
    assert audit.verdict.opted_in and not audit.policy_found
    assert [f.code for f in audit.findings] == [FindingCode.PolicyNotFound]
    assert policy_statuses(entries(objects.policy()), [audit], now=NOW)["workers"]["matched"] == 0


def test_stale_pods_only_for_a_compliant_workload() -> None:
    policies = [policy_entry(objects.policy()).policy]
    old = projection.running_pod(objects.pod("good-old", "rs"))
    new = projection.running_pod(objects.pod("good-new", "rs", grace=40, pre_stop=5))
    assert old and new
    audit = audit_workload(project(objects.compliant_deployment()), policies, [old[1], new[1]])  # type: ignore[arg-type]
    assert [f.code for f in audit.findings] == [FindingCode.StalePods]
    assert audit.verdict.reasons == (
        "1 pod predates the compliant spec (good-old); roll out to apply it",)
    broken = audit_workload(project(objects.deployment()), policies, [old[1]])  # type: ignore[arg-type]
    assert FindingCode.StalePods not in [f.code for f in broken.findings]


def test_stale_finding_names_three() -> None:
    message = stale_finding(["a", "b", "c", "d", "e"]).message
    assert message == "5 pods predate the compliant spec (a, b, c and 2 more); roll out to apply it"


def test_cache_reevaluates_only_what_changed() -> None:
    cache = AuditCache()
    policies = entries(objects.policy())
    workloads = [project(objects.deployment(f"w{i}")) for i in range(10)]
    cache.audit_namespace("team-a", workloads, policies, {})
    assert cache.evaluations == 10
    cache.audit_namespace("team-a", workloads, policies, {})
    assert cache.evaluations == 10
    workloads[3] = project(objects.compliant_deployment("w3"))
    audits = cache.audit_namespace("team-a", workloads, policies, {})
    assert cache.evaluations == 11
    assert audits[3].verdict.compliant
    pod = projection.running_pod(objects.pod("w3-x", "rs"))
    assert pod is not None
    cache.audit_namespace("team-a", workloads, policies, {key_of(workloads[3]): [pod[1]]})
    assert cache.evaluations == 12
    edited = entries(objects.policy(timeout=60, generation=2))
    cache.audit_namespace("team-a", workloads, edited, {})
    assert cache.evaluations == 22
    cache.audit_namespace("team-a", workloads[:2], edited, {})
    assert len(cache) == 2


def test_a_policy_edit_turns_compliant_workloads_mismatched() -> None:
    cache = AuditCache()
    workloads = [project(objects.compliant_deployment("good"))]
    before = policy_statuses(entries(objects.policy()),
                             cache.audit_namespace("team-a", workloads,
                                                   entries(objects.policy()), {}), now=NOW)
    assert (before["workers"]["compliant"], before["workers"]["mismatched"]) == (1, 0)
    larger = entries(objects.policy(timeout=300, generation=2))
    after = policy_statuses(larger, cache.audit_namespace("team-a", workloads, larger, {}),
                            now=NOW)
    assert (after["workers"]["compliant"], after["workers"]["mismatched"]) == (0, 1)
    assert after["workers"]["mismatches"] == [
        {"kind": "Deployment", "name": "good", "reasons": ["grace period 40s < budget 310s"]}]


def test_statuses_per_policy_and_for_an_invalid_one() -> None:
    cache = AuditCache()
    policies = entries(objects.policy("a"), objects.policy("b"),
                       objects.policy("bad", drain={"maxGracePeriodSeconds": 10}))
    workloads = [project(objects.deployment("x", policy="a")),
                 project(objects.compliant_deployment("y", policy="a")),
                 project(objects.compliant_deployment("z", policy="b")),
                 project(objects.deployment("free", policy=None))]
    statuses = policy_statuses(policies, cache.audit_namespace("team-a", workloads, policies, {}),
                               now=NOW)
    assert {n: (s["matched"], s["compliant"], s["mismatched"]) for n, s in statuses.items()} == {
        "a": (2, 1, 1), "b": (1, 1, 0), "bad": (0, 0, 0)}
    assert statuses["bad"]["conditions"][0]["reason"] == "InvalidPolicy"


def test_an_invalid_policy_clears_its_grace_column_and_its_workloads_are_told_why() -> None:
    valid = policy_statuses(entries(objects.policy("bad")), [], now=NOW)["bad"]
    assert valid["gracePeriodSeconds"] == 40
    broken = entries(objects.policy("bad", drain={"maxGracePeriodSeconds": 10}, generation=2,
                                    status=valid))
    status = policy_statuses(broken, [], now=NOW)["bad"]
    # null in the merge patch removes the stale GRACE value; written because it differs
    assert "gracePeriodSeconds" in status and status["gracePeriodSeconds"] is None
    assert status_differs(status, valid)
    assert not status_differs(status, {k: v for k, v in status.items()
                                       if k != "gracePeriodSeconds"})
    why = status["conditions"][0]["message"]
    cache = AuditCache()
    (audit,) = cache.audit_namespace("team-a", [project(objects.deployment("x", policy="bad"))],
                                     broken, {})
    assert [f.code for f in audit.findings] == [FindingCode.PolicyInvalid]
    assert audit.findings[0].message == f"policy 'bad' is invalid: {why}"
    assert not audit.policy_found
    # an edit that keeps it invalid, with another reason, is not served from the cache
    edited = entries(objects.policy("bad", drain={"preStopSleepSeconds": 0}, generation=3))
    (again,) = cache.audit_namespace("team-a", [project(objects.deployment("x", policy="bad"))],
                                     edited, {})
    assert again.findings[0].message != audit.findings[0].message


def test_restarting_gives_the_same_status() -> None:
    """A fresh process computing from the stored status writes nothing."""
    workloads = [project(objects.deployment("x"))]
    first = policy_statuses(entries(objects.policy()),
                            AuditCache().audit_namespace("team-a", workloads,
                                                         entries(objects.policy()), {}),
                            now=NOW)["workers"]
    stored = entries(objects.policy(status=first))
    later = datetime(2031, 1, 1, tzinfo=UTC)
    again = policy_statuses(stored, AuditCache().audit_namespace("team-a", workloads, stored, {}),
                            now=later)["workers"]
    assert again == first
    assert not status_differs(again, first)


def test_status_differs_ignores_keys_we_do_not_write() -> None:
    assert not status_differs({"matched": 1}, {"matched": 1, "someoneElse": True})
    assert status_differs({"matched": 1}, {"matched": 2})
    assert status_differs({"matched": 1}, {})
