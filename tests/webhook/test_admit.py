"""admit() called directly, kopf style: no HTTP, a review in and a response out."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import pytest

from graceful.core import Decision, GracefulPolicy
from graceful.webhook import admit as module
from graceful.webhook.admit import admit, judge
from graceful.webhook.cache import PolicyCache

from .conftest import NAMESPACE, decode_patch, deployment, opted_in, patched, policy, review

POLICIES = PolicyCache.of([policy()]).policies_in


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet", "Pod"])
@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_opted_in_workloads_are_patched(kind: str, operation: str) -> None:
    obj = opted_in(kind=kind)
    verdict = judge(review(obj, operation=operation), POLICIES)
    if kind == "Pod" and operation == "UPDATE":  # a Pod's spec is immutable
        assert verdict.outcome == "skipped"
        assert decode_patch(verdict.response) == []
        return
    assert verdict.outcome == "mutated"
    response = verdict.response
    assert response.allowed
    result = patched(obj, response)
    spec = result["spec"] if kind == "Pod" else result["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 70  # S 5 + G 60 + M 5
    assert spec["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    assert any("budget 70s" in w for w in response.warnings or [])


def test_uid_is_echoed() -> None:
    response = admit(review(opted_in(), uid="1234-abcd"), POLICIES)
    assert response.uid == "1234-abcd"


def test_patch_is_idempotent() -> None:
    obj = opted_in(containers=3)
    once = patched(obj, admit(review(obj), POLICIES))
    again = admit(review(once, operation="UPDATE", old=once), POLICIES)
    assert again.patch is None and again.patch_type is None


def test_unannotated_workload_is_untouched() -> None:
    verdict = judge(review(deployment()), POLICIES)
    assert verdict.outcome == "skipped"
    assert verdict.response.patch is None
    assert verdict.response.warnings is None


def test_audit_mode_never_mutates() -> None:
    audit = PolicyCache.of([policy(mode="Audit")]).policies_in
    verdict = judge(review(opted_in()), audit)
    assert verdict.response.patch is None
    assert verdict.outcome == "unchanged"
    assert any("audits only" in w for w in verdict.response.warnings or [])


def test_audit_mode_drops_a_patch_even_if_the_engine_returned_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    audit = policy(mode="Audit")

    def rogue(obj: Any, policies: Iterable[GracefulPolicy],
                invalid: Any = None, **_: Any) -> Decision:
        return Decision(opted_in=True, policy_name="workers", policy=audit,
                        patch=[{"op": "add", "path": "/metadata/labels", "value": {}}])

    monkeypatch.setattr(module, "evaluate", rogue)
    assert admit(review(opted_in()), POLICIES).patch is None


def test_dry_run_is_answered_the_same() -> None:
    obj = opted_in()
    real = admit(review(obj, uid="u"), POLICIES)
    dry = admit(review(obj, uid="u", dry_run=True), POLICIES)
    assert dry == real


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_other_operations_are_allowed_unchanged(operation: str) -> None:
    verdict = judge(review(opted_in(), operation=operation), POLICIES)
    assert verdict.outcome == "skipped"
    assert verdict.response.allowed and verdict.response.patch is None


def test_subresources_are_not_ours() -> None:
    verdict = judge(review(opted_in(), sub_resource="scale"), POLICIES)
    assert verdict.outcome == "skipped"


def test_other_kinds_are_allowed_unchanged() -> None:
    obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
        "name": "j", "annotations": {"graceful.io/policy": "workers"}}, "spec": {}}
    verdict = judge(review(obj, kind="ReplicaSet"), POLICIES)
    assert verdict.outcome == "skipped" and verdict.response.patch is None


def test_a_job_is_patched_on_create_only_and_not_when_a_cronjob_made_it() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
        "name": "j", "annotations": {"graceful.io/policy": "workers"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    assert judge(review(job, kind="Job"), POLICIES).outcome == "mutated"
    assert judge(review(job, kind="Job", operation="UPDATE"), POLICIES).outcome == "skipped"
    job["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "CronJob",
                                           "name": "n", "uid": "u", "controller": True}]
    assert judge(review(job, kind="Job"), POLICIES).outcome == "skipped"


def test_pods_owned_by_a_controller_are_skipped() -> None:
    pod = opted_in(kind="Pod")
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                           "name": "worker-abc", "uid": "x", "controller": True}]
    assert judge(review(pod), POLICIES).outcome == "skipped"


def test_pods_with_a_non_controller_owner_are_handled() -> None:
    pod = opted_in(kind="Pod")
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap",
                                           "name": "c", "uid": "x"}]
    assert judge(review(pod), POLICIES).outcome == "mutated"


def test_policies_come_from_the_request_namespace() -> None:
    elsewhere = PolicyCache.of([policy(namespace="team-b")]).policies_in
    response = admit(review(opted_in(), namespace=NAMESPACE), elsewhere)
    assert response.patch is None
    assert any("not found" in w for w in response.warnings or [])


def test_namespace_falls_back_to_the_object() -> None:
    obj = opted_in()
    obj["metadata"]["namespace"] = NAMESPACE
    assert admit(review(obj, namespace=""), POLICIES).patch is not None


def test_missing_policy_is_a_warning_not_a_refusal() -> None:
    obj = deployment(annotations={"graceful.io/policy": "nope"})
    response = admit(review(obj), POLICIES)
    assert response.allowed and response.patch is None
    assert response.warnings and "'nope' not found" in response.warnings[0]


@pytest.mark.parametrize("mangle", [
    lambda o: o["spec"]["template"]["spec"].update(containers="not a list"),
    lambda o: o["spec"].update(template=[1, 2]),
    lambda o: o["spec"]["template"]["spec"]["containers"][0].update(lifecycle=7),
    lambda o: o["metadata"].update(annotations=["x"]),
    lambda o: o.update(metadata=None),
    lambda o: o.update(spec="x"),
])
def test_objects_the_engine_cannot_read_are_allowed_with_a_warning(mangle: Any) -> None:
    obj = opted_in()
    mangle(obj)
    response = admit(review(obj), POLICIES)
    assert response.allowed
    assert response.patch is None


def test_engine_failure_is_allowed_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(obj: Any, policies: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(module, "evaluate", boom)
    verdict = judge(review(opted_in()), POLICIES)
    assert verdict.outcome == "error"
    assert verdict.response.allowed and verdict.response.patch is None
    assert verdict.response.warnings == [
        "graceful: internal error evaluating this object; not mutated"]


def test_lookup_failure_is_allowed_with_a_warning() -> None:
    def broken(namespace: str) -> tuple[GracefulPolicy, ...]:
        raise OSError("cache gone")

    verdict = judge(review(opted_in()), broken)
    assert verdict.outcome == "error" and verdict.response.allowed


def test_the_engines_patch_is_sent_as_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """No second application: the engine's builder already applied every operation."""
    ops = [{"op": "add", "path": "/spec/template/spec/terminationGracePeriodSeconds",
            "value": 70}]

    def built(obj: Any, policies: Iterable[GracefulPolicy], *_: Any, **__: Any) -> Decision:
        return Decision(opted_in=True, policy_name="workers", policy=policy(), patch=ops)

    monkeypatch.setattr(module, "evaluate", built)
    verdict = judge(review(opted_in()), POLICIES)
    assert verdict.outcome == "mutated"
    assert decode_patch(verdict.response) == ops


def test_an_engine_that_cannot_build_its_patch_admits_unchanged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(obj: Any, policies: Iterable[GracefulPolicy], *_: Any, **__: Any) -> Decision:
        raise ValueError("/spec/nothing/here: no element 3")  # as PatchBuilder.set raises

    monkeypatch.setattr(module, "evaluate", failing)
    verdict = judge(review(opted_in()), POLICIES)
    assert verdict.outcome == "error" and verdict.response.allowed
    assert verdict.response.patch is None


def test_warnings_are_short_printable_unique_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    noisy = ["x" * 500, "tab\there", "same", "same", *(f"w{i}" for i in range(40))]

    def chatty(obj: Any, policies: Iterable[GracefulPolicy],
                invalid: Any = None, **_: Any) -> Decision:
        return Decision(opted_in=True, warnings=noisy)

    monkeypatch.setattr(module, "evaluate", chatty)
    warnings = admit(review(opted_in()), POLICIES).warnings or []
    assert all(len(w) < 120 for w in warnings)
    assert all(w.isprintable() for w in warnings)
    assert len(warnings) == len(set(warnings)) <= 16
    assert warnings[-1].endswith("more warnings")


def test_three_containers_each_get_a_pre_stop() -> None:
    obj = opted_in(containers=3)
    spec = patched(obj, admit(review(obj), POLICIES))["spec"]["template"]["spec"]
    assert [c["lifecycle"]["preStop"] for c in spec["containers"]] == [
        {"sleep": {"seconds": 5}}] * 3


def test_an_update_that_leaves_the_template_alone_is_not_mutated() -> None:
    stored = opted_in()
    annotated = copy.deepcopy(stored)
    annotated["metadata"].setdefault("annotations", {})["team.example/owner"] = "payments"
    verdict = judge(review(annotated, operation="UPDATE", old=stored), POLICIES)
    assert verdict.response.patch is None and verdict.outcome == "unchanged"
    assert any("pod template unchanged" in w for w in verdict.response.warnings or [])
    changed = copy.deepcopy(annotated)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/app:2"
    verdict = judge(review(changed, operation="UPDATE", old=stored), POLICIES)
    assert verdict.outcome == "mutated"  # the next template change applies the policy
