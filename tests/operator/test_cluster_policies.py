"""ClusterGracefulPolicies in the operator: the same ``evaluate`` call with the cluster's
policies and the namespace's labels, counts grouped by reference, summed over namespaces,
and re-evaluation only of what an edit or a relabelling concerns."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from graceful.core import Finding, FindingCode, WorkloadResult, summarize_cluster
from graceful.core.policy import ClusterPolicyStatus, PolicyStatus
from graceful.operator import projection
from graceful.operator.audit import (
    NamespaceAudit,
    PolicyEntry,
    cluster_status,
    for_namespace,
    policy_entry,
)
from graceful.operator.reconciler import Auditor
from graceful.operator.store import key_of
from tests.operator import objects
from tests.operator.fakes import FakeApi
from tests.operator.test_reconciler import World, make

NOW = datetime(2030, 1, 1, tzinfo=UTC)
SELECTED = {"kubernetes.io/metadata.name": "team-a", "budget": "standard"}
OTHER = {"kubernetes.io/metadata.name": "team-a"}
WEB = {"tier": "web"}
CGP_PATH = "/apis/graceful.io/v1alpha1/clustergracefulpolicies/standard/status"


def project(body: dict[str, Any]) -> dict[str, Any]:
    kept = projection.workload(body, body["kind"])
    assert kept is not None
    return kept


def update(state: NamespaceAudit, workloads: list[dict[str, Any]], policies: list[PolicyEntry],
           labels: dict[str, str] | None, dirty: set[Any] | None = None) -> NamespaceAudit:
    """One flush of a namespace with these labels, as ``Auditor.flush`` does it."""
    seen = [for_namespace(p, labels) for p in policies]
    by_key = {key_of(w): w for w in workloads}
    todo = state.due(by_key, dirty, seen)
    objects_ = {key: by_key.get(key) for key in todo}
    state.apply(objects_, state.evaluate(objects_, seen, labels), seen)
    return state


def cgp(**kwargs: Any) -> PolicyEntry:
    return policy_entry(objects.cluster_policy(**kwargs))


def test_a_cluster_policy_and_a_namespaced_one_of_the_same_name_are_counted_apart() -> None:
    local = policy_entry(objects.policy("standard"))
    cluster = cgp()
    workloads = [project(objects.deployment("x", policy="standard")),
                 project(objects.compliant_deployment("y", policy="cluster/standard"))]
    state = update(NamespaceAudit(), workloads, [local, cluster], SELECTED)
    assert state.members == {"standard": {("team-a", "Deployment", "x")},
                             "cluster/standard": {("team-a", "Deployment", "y")}}
    status = cluster_status(cluster, [state], now=NOW)
    assert (status["matched"], status["compliant"], status["mismatched"]) == (1, 1, 0)


def test_a_namespace_the_cluster_policy_does_not_select_is_not_served() -> None:
    workloads = [project(objects.deployment("x", policy="cluster/standard")),
                 project(objects.deployment("y", policy=None, labels=WEB))]
    state = update(NamespaceAudit(), workloads, [cgp(selector={"matchLabels": WEB})], OTHER)
    codes = {key[2]: [f.code for f in a.findings] for key, a in state.audits.items()}
    assert codes == {"x": [FindingCode.PolicyNotFound], "y": []}
    assert not state.audits[("team-a", "Deployment", "y")].verdict.opted_in
    assert not state.members.get("cluster/standard")


def test_the_status_sums_every_namespace_and_says_where_each_mismatch_is() -> None:
    cluster = cgp()
    states = []
    for namespace, names in (("team-b", ["b1"]), ("team-a", ["a2", "a1", "ok"])):
        workloads = [project(objects.compliant_deployment(n, namespace, policy="cluster/standard")
                             if n == "ok" else
                             objects.deployment(n, namespace, policy="cluster/standard"))
                     for n in names]
        labels = {"kubernetes.io/metadata.name": namespace, "budget": "standard"}
        states.append(update(NamespaceAudit(), workloads, [cluster], labels))
    status = cluster_status(cluster, states, now=NOW)
    assert (status["matched"], status["compliant"], status["mismatched"]) == (4, 1, 3)
    assert [(m["namespace"], m["name"]) for m in status["mismatches"]] == [
        ("team-a", "a1"), ("team-a", "a2"), ("team-b", "b1")]
    # the kept counts give what core computes from every result
    results = [(key[0], audit.result()) for state in states
               for key, audit in state.audits.items()]
    assert status == summarize_cluster(cluster.policy, results, now=NOW)  # type: ignore[arg-type]


def test_an_edit_of_a_cluster_policy_is_evaluated_only_where_it_serves() -> None:
    workloads = [project(objects.deployment(f"w{i}", policy=None, labels=WEB)) for i in range(3)]
    served = update(NamespaceAudit(), workloads, [cgp(selector={"matchLabels": WEB})], SELECTED)
    elsewhere = update(NamespaceAudit(), workloads, [cgp(selector={"matchLabels": WEB})], OTHER)
    before = (served.evaluations, elsewhere.evaluations)
    edited = [cgp(selector={"matchLabels": WEB}, generation=2, timeout=60)]
    update(served, workloads, edited, SELECTED, dirty=set())
    update(elsewhere, workloads, edited, OTHER, dirty=set())
    assert (served.evaluations - before[0], elsewhere.evaluations - before[1]) == (3, 0)
    # the namespace relabelled into the policy's reach: its workloads are evaluated again
    update(elsewhere, workloads, edited, SELECTED, dirty=set())
    assert elsewhere.evaluations - before[1] == 3
    assert len(elsewhere.members["cluster/standard"]) == 3


def test_an_invalid_cluster_policy_says_why_and_its_workloads_are_told() -> None:
    bad = cgp(drain={"maxGracePeriodSeconds": 10})
    assert bad.policy is None and bad.cluster
    state = update(NamespaceAudit(), [project(objects.deployment("x", policy="cluster/standard"))],
                   [bad], SELECTED)
    (audit,) = state.audits.values()
    assert [f.code for f in audit.findings] == [FindingCode.PolicyInvalid]
    assert audit.findings[0].message.startswith("policy 'cluster/standard' is invalid")
    status = cluster_status(bad, [state], now=NOW)
    assert status["conditions"][0]["reason"] == "InvalidPolicy"
    assert status["matched"] == 0


def test_summarize_cluster_lists_by_namespace_then_kind_then_name() -> None:
    policy = cgp().policy
    assert policy is not None
    broken = (Finding(FindingCode.PreStopMissing, "broken"),)
    z, a = WorkloadResult("Deployment", "z", broken), WorkloadResult("Deployment", "a", broken)
    status = summarize_cluster(policy, [("b", a), ("a", z),
                                        ("a", WorkloadResult("Pod", "fine"))], now=NOW, limit=1)
    assert status["mismatches"] == [{"namespace": "a", "kind": "Deployment", "name": "z",
                                     "reasons": ["broken"]}]
    assert (status["matched"], status["mismatched"], status["mismatchesOmitted"]) == (3, 2, 1)
    # the shape of the CRD's status schema: a cluster policy's mismatches say where,
    # which a GracefulPolicy's status does not allow
    ClusterPolicyStatus.model_validate(status)
    with pytest.raises(ValueError, match="namespace"):
        PolicyStatus.model_validate(status)


# -- the auditor: flushes, batched status writes of the cluster policy ------------------------


def audit_all(auditor: Auditor, world: World) -> list[str]:
    """What :meth:`Auditor.run` does once everything is due: each namespace, then the cluster
    statuses; the names of the namespaces that evaluated something."""
    auditor.attach(*world.indexes())
    auditor.tracker.pop_due(float("inf"))

    async def everything() -> list[str]:
        busy = []
        for namespace in sorted(auditor.known_namespaces()):
            if (await auditor.flush(namespace)).audited:
                busy.append(namespace)
        await auditor.flush_cluster()
        await auditor.drain_events()
        return busy

    return asyncio.run(everything())


def cgp_counts(api: FakeApi, world: World) -> tuple[int, int, int] | None:
    """The stored counts once the status patches are in (None: nothing written for it)."""
    if not any(path == CGP_PATH for path, _ in api.patches):
        return None
    world.apply_status_patches(api)
    status = world.bodies[("ClusterGracefulPolicy", "standard")]["status"]
    return (status["matched"], status["compliant"], status["mismatched"])


def populated() -> tuple[FakeApi, World]:
    api, world = FakeApi(), World()
    world.put(objects.namespace("team-a", {"budget": "standard"}))
    world.put(objects.namespace("team-b", {"budget": "standard"}))
    world.put(objects.namespace("team-c"))
    world.put(objects.cluster_policy(selector={"matchLabels": WEB}))
    world.put(objects.compliant_deployment("good", policy="cluster/standard"))
    world.put(objects.deployment("legacy", policy=None, labels=WEB))
    world.put(objects.deployment("other", "team-b", policy=None, labels=WEB))
    world.put(objects.deployment("ignored", "team-c", policy=None, labels=WEB))
    return api, world


def test_the_cluster_policy_status_counts_the_namespaces_it_serves() -> None:
    api, world = populated()
    auditor = make(api, world)
    assert audit_all(auditor, world) == ["team-a", "team-b", "team-c"]
    (_, patch), = [p for p in api.patches if p[0] == CGP_PATH]
    assert cgp_counts(api, world) == (3, 1, 2)
    assert patch["metadata"] == {"uid": "uid-cluster-policy-standard"}
    assert [(m["namespace"], m["name"]) for m in patch["status"]["mismatches"]] == [
        ("team-a", "legacy"), ("team-b", "other")]
    world.apply_status_patches(api)
    assert audit_all(auditor, world) == []
    assert not api.patches  # nothing changed, nothing written


def test_a_namespaced_policy_takes_over_and_a_relabelled_namespace_drops_out() -> None:
    api, world = populated()
    auditor = make(api, world)
    audit_all(auditor, world)
    world.apply_status_patches(api)
    world.put(objects.policy("local", "team-b", selector={"matchLabels": WEB}))
    assert audit_all(auditor, world) == ["team-b"]
    assert cgp_counts(api, world) == (2, 1, 1)
    world.apply_status_patches(api)
    world.put(objects.namespace("team-a"))  # the budget label removed
    assert audit_all(auditor, world) == ["team-a"]
    assert cgp_counts(api, world) == (0, 0, 0)
    world.apply_status_patches(api)
    world.put(objects.namespace("team-a", {"unrelated": "label"}))  # not a change that matters
    assert audit_all(auditor, world) == []


def test_an_edit_of_the_cluster_policy_marks_every_namespace_and_rewrites_its_status() -> None:
    api, world = populated()
    auditor = make(api, world)
    audit_all(auditor, world)
    world.apply_status_patches(api)
    world.put(objects.cluster_policy(selector={"matchLabels": {"tier": "none"}}, generation=2))
    assert audit_all(auditor, world) == ["team-a", "team-b"]  # team-c is not served
    assert cgp_counts(api, world) == (1, 1, 0)  # only the workload naming it is left
    world.apply_status_patches(api)
    world.put(objects.cluster_policy(drain={"maxGracePeriodSeconds": 10}, generation=3))
    audit_all(auditor, world)
    (status,) = [p["status"] for path, p in api.patches if path == CGP_PATH]
    assert status["conditions"][0]["reason"] == "InvalidPolicy"
    assert status["conditions"][0]["message"]


def test_a_follower_writes_no_cluster_status() -> None:
    api, world = populated()
    auditor = make(api, world, leader=False)
    audit_all(auditor, world)
    assert not api.patches


def test_no_cluster_status_before_every_namespace_had_its_first_audit() -> None:
    """A restart must not write "matched 0" for namespaces it has not audited yet."""
    api, world = populated()
    auditor = make(api, world)  # every namespace due, none audited

    async def cluster_first() -> Any:
        return await auditor.flush_cluster()

    report = asyncio.run(cluster_first())
    assert report.skipped == "namespaces not audited yet" and not api.patches
    assert audit_all(auditor, world)  # then the namespaces, then the cluster status
    assert cgp_counts(api, world) == (3, 1, 2)
