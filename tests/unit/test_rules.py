"""The rules of issue 13 (the drain model against the kubelet), one test group per rule.

The shared case table (tests/cases/) holds one row per rule; these tests pin
the parts a row cannot show: pure helpers, and properties over variations.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graceful.core import (
    FindingCode,
    GracefulPolicy,
    evaluate,
    is_bare_pod,
    is_compliant,
    prestop,
    proxies,
)
from graceful.core.rollout import rollout_of

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


# --- rule 1: hooks of unknown length ------------------------------------------------------

NGINX_QUIT = {"preStop": {"exec": {"command": ["/usr/sbin/nginx", "-s", "quit"]}}}


def test_declared_hook_lengths_are_read_strictly() -> None:
    read = prestop.declared
    assert read({}) == (prestop.Declared(), [])
    assert read({"graceful.io/prestop-seconds": "20"})[0].for_container("any") == 20
    both, found = read({"graceful.io/prestop-seconds": "app=20, nginx=1m"})
    assert found == [] and both.for_container("nginx") == 60 and both.for_container("x") is None
    for bad in ("app=", "=5", "App=5", "app=5,app=6", "app=-1", "1.5", "x" * 600,
                ",".join(f"c{i}=1" for i in range(33))):
        declared, found = read({"graceful.io/prestop-seconds": bad})
        assert declared == prestop.Declared(), bad
        assert [f.code for f in found] == [FindingCode.UnreadableTimeout], bad


@given(st.integers(0, 20000), st.booleans(), st.booleans())
def test_overwrite_never_shortens_the_grace_of_an_unknown_hook(
        grace: int, declare: bool, overwrite: bool) -> None:
    spec = {"userValues": "Overwrite" if overwrite else "Keep"}
    policy = GracefulPolicy.from_object({"metadata": {"name": "p"}, "spec": spec})
    annotations = {"graceful.io/prestop-seconds": "app=7"} if declare else {}
    obj = deployment({"name": "app", "image": "a", "lifecycle": NGINX_QUIT},
                     {"name": "side", "image": "b"}, grace=grace, annotations=annotations)
    decision = evaluate(obj, [policy])
    after = pod_spec(decision.admitted)["terminationGracePeriodSeconds"]
    codes = {f.code for f in decision.findings}
    assert decision.plan is not None
    if declare:
        assert FindingCode.PreStopDurationUnknown not in codes
        assert decision.plan.budget.required == 7 + 30 + 5
        assert after == (42 if overwrite else max(grace, 42))
    else:
        assert FindingCode.PreStopDurationUnknown in codes
        assert after >= grace and after >= decision.plan.budget.grace
        assert decision.plan.budget.pre_stop_known is False
        assert "at least" in decision.plan.budget.explain()
    assert evaluate(decision.admitted, [policy]).patch == []  # type: ignore[arg-type]


# --- rule 10: stale Pods are not a rollout in progress ------------------------------------


def workload(kind: str, *, generation: int = 2, observed: int | None = 2,
             spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"kind": kind, "metadata": {"generation": generation},
                           "spec": spec or {}, "status": dict(status)}
    if observed is not None:
        obj["status"]["observedGeneration"] = observed
    return obj


@pytest.mark.parametrize(("obj", "state"), [
    (workload("Deployment", spec={"replicas": 3}, updatedReplicas=3, replicas=3), "complete"),
    (workload("Deployment", spec={"replicas": 3}, updatedReplicas=1, replicas=4), "progressing"),
    (workload("Deployment", spec={"replicas": 2}, updatedReplicas=2, replicas=3), "progressing"),
    (workload("Deployment", observed=1, updatedReplicas=1, replicas=1), "progressing"),
    (workload("Deployment", observed=None), "progressing"),  # status not written yet
    (workload("Deployment", spec={"paused": True}, updatedReplicas=0, replicas=1), "paused"),
    (workload("Deployment", updatedReplicas=1, replicas=1), "complete"),  # replicas default 1
    (workload("StatefulSet", spec={"replicas": 2}, currentRevision="a", updateRevision="b",
              updatedReplicas=1), "progressing"),
    (workload("StatefulSet", spec={"replicas": 2}, currentRevision="b", updateRevision="b",
              updatedReplicas=2), "complete"),
    (workload("StatefulSet", spec={"updateStrategy": {"type": "OnDelete"}},
              currentRevision="a", updateRevision="b"), "manual"),
    (workload("StatefulSet", spec={"replicas": 3, "updateStrategy": {
        "type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
        currentRevision="a", updateRevision="b"), "manual"),
    (workload("DaemonSet", desiredNumberScheduled=3, updatedNumberScheduled=1), "progressing"),
    (workload("DaemonSet", desiredNumberScheduled=3, updatedNumberScheduled=3), "complete"),
    (workload("DaemonSet", spec={"updateStrategy": {"type": "OnDelete"}},
              desiredNumberScheduled=3, updatedNumberScheduled=0), "manual"),
    ({"kind": "Pod"}, "none"),
    ({"kind": "Job"}, "none"),
])
def test_the_rollout_state_comes_from_status_fields(obj: dict[str, Any], state: str) -> None:
    found = rollout_of(obj)
    assert found.state == state, found.reason
    assert found.replaces_pods is (state == "progressing")


@given(st.recursive(st.none() | st.booleans() | st.integers(-3, 5) | st.text(max_size=3),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(
                        st.sampled_from(["kind", "spec", "status", "metadata", "paused",
                                         "replicas", "updatedReplicas", "generation",
                                         "observedGeneration", "updateStrategy", "type"]),
                        c, max_size=4), max_leaves=20))
def test_rollout_of_never_raises(obj: Any) -> None:
    assert rollout_of(obj).state in ("progressing", "complete", "paused", "manual", "none")


# --- rule 8: Jobs, CronJobs, and kinds the engine does not handle ---------------------------


def test_an_annotated_object_of_another_kind_is_a_warning_and_a_finding() -> None:
    rollout = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
               "metadata": {"name": "r", "annotations": {"graceful.io/policy": "p"}},
               "spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}}
    decision = evaluate(rollout, [POLICY])
    assert decision.opted_in and decision.patch == []
    assert [f.code for f in decision.findings] == [FindingCode.UnsupportedKind]
    assert any("'Rollout' is not one of" in w for w in decision.warnings)
    assert evaluate({**rollout, "metadata": {"name": "r"}}, [POLICY]).findings == []


# --- rule 6: sidecars and mesh proxies ---------------------------------------------------

ISTIO = {"name": "istio-proxy", "image": "proxyv2"}


def policy(**spec: Any) -> GracefulPolicy:
    return GracefulPolicy.from_object({"metadata": {"name": "p"}, "spec": spec})


@pytest.mark.parametrize(("text", "seconds"), [
    ("5s", 5), ("1m30s", 90), ("34.9s", 34), ("1h", 3600), ("1500ms", 1), ("0", 0),
])
def test_istio_durations_are_go_durations_rounded_down(text: str, seconds: int) -> None:
    assert proxies.go_duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "-5s", "5 s", "fives", "200h"])
def test_an_unreadable_istio_duration_is_an_error(text: str) -> None:
    with pytest.raises(proxies.ProxyConfigError):
        proxies.go_duration_seconds(text)


def test_an_unreadable_mesh_setting_is_reported_not_guessed() -> None:
    obj = deployment({"name": "app", "image": "a"}, ISTIO)
    obj["spec"]["template"]["metadata"]["annotations"] = {
        "proxy.istio.io/config": "terminationDrainDuration: [5s]"}
    decision = evaluate(obj, [policy(drain={"setProxyDrain": True})])
    assert [f.code for f in decision.findings if f.code is FindingCode.UnreadableTimeout]
    assert FindingCode.ProxyDrainTooShort not in {f.code for f in decision.findings}
    assert not any("proxy.istio.io" in op["path"] for op in decision.patch)


def test_setting_the_istio_drain_keeps_the_yaml_config_and_is_idempotent() -> None:
    obj = deployment({"name": "app", "image": "a"}, ISTIO,
                     annotations={"graceful.io/graceful-timeout": "3600"})
    obj["spec"]["template"]["metadata"]["annotations"] = {
        "proxy.istio.io/config": "holdApplicationUntilProxyStarts: true\n"
                                 "terminationDrainDuration: 30s\n"}
    decision = evaluate(obj, [policy(drain={"setProxyDrain": True})])
    assert decision.admitted is not None
    config = decision.admitted["spec"]["template"]["metadata"]["annotations"][
        "proxy.istio.io/config"]
    assert config == "holdApplicationUntilProxyStarts: true\nterminationDrainDuration: 3605s\n"
    assert evaluate(decision.admitted, [policy(drain={"setProxyDrain": True})]).patch == []


def test_audit_mode_never_sets_the_proxy_drain() -> None:
    obj = deployment({"name": "app", "image": "a"}, ISTIO)
    decision = evaluate(obj, [policy(mode="Audit", drain={"setProxyDrain": True})])
    assert decision.patch == []
    assert any("terminationDrainDuration: 35s" in w for w in decision.warnings)


def test_a_linkerd_proxy_already_injected_gets_its_sleep_raised_with_the_annotation() -> None:
    proxy: dict[str, Any] = {"name": "linkerd-proxy", "image": "proxy",
             "lifecycle": {"preStop": {"exec": {"command": ["/bin/sleep", "40"]}}}}
    obj = deployment({"name": "app", "image": "a"}, proxy,
                     annotations={"graceful.io/graceful-timeout": "60"})
    decision = evaluate(obj, [policy(drain={"setProxyDrain": True})])
    assert decision.admitted is not None
    template = decision.admitted["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        "config.alpha.linkerd.io/proxy-wait-before-exit-seconds": "65"}
    assert template["spec"]["containers"][1]["lifecycle"]["preStop"]["exec"]["command"] == [
        "/bin/sleep", "65"]
    # the sleep it already has counts: no finding once it covers S + G
    proxy["lifecycle"]["preStop"]["exec"]["command"][1] = "65"
    codes = {f.code for f in evaluate(obj, [POLICY]).findings}
    assert FindingCode.ProxyDrainTooShort not in codes


def test_an_explicit_container_list_wins_over_the_proxy_names() -> None:
    obj = deployment({"name": "app", "image": "a"}, {"name": "auth-proxy", "image": "b"})
    listed = evaluate(obj, [policy(proxyContainers=["auth-proxy"])])
    assert listed.plan is not None and [c.name for c in listed.plan.containers] == ["app"]
    both = evaluate(obj, [policy(proxyContainers=["auth-proxy"],
                                 containers=["app", "auth-proxy"])])
    assert both.plan is not None
    assert [c.name for c in both.plan.containers] == ["app", "auth-proxy"]


def test_a_sidecar_hook_of_unknown_length_is_reported_and_keeps_t() -> None:
    sidecar = {"name": "vault-agent", "image": "v", "restartPolicy": "Always",
               "lifecycle": {"preStop": {"httpGet": {"path": "/quit", "port": 8200}}}}
    obj = deployment({"name": "app", "image": "a"}, grace=600, initContainers=[sidecar])
    decision = evaluate(obj, [policy(userValues="Overwrite")])
    assert [f.container for f in decision.findings
            if f.code is FindingCode.PreStopDurationUnknown] == ["vault-agent"]
    assert decision.plan is not None and decision.plan.grace_period_seconds == 600
    assert not decision.plan.budget.pre_stop_known


@given(app_end=st.integers(0, 4000),
       stops=st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100)), max_size=4))
def test_sidecars_end_after_the_app_and_after_each_of_their_hooks(
        app_end: int, stops: list[tuple[int, int]]) -> None:
    sidecars = tuple(proxies.SidecarStop(f"s{i}", p, d) for i, (p, d) in enumerate(stops))
    end = proxies.sidecars_end(app_end, sidecars)
    assert end >= app_end + sum(d for _, d in stops)
    assert all(end >= p + d for p, d in stops)
    assert end <= max([app_end, *(p for p, _ in stops)]) + sum(d for _, d in stops)
