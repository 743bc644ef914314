"""The rules of issue 13 (the drain model against the kubelet), one test group per rule.

The shared case table (tests/cases/) holds one row per rule; these tests pin
the parts a row cannot show: pure helpers, and properties over variations.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from graceful.core import GracefulPolicy, evaluate, is_bare_pod, is_compliant

POLICY = GracefulPolicy.from_object({"metadata": {"name": "p"}, "spec": {}})


def deployment(*containers: dict[str, Any], grace: int | None = None,
               annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": list(containers) or [{"name": "app", "image": "a"}],
                           **spec}
    if grace is not None:
        pod["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w",
                         "annotations": {"graceful.io/policy": "p", **(annotations or {})}},
            "spec": {"selector": {"matchLabels": {"app": "w"}},
                     "template": {"metadata": {"labels": {"app": "w"}}, "spec": pod}}}


def pod_spec(obj: Any) -> Any:
    return obj["spec"]["template"]["spec"]


# --- rule 12: one definition of compliance ------------------------------------------------


def test_the_decision_carries_the_admitted_object() -> None:
    obj = deployment()
    original = copy.deepcopy(obj)
    decision = evaluate(obj, [POLICY])
    assert decision.patch
    assert decision.admitted == jsonpatch.apply_patch(obj, decision.patch)
    assert obj == original
    unchanged = evaluate(decision.admitted, [POLICY])  # type: ignore[arg-type]
    assert unchanged.patch == [] and unchanged.admitted is decision.admitted
    audit = GracefulPolicy.from_object({"metadata": {"name": "p"}, "spec": {"mode": "Audit"}})
    assert evaluate(obj, [audit]).admitted is obj
    assert evaluate({**obj, "metadata": {}}, [POLICY]).admitted is not None


def test_compliance_is_defined_once() -> None:
    assert is_compliant(True, True, [])
    assert not is_compliant(False, True, [])
    assert not is_compliant(True, False, [])
    decision = evaluate(deployment(), [POLICY])
    assert not is_compliant(True, True, decision.findings)
    assert decision.compliant is False


def test_a_bare_pod_is_one_no_controller_manages() -> None:
    pod: dict[str, Any] = {"kind": "Pod", "metadata": {}}
    assert is_bare_pod(pod)
    pod["metadata"]["ownerReferences"] = [{"kind": "Thing", "name": "x", "uid": "1"}]
    assert is_bare_pod(pod)  # an owner for garbage collection only recreates nothing
    pod["metadata"]["ownerReferences"].append(
        {"kind": "ReplicaSet", "name": "rs", "uid": "2", "controller": True})
    assert not is_bare_pod(pod)
    assert not is_bare_pod({"kind": "Deployment", "metadata": {}})
