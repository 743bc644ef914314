"""The audit at scale: 1,000 and 10,000 Deployments, from operator start to a converged status.

For each count, on a fresh local control plane (or ``--kubeconfig``), in the
benchmark's namespace: one GracefulPolicy in ``mode: Audit``, N Deployments
(half missing the budget; ``--replicas 1`` by default, so the
controller-manager also makes N ReplicaSets and N Pods, which stay Pending as
there is no kubelet) and ``--bare-pods`` Pods without an owner (1,000 by
default, half missing the budget). Only then is ``graceful operator`` started
as a subprocess restricted to that namespace. Measured:

- from operator start (once the controller-manager has created every
  Deployment's ReplicaSet) until the policy's status says MATCHED N, COMPLIANT
  N/2, MISMATCHED N/2 (what ``kubectl get gracefulpolicies`` shows);
- from one Deployment edit (a compliant one made to miss the budget) until
  the status counts it, p50/p95 over 100 edits made one after the other;
- from a policy edit that turns all N mismatched until the status says so;
- the operator's peak RSS (VmHWM) and the CPU seconds it used (user + system),
  at convergence and at the end, and its RSS at the end (steady state); its
  status writes and Events; from its ``/metrics``, the workloads it evaluated
  per edit and the mean duration of its audits during the edits (the cost of
  an edit, to compare across counts).

Usage: ``.venv/bin/python -m bench.audit_scale [--quick] [--counts 1000,10000]
[--edits 100] [--replicas 1] [--bare-pods 1000] [--kubeconfig F] [--no-record]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, load_average, percentile, publish, table
from graceful.operator.kube import ApiError, KubeApi, load_configuration

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "gracefulpolicy.yaml"
NAMESPACE = "bench-audit"
POLICY = "workers"
POLICY_PATH = f"/apis/graceful.io/v1alpha1/namespaces/{NAMESPACE}/gracefulpolicies/{POLICY}"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"

# Targets of issue 14.
TARGET_CONVERGE_10K_S = 30.0
TARGET_EDIT_P95_S = 1.0
TARGET_POLICY_EDIT_S = 10.0
TARGET_RSS_MIB = 300.0
TARGET_STEADY_RSS_MIB = 200.0


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def deployment(index: int, compliant: bool, replicas: int = 0) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "registry.example/worker:1",
                                 "args": ["--queue", f"q{index}"]}
    spec: dict[str, Any] = {"containers": [container]}
    if compliant:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": 5}}}
        spec["terminationGracePeriodSeconds"] = 40
    name = f"worker-{index:05d}"
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "annotations": {"graceful.io/policy": POLICY},
                     "labels": {"app": name, "bench": "audit"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}},
    }


def bare_pod(index: int, compliant: bool) -> dict[str, Any]:
    """A Pod without an owner: the workload itself, audited like a Deployment."""
    template = deployment(index, compliant)["spec"]["template"]
    name = f"bare-{index:05d}"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "annotations": {"graceful.io/policy": POLICY},
                         "labels": {"app": name, "bench": "audit"}},
            "spec": template["spec"]}


def expected(count: int, broken: int = 0, bare: int = 0) -> tuple[int, int, int]:
    """(matched, compliant, mismatched) once ``broken`` compliant ones were edited to miss."""
    half = count // 2 + bare // 2
    total = count + bare
    return total, total - half - broken, half + broken


async def create_all(api: KubeApi, count: int, parallel: int, replicas: int,
                     bare: int = 0) -> float:
    """Create the Deployments and bare Pods ``parallel`` at a time; the seconds it took."""
    gate = asyncio.Semaphore(parallel)

    async def one(index: int) -> None:
        if index >= count:
            path, body = PODS, bare_pod(index - count, compliant=index % 2 == 0)
        else:
            path, body = DEPLOYMENTS, deployment(index, compliant=index % 2 == 0,
                                                 replicas=replicas)
        async with gate:
            for attempt in range(5):
                try:
                    await api.request("POST", path, body=body)
                    return
                except ApiError as exc:
                    if exc.status == 409:
                        return
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5)

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count + bare)))
    return time.monotonic() - started


async def count_of(api: KubeApi, path: str) -> int:
    """How many objects ``path`` lists, without listing them (``remainingItemCount``)."""
    answer = await api.request("GET", path, params={"limit": "1"})
    items = len(answer.get("items") or [])
    return items + int((answer.get("metadata") or {}).get("remainingItemCount") or 0)


async def wait_replicasets(api: KubeApi, count: int, pods: int, timeout: float) -> float:
    """Until the controller-manager made every ReplicaSet and Pod; the seconds it took."""
    started = time.monotonic()
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets"
    while await count_of(api, path) < count and time.monotonic() - started < timeout:
        await asyncio.sleep(1)
    while await count_of(api, PODS) < pods and time.monotonic() - started < timeout:
        await asyncio.sleep(1)
    return time.monotonic() - started


async def status_of(api: KubeApi) -> tuple[Any, ...]:
    status = (await api.request("GET", POLICY_PATH)).get("status") or {}
    return status.get("matched"), status.get("compliant"), status.get("mismatched")


class NoConvergence(Exception):
    """The status did not reach what was expected in time."""


async def wait_status(api: KubeApi, want: tuple[int, int, int], timeout: float,
                      interval: float = 0.05) -> float:
    """Poll the policy until (matched, compliant, mismatched) == ``want``; when it was seen."""
    deadline = time.monotonic() + timeout
    last: tuple[Any, ...] = ()
    while time.monotonic() < deadline:
        last = await status_of(api)
        if last == want:
            return time.monotonic()
        await asyncio.sleep(interval)
    raise NoConvergence(f"no convergence to {want} within {timeout:.0f} s; last status"
                        f" (matched, compliant, mismatched) = {last}")


@dataclass
class Figures:
    count: int
    replicas: int
    bare: int
    created_in: float
    converged: float | None
    """None: not within ``timeout`` (then nothing else was measured but memory and CPU)."""
    timeout: float
    note: str
    edits: list[float]
    policy_edit: float | None
    rss_converged: float
    peak_converged: float
    cpu_converged: float
    peak_end: float
    rss_end: float
    cpu_end: float
    writes: int
    events: int
    load: float
    evaluations_per_edit: float | None = None
    """Workloads the operator evaluated per Deployment edit (its metrics)."""
    audit_ms_per_edit: float | None = None
    """Mean duration of the operator's audits during the edits (its metrics)."""


def start_operator(kubeconfig: Path, log: Path, metrics_port: int) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "graceful.cli", "operator", "--kubeconfig", str(kubeconfig),
             "--namespace", NAMESPACE, "--lease-namespace", NAMESPACE, "--identity", "bench",
             "--no-manage-certificates", "--metrics-port", str(metrics_port),
             "--metrics-address", "127.0.0.1"],
            stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def scrape(port: int) -> dict[str, float]:
    """The operator's /metrics, sample name (with labels) -> value; {} if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def scenario(kubeconfig: Path, count: int, *, parallel: int, edits: int,
                   replicas: int, bare: int, timeout: float) -> Figures:
    api = KubeApi(load_configuration(str(kubeconfig)), timeout=60, limit=parallel)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    subprocess.run(["kubectl", "apply", "-f", str(CRD)], check=True, env=env,
                   capture_output=True)
    subprocess.run(["kubectl", "wait", "--for", "condition=established", "--timeout=60s",
                    "crd/gracefulpolicies.graceful.io"], check=True, env=env, capture_output=True)
    subprocess.run(["kubectl", "create", "namespace", NAMESPACE], check=False, env=env,
                   capture_output=True)
    await api.request("POST", f"/apis/graceful.io/v1alpha1/namespaces/{NAMESPACE}/gracefulpolicies",
                      body={"apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
                            "metadata": {"name": POLICY, "namespace": NAMESPACE},
                            "spec": {"mode": "Audit", "gracefulTimeoutSeconds": 30}})
    created_in = await create_all(api, count, parallel, replicas, bare)
    print(f"  {count} Deployments and {bare} bare Pods created in {created_in:.1f} s"
          f" (load {load_average():.2f})", flush=True)
    # The operator is measured, not the controller-manager's backlog: start it once every
    # Deployment has its ReplicaSet and its Pods.
    settled = await wait_replicasets(api, count, count * replicas + bare, timeout)
    print(f"  their ReplicaSets and Pods existed {settled:.1f} s later", flush=True)
    load = load_average()
    log = Path(tempfile.mkdtemp(prefix="bench-audit-")) / "operator.log"
    started = time.monotonic()
    port = free_port()
    operator = start_operator(kubeconfig, log, port)
    evaluations_per_edit = audit_ms_per_edit = None
    try:
        latencies: list[float] = []
        policy_edit: float | None = None
        note = ""
        try:
            converged: float | None = await wait_status(
                api, expected(count, bare=bare), timeout) - started
        except NoConvergence as exc:
            converged, note = None, str(exc)
            print(f"  {note}", flush=True)
        rss_converged, peak_converged = rss_kib(operator.pid)
        cpu_converged = cpu_seconds(operator.pid)
        if converged is not None:
            print(f"  operator converged {converged:.1f} s after it started,"
                  f" peak RSS {peak_converged / 1024:.0f} MiB, {cpu_converged:.1f} CPU s",
                  flush=True)
            before = scrape(port)
            for edit in range(edits):
                name = f"worker-{2 * edit:05d}"  # even indexes are the compliant ones
                began = time.monotonic()
                await api.request("PATCH", f"{DEPLOYMENTS}/{name}",
                                  body={"spec": {"template": {"spec": {
                                      "terminationGracePeriodSeconds": 10}}}},
                                  content_type="application/merge-patch+json")
                try:
                    seen = await wait_status(api, expected(count, edit + 1, bare), 60,
                                             interval=0.02)
                except NoConvergence as exc:
                    note = f"edit {edit + 1}: {exc}"
                    print(f"  {note}", flush=True)
                    break
                latencies.append(seen - began)
            after = scrape(port)
            audits = (after.get("graceful_operator_audit_duration_seconds_count", 0)
                      - before.get("graceful_operator_audit_duration_seconds_count", 0))
            if latencies and before and after and audits:
                evaluations_per_edit = (after["graceful_operator_evaluations_total"]
                                        - before["graceful_operator_evaluations_total"]
                                        ) / len(latencies)
                audit_ms_per_edit = 1000 * (
                    after["graceful_operator_audit_duration_seconds_sum"]
                    - before["graceful_operator_audit_duration_seconds_sum"]) / audits
            if latencies:
                print(f"  {edits} edits: p50 {percentile(latencies, 50):.2f} s,"
                      f" p95 {percentile(latencies, 95):.2f} s, evaluations per edit"
                      f" {evaluations_per_edit}, audit ms {audit_ms_per_edit}", flush=True)
            began = time.monotonic()
            await api.request("PATCH", POLICY_PATH,
                              body={"spec": {"gracefulTimeoutSeconds": 300}},
                              content_type="application/merge-patch+json")
            total = count + bare
            try:
                policy_edit = await wait_status(api, (total, 0, total), timeout) - began
            except NoConvergence as exc:
                note = f"{note} policy edit: {exc}".strip()
                print(f"  policy edit: {exc}", flush=True)
        rss_end, peak_end = rss_kib(operator.pid)
        cpu_end = cpu_seconds(operator.pid)
        text = log.read_text()
        writes = len(re.findall(r"status of \S+: matched=", text))
        events = len(await api.list_all(f"/api/v1/namespaces/{NAMESPACE}/events",
                                        label_selector="app.kubernetes.io/managed-by="
                                                       "graceful-operator"))
    finally:
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
        await api.close()
    return Figures(count, replicas, bare, created_in, converged, timeout, note, latencies,
                   policy_edit, rss_converged / 1024, peak_converged / 1024, cpu_converged,
                   peak_end / 1024, rss_end / 1024, cpu_end, writes, events, load,
                   evaluations_per_edit, audit_ms_per_edit)


def _verdict(measured: float, target: float, unit: str) -> str:
    return "met" if measured < target else f"missed by {measured - target:.2f}{unit}"


def report(results: list[Figures], edits: int) -> list[str]:
    lines = [
        "Per count, a fresh control plane: one Audit policy, N Deployments and the bare Pods"
        " (half of each missing the budget) created first, then `graceful operator` started"
        " (restricted to the namespace) once the controller-manager had made every ReplicaSet"
        f" and Pod. Edits: {edits} Deployments made to miss the budget one after the other,"
        " each timed from the PATCH until the status counts it (polled every 20 ms). Steady"
        " RSS is the operator's RSS at the end, after the edits and the policy edit. The load"
        " average is the 1-minute one when the operator started (the machine is shared).",
        "",
    ]
    rows = []
    for f in results:
        rows.append([
            f"{f.count:,}", f.replicas, f"{f.bare:,}", f"{f.created_in:.0f} s",
            f"{f.converged:.1f} s" if f.converged is not None else f"> {f.timeout:.0f} s",
            f"{percentile(f.edits, 50):.2f} s / {percentile(f.edits, 95):.2f} s"
            if f.edits else "-",
            f"{f.policy_edit:.1f} s" if f.policy_edit is not None else "-",
            f"{f.peak_converged:.0f} MiB", f"{f.peak_end:.0f} MiB", f"{f.rss_end:.0f} MiB",
            f"{f.cpu_converged:.1f} s", f"{f.cpu_end:.1f} s", f.writes, f.events,
            "-" if f.evaluations_per_edit is None else f"{f.evaluations_per_edit:.1f}",
            "-" if f.audit_ms_per_edit is None else f"{f.audit_ms_per_edit:.1f} ms",
            f"{f.load:.1f}",
        ])
    lines += table(["Deployments", "replicas", "bare Pods", "created in",
                    "operator start to converged", "edit to status p50 / p95",
                    "policy edit to converged", "peak RSS at convergence",
                    "peak RSS at the end", "steady RSS", "CPU s to converge", "CPU s in all",
                    "status writes", "Events posted", "evaluations per edit",
                    "audit per edit", "load"], rows)
    lines += ["", "Targets (issue 14):", ""]
    rows = []
    for f in results:
        scale = f"{f.count:,}"
        if f.count >= 10_000:
            if f.converged is None:
                rows.append([f"{scale}: converge < 30 s", f"not within {f.timeout:.0f} s",
                             f"missed by more than {f.timeout - TARGET_CONVERGE_10K_S:.0f} s"])
            else:
                rows.append([f"{scale}: converge < 30 s", f"{f.converged:.1f} s",
                             _verdict(f.converged, TARGET_CONVERGE_10K_S, " s")])
        if f.edits:
            p95 = percentile(f.edits, 95)
            rows.append([f"{scale}: edit in status < 1 s at p95", f"{p95:.2f} s",
                         _verdict(p95, TARGET_EDIT_P95_S, " s")])
        if f.policy_edit is not None:
            rows.append([f"{scale}: policy edit in status < 10 s", f"{f.policy_edit:.1f} s",
                         _verdict(f.policy_edit, TARGET_POLICY_EDIT_S, " s")])
        rows.append([f"{scale}: peak RSS < 300 MiB", f"{f.peak_end:.0f} MiB",
                     _verdict(f.peak_end, TARGET_RSS_MIB, " MiB")])
        rows.append([f"{scale}: steady RSS < 200 MiB", f"{f.rss_end:.0f} MiB",
                     _verdict(f.rss_end, TARGET_STEADY_RSS_MIB, " MiB")])
    lines += table(["target", "measured", "verdict"], rows)
    lines += [f"\n{f.count:,}: {f.note}" for f in results if f.note]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 200 Deployments, at most 20 bare Pods")
    parser.add_argument("--counts", default="1000,10000",
                        help="comma-separated numbers of Deployments (default: %(default)s)")
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=32, help="concurrent creates")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds to wait for convergence (default: %(default)s)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="replicas per Deployment (0: no Pods; the controller-manager"
                             " still makes a ReplicaSet each) (default: %(default)s)")
    parser.add_argument("--bare-pods", type=int, default=1000,
                        help="Pods without an owner, half missing the budget"
                             " (default: %(default)s)")
    parser.add_argument("--kubeconfig", type=Path, default=None,
                        help="an existing cluster (default: a local control plane per count)")
    parser.add_argument("--note", default="",
                        help="a sentence added to the results (e.g. what was changed for this run)")
    parser.add_argument("--no-record", action="store_true",
                        help="print only; do not append to bench/results.md")
    args = parser.parse_args(argv)
    counts = [200] if args.quick else [int(n) for n in args.counts.split(",")]
    edits = 10 if args.quick else args.edits
    results = []
    for count in counts:
        print(f"{count} Deployments:", flush=True)
        kwargs = {"parallel": args.parallel, "edits": min(edits, count // 2),
                  "replicas": args.replicas,
                  "bare": min(args.bare_pods, 20) if args.quick else args.bare_pods,
                  "timeout": args.timeout}
        if args.kubeconfig is not None:
            results.append(asyncio.run(scenario(args.kubeconfig, count, **kwargs)))
            continue
        from testenv import ControlPlane  # noqa: PLC0415

        plane = ControlPlane(name=f"bench-audit-{count}")
        plane.start()
        try:
            results.append(asyncio.run(scenario(plane.kubeconfig, count, **kwargs)))
        finally:
            plane.stop()
    lines = report(results, edits)
    publish("Audit at scale", lines, quick=args.quick, note=args.note,
            record=not args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
