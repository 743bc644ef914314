"""Through the API server: Deployment create latency with and without the webhook registered.

Starts a local control plane (or uses ``--kubeconfig``), ``graceful webhook``
as a subprocess on 127.0.0.1 with a certificate from a throwaway CA, and a
GracefulPolicy (``Enforce``) in the benchmark's namespace. Then it creates
``--count`` Deployments (3 containers, about 15 KB, opted in by annotation,
``replicas: 0`` so that no Pods are created behind the measurement) with 20
concurrent clients, in alternating blocks: without the
MutatingWebhookConfiguration, with it, without, with. Each switch is
confirmed with a server-side dry run before the block starts, and 20 creates
after each switch are a warm-up, not counted.

It reports the client-side create latency p50/p99 of both modes, and the
webhook's own share from the API server's histogram
``apiserver_admission_webhook_admission_duration_seconds`` (read from
``/metrics`` before and after; its buckets are coarse, so the mean is exact
and the percentiles are interpolated within a bucket) next to the webhook's
own ``graceful_webhook_admission_duration_seconds``.

Usage: ``.venv/bin/python -m bench.through_apiserver [--quick] [--count 1000]
[--clients 20] [--kubeconfig FILE] [--no-record]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import load_average, percentile, publish, table
from bench.reviews import deployment

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "gracefulpolicy.yaml"
NAMESPACE = "bench-apiserver"
POLICY = "bench"
WEBHOOK_METRIC = "apiserver_admission_webhook_admission_duration_seconds"
OWN_METRIC = "graceful_webhook_admission_duration_seconds"
WARM_UP = 20

# Targets of issue 7.
TARGET_ADDED_P99 = 0.10
TARGET_WEBHOOK_P99_MS = 10.0


# --- Prometheus text format ----------------------------------------------------------------

_SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Histogram:
    """The cumulative buckets, sum and count of one histogram (all matching series added)."""

    buckets: dict[float, float] = field(default_factory=dict)
    total: float = 0.0
    count: float = 0.0

    def __sub__(self, other: Histogram) -> Histogram:
        return Histogram({le: n - other.buckets.get(le, 0.0) for le, n in self.buckets.items()},
                         self.total - other.total, self.count - other.count)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")

    def quantile(self, q: float) -> float:
        """Prometheus' histogram_quantile: linear within the bucket that holds the rank."""
        if not self.count:
            return float("nan")
        rank = q * self.count
        lower, below = 0.0, 0.0
        for le in sorted(self.buckets):
            cumulative = self.buckets[le]
            if cumulative >= rank:
                if math.isinf(le):
                    return lower
                inside = cumulative - below
                return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = le, cumulative
        return lower

    def bucket_of(self, q: float) -> tuple[float, float]:
        """(lower, upper) bounds of the bucket that holds quantile ``q``."""
        rank = q * self.count
        lower = 0.0
        for le in sorted(self.buckets):
            if self.buckets[le] >= rank:
                return lower, le
            lower = le
        return lower, math.inf


def histogram(text: str, metric_name: str, labels: dict[str, str] | None = None) -> Histogram:
    """A histogram from a Prometheus exposition, summed over the series matching ``labels``."""
    name = metric_name
    labels = labels or {}
    found = Histogram()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match or not match.group(1).startswith(name):
            continue
        metric, raw, value = match.groups()
        got = dict(_LABEL.findall(raw or ""))
        if any(got.get(key) != want for key, want in labels.items()):
            continue
        if metric == f"{name}_bucket":
            le = float(got["le"].replace("+Inf", "inf"))
            found.buckets[le] = found.buckets.get(le, 0.0) + float(value)
        elif metric == f"{name}_sum":
            found.total += float(value)
        elif metric == f"{name}_count":
            found.count += float(value)
    return found


# --- the webhook process -------------------------------------------------------------------


@dataclass
class Webhook:
    """``graceful webhook`` in a subprocess, serving a certificate from a throwaway CA."""

    kubeconfig: Path
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    def start(self) -> None:
        from testenv.pki import CertificateAuthority  # noqa: PLC0415

        self.ca = CertificateAuthority.create("bench-apiserver-webhook-ca")
        cert, key = self.ca.issue("graceful-webhook", hosts=["127.0.0.1"], server=True).write(
            self.directory, "serving")
        self.log = self.directory / "webhook.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "graceful.cli", "webhook", "--cert", str(cert), "--key",
                 str(key), "--host", "127.0.0.1", "--port", "0", "--kubeconfig",
                 str(self.kubeconfig), "--log-level", "warning"],
                stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 60
        while not self.port:
            match = re.search(r"serving https://127\.0\.0\.1:(\d+)/mutate", self.log.read_text())
            if match:
                self.port = int(match[1])
            elif self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"graceful webhook did not start:\n{self.log.read_text()}")
            else:
                time.sleep(0.05)
        while self.get("/readyz") != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"graceful webhook not ready:\n{self.log.read_text()}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _open(self, path: str) -> tuple[int, str]:
        context = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        try:
            with urllib.request.urlopen(self.url + path, context=context, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except OSError:
            return 0, ""

    def get(self, path: str) -> int:
        return self._open(path)[0]

    def metrics(self) -> str:
        return self._open("/metrics")[1]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- the scenario --------------------------------------------------------------------------


def kubectl(kubeconfig: Path, *args: str, input: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    from testenv.build import find_kubectl  # noqa: PLC0415

    return subprocess.run([str(find_kubectl()), "--kubeconfig", str(kubeconfig), *args],
                          input=input, capture_output=True, text=True, check=check)


def bench_deployment(name: str) -> dict[str, Any]:
    obj = deployment(3, target_bytes=15_000, policy=POLICY, namespace=NAMESPACE, name=name)
    obj["spec"]["replicas"] = 0
    return obj


@dataclass
class Block:
    webhook: bool
    latencies_ms: list[float]
    seconds: float


async def create_block(api: Any, prefix: str, count: int, clients: int) -> tuple[list[float],
                                                                                   float]:
    """Create ``count`` Deployments, ``clients`` at a time; latencies in ms and wall time."""
    from graceful.operator.kube import ApiError  # noqa: PLC0415

    gate = asyncio.Semaphore(clients)
    latencies: list[float] = []
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"

    async def one(index: int) -> None:
        body = bench_deployment(f"{prefix}-{index:05d}")
        async with gate:
            for attempt in range(3):
                started = time.perf_counter()
                try:
                    await api.request("POST", path, body=body)
                except ApiError as exc:
                    if attempt == 2 or exc.status not in (0, 429, 500, 503, 504):
                        raise
                    await asyncio.sleep(0.2)
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                return

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return latencies, time.perf_counter() - began


def mutated_by_dry_run(kubeconfig: Path) -> bool:
    probe = bench_deployment(f"probe-{uuid.uuid4().hex[:6]}")
    out = kubectl(kubeconfig, "create", "--dry-run=server", "-o", "json", "-f", "-",
                  input=json.dumps(probe)).stdout
    return "preStop" in out


def wait_mode(kubeconfig: Path, on: bool, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while mutated_by_dry_run(kubeconfig) != on:
        if time.monotonic() > deadline:
            raise SystemExit(f"the webhook is still {'not ' if on else ''}called after {timeout}s")
        time.sleep(0.2)


def apiserver_metrics(kubeconfig: Path) -> str:
    return kubectl(kubeconfig, "get", "--raw", "/metrics").stdout


async def scenario(kubeconfig: Path, count: int, clients: int, blocks: int) -> list[str]:
    from graceful.operator.kube import KubeApi, load_configuration  # noqa: PLC0415
    from graceful.webhook.config import WEBHOOK_NAME, webhook_configuration  # noqa: PLC0415

    kubectl(kubeconfig, "apply", "-f", str(CRD))
    kubectl(kubeconfig, "wait", "--for", "condition=established", "--timeout=60s",
            "crd/gracefulpolicies.graceful.io")
    kubectl(kubeconfig, "create", "namespace", NAMESPACE, check=False)
    kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps({
        "apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
        "metadata": {"name": POLICY, "namespace": NAMESPACE}, "spec": {"mode": "Enforce"}}))
    directory = Path(tempfile.mkdtemp(prefix="bench-apiserver-"))
    hook = Webhook(kubeconfig, directory)
    config_name = f"bench-graceful-{uuid.uuid4().hex[:6]}"
    api = KubeApi(load_configuration(str(kubeconfig)), timeout=30, limit=clients)
    results: list[Block] = []
    webhook_delta = own_delta = Histogram()
    run = uuid.uuid4().hex[:4]
    try:
        hook.start()
        configuration = webhook_configuration(name=config_name, ca_bundle=hook.ca.cert_pem,
                                              url=f"{hook.url}/mutate")
        per_block = max(1, count // blocks)
        selected = {"name": WEBHOOK_NAME, "operation": "CREATE"}
        deployments = {"kind": "Deployment"}
        for index in range(blocks):
            on = index % 2 == 1
            if on:
                kubectl(kubeconfig, "apply", "-f", "-", input=json.dumps(configuration))
            else:
                kubectl(kubeconfig, "delete", "mutatingwebhookconfiguration", config_name,
                        "--ignore-not-found")
            wait_mode(kubeconfig, on)
            await create_block(api, f"warm-{run}-{index}", WARM_UP, clients)
            before, own_before = apiserver_metrics(kubeconfig), hook.metrics()
            latencies, seconds = await create_block(api, f"b{run}-{index}", per_block, clients)
            after, own_after = apiserver_metrics(kubeconfig), hook.metrics()
            if on:
                webhook_delta = _add(webhook_delta, (
                    histogram(after, WEBHOOK_METRIC, selected)
                    - histogram(before, WEBHOOK_METRIC, selected)))
                own_delta = _add(own_delta, (histogram(own_after, OWN_METRIC, deployments)
                                             - histogram(own_before, OWN_METRIC, deployments)))
            results.append(Block(on, latencies, seconds))
            print(f"  block {index + 1}/{blocks}, webhook {'on ' if on else 'off'}:"
                  f" {len(latencies)} creates in {seconds:.1f} s,"
                  f" p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms"
                  f" (load {load_average():.2f})", flush=True)
    finally:
        kubectl(kubeconfig, "delete", "mutatingwebhookconfiguration", config_name,
                "--ignore-not-found", check=False)
        hook.stop()
        await api.close()
        kubectl(kubeconfig, "delete", "namespace", NAMESPACE, "--wait=false", check=False)
    return report(results, webhook_delta, own_delta, clients=clients)


def _add(a: Histogram, b: Histogram) -> Histogram:
    keys = set(a.buckets) | set(b.buckets)
    return Histogram({k: a.buckets.get(k, 0.0) + b.buckets.get(k, 0.0) for k in keys},
                     a.total + b.total, a.count + b.count)


def _merged(blocks: Iterable[Block], on: bool) -> tuple[list[float], float]:
    chosen = [b for b in blocks if b.webhook == on]
    return [x for b in chosen for x in b.latencies_ms], sum(b.seconds for b in chosen)


def report(blocks: list[Block], webhook: Histogram, own: Histogram, *, clients: int) -> list[str]:
    off, off_s = _merged(blocks, False)
    on, on_s = _merged(blocks, True)
    p50_off, p99_off = percentile(off, 50), percentile(off, 99)
    p50_on, p99_on = percentile(on, 50), percentile(on, 99)
    added_p99 = (p99_on - p99_off) / p99_off
    lines = [
        f"{len(off) + len(on)} Deployment creates (3 containers, ~15 KB, annotated for an Enforce"
        f" policy, replicas 0) with {clients} concurrent clients, in {len(blocks)} alternating"
        f" blocks without/with the MutatingWebhookConfiguration (each switch confirmed by a"
        f" server-side dry run, {WARM_UP} warm-up creates not counted). `graceful webhook` runs"
        f" as a subprocess on the same machine.",
        "",
    ]
    lines += table(["create latency", "without webhook", "with webhook", "ratio"], [
        ["creates", len(off), len(on), ""],
        ["creates/s", f"{len(off) / off_s:.0f}", f"{len(on) / on_s:.0f}",
         f"{(len(on) / on_s) / (len(off) / off_s):.2f}"],
        ["p50", f"{p50_off:.1f} ms", f"{p50_on:.1f} ms", f"{p50_on / p50_off:.2f}"],
        ["p99", f"{p99_off:.1f} ms", f"{p99_on:.1f} ms", f"{p99_on / p99_off:.2f}"],
    ])
    low, high = webhook.bucket_of(0.99)
    lines += ["", "The webhook's own time (CREATE of Deployments during the blocks with it):", ""]
    lines += table(["source", "calls", "mean", "p50", "p99"], [
        [f"API server `{WEBHOOK_METRIC}`", f"{webhook.count:.0f}", f"{webhook.mean * 1000:.2f} ms",
         f"{webhook.quantile(0.5) * 1000:.1f} ms",
         f"{webhook.quantile(0.99) * 1000:.1f} ms (bucket {low * 1000:g}-{high * 1000:g} ms)"],
        [f"webhook `{OWN_METRIC}` (handler only)", f"{own.count:.0f}",
         f"{own.mean * 1000:.2f} ms", f"{own.quantile(0.5) * 1000:.2f} ms",
         f"{own.quantile(0.99) * 1000:.2f} ms"],
    ])
    share = webhook.mean * 1000 / (sum(on) / len(on)) if on else float("nan")
    lines += ["", f"The webhook call is {share:.0%} of the mean create latency with it"
                  f" ({webhook.mean * 1000:.2f} ms of {sum(on) / len(on):.1f} ms).", ""]
    rows = [["webhook adds < 10% to create p99", f"{added_p99:+.0%}",
             "met" if added_p99 < TARGET_ADDED_P99
             else f"missed by {(added_p99 - TARGET_ADDED_P99) * 100:.0f} points"]]
    p99 = webhook.quantile(0.99) * 1000
    rows.append([f"webhook's own p99 < {TARGET_WEBHOOK_P99_MS:g} ms (API server histogram)",
                 f"{p99:.1f} ms (bucket {low * 1000:g}-{high * 1000:g} ms)",
                 "met" if high * 1000 <= TARGET_WEBHOOK_P99_MS
                 else ("met (interpolated; the bucket straddles the target)"
                       if p99 < TARGET_WEBHOOK_P99_MS else
                       f"missed by {p99 - TARGET_WEBHOOK_P99_MS:.1f} ms")])
    lines += ["Targets (issue 7):", ""]
    lines += table(["target", "measured", "verdict"], rows)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100 creates")
    parser.add_argument("--count", type=int, default=1000, help="creates, both modes together")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--blocks", type=int, default=4,
                        help="alternating blocks, starting without the webhook (even number)")
    parser.add_argument("--kubeconfig", type=Path, default=None,
                        help="an existing cluster (default: start a local control plane)")
    parser.add_argument("--no-record", action="store_true",
                        help="print only; do not append to bench/results.md")
    args = parser.parse_args(argv)
    count = 100 if args.quick else args.count
    if args.kubeconfig is not None:
        lines = asyncio.run(scenario(args.kubeconfig, count, args.clients, args.blocks))
    else:
        from testenv import ControlPlane  # noqa: PLC0415

        plane = ControlPlane(name="bench-apiserver")
        plane.start()
        try:
            lines = asyncio.run(scenario(plane.kubeconfig, count, args.clients, args.blocks))
        finally:
            plane.stop()
    publish("Through the API server: creates with and without the webhook", lines,
            quick=args.quick, record=not args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
