"""What our PolicyReports say, checked against the wg-policy CRD's own schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from graceful.core.findings import Finding, FindingCode
from graceful.core.policy_report import (
    ADVISORY,
    CHECK_FAILED,
    PASS_RULE,
    RESULTS_PER_REPORT,
    Outcome,
    Subject,
    layout,
    outcome,
    report,
    report_name,
    result,
    shard_of,
    subject_key,
)
from testenv.demo import REPORT_CRD

NOW = datetime(2030, 1, 1, tzinfo=UTC)
SUBJECT = Subject("apps", "Deployment", "worker", "apps/v1", "uid-1")

codes = st.lists(st.sampled_from(list(FindingCode)), max_size=6)


def findings(*items: FindingCode) -> list[Finding]:
    return [Finding(code, f"{code} found") for code in items]


@given(codes)
def test_the_outcome_is_error_then_fail_then_warn_then_pass(found: list[FindingCode]) -> None:
    verdict = outcome(findings(*found))
    if set(found) & CHECK_FAILED:
        assert verdict is Outcome.ERROR
    elif set(found) - ADVISORY:
        assert verdict is Outcome.FAIL
    elif found:
        assert verdict is Outcome.WARN
    else:
        assert verdict is Outcome.PASS


@pytest.mark.parametrize(("found", "expected"), [
    ((), "pass"),
    ((FindingCode.StalePods,), "warn"),
    ((FindingCode.StalePods, FindingCode.PreStopMissing), "fail"),
    ((FindingCode.GracePeriodBelowBudget,), "fail"),
    ((FindingCode.PolicyNotFound,), "error"),
    ((FindingCode.PreStopMissing, FindingCode.UnreadableTimeout), "error"),
])
def test_outcomes_of_everyday_findings(found: tuple[FindingCode, ...], expected: str) -> None:
    assert result(SUBJECT, "workers", findings(*found), now=NOW)["result"] == expected


def test_a_result_names_the_policy_the_codes_and_the_workload() -> None:
    body = result(SUBJECT, "cluster/defaults",
                  findings(FindingCode.PreStopMissing, FindingCode.GracePeriodBelowBudget,
                           FindingCode.PreStopMissing), now=NOW)
    assert body["policy"] == "cluster/defaults"
    assert body["rule"] == "PreStopMissing,GracePeriodBelowBudget"
    assert body["resources"] == [{"apiVersion": "apps/v1", "kind": "Deployment",
                                  "name": "worker", "namespace": "apps", "uid": "uid-1"}]
    assert body["source"] == "graceful-operator" and body["severity"] == "high"
    assert "PreStopMissing found" in body["message"]
    assert subject_key(body) == ("Deployment", "worker")
    passed = result(SUBJECT, "workers", [], now=NOW)
    assert passed["rule"] == PASS_RULE and "severity" not in passed


def test_the_timestamp_says_since_when_the_result_holds() -> None:
    first = result(SUBJECT, "workers", findings(FindingCode.PreStopMissing), now=NOW)
    later = NOW + timedelta(hours=1)
    again = result(SUBJECT, "workers", findings(FindingCode.PreStopMissing), now=later,
                   previous=first)
    assert again == first
    fixed = result(SUBJECT, "workers", [], now=later, previous=first)
    assert fixed["timestamp"] == {"seconds": int(later.timestamp()), "nanos": 0}


def test_a_long_message_is_bounded() -> None:
    body = result(SUBJECT, "workers", [Finding(FindingCode.PreStopMissing, "x" * 5000)],
                  now=NOW)
    assert len(body["message"]) <= 1024


@given(st.integers(0, 100_000), st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128, 256]))
def test_the_layout_fits_the_results_and_does_not_flap(count: int, current: int) -> None:
    shards = layout(count, current)
    assert shards >= 1 and shards & (shards - 1) == 0
    assert shards * RESULTS_PER_REPORT >= count
    assert layout(count, shards) == shards  # settled: the same count moves nothing
    if shards > 1:
        assert count > shards * RESULTS_PER_REPORT // 4  # not a quarter empty


def test_a_namespace_around_a_boundary_keeps_its_layout() -> None:
    shards = layout(RESULTS_PER_REPORT + 1)
    assert shards == 2
    assert layout(RESULTS_PER_REPORT, shards) == 2
    assert layout(RESULTS_PER_REPORT // 2, shards) == 1


@given(st.text(min_size=1, max_size=20), st.sampled_from([1, 2, 4, 16]))
def test_a_workload_always_goes_to_the_same_report(name: str, shards: int) -> None:
    index = shard_of("Deployment", name, shards)
    assert 0 <= index < shards and index == shard_of("Deployment", name, shards)


def test_report_names_carry_the_layout() -> None:
    assert report_name(0, 1) == "graceful-operator"
    assert [report_name(i, 2) for i in range(2)] == ["graceful-operator-2-1",
                                                     "graceful-operator-2-2"]


def test_a_report_is_sorted_and_summed() -> None:
    results = [result(Subject("apps", "StatefulSet", "db", "apps/v1"), "workers", [], now=NOW),
               result(Subject("apps", "Deployment", "web", "apps/v1"), "workers",
                      findings(FindingCode.PreStopMissing), now=NOW),
               result(Subject("apps", "Deployment", "api", "apps/v1"), "workers",
                      findings(FindingCode.StalePods), now=NOW)]
    body = report("apps", "graceful-operator", results)
    assert [subject_key(r) for r in body["results"]] == [
        ("Deployment", "api"), ("Deployment", "web"), ("StatefulSet", "db")]
    assert body["summary"] == {"pass": 1, "fail": 1, "warn": 1, "error": 0, "skip": 0}
    assert body["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "graceful-operator"}


# --- against the CRD's schema (the API server checks the same in the e2e test) -----------------

def schema() -> dict[str, Any]:
    crd = yaml.safe_load(REPORT_CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha2"]
    return dict(version["schema"]["openAPIV3Schema"])


def check(value: Any, node: dict[str, Any], where: str) -> None:
    """A small structural check: known fields, types, enums and required fields."""
    kind = node.get("type")
    if kind == "object":
        assert isinstance(value, dict), where
        props = node.get("properties")
        for key in node.get("required", []):
            assert key in value, f"{where}.{key} is required"
        for key, item in value.items():
            if props is not None:
                assert key in props, f"{where}.{key} is not in the CRD"
                check(item, props[key], f"{where}.{key}")
            elif "additionalProperties" in node:
                check(item, node["additionalProperties"], f"{where}.{key}")
    elif kind == "array":
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            check(item, node["items"], f"{where}[{i}]")
    elif kind == "string":
        assert isinstance(value, str), where
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif kind == "boolean":
        assert isinstance(value, bool), where
    if "enum" in node:
        assert value in node["enum"], f"{where}: {value!r} not in {node['enum']}"


@given(st.lists(codes, max_size=4))
def test_every_report_we_write_fits_the_crd(found: list[list[FindingCode]]) -> None:
    results = [result(Subject("apps", "Deployment", f"w{i}", "apps/v1", f"uid-{i}"),
                      "workers", findings(*codes_), now=NOW) for i, codes_ in enumerate(found)]
    check(report("apps", "graceful-operator", results), schema(), "report")
