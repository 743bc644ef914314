"""The shared case table (tests/cases/) through the FastAPI app, over its test client.

The same table drives the core tests and the e2e tests, so the webhook cannot
disagree with the engine about any case: the patch it returns, applied to the
object, must give exactly the case's ``mutated`` object (or no patch at all).
"""

from __future__ import annotations

import copy

import pytest
from fastapi.testclient import TestClient

from graceful.core import GracefulPolicy
from graceful.webhook.app import create_app
from graceful.webhook.cache import PolicyCache
from tests.cases import Case, load_cases

from .conftest import NAMESPACE, decode_patch, patched, review_dict

CASES = load_cases()


def _cache(case: Case) -> PolicyCache:
    policies = []
    for obj in case.policies:
        placed = copy.deepcopy(obj)
        if placed["kind"] == "GracefulPolicy":
            placed["metadata"]["namespace"] = NAMESPACE
        policies.append(GracefulPolicy.from_object(placed))
    return PolicyCache.of(policies, {NAMESPACE: case.namespace_labels})


def test_the_table_is_not_empty() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_case_through_the_app(case: Case, operation: str) -> None:
    with TestClient(create_app(_cache(case))) as client:
        if case.previous is not None:  # the case is an UPDATE of that stored object
            operation = "UPDATE"
        body = review_dict(copy.deepcopy(case.object), operation=operation, uid=case.name,
                           old=copy.deepcopy(case.previous))
        response = client.post("/mutate", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()["response"]
    assert answer["uid"] == case.name
    assert answer["allowed"] is True
    if case.kind in ("Pod", "Job") and operation == "UPDATE":
        # A Pod's spec and a Job's template are immutable once created: a patch would
        # fail the update, so such an UPDATE is always admitted unchanged.
        assert "patch" not in answer
        return
    if case.expect.mutated is None:
        assert decode_patch(answer) == []
    else:
        assert patched(case.object, answer) == case.expect.mutated
    warnings = answer.get("warnings") or []
    for expected in case.expect.warnings_contain:
        assert any(expected in w for w in warnings), (expected, warnings)
    assert all(len(w) < 120 for w in warnings)


@pytest.mark.parametrize("case", [c for c in CASES if c.expect.mutated is not None],
                         ids=[c.name for c in CASES if c.expect.mutated is not None])
def test_admitting_the_result_again_changes_nothing(case: Case) -> None:
    assert case.expect.mutated is not None
    with TestClient(create_app(_cache(case))) as client:
        operation = "CREATE" if case.kind in ("Pod", "Job") else "UPDATE"
        body = review_dict(copy.deepcopy(case.expect.mutated), operation=operation)
        answer = client.post("/mutate", json=body).json()["response"]
    assert "patch" not in answer
