"""Event dedup: one Event per change of story, and the memory rebuilt from the cluster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from graceful.core import Finding, FindingCode, GracefulPolicy, WorkloadResult, summarize
from graceful.operator.events import (
    DIGEST_ANNOTATION,
    LABEL_SELECTOR,
    MESSAGE_LIMIT,
    REASON_COMPLIANT,
    REASON_MISMATCH,
    REPORTED_AT_ANNOTATION,
    EventIntent,
    Reported,
    Verdict,
    digest,
    event_body,
    next_event,
    reasons_of,
    remember,
    seed,
)
from tests.operator import objects

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
GRACE = ("grace period 30s < budget 40s",)
PRESTOP = ("container app: no preStop hook",)


def verdict(reasons: tuple[str, ...] = GRACE, *, opted_in: bool = True,
            policy: str = "workers", uid: str = "u1") -> Verdict:
    return Verdict(namespace="ns", kind="Deployment", name="web", uid=uid,
                   api_version="apps/v1", opted_in=opted_in, policy=policy, reasons=reasons)


def story(verdicts: list[Verdict]) -> list[str]:
    """Run the verdicts through next_event/remember; the reasons of the Events posted."""
    previous: Reported | None = None
    posted = []
    for v in verdicts:
        intent = next_event(previous, v)
        if intent is not None:
            posted.append(intent.reason)
        previous = remember(previous, v, intent)
    return posted


@pytest.mark.parametrize(("verdicts", "expected"), [
    ([verdict()], [REASON_MISMATCH]),
    ([verdict(), verdict(), verdict()], [REASON_MISMATCH]),
    ([verdict(GRACE), verdict(GRACE + PRESTOP)], [REASON_MISMATCH, REASON_MISMATCH]),
    ([verdict(), verdict(())], [REASON_MISMATCH, REASON_COMPLIANT]),
    ([verdict(()), verdict(())], []),
    ([verdict(), verdict(()), verdict(()), verdict()],
     [REASON_MISMATCH, REASON_COMPLIANT, REASON_MISMATCH]),
    ([verdict(), verdict(opted_in=False), verdict()], [REASON_MISMATCH, REASON_MISMATCH]),
    ([verdict(policy="a"), verdict(policy="b")], [REASON_MISMATCH, REASON_MISMATCH]),
    ([verdict(uid="old"), verdict(uid="new")], [REASON_MISMATCH, REASON_MISMATCH]),
])
def test_the_story(verdicts: list[Verdict], expected: list[str]) -> None:
    assert story(verdicts) == expected


def test_a_workload_never_reported_is_not_called_compliant() -> None:
    assert next_event(None, verdict(())) is None
    assert remember(None, verdict(()), None) is None


def test_messages() -> None:
    warning = next_event(None, verdict(GRACE + PRESTOP))
    assert warning is not None and warning.type == "Warning"
    assert warning.message == ("does not meet the drain budget of GracefulPolicy workers: "
                               "grace period 30s < budget 40s; container app: no preStop hook")
    normal = next_event(warning.reported(), verdict(()))
    assert normal is not None and normal.type == "Normal"
    assert normal.message == "meets the drain budget of GracefulPolicy workers"
    long = next_event(None, verdict(tuple("x" * 250 for _ in range(16))))
    assert long is not None and len(long.message) == MESSAGE_LIMIT


def test_reasons_match_the_status_summarize_writes() -> None:
    """The digest of a status line must equal the digest of the Event for the same findings."""
    findings = [Finding(FindingCode.GracePeriodBelowBudget, "x" * 300)] + [
        Finding(FindingCode.PreStopMissing, f"container c{i}: no preStop hook")
        for i in range(20)]
    policy = GracefulPolicy.from_object(objects.policy())
    status = summarize(policy, [WorkloadResult("Deployment", "web", findings)], now=NOW)
    assert list(reasons_of(findings)) == status["mismatches"][0]["reasons"]


def test_event_body() -> None:
    intent = next_event(None, verdict())
    assert intent is not None
    body = event_body(intent, instance="replica-1", now=NOW, name_suffix="abc")
    assert body["metadata"]["name"] == "web.abc"
    assert body["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "graceful-operator"}
    assert LABEL_SELECTOR == "app.kubernetes.io/managed-by=graceful-operator"
    assert body["metadata"]["annotations"][DIGEST_ANNOTATION] == intent.digest
    assert body["metadata"]["annotations"][REPORTED_AT_ANNOTATION] == (
        "2030-01-01T12:00:00.000000+00:00")
    assert body["involvedObject"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "web", "namespace": "ns", "uid": "u1"}
    assert (body["type"], body["reason"]) == ("Warning", REASON_MISMATCH)
    assert body["reportingInstance"] == "replica-1"
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2030-01-01T12:00:00Z"


def _stored(intent: EventIntent, at: datetime, suffix: str) -> dict[str, Any]:
    body = event_body(intent, instance="r", now=at, name_suffix=suffix)
    body["metadata"]["creationTimestamp"] = "2030-01-01T12:00:00Z"
    return body


def test_seed_takes_the_latest_event_per_workload() -> None:
    mismatch = next_event(None, verdict())
    assert mismatch is not None
    compliant = next_event(mismatch.reported(), verdict(()))
    assert compliant is not None
    later = datetime(2030, 1, 1, 12, 0, 0, 500, tzinfo=UTC)  # same second, later microsecond
    events = [_stored(compliant, later, "b"), _stored(mismatch, NOW, "a")]
    assert seed(events, []) == {("ns", "Deployment", "web"): Reported(True, "", "u1")}
    assert seed(list(reversed(events)), []) == seed(events, [])


def test_a_restart_posts_nothing_for_an_unchanged_mismatch() -> None:
    first = next_event(None, verdict())
    assert first is not None
    rebuilt = seed([_stored(first, NOW, "a")], [])
    assert next_event(rebuilt[("ns", "Deployment", "web")], verdict()) is None


def test_seed_falls_back_to_the_status_when_events_expired() -> None:
    status = {"mismatches": [{"kind": "Deployment", "name": "web", "reasons": list(GRACE)}]}
    rebuilt = seed([], [("ns", "workers", status)])
    previous = rebuilt[("ns", "Deployment", "web")]
    assert previous == Reported(False, digest("workers", GRACE))
    assert next_event(previous, verdict()) is None
    assert next_event(previous, verdict(GRACE + PRESTOP)) is not None


def test_seed_prefers_events_and_ignores_junk() -> None:
    first = next_event(None, verdict(PRESTOP))
    assert first is not None
    status = {"mismatches": [{"kind": "Deployment", "name": "web", "reasons": list(GRACE)},
                             "junk", {"kind": "Deployment"}]}
    junk = [{"reason": "Scheduled"}, "x", {"reason": REASON_MISMATCH, "involvedObject": {}}]
    rebuilt = seed([*junk, _stored(first, NOW, "a")], [("ns", "workers", status)])  # type: ignore[list-item]
    assert rebuilt == {("ns", "Deployment", "web"): first.reported()}
