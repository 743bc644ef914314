"""The single writer against a fake API: what is written, when, and what is not."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graceful.operator.events import REASON_COMPLIANT, REASON_MISMATCH
from graceful.operator.handlers import (
    index_cluster_policy,
    index_namespace,
    index_policy,
    labels_of,
)
from graceful.operator.reconciler import Auditor
from graceful.operator.settings import OperatorSettings
from tests.operator import objects
from tests.operator.fakes import FakeApi


@dataclass
class World:
    """API objects, delivered to the auditors the way kopf delivers them with our handlers."""

    bodies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    watchers: list[Auditor] = field(default_factory=list)

    def put(self, body: dict[str, Any]) -> None:
        key = (body["kind"], body["metadata"]["name"])
        event = "MODIFIED" if key in self.bodies else "ADDED"
        self.bodies[key] = body
        for auditor in self.watchers:
            self._deliver(auditor, body, event)

    def delete(self, kind: str, name: str) -> None:
        body = self.bodies.pop((kind, name))
        for auditor in self.watchers:
            self._deliver(auditor, body, "DELETED")

    def _deliver(self, auditor: Auditor, body: dict[str, Any], event: str | None) -> None:
        if body["kind"] == "GracefulPolicy":
            auditor.attach(*self.indexes())
            auditor.policy_changed(body["metadata"]["namespace"])
        elif body["kind"] == "ClusterGracefulPolicy":
            auditor.attach(*self.indexes())
            auditor.cluster_policy_changed(body["metadata"]["name"],
                                           None if event == "DELETED" else body)
        elif body["kind"] == "Namespace":
            auditor.attach(*self.indexes())
            auditor.namespace_changed(body["metadata"]["name"],
                                      None if event == "DELETED" else labels_of(body))  # type: ignore[arg-type]
        elif body["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Pod"):
            auditor.observe(body["kind"], event, body)

    def watch(self, auditor: Auditor) -> None:
        """A new operator: kopf lists everything first (event type None)."""
        auditor.attach(*self.indexes())
        for body in self.bodies.values():
            self._deliver(auditor, body, None)
        self.watchers.append(auditor)

    def policies(self) -> dict[str, list[Any]]:
        index: dict[str, list[Any]] = {}
        for body in self.bodies.values():
            if body["kind"] == "GracefulPolicy":
                for key, value in index_policy(body).items():  # type: ignore[arg-type]
                    index.setdefault(key, []).append(value)
        return index

    def indexes(self) -> tuple[dict[str, list[Any]], dict[str, list[Any]],
                               dict[str, list[Any]]]:
        """What kopf's three indexes hold: policies, cluster policies, namespace labels."""
        cluster: dict[str, list[Any]] = {}
        namespaces: dict[str, list[Any]] = {}
        for body in self.bodies.values():
            if body["kind"] == "ClusterGracefulPolicy":
                for key, value in index_cluster_policy(body).items():  # type: ignore[arg-type]
                    cluster.setdefault(key, []).append(value)
            elif body["kind"] == "Namespace":
                for key, value in index_namespace(body).items():  # type: ignore[arg-type]
                    namespaces.setdefault(key, []).append(value)
        return self.policies(), cluster, namespaces

    def apply_status_patches(self, api: FakeApi) -> None:
        """What the watch would deliver after the operator's status writes."""
        for path, patch in api.patches:
            name = path.split("/")[-2]
            kind = ("ClusterGracefulPolicy" if "/clustergracefulpolicies/" in path
                    else "GracefulPolicy")
            body = self.bodies[(kind, name)]
            body["status"] = {**body.get("status", {}), **copy.deepcopy(patch["status"])}
        api.patches.clear()
        for auditor in self.watchers:
            auditor.attach(*self.indexes())


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(api: FakeApi, world: World, *, leader: bool = True,
         clock: Clock | None = None) -> Auditor:
    auditor = Auditor(settings=OperatorSettings(identity="replica-1"), api=api,
                      is_leader=lambda: leader, clock=clock or Clock(),
                      wall=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    world.watch(auditor)
    auditor.mark_all(evaluate=True)
    return auditor


def flush(auditor: Auditor, world: World, namespace: str = "team-a") -> Any:
    """What :meth:`Auditor.run` does once the namespace is due."""
    auditor.attach(*world.indexes())
    auditor.tracker.pop_due(float("inf"))

    async def flush_and_post() -> Any:
        report = await auditor.flush(namespace)
        report.events += await auditor.drain_events()  # what the background poster does
        return report

    return asyncio.run(flush_and_post())


def reasons(api: FakeApi) -> list[str]:
    return [e["reason"] for e in api.events]


def test_one_event_and_one_status_write_then_nothing() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    world.put(objects.deployment("legacy"))
    world.put(objects.compliant_deployment("good"))
    auditor = make(api, world)
    report = flush(auditor, world)
    assert (report.audited, report.events, report.statuses) == (2, 1, 1)
    assert reasons(api) == [REASON_MISMATCH]
    path, patch = api.patches[0]
    assert path == "/apis/graceful.io/v1alpha1/namespaces/team-a/gracefulpolicies/workers/status"
    assert patch["metadata"] == {"uid": "uid-policy-workers"}
    assert (patch["status"]["matched"], patch["status"]["compliant"],
            patch["status"]["mismatched"]) == (2, 1, 1)
    world.apply_status_patches(api)
    for _ in range(3):
        report = flush(auditor, world)
        assert (report.events, report.statuses) == (0, 0)
    assert len(api.events) == 1 and not api.patches


def test_a_write_not_yet_seen_by_the_watch_is_not_repeated() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    world.put(objects.deployment("legacy"))
    auditor = make(api, world)
    flush(auditor, world)
    assert flush(auditor, world).statuses == 0  # the watch still shows the old status
    assert len(api.patches) == 1


def test_the_fix_tells_the_story() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    world.put(objects.deployment("legacy"))
    auditor = make(api, world)
    flush(auditor, world)
    world.apply_status_patches(api)
    world.put(objects.compliant_deployment("legacy"))
    report = flush(auditor, world)
    assert (report.events, report.statuses) == (1, 1)
    assert reasons(api) == [REASON_MISMATCH, REASON_COMPLIANT]
    assert api.patches[0][1]["status"]["compliant"] == 1
    assert api.events[1]["type"] == "Normal"


def test_a_follower_writes_nothing() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    world.put(objects.deployment("legacy"))
    report = flush(make(api, world, leader=False), world)
    assert report.skipped == "not the leader"
    assert api.calls == []


def test_a_restart_rebuilds_the_same_status_and_posts_no_event() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    world.put(objects.deployment("legacy"))
    world.put(objects.deployment("other", grace=40))
    flush(make(api, world), world)
    world.apply_status_patches(api)
    assert len(api.events) == 2
    fresh = make(api, world)  # a new process: empty memory, same cluster
    report = flush(fresh, world)
    assert (report.events, report.statuses) == (0, 0)
    assert ("LIST", "/api/v1/events") in api.calls
    assert len(api.events) == 2 and not api.patches


def test_a_restart_after_the_events_expired_uses_the_status() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    world.put(objects.deployment("legacy"))
    flush(make(api, world), world)
    world.apply_status_patches(api)
    api.events.clear()  # the API server's event TTL passed
    assert flush(make(api, world), world).events == 0


def test_a_deleted_workload_leaves_the_status_and_the_memory() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    world.put(objects.deployment("legacy"))
    auditor = make(api, world)
    flush(auditor, world)
    world.apply_status_patches(api)
    world.delete("Deployment", "legacy")
    flush(auditor, world)
    status = api.patches[0][1]["status"]
    assert (status["matched"], status["mismatches"]) == (0, [])
    assert auditor.reported == {}
    assert len(auditor.audits["team-a"]) == 0


def test_a_missing_policy_is_reported_on_the_workload_after_the_grace() -> None:
    api, world, clock = FakeApi(), World(), Clock()
    world.put(objects.deployment("orphan", policy="nope"))
    auditor = make(api, world, clock=clock)
    report = flush(auditor, world)
    assert (report.events, report.statuses) == (0, 0)
    assert auditor._next_due() == auditor.settings.missing_policy_grace
    clock.now += auditor.settings.missing_policy_grace
    assert asyncio.run(auditor.drain_events()) == 1
    assert api.events[0]["message"] == (
        "does not meet the drain budget of GracefulPolicy nope: policy 'nope' not found")
    assert auditor._next_due() is None


def test_edits_do_not_postpone_a_missing_policy_warning() -> None:
    """A workload edited more often than the grace (a tool rewriting its labels) still gets
    its Warning at the end of the first grace."""
    api, world, clock = FakeApi(), World(), Clock()
    world.put(objects.deployment("orphan", policy="nope"))
    auditor = make(api, world, clock=clock)
    assert flush(auditor, world).events == 0
    grace = auditor.settings.missing_policy_grace
    for revision in range(1, 5):  # an edit every grace/4, up to and past the grace
        clock.now += grace / 4
        edited = objects.deployment("orphan", policy="nope")
        edited["metadata"]["labels"] = {"revision": str(revision)}  # read by the audit
        world.put(edited)
        assert flush(auditor, world).audited == 1  # evaluated again, the same verdict
    assert len(api.events) == 1
    assert "policy 'nope' not found" in api.events[0]["message"]


def test_a_policy_seen_after_its_workload_gets_one_warning_not_two() -> None:
    """Applied together, a policy can reach the operator after its workload (two watches)."""
    api, world, clock = FakeApi(), World(), Clock()
    world.put(objects.deployment("legacy"))
    auditor = make(api, world, clock=clock)
    assert flush(auditor, world).events == 0  # "policy 'workers' not found" waits...
    assert auditor._next_due() == auditor.settings.missing_policy_grace
    clock.now += 1.0
    world.put(objects.policy())  # ...and the policy arrives within the grace
    report = flush(auditor, world)
    clock.now += auditor.settings.missing_policy_grace
    report.events += asyncio.run(auditor.drain_events())
    assert report.events == 1
    [event] = api.events
    assert event["reason"] == "GracefulBudgetMismatch"
    assert "not found" not in event["message"]
    assert auditor._next_due() is None


def test_stale_pods_of_a_paused_deployment_from_its_status() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    web = objects.compliant_deployment("web")
    web["spec"]["paused"] = True
    web["metadata"]["generation"] = 2
    web["status"] = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 0}
    world.put(web)
    flush(make(api, world), world)
    status = api.patches[0][1]["status"]
    assert status["mismatches"] == [{"kind": "Deployment", "name": "web", "reasons": [
        "2 pods predate the compliant spec (the Deployment is paused); roll out to apply it"]}]


def test_an_edit_evaluates_only_the_edited_workload() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    for number in range(30):
        world.put(objects.deployment(f"legacy-{number:02d}"))
    auditor = make(api, world)
    assert flush(auditor, world).audited == 30
    world.apply_status_patches(api)
    world.put(objects.compliant_deployment("legacy-07"))
    report = flush(auditor, world)
    assert (report.audited, report.statuses) == (1, 1)
    patch = api.patches[0][1]["status"]
    assert (patch["compliant"], patch["mismatched"]) == (1, 29)
    assert "observedGeneration" not in patch  # only the keys that changed
    world.apply_status_patches(api)
    world.put(objects.policy(timeout=60, generation=2))  # a policy edit: its 30 workloads
    assert flush(auditor, world).audited == 30
    status_only = copy.deepcopy(world.bodies[("Deployment", "legacy-03")])
    status_only["status"] = {"replicas": 1, "readyReplicas": 1}
    world.put(status_only)  # nothing the audit reads
    assert flush(auditor, world).audited == 0


def test_a_failed_event_is_retried_and_not_remembered() -> None:
    api, world, clock = FakeApi(), World(), Clock()
    world.put(objects.policy())
    world.put(objects.deployment("legacy"))
    auditor = make(api, world, clock=clock)
    api.fail[("POST", "/api/v1/namespaces/team-a/events")] = 500
    report = flush(auditor, world)
    assert report.failed and report.statuses == 1
    assert auditor.tracker.due_at("team-a") == clock.now + 2.0
    assert auditor.reported == {}
    api.fail.clear()
    assert flush(auditor, world).events == 1


def test_a_failed_status_write_is_retried() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    api.fail[("PATCH", "/apis/graceful.io")] = 503
    auditor = make(api, world)
    assert flush(auditor, world).failed
    api.fail.clear()
    assert flush(auditor, world).statuses == 1


def test_a_new_leader_term_starts_from_the_cluster() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    world.put(objects.deployment("legacy"))
    auditor = make(api, world)
    flush(auditor, world)
    auditor.leadership_changed(False)
    assert not auditor.seeded and auditor.reported == {}
    auditor.leadership_changed(True)
    assert "team-a" in auditor.tracker
    assert flush(auditor, world).events == 0


def test_the_loop_waits_for_the_listing_then_flushes_marked_namespaces() -> None:
    async def scenario() -> None:
        api, world = FakeApi(), World()
        world.put(objects.policy())
        world.put(objects.deployment("legacy"))
        world.put(objects.deployment("other"))
        counts = {"Deployment": 2, "StatefulSet": 0, "DaemonSet": 0, "Pod": 0}

        async def count(kind: str) -> int:
            return counts[kind]

        auditor = Auditor(settings=OperatorSettings(identity="r", quiet=0.01, max_delay=0.05),
                          api=api, counter=count)
        await auditor.count_expected(counts)
        auditor.attach(world.policies())
        task = asyncio.create_task(auditor.run())
        auditor.observe("Deployment", None, world.bodies[("Deployment", "legacy")])
        passes = auditor.passes
        await asyncio.sleep(0)
        assert auditor.passes == passes and api.calls == []  # one of two listed: no audit
        auditor.observe("Deployment", None, world.bodies[("Deployment", "other")])
        while not api.patches:
            await asyncio.sleep(0.01)
        assert len(api.patches) == 1 and len(api.events) == 2
        assert api.patches[0][1]["status"]["matched"] == 2
        task.cancel()

    asyncio.run(scenario())


def test_bare_pods_and_statefulsets_are_audited_with_their_own_pods() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    bare = objects.pod("solo", "nobody")
    del bare["metadata"]["ownerReferences"]
    bare["metadata"]["annotations"] = {"graceful.io/policy": "workers"}
    world.put(bare)
    db = objects.compliant_deployment("db", kind="StatefulSet", uid="sts")
    db["spec"]["updateStrategy"] = {"type": "OnDelete"}
    db["status"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0,
                    "currentRevision": "db-1", "updateRevision": "db-2"}
    world.put(db)
    world.put(objects.pod("db-0", "sts", owner_kind="StatefulSet", grace=30))  # not a workload
    flush(make(api, world), world)
    status = api.patches[0][1]["status"]
    assert (status["matched"], status["mismatched"]) == (2, 2)
    assert [(m["kind"], m["name"]) for m in status["mismatches"]] == [
        ("Pod", "solo"), ("StatefulSet", "db")]
    assert status["mismatches"][1]["reasons"] == [
        "1 pod predates the compliant spec (updateStrategy OnDelete: Pods change only when"
        " deleted); roll out to apply it"]
    assert {e["involvedObject"]["apiVersion"] for e in api.events} == {"v1", "apps/v1"}


def test_the_status_waits_only_for_the_events_of_the_workloads_it_lists() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    for number in range(120):  # more than the 50 mismatches a status lists
        world.put(objects.deployment(f"legacy-{number:03d}"))
    report = flush(make(api, world), world)
    assert (report.events, report.statuses) == (120, 1)
    patch_at = next(n for n, (method, _) in enumerate(api.calls) if method == "PATCH")
    before = sum(1 for method, path in api.calls[:patch_at]
                 if method == "POST" and path.endswith("/events"))
    status = api.patches[0][1]["status"]
    listed = {m["name"] for m in status["mismatches"]}
    assert len(listed) == 50 and status["mismatchesOmitted"] == 70
    assert before == 50
    assert {e["involvedObject"]["name"] for e in api.events[:before]} == listed

    # A restart right after the status write (70 Events never posted) posts exactly those.
    world.apply_status_patches(api)
    del api.events[before:]
    report = flush(make(api, world), world)
    assert (report.events, report.statuses) == (70, 0)
    assert len({e["involvedObject"]["name"] for e in api.events}) == 120


def test_the_metrics_count_audits_verdicts_findings_events_and_writes() -> None:
    api, world = FakeApi(), World()
    world.put(objects.policy())
    world.put(objects.deployment("legacy"))
    world.put(objects.compliant_deployment("good"))
    auditor = make(api, world)
    flush(auditor, world)
    world.apply_status_patches(api)
    world.put(objects.compliant_deployment("legacy"))
    flush(auditor, world)
    text = auditor.metrics.text().decode()

    def value(sample: str) -> float:
        [line] = [x for x in text.splitlines() if x.startswith(sample + " ")]
        return float(line.split()[-1])

    assert value("graceful_operator_audits_total") == 2
    assert value("graceful_operator_evaluations_total") == 3  # 2, then only the edited one
    assert value('graceful_operator_workloads{verdict="compliant"}') == 2
    assert value('graceful_operator_workloads{verdict="mismatched"}') == 0
    assert value('graceful_operator_findings{code="PreStopMissing"}') == 0
    assert value('graceful_operator_events_posted_total{type="Warning"}') == 1
    assert value('graceful_operator_events_posted_total{type="Normal"}') == 1
    assert value("graceful_operator_status_writes_total") == 2
    assert value("graceful_operator_audit_duration_seconds_count") == 2


def test_a_relisting_after_the_first_counts_one_watch_restart() -> None:
    api, world, clock = FakeApi(), World(), Clock()
    world.put(objects.deployment("a"))
    world.put(objects.deployment("b"))
    auditor = make(api, world, clock=clock)
    assert auditor.gate.complete()
    for body in world.bodies.values():  # kopf listed Deployments again (410 Gone, say)
        auditor.observe("Deployment", None, body)
    clock.now += 60
    auditor.observe("Deployment", None, world.bodies[("Deployment", "a")])
    assert auditor.metrics.watch_restarts.labels("Deployment")._value.get() == 2
