"""Rules 2, 8 and 10 of the drain model on the real kubelet and controllers.

- Rule 2: a long grace period must not slow down restarts. A Pod whose T the
  policy raised to 120 s and whose liveness probe starts failing is killed
  after the probe-level ``terminationGracePeriodSeconds`` the webhook set (its
  previous T, 10 s) and restarted, not after 120 s. The app ignores SIGTERM,
  so the kubelet's SIGKILL marks the grace period it used.
- Rule 6: a native sidecar's preStop starts with the app's, at the shutdown's
  start, and its SIGTERM waits for the app to exit: the webhook counts what
  the sidecar adds after the app (``+ sidecars``), and the Pod stops inside T.
- Rule 8: a Job gets T = G + M and no preStop sleep, and its Pod runs to
  completion under it.
- Rule 10: a Deployment whose controller is replacing its Pods is "rolling
  out"; a paused one whose Pods run an old template is "stale". Both verdicts
  come from core (``rollout_of``, ``stale_pods``) applied to the status the
  real controllers wrote; no operator runs.

No assertion bounds wall-clock time from above: durations are compared with
T (a factor of several apart) or read from the kubelet's own timestamps.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pytest

from graceful.core import GracefulPolicy, evaluate, rollout_of
from graceful.core.stale import stale_pods
from tests.conftest import Kubectl
from tests.e2e.node.conftest import apply_objects, get_json, policy, wait_for
from tests.e2e.node.stops import (
    BASE_IMAGE,
    Event,
    app_configmap,
    drain_container,
    first,
    pod_volumes,
    read_events,
    watch_until_gone,
)

pytestmark = [pytest.mark.e2e, pytest.mark.node]

PRESTOP = 2
MARGIN = 2
POLICY_G = 5                    # the policy's gracefulTimeoutSeconds (node conftest's default)


def warnings_of(stderr: str) -> list[str]:
    return [line.removeprefix("Warning: ") for line in stderr.splitlines()
            if line.startswith("Warning: ")]


def apply(kubectl: Kubectl, obj: dict[str, Any]) -> list[str]:
    """``kubectl apply`` one object; the admission warnings it printed."""
    return warnings_of(kubectl("apply", "-f", "-", input=json.dumps(obj)).stderr)


def kubelet_time(stamp: str) -> float:
    """An RFC 3339 timestamp the kubelet wrote (whole seconds), as epoch seconds."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# --- rule 2: probes during a long grace period -----------------------------------------------

LONG_G = 116                    # the app's declared drain: T = 2 + 116 + 2 = 120 s
LONG_T = PRESTOP + LONG_G + MARGIN
USER_GRACE = 10                 # the manifest's own T: what a restart took before the policy
MARKER = "fail-liveness"        # while this file exists in /events, the liveness probe fails


def test_a_failed_liveness_probe_restarts_within_the_probe_grace_not_t(
    installed: dict[str, float], node_kubectl: Kubectl, node_namespace: str,
    events_dir: Path,
) -> None:
    kubectl = node_kubectl
    apply_objects(kubectl, policy(node_namespace, prestop=PRESTOP, margin=MARGIN),
                  app_configmap(node_namespace))
    app = drain_container("app", ignore_sigterm=True)
    app["livenessProbe"] = {"exec": {"command": ["sh", "-c", f"test ! -e /events/{MARKER}"]},
                            "periodSeconds": 1, "failureThreshold": 1}
    pod_obj = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "hangs", "namespace": node_namespace,
                     "annotations": {"graceful.io/policy": "apps",
                                     "graceful.io/graceful-timeout": str(LONG_G)}},
        "spec": {"terminationGracePeriodSeconds": USER_GRACE, "containers": [app],
                 "volumes": pod_volumes(events_dir)},
    }
    apply(kubectl, pod_obj)
    try:
        pod = wait_for(lambda: _running(kubectl, node_namespace, "hangs"), "the Pod to run")
        spec = pod["spec"]
        assert spec["terminationGracePeriodSeconds"] == LONG_T, spec
        probe = spec["containers"][0]["livenessProbe"]
        assert probe["terminationGracePeriodSeconds"] == USER_GRACE, probe
        wait_for(lambda: read_events(events_dir, "hangs"), "the app to record its start")

        (events_dir / MARKER).touch()
        restarted = wait_for(lambda: _restarted(kubectl, node_namespace, "hangs"),
                             "the container to be restarted", timeout=2 * LONG_T)
        (events_dir / MARKER).unlink()

        terminated = restarted["lastState"]["terminated"]
        assert terminated["exitCode"] == 137, terminated  # it ignored SIGTERM: SIGKILLed
        # The kubelet counts the restart when it creates the container, a moment before
        # the new process records its start.
        events = wait_for(lambda: _started_twice(events_dir, "hangs"),
                          "the restarted app to record its start")
        starts = [e.t for e in events if e.event == "start"]
        sigterm = next(e.t for e in events if e.event == "sigterm")
        assert len(starts) >= 2 and starts[0] < sigterm < starts[1], events
        killed = kubelet_time(terminated["finishedAt"])
        # The kubelet waited the probe's grace period (minus the preStop sleep it ran
        # first) after SIGTERM: whole-second timestamps, so a second of slack.
        assert killed >= sigterm + (USER_GRACE - PRESTOP) - 2, (killed - sigterm, events)
        # ... and not the Pod's T: a factor of several below it.
        assert killed - sigterm < LONG_T / 4, (killed - sigterm, LONG_T)
        assert starts[1] >= killed - 1
        reasons = _kubelet_events(kubectl, node_namespace, "hangs")
        assert any(r == "Killing" and "failed liveness probe" in m for r, m in reasons), reasons
        print(json.dumps({"grace_s": LONG_T, "probe_grace_s": USER_GRACE,
                          "sigterm_to_sigkill_s": round(killed - sigterm, 2),
                          "restarts": restarted["restartCount"]}))
    finally:
        (events_dir / MARKER).unlink(missing_ok=True)
        kubectl("-n", node_namespace, "delete", "pod", "hangs", "--grace-period=0", "--force",
                "--wait=false", check=False)


def _started_twice(events_dir: Path, pod: str) -> list[Event] | None:
    events = read_events(events_dir, pod)
    return events if sum(e.event == "start" for e in events) >= 2 else None


def _running(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    pod = get_json(kubectl, "-n", namespace, "pod", name)
    statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
    return pod if statuses and statuses[0].get("state", {}).get("running") else None


def _restarted(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    pod = get_json(kubectl, "-n", namespace, "pod", name)
    for status in (pod or {}).get("status", {}).get("containerStatuses") or []:
        if status.get("restartCount", 0) >= 1 and status.get("lastState", {}).get("terminated"):
            return dict(status)
    return None


def _kubelet_events(kubectl: Kubectl, namespace: str, name: str) -> list[tuple[str, str]]:
    found = get_json(kubectl, "-n", namespace, "events",
                     "--field-selector", f"involvedObject.name={name}") or {}
    return [(e.get("reason", ""), e.get("message", "")) for e in found.get("items", [])]


# --- rule 6: a native sidecar's stop is in the budget -----------------------------------------

APP_G = 6                       # declared; the app really drains 5 s
SIDECAR_PRESTOP = 12            # longer than the app's S + G = 8 s: it delays the sidecar
SIDECAR_T = PRESTOP + APP_G + (SIDECAR_PRESTOP - PRESTOP - APP_G) + MARGIN


def test_a_native_sidecar_stops_after_the_app_and_its_prestop_inside_t(
    installed: dict[str, float], node_kubectl: Kubectl, node_namespace: str,
    events_dir: Path,
) -> None:
    kubectl = node_kubectl
    apply_objects(kubectl, policy(node_namespace, prestop=PRESTOP, margin=MARGIN),
                  app_configmap(node_namespace))
    sidecar = drain_container("sidecar", drain=1)
    sidecar["restartPolicy"] = "Always"
    sidecar["lifecycle"] = {"preStop": {"sleep": {"seconds": SIDECAR_PRESTOP}}}
    pod_obj = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "shipper", "namespace": node_namespace,
                     "annotations": {"graceful.io/policy": "apps",
                                     "graceful.io/graceful-timeout": str(APP_G)}},
        # The user's T is too short; without the sidecar's part the budget would be 10 s
        # and the sidecar, whose preStop ends at 12 s, would be SIGKILLed.
        "spec": {"terminationGracePeriodSeconds": 3,
                 "containers": [drain_container("app", drain=5)], "initContainers": [sidecar],
                 "volumes": pod_volumes(events_dir)},
    }
    warnings = apply(kubectl, pod_obj)
    assert any(f"budget {SIDECAR_T}s = preStop {PRESTOP}s + timeout {APP_G}s + sidecars 4s"
               in w for w in warnings), warnings
    pod = wait_for(lambda: _running(kubectl, node_namespace, "shipper"), "the Pod to run")
    assert pod["spec"]["terminationGracePeriodSeconds"] == SIDECAR_T
    wait_for(lambda: first(read_events(events_dir, "shipper"), "app", "start")
             and first(read_events(events_dir, "shipper"), "sidecar", "start"),
             "both containers to record their start")
    deleted_at = time.time()
    kubectl("-n", node_namespace, "delete", "pod", "shipper", "--wait=false")
    last = watch_until_gone(lambda: get_json(kubectl, "-n", node_namespace, "pod", "shipper"),
                            timeout=10 * SIDECAR_T)
    events = read_events(events_dir, "shipper")
    for e in events:
        print(f"  +{e.t - deleted_at:6.2f}s {e.container:<8} {e.event}")
    app_exit = first(events, "app", "exit")
    side_term = first(events, "sidecar", "sigterm")
    side_exit = first(events, "sidecar", "exit")
    assert app_exit is not None and side_term is not None and side_exit is not None, events
    # Its SIGTERM waits for the app to exit, and for its own preStop, which started
    # with the app's: not after the app had gone (that would be app exit + 12 s).
    assert side_term >= app_exit, "the kubelet stopped the sidecar before the app had exited"
    assert side_term - deleted_at >= SIDECAR_PRESTOP, (side_term - deleted_at, events)
    assert side_term - app_exit < SIDECAR_PRESTOP, (side_term - app_exit, events)
    # Both drained and exited on their own, inside T: nothing was SIGKILLed.
    assert last.exit_codes.get("app", 0) == 0 and last.exit_codes.get("sidecar", 0) == 0, last


# --- rule 8: Jobs get T = G + M and no preStop ---------------------------------------------

JOB_G = 40                      # above 30 - M: Kubernetes' default T would be kept


def test_a_job_gets_g_plus_m_and_no_prestop_and_completes(
    installed: dict[str, float], node_kubectl: Kubectl, node_namespace: str,
) -> None:
    kubectl = node_kubectl
    apply_objects(kubectl, policy(node_namespace, prestop=PRESTOP, margin=MARGIN))
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "reindex", "namespace": node_namespace,
                     "annotations": {"graceful.io/policy": "apps",
                                     "graceful.io/graceful-timeout": str(JOB_G)}},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "reindex", "image": BASE_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python3", "-c", "print('reindexed')"]}]}}},
    }

    def admitted_by_the_webhook() -> bool:
        # The webhook may not have the new policy yet, and a call that fails is ignored
        # (failurePolicy Ignore): a server-side dry run shows when it answers for a Job.
        proc = kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-",
                       input=json.dumps(job), check=False)
        return proc.returncode == 0 and json.loads(proc.stdout)["spec"]["template"]["spec"].get(
            "terminationGracePeriodSeconds") == JOB_G + MARGIN

    wait_for(admitted_by_the_webhook, "the webhook to mutate the Job in a dry run")
    warnings = apply(kubectl, job)
    assert any(f"budget {JOB_G + MARGIN}s = preStop 0s + timeout {JOB_G}s" in w
               for w in warnings), warnings
    stored = get_json(kubectl, "-n", node_namespace, "job", "reindex")
    assert stored is not None
    template = stored["spec"]["template"]["spec"]
    assert template["terminationGracePeriodSeconds"] == JOB_G + MARGIN, template
    assert "lifecycle" not in template["containers"][0], template

    def complete() -> dict[str, Any] | None:
        found = get_json(kubectl, "-n", node_namespace, "job", "reindex") or {}
        conditions = found.get("status", {}).get("conditions") or []
        failed = [c for c in conditions if c["type"] == "Failed" and c["status"] == "True"]
        assert not failed, failed
        done = any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)
        return found if done else None

    assert wait_for(complete, "the Job to complete", timeout=300)["status"]["succeeded"] == 1
    pods = get_json(kubectl, "-n", node_namespace, "pods", "-l", "job-name=reindex")
    (pod,) = (pods or {}).get("items", [])
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert pod["spec"]["terminationGracePeriodSeconds"] == JOB_G + MARGIN
    assert "lifecycle" not in pod["spec"]["containers"][0]
    (state,) = pod["status"]["containerStatuses"]
    assert state["state"]["terminated"]["exitCode"] == 0, state


# --- rule 10: stale Pods are not a rollout in progress --------------------------------------

Verdict = Literal["rolling out", "stale", "up to date"]


def verdict(deployment: dict[str, Any], pods: list[dict[str, Any]],
            policies: list[GracefulPolicy]) -> Verdict:
    """What core says about the workload's running Pods, from the controllers' status."""
    if rollout_of(deployment).replaces_pods:
        return "rolling out"
    return "stale" if stale_pods(evaluate(deployment, policies), pods) else "up to date"


def sleeper(name: str, namespace: str, *, opted_in: bool = False,
            **container: Any) -> dict[str, Any]:
    labels = {"app": name}
    annotations = {"graceful.io/policy": "apps"} if opted_in else {}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                 "template": {"metadata": {"labels": labels}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": BASE_IMAGE,
                                     "imagePullPolicy": "IfNotPresent",
                                     "command": ["sleep", "infinity"], **container}]}}},
    }


def _pods(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    found = get_json(kubectl, "-n", namespace, "pods", "-l", f"app={name}") or {}
    return [p for p in found.get("items", []) if not p["metadata"].get("deletionTimestamp")]


def _deployment(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    found = get_json(kubectl, "-n", namespace, "deployment", name)
    assert found is not None
    return found


def _observed(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    """The Deployment once its controller has acted on its latest spec."""
    found = _deployment(kubectl, namespace, name)
    status = found.get("status", {})
    return found if status.get("observedGeneration") == found["metadata"]["generation"] else None


def test_a_rollout_in_progress_is_rolling_out_and_a_paused_one_is_stale(
    installed: dict[str, float], node_kubectl: Kubectl, node_namespace: str,
) -> None:
    kubectl = node_kubectl
    policy_obj = policy(node_namespace, prestop=PRESTOP, margin=MARGIN, timeout=POLICY_G)
    apply_objects(kubectl, policy_obj)
    policies = [GracefulPolicy.from_object(policy_obj)]
    for name in ("rolling", "paused"):
        apply(kubectl, sleeper(name, node_namespace))
    for name in ("rolling", "paused"):
        kubectl("-n", node_namespace, "rollout", "status", f"deployment/{name}",
                "--timeout=300s", timeout=320)
    old = {name: _pods(kubectl, node_namespace, name) for name in ("rolling", "paused")}
    assert all(len(pods) == 1 for pods in old.values()), old

    # A rollout that stays in progress: the new template's Pod never becomes ready and
    # maxUnavailable 0 keeps the old one, so the controller is still replacing it.
    # Opting in is an UPDATE the webhook mutates, a new template for the controller.
    warnings = apply(kubectl, sleeper(
        "rolling", node_namespace, opted_in=True,
        readinessProbe={"exec": {"command": ["false"]}, "periodSeconds": 1}))
    assert any("budget" in w for w in warnings), warnings

    def surged() -> dict[str, Any] | None:
        found = _observed(kubectl, node_namespace, "rolling")
        pods = _pods(kubectl, node_namespace, "rolling")
        return found if found and len(pods) == 2 and found["status"].get(
            "updatedReplicas") == 1 else None

    rolling = wait_for(surged, "the controller to start the new Pod", timeout=300)
    pods = _pods(kubectl, node_namespace, "rolling")
    assert rollout_of(rolling).state == "progressing", rollout_of(rolling)
    assert verdict(rolling, pods, policies) == "rolling out"
    # Without the status, the old Pod would be reported: it runs the old template.
    old_name = old["rolling"][0]["metadata"]["name"]
    assert old_name in stale_pods(evaluate(rolling, policies), pods)

    # A paused Deployment keeps the Pods of its old template: nothing replaces them.
    kubectl("-n", node_namespace, "rollout", "pause", "deployment/paused")
    warnings = apply(kubectl, sleeper("paused", node_namespace, opted_in=True))
    assert any("budget" in w for w in warnings), warnings
    paused = wait_for(lambda: _observed(kubectl, node_namespace, "paused"),
                      "the controller to observe the paused Deployment", timeout=300)
    pods = _pods(kubectl, node_namespace, "paused")
    assert [p["metadata"]["name"] for p in pods] == [old["paused"][0]["metadata"]["name"]]
    assert paused["status"].get("updatedReplicas", 0) == 0, paused["status"]
    template = paused["spec"]["template"]["spec"]
    assert template["terminationGracePeriodSeconds"] == PRESTOP + POLICY_G + MARGIN, template
    assert pods[0]["spec"]["terminationGracePeriodSeconds"] == 1
    assert rollout_of(paused).state == "paused", rollout_of(paused)
    assert verdict(paused, pods, policies) == "stale"
    print(json.dumps({"rolling": rollout_of(rolling).reason, "paused": rollout_of(paused).reason}))
