"""Real shutdowns on the node: what the kubelet does with the budget the webhook sets.

Each test admits a workload through the installed webhook, deletes or rolls
it, and compares the container's own timestamps (SIGTERM, drained, exit)
and the Pod's last status with the moment of the delete:

- SIGTERM comes no earlier than S after the delete (the preStop sleep runs first);
- an app that drains for its G exits 0 under the policy;
- the same app without the policy is SIGKILLed at its grace period (exit 137);
- a native sidecar is stopped after the app has exited, inside the budget.

The numbers are kept small (S = 2 s, drain 5 s, user grace 3 s) so the
contrast shows in seconds; the mechanism does not depend on the size.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Kubectl
from tests.e2e.node.conftest import apply_objects, get_json, policy, wait_for
from tests.e2e.node.stops import (
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
DRAIN = 5          # what the app really needs after SIGTERM
G = 6              # what it declares: graceful.io/graceful-timeout
USER_GRACE = 3     # what the user's manifest says: too short for the drain
BUDGET = PRESTOP + G + MARGIN


def workload(kind: str, namespace: str, name: str, events_dir: Path, *,
             opted_in: bool, sidecar: bool = False) -> dict[str, Any]:
    annotations = {"graceful.io/policy": "apps", "graceful.io/graceful-timeout": str(G)}
    pod_spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": USER_GRACE,
        "containers": [drain_container("app", drain=DRAIN)],
        "volumes": pod_volumes(events_dir),
    }
    if sidecar:
        side = drain_container("sidecar", drain=1)
        side["restartPolicy"] = "Always"
        pod_spec["initContainers"] = [side]
    labels = {"app": name}
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name, "namespace": namespace,
                     "annotations": annotations if opted_in else {}},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
    }
    if kind == "StatefulSet":
        obj["spec"]["serviceName"] = name
    return obj


def running_pod(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        pods = get_json(kubectl, "-n", namespace, "pods", "-l", f"app={name}")
        for pod in (pods or {}).get("items", []):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            statuses = pod.get("status", {}).get("containerStatuses") or []
            if statuses and all(s.get("ready") for s in statuses):
                return dict(pod)
        return None
    pod: dict[str, Any] = wait_for(ready, f"a ready Pod of {name}", timeout=120)
    return pod


def stop_and_watch(kubectl: Kubectl, namespace: str, pod: dict[str, Any],
                   events_dir: Path, how: str, owner: str) -> tuple[float, Any, Any]:
    pod_name = pod["metadata"]["name"]
    wait_for(lambda: first(read_events(events_dir, pod_name), "app", "start"),
             f"{pod_name} to record its start")
    deleted_at = time.time()
    if how == "rollout":
        kubectl("-n", namespace, "rollout", "restart", owner)
    else:
        kubectl("-n", namespace, "delete", "pod", pod_name, "--wait=false")
    uid = pod["metadata"]["uid"]

    def same_pod() -> dict[str, Any] | None:
        # A StatefulSet recreates its Pod under the same name: a new uid is a new Pod.
        found = get_json(kubectl, "-n", namespace, "pod", pod_name)
        return found if found is not None and found["metadata"]["uid"] == uid else None

    last = watch_until_gone(same_pod, timeout=90)
    events = read_events(events_dir, pod_name)
    print(f"\n{pod_name} ({how}): delete at +0.00s")
    for e in events:
        print(f"  +{e.t - deleted_at:6.2f}s {e.container:<8} {e.event}")
    gone = (last.gone_at or 0) - deleted_at
    print(f"  exit codes {last.exit_codes}; object gone at +{gone:.2f}s")
    return deleted_at, last, events


def assert_admitted(pod: dict[str, Any]) -> None:
    spec = pod["spec"]
    assert spec["terminationGracePeriodSeconds"] == BUDGET, spec
    app = next(c for c in spec["containers"] if c["name"] == "app")
    assert app["lifecycle"]["preStop"] == {"sleep": {"seconds": PRESTOP}}, app


def assert_drained_under_policy(deleted_at: float, last: Any, events: Any,
                                container: str = "app") -> float:
    sigterm = first(events, container, "sigterm")
    exited = first(events, container, "exit")
    assert sigterm is not None, events
    assert sigterm - deleted_at >= PRESTOP, (
        f"SIGTERM {sigterm - deleted_at:.2f}s after the delete, before the preStop sleep "
        f"of {PRESTOP}s ended")
    assert first(events, container, "drained") is not None, events
    assert exited is not None, events
    # The app writes "exit" only on its clean path (sys.exit(0)). A Pod that goes
    # right after its containers stop (a StatefulSet's) may vanish between two
    # polls, so a missing status is no failure; a recorded non-zero one is.
    assert last.exit_codes.get(container, 0) == 0, last
    return exited - deleted_at


@pytest.mark.parametrize("kind,how", [("Deployment", "rollout"), ("StatefulSet", "delete")])
def test_under_the_policy_the_app_drains_and_exits_zero(
    installed: dict[str, float], node_kubectl: Kubectl, node_namespace: str,
    events_dir: Path, kind: str, how: str,
) -> None:
    kubectl = node_kubectl
    apply_objects(kubectl, policy(node_namespace, prestop=PRESTOP, margin=MARGIN),
                  app_configmap(node_namespace))
    name = kind.lower()
    apply_objects(kubectl, workload(kind, node_namespace, name, events_dir, opted_in=True))
    pod = running_pod(kubectl, node_namespace, name)
    assert_admitted(pod)
    deleted_at, last, events = stop_and_watch(
        kubectl, node_namespace, pod, events_dir, how, f"{kind.lower()}/{name}")
    took = assert_drained_under_policy(deleted_at, last, events)
    assert took >= PRESTOP + DRAIN
    print(json.dumps({"kind": kind, "exit_after_delete_s": round(took, 2)}))


def test_without_the_policy_the_same_app_is_killed_mid_drain(
    installed: dict[str, float], node_kubectl: Kubectl, node_namespace: str,
    events_dir: Path,
) -> None:
    kubectl = node_kubectl
    apply_objects(kubectl, app_configmap(node_namespace))
    apply_objects(kubectl, workload("Deployment", node_namespace, "plain", events_dir,
                                    opted_in=False))
    pod = running_pod(kubectl, node_namespace, "plain")
    assert pod["spec"]["terminationGracePeriodSeconds"] == USER_GRACE
    assert "lifecycle" not in pod["spec"]["containers"][0]
    deleted_at, last, events = stop_and_watch(
        kubectl, node_namespace, pod, events_dir, "rollout", "deployment/plain")
    sigterm = first(events, "app", "sigterm")
    assert sigterm is not None, events
    assert first(events, "app", "drained") is None, events
    assert last.exit_codes.get("app") == 137, last   # SIGKILL at the end of the grace period
    assert last.gone_at is not None and last.gone_at - deleted_at >= USER_GRACE


def test_native_sidecar_stops_after_the_app_inside_the_budget(
    installed: dict[str, float], node_kubectl: Kubectl, node_namespace: str,
    events_dir: Path,
) -> None:
    kubectl = node_kubectl
    apply_objects(kubectl, policy(node_namespace, prestop=PRESTOP, margin=MARGIN),
                  app_configmap(node_namespace))
    apply_objects(kubectl, workload("Deployment", node_namespace, "withsidecar", events_dir,
                                    opted_in=True, sidecar=True))
    pod = running_pod(kubectl, node_namespace, "withsidecar")
    assert_admitted(pod)
    sidecar_spec = pod["spec"]["initContainers"][0]
    assert "lifecycle" not in sidecar_spec or "preStop" not in sidecar_spec["lifecycle"]
    deleted_at, last, events = stop_and_watch(
        kubectl, node_namespace, pod, events_dir, "delete", "deployment/withsidecar")
    assert_drained_under_policy(deleted_at, last, events)
    app_exit = first(events, "app", "exit")
    side_term = first(events, "sidecar", "sigterm")
    side_exit = first(events, "sidecar", "exit")
    assert app_exit is not None and side_term is not None and side_exit is not None, events
    assert side_term >= app_exit, "the kubelet stopped the sidecar before the app had exited"
    assert last.exit_codes.get("sidecar", 0) == 0, last   # see assert_drained_under_policy
