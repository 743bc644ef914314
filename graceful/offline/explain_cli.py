"""``graceful explain -f FILE`` or ``KIND/NAME``: where each container's shutdown budget goes.

For every workload in the input it prints, per app container, the timeline
as written and, when the webhook would change it, the timeline after
admission: preStop sleep, SIGTERM, the app's drain, the margin, SIGKILL, and
the readiness window. The numbers come from the same engine as the webhook's
patch (:func:`graceful.core.evaluate`); the timeline is read back from the
object before and after that patch, so the picture shows exactly what the pod
would get.

With ``KIND/NAME`` (``graceful explain deployment/worker -n apps``) the
workload and its policies are read from the cluster of the kubeconfig
(:mod:`graceful.live`) and drawn by the same code; its running Pods are listed
too, each judged by :func:`graceful.core.stale_pods`: a Pod created before the
webhook fixed the template still has the old grace period.

Exit codes: 0 drawn (whatever the verdict: ``graceful audit`` is the check),
2 unreadable input (or a cluster that cannot be read).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Mapping
from typing import Any

from graceful.core import (
    ContainerPlan,
    Decision,
    GracefulPolicy,
    evaluate,
    prestop,
    stale_pods,
)
from graceful.core.names import (
    ANNOTATION_POLICY,
    KUBERNETES_DEFAULT_GRACE_SECONDS,
    KUBERNETES_DEFAULT_PROBE_FAILURE_THRESHOLD,
    KUBERNETES_DEFAULT_PROBE_PERIOD,
)
from graceful.core.podspec import UnreadableObject, annotations_of, name_of, read_pod_spec
from graceful.core.timeout_sources import Timeout, from_annotation, from_container
from graceful.live.options import add_connection_arguments
from graceful.offline.loader import Document, InputError, inventory, load
from graceful.offline.timeline import Timings, draw, verdict

PROG = "graceful explain"
_SOURCES = {
    "annotation": "the graceful.io/graceful-timeout annotation",
    "flag": "its command line",
    "env": "its environment",
    "policy": "the policy's gracefulTimeoutSeconds",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Draw the shutdown timeline of each container (preStop, SIGTERM, drain, margin, "
        "SIGKILL, readiness window) as written and as the webhook would admit it. "
        "Policies are read from the same files, or with KIND/NAME from the cluster, "
        "together with the workload's running Pods."
    )
    parser.add_argument(
        "target", nargs="?", metavar="KIND/NAME",
        help="a live workload: deployment (deploy), statefulset (sts), daemonset (ds), job,"
             " cronjob (cj) or pod (po), e.g. deploy/worker",
    )
    parser.add_argument(
        "-f", "--filename", dest="files", action="append", metavar="FILE",
        help="a manifest file, a directory or - for standard input; repeat for more",
    )
    parser.add_argument(
        "-n", "--namespace", default=None,
        help="namespace (default: the kubeconfig context's for KIND/NAME, else default)",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "--width", type=int, default=None,
        help="width of the picture in characters (default: the terminal's, at most 100)",
    )


def _timings(obj: Mapping[str, Any], container: str, timeout: int | None, margin: int,
             declared: int | None) -> tuple[Timings, str | None]:
    """The timings of one container of ``obj``, and a note on a preStop hook we cannot read.

    ``declared`` is the length the engine counts for a hook it cannot read
    (``graceful.io/prestop-seconds``); None when nothing declares it.
    """
    pod = read_pod_spec(obj)
    raw = next(c.raw for c in pod.containers if c.name == container)
    lifecycle = raw.get("lifecycle")
    hook = prestop.read(lifecycle.get("preStop") if isinstance(lifecycle, Mapping) else None)
    note = None
    known = True
    if hook.shape in ("none", "invalid"):
        pre_stop = 0
        if hook.shape == "invalid":
            note = "its tcpSocket preStop is never run (SIGTERM at once)"
    elif hook.seconds is None:
        pre_stop = declared or 0
        known = declared is not None
        note = (f"its own preStop hook ({pre_stop}s, declared)" if known
                else "its own preStop hook (length unknown)")
    else:
        pre_stop = hook.seconds
    window = None
    probe = raw.get("readinessProbe")
    if isinstance(probe, Mapping):
        period = probe.get("periodSeconds", KUBERNETES_DEFAULT_PROBE_PERIOD)
        threshold = probe.get("failureThreshold", KUBERNETES_DEFAULT_PROBE_FAILURE_THRESHOLD)
        if isinstance(period, int) and isinstance(threshold, int):
            window = period * threshold
    grace = KUBERNETES_DEFAULT_GRACE_SECONDS if pod.grace is None else pod.grace
    return Timings(pre_stop=pre_stop, timeout=timeout, margin=margin, grace=grace,
                   readiness_window=window, pre_stop_known=known), note


def _unmanaged_timeout(obj: Mapping[str, Any], raw: Mapping[str, Any]) -> Timeout | None:
    found, _ = from_annotation(annotations_of(obj))
    if found is None:
        found, _ = from_container(raw)
    return found


def _platform_limit(policy: GracefulPolicy | None, plan: ContainerPlan | None) -> list[str]:
    """A line naming the platform limit that cuts this container's drain, if one does."""
    limit = policy.spec.drain.shortest_limit() if policy is not None else None
    if limit is None or plan is None or plan.budget.required <= limit.seconds:
        return []
    return [f"    but {limit.name} allows {limit.seconds}s: on that shutdown SIGKILL comes at"
            f" {limit.seconds}s, {plan.budget.required - limit.seconds}s before the drain ends"]


def _describe(doc: Document, namespace: str, decision: Decision, width: int) -> list[str]:
    title = f"{doc.kind} {namespace}/{doc.name}"
    policy: GracefulPolicy | None = decision.policy
    if not decision.opted_in:
        lines = [f"{title}: not opted in (no {ANNOTATION_POLICY} annotation, no policy"
                 " selector matches); the timeline Kubernetes gives it:"]
    elif policy is None:
        lines = [f"{title}: policy {decision.policy_name!r} not found in namespace {namespace};"
                 " the timeline Kubernetes gives it:"]
    else:
        drain = policy.spec.drain
        lines = [f"{title}: policy {policy.reference} ({policy.spec.mode}): preStop"
                 f" {drain.pre_stop_sleep_seconds}s, margin {drain.safety_margin_seconds}s,"
                 f" ceiling {drain.max_grace_period_seconds}s"]
    admitted = decision.admitted if decision.patch else None
    pod = read_pod_spec(doc.obj)
    plan = decision.plan
    for view in pod.containers:
        container_plan = plan.container(view.name) if plan else None
        lines.append("")
        if plan is not None and container_plan is None:
            lines.append(f"container {view.name}: not selected by the policy; left alone")
            continue
        if container_plan is not None:
            timeout: Timeout | None = container_plan.timeout
            margin = policy.spec.drain.safety_margin_seconds if policy else 0
            assumed: int | None = (container_plan.pre_stop_seconds
                                   if container_plan.pre_stop_known
                                   else None)
        else:
            timeout = _unmanaged_timeout(doc.obj, view.raw)
            margin, assumed = 0, None
        origin = (f"G = {timeout.seconds}s from {_SOURCES[timeout.source]}"
                  + (f" ({timeout.detail})" if timeout.detail and timeout.source in ("flag", "env")
                     else "")) if timeout else "G unknown"
        lines.append(f"container {view.name}: {origin}")
        seconds = timeout.seconds if timeout else None
        before, note = _timings(doc.obj, view.name, seconds, margin, assumed)
        lines.append("  as written" + (f"; {note}" if note else "") + ":")
        lines.extend(draw(before, width=width, indent="    "))
        lines.append("    " + verdict(before))
        if admitted is not None:
            after, note = _timings(admitted, view.name, seconds, margin, assumed)
            lines.append("  after admission (the webhook's patch)"
                         + (f"; {note}" if note else "") + ":")
            lines.extend(draw(after, width=width, indent="    "))
            lines.append("    " + verdict(after))
        elif container_plan is not None and policy is not None:
            lines.append("  the webhook changes nothing here"
                         + (" (the policy only audits)" if policy.spec.mode == "Audit" else ""))
        lines.extend(_platform_limit(policy, container_plan))
    for name in pod.sidecars:
        lines.append("")
        lines.append(f"sidecar {name}: stopped by the kubelet after the app containers; left alone")
    if plan is not None and plan.budget.sidecars:
        lines.append(f"  the native sidecars' stop adds {plan.budget.sidecars}s after the app"
                     f" has exited: budget {plan.budget.required}s")
    if decision.findings:
        lines.append("")
        lines.append("findings as written:")
        lines.extend(f"  - {f.code}: {f.message}" for f in decision.findings)
    return lines


def _pod_hooks(pod: Mapping[str, Any], plan: ContainerPlan | None, name: str) -> str:
    """``name``'s preStop in the running Pod, next to what the template asks."""
    raw = next((c for c in read_pod_spec({**pod, "kind": "Pod"}).containers
                if c.name == name), None)
    lifecycle = raw.raw.get("lifecycle") if raw is not None else None
    hook = prestop.read(lifecycle.get("preStop") if isinstance(lifecycle, Mapping) else None)
    has = ("none" if hook.shape in ("none", "invalid")
           else f"{hook.seconds}s" if hook.seconds is not None else "a hook of unknown length")
    asked = f" (template: {plan.pre_stop_seconds}s)" if plan is not None else ""
    return f"{name} preStop {has}{asked}"


def describe_pods(decision: Decision, pods: list[dict[str, Any]], kind: str) -> list[str]:
    """The running Pods of a live workload and whether each carries its budget.

    The verdict is :func:`graceful.core.stale_pods`'s (the operator's StalePods);
    the numbers beside it only say what the Pod has and the template asks.
    """
    if not pods:
        return ["", "running Pods: none"]
    plan = decision.plan
    if plan is None:
        return ["", f"running Pods ({len(pods)}): no budget to carry (no policy applies)",
                *(f"  {name_of(p)}" for p in pods)]
    stale = set(stale_pods(decision, pods))
    lines = ["", f"running Pods ({len(pods)}), against the template's budget:"]
    for pod in pods:
        spec = pod.get("spec") or {}
        grace = spec.get("terminationGracePeriodSeconds", KUBERNETES_DEFAULT_GRACE_SECONDS)
        hooks = ", ".join(_pod_hooks(pod, c, c.name) for c in plan.containers)
        if name_of(pod) not in stale:
            state = "carries the budget"
        elif kind == "Pod":  # a bare Pod is its own template: nothing replaces it
            state = ("does NOT carry the budget (a Pod's grace period and hooks cannot be"
                     " changed: recreate it)")
        else:
            state = ("STALE: created from an older template; its next shutdown cuts the drain"
                     " (a rollout replaces it)")
        lines.append(f"  {name_of(pod)}: {state}")
        lines.append(f"    terminationGracePeriodSeconds {grace}s (template:"
                     f" {plan.grace_period_seconds}s); {hooks}")
    return lines


def _width(args: argparse.Namespace) -> int:
    width = args.width or min(shutil.get_terminal_size((100, 24)).columns - 8, 92)
    return int(max(width, 40))


def _run_live(args: argparse.Namespace) -> int:
    from graceful.live.client import LiveError  # noqa: PLC0415 - only for live objects
    from graceful.live.fetch import inventory as live_inventory  # noqa: PLC0415
    from graceful.live.fetch import running_pods, workload  # noqa: PLC0415
    from graceful.live.options import connect  # noqa: PLC0415
    from graceful.live.target import TargetError, parse_target  # noqa: PLC0415

    try:
        target = parse_target(args.target)
        client, namespace = connect(args)
        try:
            obj = workload(client, target, namespace)
            found = live_inventory(client, namespace, [obj])
            pods = running_pods(client, obj)
        finally:
            client.close()
    except (TargetError, LiveError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    namespace, doc = found.workloads[0]
    decision = evaluate(doc.obj, found.policies_for(namespace),
                        ns_labels=found.labels_for(namespace))
    try:
        lines = _describe(doc, namespace, decision, _width(args))
    except UnreadableObject as exc:
        lines = [f"{doc.kind} {namespace}/{doc.name}: cannot read {exc}"]
    print("\n".join([*lines, *describe_pods(decision, pods, doc.kind)]))
    return 0


def run(args: argparse.Namespace) -> int:
    if (args.target is None) == (args.files is None):
        print(f"{PROG}: give either KIND/NAME (a live workload) or -f FILE (manifests)",
              file=sys.stderr)
        return 2
    if args.target is not None:
        return _run_live(args)
    try:
        found = inventory(load(args.files), args.namespace or "default")
    except InputError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if not found.workloads:
        print(f"{PROG}: no Deployment, StatefulSet, DaemonSet or Pod in the input",
              file=sys.stderr)
        return 2
    width = _width(args)
    blocks = []
    for namespace, doc in found.workloads:
        decision = evaluate(doc.obj, found.policies_for(namespace),
                            ns_labels=found.labels_for(namespace))
        try:
            blocks.append("\n".join(_describe(doc, namespace, decision, width)))
        except UnreadableObject as exc:
            blocks.append(f"{doc.kind} {namespace}/{doc.name}: cannot read {exc}")
    print("\n\n".join(blocks))
    return 0
