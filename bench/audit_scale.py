"""How fast the audit converges for 1,000 Deployments created at once, and at what memory.

Starts a local control plane (or uses ``--kubeconfig``), one GracefulPolicy in
``mode: Audit`` and ``graceful operator`` as a subprocess restricted to the
benchmark's namespace, then creates N Deployments concurrently (half of them
missing the budget, one replica each, so the controller-manager also creates
N ReplicaSets and N Pods for the operator to index). It reports:

- convergence: from the first create until ``kubectl get gracefulpolicies``
  would show MATCHED N, COMPLIANT N/2, MISMATCHED N/2, and from the last create;
- the operator's resident memory (VmRSS) before, at convergence and once the
  ReplicaSets and Pods settled, and its peak (VmHWM);
- how many status writes and Events it made (Events must equal the mismatches);
- a policy edit that turns all N mismatched: time to converge again.

Usage: ``.venv/bin/python -m bench.audit_scale [--count 1000] [--kubeconfig F] [--record]``
(``--record`` appends the figures to bench/results.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from graceful.operator.kube import ApiError, KubeApi, load_configuration

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "gracefulpolicy.yaml"
NAMESPACE = "bench-audit"
POLICY_PATH = f"/apis/graceful.io/v1alpha1/namespaces/{NAMESPACE}/gracefulpolicies/workers"


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def deployment(index: int, compliant: bool) -> dict[str, Any]:
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
                     "annotations": {"graceful.io/policy": "workers"},
                     "labels": {"app": name, "bench": "audit"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}},
    }


async def create_all(api: KubeApi, count: int, parallel: int) -> tuple[float, float]:
    """Create the Deployments ``parallel`` at a time; (start, end) monotonic times."""
    gate = asyncio.Semaphore(parallel)

    async def one(index: int) -> None:
        async with gate:
            for attempt in range(5):
                try:
                    await api.request("POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
                                      body=deployment(index, compliant=index % 2 == 0))
                    return
                except ApiError as exc:
                    if exc.status == 409:
                        return
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5)

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    return started, time.monotonic()


async def wait_status(api: KubeApi, want: tuple[int, int, int], timeout: float) -> float:
    """Poll the policy until (matched, compliant, mismatched) == ``want``; when it was seen."""
    deadline = time.monotonic() + timeout
    last: tuple[Any, ...] = ()
    while time.monotonic() < deadline:
        status = (await api.request("GET", POLICY_PATH)).get("status") or {}
        last = (status.get("matched"), status.get("compliant"), status.get("mismatched"))
        if last == want:
            return time.monotonic()
        await asyncio.sleep(0.1)
    raise SystemExit(f"no convergence to {want} within {timeout}s; last status {last}")


async def count_pods(api: KubeApi) -> int:
    return len(await api.list_all(f"/api/v1/namespaces/{NAMESPACE}/pods"))


async def scenario(kubeconfig: Path, count: int, parallel: int) -> list[str]:
    api = KubeApi(load_configuration(str(kubeconfig)), timeout=30, limit=parallel)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    subprocess.run(["kubectl", "apply", "-f", str(CRD)], check=True, env=env,
                   capture_output=True)
    subprocess.run(["kubectl", "wait", "--for", "condition=established", "--timeout=60s",
                    "crd/gracefulpolicies.graceful.io"], check=True, env=env, capture_output=True)
    subprocess.run(["kubectl", "create", "namespace", NAMESPACE], check=False, env=env,
                   capture_output=True)
    await api.request("POST", f"/apis/graceful.io/v1alpha1/namespaces/{NAMESPACE}/gracefulpolicies",
                      body={"apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
                            "metadata": {"name": "workers", "namespace": NAMESPACE},
                            "spec": {"mode": "Audit", "gracefulTimeoutSeconds": 30}})
    log = Path(tempfile.mkdtemp(prefix="bench-audit-")) / "operator.log"
    with log.open("wb") as out:
        operator = subprocess.Popen(
            [sys.executable, "-m", "graceful.cli", "operator", "--kubeconfig", str(kubeconfig),
             "--namespace", NAMESPACE, "--lease-namespace", NAMESPACE, "--identity", "bench"],
            stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while "acquired leadership" not in log.read_text():
            if operator.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"operator did not start:\n{log.read_text()}")
            await asyncio.sleep(0.1)
        await wait_status(api, (0, 0, 0), 30)
        await asyncio.sleep(1)
        idle = rss_kib(operator.pid)[0]

        first, last = await create_all(api, count, parallel)
        half = count // 2
        converged = await wait_status(api, (count, count - half, half), 300)
        at_convergence = rss_kib(operator.pid)[0]
        # Let the controller-manager create every ReplicaSet and Pod, then measure again.
        settle_deadline = time.monotonic() + 180
        while await count_pods(api) < count and time.monotonic() < settle_deadline:
            await asyncio.sleep(1)
        pods = await count_pods(api)
        await asyncio.sleep(5)
        settled, peak = rss_kib(operator.pid)
        text = log.read_text()
        writes = len(re.findall(r"status of \S+: matched=", text))
        events = len(await api.list_all(f"/api/v1/namespaces/{NAMESPACE}/events",
                                        label_selector="app.kubernetes.io/managed-by="
                                                       "graceful-operator"))

        edit_started = time.monotonic()
        await api.request("PATCH", POLICY_PATH, body={"spec": {"gracefulTimeoutSeconds": 300}},
                          content_type="application/merge-patch+json")
        edited = await wait_status(api, (count, 0, count), 120)
        rss_after_edit, peak = rss_kib(operator.pid)
    finally:
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
        await api.close()
    mib = 1024
    return [
        f"{count} Deployments (1 replica each; half missing the budget) created with {parallel}"
        f" concurrent POSTs in {last - first:.1f} s; {pods} Pods existed when measured.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| status converged after the first create | {converged - first:.1f} s |",
        f"| status converged after the last create | {converged - last:.1f} s |",
        f"| policy edit (timeout 30 -> 300) to MISMATCHED {count} |"
        f" {edited - edit_started:.1f} s |",
        f"| status writes until convergence | {writes} |",
        f"| Events posted (= mismatched workloads) | {events} (expected {half}) |",
        f"| operator RSS idle, before the creates | {idle / mib:.0f} MiB |",
        f"| operator RSS at convergence | {at_convergence / mib:.0f} MiB |",
        f"| operator RSS with every ReplicaSet and Pod indexed | {settled / mib:.0f} MiB |",
        f"| operator RSS after the policy edit | {rss_after_edit / mib:.0f} MiB |",
        f"| operator peak RSS (VmHWM) | {peak / mib:.0f} MiB |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=32)
    parser.add_argument("--kubeconfig", type=Path, default=None,
                        help="an existing cluster (default: start a local control plane)")
    parser.add_argument("--record", action="store_true", help="append to bench/results.md")
    args = parser.parse_args()
    if args.kubeconfig is not None:
        lines = asyncio.run(scenario(args.kubeconfig, args.count, args.parallel))
    else:
        from graceful.testenv import ControlPlane  # noqa: PLC0415

        plane = ControlPlane(name="bench-audit")
        plane.start()
        try:
            lines = asyncio.run(scenario(plane.kubeconfig, args.count, args.parallel))
        finally:
            plane.stop()
    if args.record:
        from bench.common import append_results  # noqa: PLC0415

        append_results(f"Audit convergence, {args.count} Deployments", lines)
    else:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
