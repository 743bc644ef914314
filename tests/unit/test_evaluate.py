"""evaluate() cases that do not fit the shared table (adapter-specific or edge shapes)."""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from graceful.core import (
    FindingCode,
    GracefulPolicy,
    evaluate,
    invalid_policy_message,
    selector_matches,
)
from graceful.core.policy import LabelSelector


def policy(name: str = "p", **spec: Any) -> GracefulPolicy:
    return GracefulPolicy.from_object({"metadata": {"name": name}, "spec": spec})


def pod(*containers: dict[str, Any], annotations: dict[str, str] | None = None,
        **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "x", "annotations": {"graceful.io/policy": "p"}
                         if annotations is None else annotations},
            "spec": {"containers": list(containers) or [{"name": "app"}], **spec}}


def test_controller_owned_pod_is_still_evaluated() -> None:
    """The webhook skips these; the operator evaluates them to find stale Pods."""
    obj = pod()
    obj["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                           "name": "rs", "uid": "u", "controller": True}]
    decision = evaluate(obj, [policy()])
    assert decision.opted_in and decision.patch
    assert decision.plan is not None and decision.plan.pod_spec_path == "/spec"


def test_audit_mode_computes_findings_without_a_patch() -> None:
    decision = evaluate(pod(), [policy(mode="Audit")])
    assert decision.patch == []
    assert {f.code for f in decision.findings} == {FindingCode.PreStopMissing,
                                                   FindingCode.GracePeriodBelowBudget}
    assert decision.plan is not None and decision.plan.grace_period_seconds == 40
    assert not decision.compliant


def test_first_matching_selector_by_name_wins() -> None:
    obj = pod(annotations={})
    obj["metadata"]["labels"] = {"tier": "worker"}
    b = policy("b", selector={"matchLabels": {"tier": "worker"}}, gracefulTimeoutSeconds=100)
    a = policy("a", selector={"matchExpressions": [{"key": "tier", "operator": "Exists"}]})
    assert evaluate(obj, [b, a]).policy_name == "a"


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
     {"a": "2"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
])
def test_selector_semantics(selector: dict[str, Any], labels: dict[str, str],
                            matches: bool) -> None:
    assert selector_matches(LabelSelector.model_validate(selector), labels) is matches


def test_annotation_naming_a_missing_policy_does_not_fall_back_to_a_selector() -> None:
    obj = pod(annotations={"graceful.io/policy": "typo"})
    obj["metadata"]["labels"] = {"tier": "worker"}
    decision = evaluate(obj, [policy("p", selector={"matchLabels": {"tier": "worker"}})])
    assert decision.policy_name == "typo" and decision.policy is None
    assert [f.code for f in decision.findings] == [FindingCode.PolicyNotFound]
    assert decision.patch == [] and not decision.compliant


@pytest.mark.parametrize("obj", [
    pod(containers="junk"),
    {"kind": "Job", "metadata": {"annotations": {"graceful.io/policy": "p"}}, "spec": {}},
    {"kind": "Deployment", "metadata": {"annotations": {"graceful.io/policy": "p"}}},
    pod({"name": "app", "lifecycle": "junk"}),
    pod({"name": "app", "readinessProbe": {"periodSeconds": "10"}}),
    pod({"name": 7}),
    pod(terminationGracePeriodSeconds=True),
])
def test_unreadable_workloads_become_a_finding(obj: dict[str, Any]) -> None:
    decision = evaluate(obj, [policy()])
    assert decision.opted_in and decision.patch == [] and decision.plan is None
    assert [f.code for f in decision.findings] == [FindingCode.UnreadableWorkload]
    assert decision.warnings and all(len(w) < 120 for w in decision.warnings)


def test_not_an_object_at_all() -> None:
    decision = evaluate([], [policy()])  # type: ignore[arg-type]
    assert not decision.opted_in and decision.warnings


def test_zero_sleep_adds_no_hook() -> None:
    decision = evaluate(pod(), [policy(drain={"preStopSleepSeconds": 0, "preStopAction": "Exec"})])
    assert [f.code for f in decision.findings] == [FindingCode.GracePeriodBelowBudget]
    assert decision.patch == [{"op": "add", "path": "/spec/terminationGracePeriodSeconds",
                               "value": 35}]


def test_shell_sleep_is_raised_in_place() -> None:
    obj = pod({"name": "app", "lifecycle": {"preStop": {"exec": {
        "command": ["/bin/sh", "-c", "sleep 2"]}}}}, terminationGracePeriodSeconds=40)
    decision = evaluate(obj, [policy()])
    assert decision.patch == [{"op": "replace", "path": "/spec/containers/0/lifecycle/preStop/"
                               "exec/command/2", "value": "sleep 5"}]


def test_overwrite_lowers_a_long_sleep_and_tunes_readiness_exactly() -> None:
    obj = pod({"name": "app", "lifecycle": {"preStop": {"sleep": {"seconds": 30}}},
               "readinessProbe": {"periodSeconds": 1, "failureThreshold": 1}},
              terminationGracePeriodSeconds=65)
    decision = evaluate(obj, [policy(userValues="Overwrite", readiness={})])
    patched = jsonpatch.apply_patch(obj, decision.patch)
    container = patched["spec"]["containers"][0]
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] == 5
    assert (container["readinessProbe"]["periodSeconds"],
            container["readinessProbe"]["failureThreshold"]) == (1, 3)
    assert patched["spec"]["terminationGracePeriodSeconds"] == 40
    assert decision.findings == []


def test_warnings_stay_short_with_long_names() -> None:
    name = "a" * 63
    obj = pod({"name": name, "lifecycle": {"preStop": {"httpGet": {"path": "/", "port": 1}}}},
              annotations={"graceful.io/policy": "p", "graceful.io/graceful-timeout": "x" * 500})
    decision = evaluate(obj, [policy(containers=[name, "b" * 63])])
    assert len(decision.warnings) >= 3
    assert all(len(w) < 120 and w.startswith("graceful: ") for w in decision.warnings)


def test_policy_container_missing_from_the_pod_is_a_warning() -> None:
    decision = evaluate(pod(), [policy(containers=["web"])])
    assert any("'web' not in the pod" in w for w in decision.warnings)
    assert decision.plan is not None and decision.plan.containers == ()
    assert decision.plan.untouched == ("app",)


def test_the_api_servers_default_grace_period_is_not_said_to_be_kept() -> None:
    """The API server stores 30 s in every template that sets nothing: nobody chose it."""
    short = policy(gracefulTimeoutSeconds=5)  # budget 5 + 5 + 5 = 15 s
    defaulted = evaluate(pod({"name": "app", "lifecycle": {"preStop": {"sleep": {
        "seconds": 5}}}}, terminationGracePeriodSeconds=30), [short])
    assert defaulted.patch == [] and defaulted.findings == []
    assert not [w for w in defaulted.warnings if "kept" in w], defaulted.warnings
    chosen = evaluate(pod({"name": "app", "lifecycle": {"preStop": {"sleep": {
        "seconds": 5}}}}, terminationGracePeriodSeconds=45), [short])
    assert "graceful: kept terminationGracePeriodSeconds 45s above budget 15s" in chosen.warnings


def test_naming_a_policy_that_exists_but_is_invalid_says_so_and_why() -> None:
    error = "spec.drain.maxGracePeriodSeconds: maxGracePeriodSeconds must be at least ..."
    decision = evaluate(pod(), [], {"p": error})
    assert [f.code for f in decision.findings] == [FindingCode.PolicyInvalid]
    (finding,) = decision.findings
    assert finding.message == f"policy 'p' is invalid: {invalid_policy_message(error)}"
    assert "not found" not in finding.message and not decision.patch
    (told,) = decision.warnings
    assert told.startswith("graceful: policy 'p' is invalid: spec.drain.maxGracePeriodSeconds")
    assert len(told) < 120
    # another name is still just missing
    other = evaluate(pod(annotations={"graceful.io/policy": "q"}), [], {"p": error})
    assert [f.code for f in other.findings] == [FindingCode.PolicyNotFound]


def test_invalid_policy_message_is_one_bounded_line() -> None:
    assert invalid_policy_message("a:\n  b;   c") == "a: b; c"
    assert len(invalid_policy_message("x" * 5000)) == 1024
    assert invalid_policy_message("") == "invalid policy"


def cluster_policy(name: str = "wide", **spec: Any) -> GracefulPolicy:
    return GracefulPolicy.from_object({
        "kind": "ClusterGracefulPolicy", "metadata": {"name": name},
        "spec": {"namespaceSelector": {"matchLabels": {"tier": "apps"}}, **spec}})


def test_a_cluster_policy_named_where_it_does_not_serve_is_not_found_there() -> None:
    named = pod(annotations={"graceful.io/policy": "cluster/wide"})
    served = evaluate(named, [cluster_policy()],
                      ns_labels={"tier": "apps", "kubernetes.io/metadata.name": "a"})
    assert served.policy is not None and served.policy_name == "cluster/wide" and served.patch
    elsewhere = evaluate(named, [cluster_policy()],
                         ns_labels={"kubernetes.io/metadata.name": "b"})
    (finding,) = elsewhere.findings
    assert finding.code is FindingCode.PolicyNotFound and not elsewhere.patch
    assert finding.message == "policy 'cluster/wide' not found or not for this namespace"
    # nothing known of the namespace (no labels given): no cluster policy serves it
    unknown = evaluate(named, [cluster_policy()])
    assert [f.code for f in unknown.findings] == [FindingCode.PolicyNotFound]


def test_an_invalid_cluster_policy_is_reported_by_its_reference() -> None:
    named = pod(annotations={"graceful.io/policy": "cluster/wide"})
    decision = evaluate(named, [], {"cluster/wide": "spec.mode: Input should be 'Enforce'"},
                        ns_labels={"kubernetes.io/metadata.name": "a"})
    (finding,) = decision.findings
    assert finding.code is FindingCode.PolicyInvalid
    assert finding.message.startswith("policy 'cluster/wide' is invalid: spec.mode")
    # a namespaced policy of that name is another object: "wide" is not "cluster/wide"
    local = evaluate(pod(annotations={"graceful.io/policy": "wide"}), [],
                     {"cluster/wide": "spec.mode: Input should be 'Enforce'"})
    assert [f.code for f in local.findings] == [FindingCode.PolicyNotFound]
