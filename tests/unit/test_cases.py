"""Every case of the shared table through evaluate() and a real JSON Patch library."""

from __future__ import annotations

import jsonpatch
import pytest

from graceful.core import NEEDS_USER, FindingCode, evaluate
from tests.cases import Case, load_cases

CASES = load_cases()


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 15
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.kind for c in CASES} == {"Deployment", "StatefulSet", "DaemonSet", "Job",
                                       "CronJob", "Pod"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case) -> None:
    decision = evaluate(case.object, case.graceful_policies(), ns_labels=case.ns_labels(),
                        previous=case.previous)
    expect = case.expect
    assert decision.opted_in is expect.opted_in
    assert sorted(f.code.value for f in decision.findings) == sorted(expect.findings)
    assert all(code in FindingCode.__members__ for code in expect.findings)
    for text in expect.warnings_contain:
        assert any(text in w for w in decision.warnings), (text, decision.warnings)
    assert all(len(w) < 120 for w in decision.warnings)
    if expect.mutated is None:
        assert decision.patch == []
    else:
        assert decision.patch, "expected a mutation"
        assert jsonpatch.apply_patch(case.object, decision.patch) == expect.mutated
    assert decision.compliant == (expect.opted_in and not expect.findings)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_is_idempotent(case: Case) -> None:
    policies = case.graceful_policies()
    first = evaluate(case.object, policies, case.ns_labels())
    patched = jsonpatch.apply_patch(case.object, first.patch)
    again = evaluate(patched, policies, case.ns_labels())
    assert again.patch == []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_mutated_object_is_compliant_unless_capped(case: Case) -> None:
    if case.expect.mutated is None:
        return
    after = evaluate(case.expect.mutated, case.graceful_policies(), ns_labels=case.ns_labels())
    assert {f.code for f in after.findings} <= NEEDS_USER
