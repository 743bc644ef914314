from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jsonpatch

from graceful.core import (
    Finding,
    FindingCode,
    GracefulPolicy,
    PolicyStatus,
    WorkloadResult,
    evaluate,
    stale_pods,
    summarize,
)

POLICY = GracefulPolicy.from_object({"metadata": {"name": "p", "generation": 3},
                                     "spec": {"readiness": {}}})
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "w", "annotations": {"graceful.io/policy": "p"}},
    "spec": {"template": {"spec": {"containers": [
        {"name": "app", "readinessProbe": {"httpGet": {"path": "/", "port": 1}}},
        {"name": "other"}]}}},
}


def running(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_stale_pods() -> None:
    decision = evaluate(DEPLOYMENT, [POLICY])
    fixed = jsonpatch.apply_patch(DEPLOYMENT, decision.patch)
    fresh_spec = fixed["spec"]["template"]["spec"]
    compliant = evaluate(fixed, [POLICY])
    assert compliant.compliant
    old = running("old", DEPLOYMENT["spec"]["template"]["spec"])
    new = running("new", fresh_spec)
    bigger = running("bigger", {**fresh_spec, "terminationGracePeriodSeconds": 999})
    short = running("short", {**fresh_spec, "containers": [
        {**fresh_spec["containers"][0], "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}},
        fresh_spec["containers"][1]]})
    slow_probe = running("slow-probe", {**fresh_spec, "containers": [
        {**fresh_spec["containers"][0], "readinessProbe": {"periodSeconds": 10}},
        fresh_spec["containers"][1]]})
    junk = running("junk", {"containers": "x"})
    pods = [old, new, bigger, short, slow_probe, junk, "not a pod"]
    # slow-probe wrote its own 10s period: Keep never lowers it, so the engine finds no
    # fault with it, and a Pod is stale exactly when the engine finds one
    assert stale_pods(compliant, pods) == ["old", "short"]  # type: ignore[arg-type]
    assert stale_pods(evaluate({"kind": "Pod"}, [POLICY]), [old]) == []


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_summarize_counts_bounds_and_validates() -> None:
    bad = [WorkloadResult("Deployment", f"d{i:02d}", [
        Finding(FindingCode.PreStopMissing, "container app: no preStop hook", "app")] * 20)
        for i in range(55)]
    good = [WorkloadResult("Pod", "ok"), WorkloadResult("StatefulSet", "fine")]
    status = summarize(POLICY, bad + good, now=NOW)
    assert (status["matched"], status["compliant"], status["mismatched"]) == (57, 2, 55)
    assert len(status["mismatches"]) == 50 and status["mismatchesOmitted"] == 5
    assert status["mismatches"][0]["name"] == "d00"
    assert len(status["mismatches"][0]["reasons"]) == 16
    assert status["gracePeriodSeconds"] == 40 and status["observedGeneration"] == 3
    (ready,) = status["conditions"]
    assert ready["status"] == "False" and ready["lastTransitionTime"] == "2026-03-01T12:00:00Z"
    PolicyStatus.model_validate(status)
    assert summarize(POLICY, bad, now=NOW, limit=5)["mismatchesOmitted"] == 50


def test_summarize_is_pure_and_keeps_transition_time() -> None:
    results = [WorkloadResult("Deployment", "a")]
    first = summarize(POLICY, results, now=NOW)
    assert first == summarize(POLICY, results, now=NOW)
    later = summarize(POLICY, results, now=NOW + timedelta(hours=1), previous=first)
    assert later == first
    flipped = summarize(POLICY, [WorkloadResult("Deployment", "a", [
        Finding(FindingCode.StalePods, "2 pods predate the budget")])],
        now=NOW + timedelta(hours=2), previous=first)
    assert flipped["conditions"][0]["lastTransitionTime"] == "2026-03-01T14:00:00Z"
    assert flipped["conditions"][0]["reason"] == "WorkloadsMismatched"
    empty = summarize(POLICY, [], now=NOW)
    assert empty["conditions"][0]["status"] == "True" and empty["matched"] == 0
