"""The audit of a namespace: core's verdicts, stale Pods, incremental updates, statuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from graceful.core import FindingCode, summarize
from graceful.operator import projection
from graceful.operator.audit import (
    NamespaceAudit,
    PolicyEntry,
    audit_workload,
    policy_entry,
    policy_statuses,
    status_changes,
    status_differs,
)
from graceful.operator.store import key_of
from tests.operator import objects

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def project(body: dict[str, Any]) -> dict[str, Any]:
    kept = projection.workload(body, body["kind"])
    assert kept is not None
    return kept


def entries(*bodies: dict[str, Any]) -> list[PolicyEntry]:
    return [policy_entry(b) for b in bodies]


def update(state: NamespaceAudit, workloads: list[dict[str, Any]],
           policies: list[PolicyEntry], dirty: set[Any] | None = None) -> NamespaceAudit:
    """One flush: evaluate what is due, take it in."""
    by_key = {key_of(w): w for w in workloads}
    todo = state.due(by_key, dirty, policies)
    objects_ = {key: by_key.get(key) for key in todo}
    state.apply(objects_, state.evaluate(objects_, policies), policies)
    return state


def test_policy_entry_keeps_a_bad_spec_with_its_error_and_ignores_a_bad_status() -> None:
    good = policy_entry(objects.policy(status={"matched": -5}))
    assert good.policy is not None and good.error is None and good.status == {"matched": -5}
    bad = policy_entry(objects.policy(drain={"maxGracePeriodSeconds": 10}))
    assert bad.policy is None and bad.error and "maxGracePeriodSeconds" in bad.error


def test_findings_come_from_core() -> None:
    policies = entries(objects.policy())
    audit = audit_workload(project(objects.deployment()), [policies[0].policy])  # type: ignore[list-item]
    assert [f.code for f in audit.findings] == [FindingCode.PreStopMissing,
                                                FindingCode.GracePeriodBelowBudget]
    assert audit.verdict.reasons == ("container app: no preStop hook",
                                     "grace period 30s < budget 40s")
    assert audit.policy_found and audit.verdict.opted_in and audit.verdict.policy == "workers"


def test_a_missing_policy_is_a_verdict_but_no_policy_counts_it() -> None:
    body = project(objects.deployment(policy="nope"))
    audit = audit_workload(body, [])
    assert audit.verdict.opted_in and not audit.policy_found
    assert [f.code for f in audit.findings] == [FindingCode.PolicyNotFound]
    state = update(NamespaceAudit(), [body], entries(objects.policy()))
    assert policy_statuses(entries(objects.policy()), state, now=NOW)["workers"]["matched"] == 0


def paused(body: dict[str, Any]) -> dict[str, Any]:
    body["spec"]["paused"] = True
    body["status"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0}
    return body


def test_stale_pods_only_for_a_compliant_workload() -> None:
    policies = [policy_entry(objects.policy()).policy]
    audit = audit_workload(project(paused(objects.compliant_deployment())), policies)  # type: ignore[arg-type]
    assert [f.code for f in audit.findings] == [FindingCode.StalePods]
    assert audit.verdict.reasons == (
        "1 pod predates the compliant spec (the Deployment is paused); roll out to apply it",)
    broken = audit_workload(project(paused(objects.deployment())), policies)  # type: ignore[arg-type]
    assert FindingCode.StalePods not in [f.code for f in broken.findings]
    rolling = objects.compliant_deployment()
    rolling["status"] = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 1}
    assert audit_workload(project(rolling), policies).findings == ()  # type: ignore[arg-type]


def test_only_what_changed_is_evaluated_again() -> None:
    state = NamespaceAudit()
    policies = entries(objects.policy())
    workloads = [project(objects.deployment(f"w{i}")) for i in range(10)]
    update(state, workloads, policies)
    assert state.evaluations == 10
    update(state, workloads, policies, dirty=set())
    assert state.evaluations == 10
    workloads[3] = project(objects.compliant_deployment("w3"))
    update(state, workloads, policies, dirty={key_of(workloads[3])})
    assert state.evaluations == 11
    assert state.audits[key_of(workloads[3])].verdict.compliant
    edited = entries(objects.policy(timeout=60, generation=2))
    update(state, workloads, edited, dirty=set())
    assert state.evaluations == 21
    other = entries(objects.policy(timeout=60, generation=2), objects.policy("other"))
    update(state, workloads, other, dirty=set())  # a new policy nobody names: nothing to do
    assert state.evaluations == 21
    gone = {key_of(w) for w in workloads[2:]}
    update(state, workloads[:2], edited, dirty=gone)
    assert len(state) == 2


def test_a_policy_edit_turns_compliant_workloads_mismatched() -> None:
    state = NamespaceAudit()
    workloads = [project(objects.compliant_deployment("good"))]
    update(state, workloads, entries(objects.policy()))
    before = policy_statuses(entries(objects.policy()), state, now=NOW)
    assert (before["workers"]["compliant"], before["workers"]["mismatched"]) == (1, 0)
    larger = entries(objects.policy(timeout=300, generation=2))
    after = policy_statuses(larger, update(state, workloads, larger, dirty=set()), now=NOW)
    assert (after["workers"]["compliant"], after["workers"]["mismatched"]) == (0, 1)
    assert after["workers"]["mismatches"] == [
        {"kind": "Deployment", "name": "good", "reasons": ["grace period 40s < budget 310s"]}]


def test_statuses_per_policy_and_for_an_invalid_one() -> None:
    policies = entries(objects.policy("a"), objects.policy("b"),
                       objects.policy("bad", drain={"maxGracePeriodSeconds": 10}))
    workloads = [project(objects.deployment("x", policy="a")),
                 project(objects.compliant_deployment("y", policy="a")),
                 project(objects.compliant_deployment("z", policy="b")),
                 project(objects.deployment("free", policy=None))]
    statuses = policy_statuses(policies, update(NamespaceAudit(), workloads, policies), now=NOW)
    assert {n: (s["matched"], s["compliant"], s["mismatched"]) for n, s in statuses.items()} == {
        "a": (2, 1, 1), "b": (1, 1, 0), "bad": (0, 0, 0)}
    assert statuses["bad"]["conditions"][0]["reason"] == "InvalidPolicy"


def test_an_invalid_policy_clears_its_grace_column_and_its_workloads_are_told_why() -> None:
    valid = policy_statuses(entries(objects.policy("bad")), NamespaceAudit(), now=NOW)["bad"]
    assert valid["gracePeriodSeconds"] == 40
    broken = entries(objects.policy("bad", drain={"maxGracePeriodSeconds": 10}, generation=2,
                                    status=valid))
    status = policy_statuses(broken, NamespaceAudit(), now=NOW)["bad"]
    # null in the merge patch removes the stale GRACE value; written because it differs
    assert "gracePeriodSeconds" in status and status["gracePeriodSeconds"] is None
    assert status_differs(status, valid)
    assert not status_differs(status, {k: v for k, v in status.items()
                                       if k != "gracePeriodSeconds"})
    why = status["conditions"][0]["message"]
    state = NamespaceAudit()
    workload = project(objects.deployment("x", policy="bad"))
    (audit,) = update(state, [workload], broken).audits.values()
    assert [f.code for f in audit.findings] == [FindingCode.PolicyInvalid]
    assert audit.findings[0].message == f"policy 'bad' is invalid: {why}"
    assert not audit.policy_found
    # an edit that keeps it invalid, with another reason, is not served from the cache
    edited = entries(objects.policy("bad", drain={"preStopSleepSeconds": 0}, generation=3))
    (again,) = update(state, [workload], edited, dirty=set()).audits.values()
    assert again.findings[0].message != audit.findings[0].message


def test_restarting_gives_the_same_status() -> None:
    """A fresh process computing from the stored status writes nothing."""
    workloads = [project(objects.deployment("x"))]
    first = policy_statuses(entries(objects.policy()),
                            update(NamespaceAudit(), workloads, entries(objects.policy())),
                            now=NOW)["workers"]
    stored = entries(objects.policy(status=first))
    later = datetime(2031, 1, 1, tzinfo=UTC)
    again = policy_statuses(stored, update(NamespaceAudit(), workloads, stored),
                            now=later)["workers"]
    assert again == first
    assert not status_differs(again, first)


def test_status_differs_ignores_keys_we_do_not_write() -> None:
    assert not status_differs({"matched": 1}, {"matched": 1, "someoneElse": True})
    assert status_differs({"matched": 1}, {"matched": 2})
    assert status_differs({"matched": 1}, {})


def test_the_patch_carries_only_the_changed_keys() -> None:
    assert status_changes({"matched": 2, "compliant": 1, "mismatches": []},
                          {"matched": 2, "compliant": 0, "mismatches": []}) == {"compliant": 1}


EDITS = st.lists(st.tuples(st.integers(0, 11), st.sampled_from(["bad", "good", "gone", "nope"])),
                 max_size=40)


@given(edits=EDITS)
@settings(max_examples=60, deadline=None)
def test_the_kept_status_equals_the_status_computed_from_scratch(
        edits: list[tuple[int, str]]) -> None:
    """Counts and the mismatch list kept one workload at a time == ``summarize`` of all."""
    policies = entries(objects.policy())
    state = NamespaceAudit()
    current: dict[str, dict[str, Any]] = {}
    for number, what in edits:
        name = f"w{number:02d}"
        if what == "gone":
            current.pop(name, None)
        else:
            body = (objects.compliant_deployment(name) if what == "good"
                    else objects.deployment(name, policy="nope" if what == "nope" else "workers"))
            current[name] = project(body)
        workloads = list(current.values())
        update(state, workloads, policies, dirty={("team-a", "Deployment", name)})
        fresh = update(NamespaceAudit(), workloads, policies)
        assert (policy_statuses(policies, state, now=NOW)
                == policy_statuses(policies, fresh, now=NOW))
        assert summarize(policies[0].policy, fresh.results("workers"),  # type: ignore[arg-type]
                         now=NOW) == policy_statuses(policies, state, now=NOW)["workers"]
