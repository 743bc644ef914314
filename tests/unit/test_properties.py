"""Properties of evaluate() over generated policies and workloads (hypothesis)."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graceful.core import NEEDS_USER, FindingCode, GracefulPolicy, evaluate, prestop
from graceful.core.names import KUBERNETES_DEFAULT_GRACE_SECONDS

NAMES = ["app", "web", "worker", "istio-proxy", "metrics"]
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def policies(draw: st.DrawFn) -> GracefulPolicy:
    action = draw(st.sampled_from(["Sleep", "Exec"]))
    sleep = draw(st.integers(1 if action == "Sleep" else 0, 60))
    timeout = draw(st.integers(0, 20000))
    margin = draw(st.integers(0, 60))
    low = max(1, sleep + timeout + margin)
    ceiling = draw(st.integers(low, low + 5000))
    spec: dict[str, Any] = {
        "mode": draw(st.sampled_from(["Enforce", "Enforce", "Enforce", "Audit"])),
        "gracefulTimeoutSeconds": timeout,
        "drain": {"preStopSleepSeconds": sleep, "safetyMarginSeconds": margin,
                  "maxGracePeriodSeconds": ceiling, "preStopAction": action},
        "containers": draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=2)),
        "userValues": draw(st.sampled_from(["Keep", "Overwrite"])),
    }
    if sleep and draw(st.booleans()):
        period = draw(st.integers(1, sleep))
        spec["readiness"] = {"periodSeconds": period,
                             "failureThreshold": draw(st.integers(1, sleep // period))}
    return GracefulPolicy.from_object({"metadata": {"name": "p"}, "spec": spec})


PRESTOPS = st.one_of(
    st.none(),
    st.builds(lambda n: {"sleep": {"seconds": n}}, st.integers(0, 100)),
    st.builds(lambda n: {"exec": {"command": ["sleep", str(n)]}}, st.integers(0, 100)),
    st.builds(lambda n: {"exec": {"command": ["/bin/sh", "-c", f"sleep {n}"]}},
              st.integers(0, 100)),
    st.just({"httpGet": {"path": "/drain", "port": 8080}}),
    st.just({"exec": {"command": ["/usr/sbin/nginx", "-s", "quit"]}}),
)
FLAGS: st.SearchStrategy[list[str]] = st.one_of(
    st.just([]),
    st.builds(lambda n: ["--graceful-timeout", str(n)], st.integers(0, 100000)),
    st.builds(lambda n: [f"--timeout-graceful-shutdown={n}"], st.integers(0, 100000)),
    st.just(["--graceful-timeout", "soon"]),
)
TIMEOUT_ANNOTATIONS = st.one_of(
    st.none(), st.integers(0, 700000).map(str),
    st.sampled_from(["90s", "15m", "1h", "1h30m", "2h", "-5", "1.5", "an hour", "\u0663\u0660"]),
    st.text(max_size=40),
)


@st.composite
def containers(draw: st.DrawFn, name: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": f"registry.example/{name}:1"}
    args = draw(FLAGS)
    if args:
        container["args"] = args
    hook = draw(PRESTOPS)
    if hook is not None:
        container["lifecycle"] = {"preStop": hook}
    if draw(st.booleans()):
        probe: dict[str, Any] = {"httpGet": {"path": "/ready", "port": 8080}}
        if draw(st.booleans()):
            probe = {"exec": {"command": ["mysql", "-e", "SELECT 1"]}}
        for key in ("periodSeconds", "failureThreshold", "timeoutSeconds"):
            if draw(st.booleans()):
                probe[key] = draw(st.integers(1, 30))
        container["readinessProbe"] = probe
    return container


@st.composite
def workloads(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Deployment", "StatefulSet", "DaemonSet", "Pod"]))
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    pod: dict[str, Any] = {"containers": [draw(containers(n)) for n in names]}
    if draw(st.booleans()):
        pod["initContainers"] = [
            {"name": "init", "image": "i:1"},
            {"name": "sidecar", "image": "s:1", "restartPolicy": "Always",
             "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}},
        ]
    grace = draw(st.one_of(st.none(), st.integers(0, 30000)))
    if grace is not None:
        pod["terminationGracePeriodSeconds"] = grace
    annotations = {"graceful.io/policy": "p"}
    timeout = draw(TIMEOUT_ANNOTATIONS)
    if timeout is not None:
        annotations["graceful.io/graceful-timeout"] = timeout
    meta = {"name": "w", "annotations": annotations}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": kind, "metadata": meta, "spec": pod}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta,
            "spec": {"selector": {"matchLabels": {"app": "w"}},
                     "template": {"metadata": {"labels": {"app": "w"}}, "spec": pod}}}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
    return spec


def grace_of(obj: dict[str, Any]) -> int:
    value = pod_spec(obj).get("terminationGracePeriodSeconds")
    return KUBERNETES_DEFAULT_GRACE_SECONDS if value is None else int(value)


def apply(obj: dict[str, Any], policy: GracefulPolicy) -> tuple[Any, dict[str, Any]]:
    decision = evaluate(obj, [policy])
    patched: dict[str, Any] = jsonpatch.apply_patch(obj, decision.patch)
    return decision, patched


@SETTINGS
@given(policies(), workloads())
def test_budget_holds_or_the_cap_is_reported(policy: GracefulPolicy, obj: dict[str, Any]) -> None:
    decision, patched = apply(obj, policy)
    assert decision.plan is not None
    if policy.spec.mode == "Audit":
        assert decision.patch == []
        return
    after = evaluate(patched, [policy])
    assert after.plan is not None
    budget = after.plan.budget
    assert grace_of(patched) == decision.plan.grace_period_seconds
    if grace_of(patched) < budget.required:
        assert FindingCode.BudgetCapped in {f.code for f in after.findings}
        assert any("capped at" in w for w in decision.warnings)
    assert grace_of(patched) >= budget.grace
    assert {f.code for f in after.findings} <= NEEDS_USER


@SETTINGS
@given(policies(), workloads())
def test_idempotent(policy: GracefulPolicy, obj: dict[str, Any]) -> None:
    _, patched = apply(obj, policy)
    assert evaluate(patched, [policy]).patch == []


@SETTINGS
@given(policies(), workloads())
def test_larger_user_values_are_never_lowered_under_keep(
        policy: GracefulPolicy, obj: dict[str, Any]) -> None:
    if policy.spec.user_values != "Keep":
        return
    _, patched = apply(obj, policy)
    assert grace_of(patched) >= grace_of(obj)
    for before, after in zip(pod_spec(obj)["containers"], pod_spec(patched)["containers"],
                             strict=True):
        old = prestop.read((before.get("lifecycle") or {}).get("preStop"))
        new = prestop.read((after.get("lifecycle") or {}).get("preStop"))
        if old.seconds is not None:
            assert new.seconds is not None and new.seconds >= old.seconds


@SETTINGS
@given(policies(), workloads())
def test_readiness_values_the_user_wrote_are_never_lowered_under_keep(
        policy: GracefulPolicy, obj: dict[str, Any]) -> None:
    decision, patched = apply(obj, policy)
    for before, after in zip(pod_spec(obj)["containers"], pod_spec(patched)["containers"],
                             strict=True):
        old, new = before.get("readinessProbe"), after.get("readinessProbe")
        if old is None:
            assert new is None  # a probe is never added
            continue
        if policy.spec.user_values == "Keep":
            for key in ("periodSeconds", "failureThreshold"):
                if key in old:
                    assert new[key] == old[key]
        if new.get("periodSeconds") != old.get("periodSeconds"):
            # never a period below the probe's own timeout
            assert new["periodSeconds"] >= old.get("timeoutSeconds", 1)
            if "exec" in old:  # an exec probe that runs more often is said out loud
                assert any("exec readiness probe now runs every" in w
                           for w in decision.warnings)


@SETTINGS
@given(policies(), workloads())
def test_unselected_and_init_containers_are_untouched(
        policy: GracefulPolicy, obj: dict[str, Any]) -> None:
    decision, patched = apply(obj, policy)
    wanted = set(policy.spec.containers)
    for before, after in zip(pod_spec(obj)["containers"], pod_spec(patched)["containers"],
                             strict=True):
        if wanted and before["name"] not in wanted:
            assert after == before
    assert pod_spec(patched).get("initContainers") == pod_spec(obj).get("initContainers")
    assert decision.plan is not None
    assert {c.name for c in decision.plan.containers}.isdisjoint(decision.plan.untouched)


@SETTINGS
@given(policies(), workloads())
def test_patched_object_is_still_a_valid_workload(
        policy: GracefulPolicy, obj: dict[str, Any]) -> None:
    original = copy.deepcopy(obj)
    _, patched = apply(obj, policy)
    assert obj == original, "evaluate must not modify its input"
    assert patched["kind"] == obj["kind"] and patched["metadata"] == obj["metadata"]
    spec = pod_spec(patched)
    assert [c["name"] for c in spec["containers"]] == [c["name"] for c in pod_spec(obj)[
        "containers"]]
    grace = spec.get("terminationGracePeriodSeconds")
    assert grace is None or (type(grace) is int and grace >= 0)
    for container in spec["containers"]:
        hook = (container.get("lifecycle") or {}).get("preStop")
        if hook is not None:
            assert len([k for k in ("exec", "httpGet", "tcpSocket", "sleep") if k in hook]) == 1
            if "sleep" in hook:
                assert type(hook["sleep"]["seconds"]) is int
            if "exec" in hook:
                assert all(isinstance(p, str) for p in hook["exec"]["command"])
        probe = container.get("readinessProbe")
        if probe is not None:
            for key in ("periodSeconds", "failureThreshold"):
                assert type(probe.get(key, 1)) is int and probe.get(key, 1) >= 1


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["kind", "metadata", "spec", "template", "containers", "name",
                         "annotations", "labels", "lifecycle", "preStop", "sleep", "seconds",
                         "exec", "command", "args", "env", "value", "readinessProbe",
                         "periodSeconds", "failureThreshold", "initContainers",
                         "terminationGracePeriodSeconds", "restartPolicy"]) | st.text(max_size=5),
        children, max_size=5),
    max_leaves=30,
)


@st.composite
def damaged(draw: st.DrawFn) -> Any:
    """A valid workload with one subtree replaced by junk."""
    obj = draw(workloads())
    node: Any = obj
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        if not isinstance(node[key], dict | list) or draw(st.integers(0, 3)) == 0:
            node[key] = draw(JSON)
            break
        node = node[key]
    return obj


@settings(max_examples=500, deadline=None)
@given(st.one_of(JSON, damaged(), st.builds(
    lambda kind, spec: {"kind": kind, "metadata": {"annotations": {"graceful.io/policy": "p"}},
                        "spec": spec},
    st.sampled_from(["Deployment", "Pod", "Job", None]), JSON)), policies())
def test_evaluate_never_raises_on_junk(obj: Any, policy: GracefulPolicy) -> None:
    decision = evaluate(obj, [policy])
    assert all(isinstance(w, str) and len(w) < 120 for w in decision.warnings)
    if decision.patch:
        jsonpatch.apply_patch(obj, decision.patch)
