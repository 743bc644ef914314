"""Rollouts with work in flight, with and without a GracefulPolicy: what is lost, redone, failed.

On a local cluster with a real node (kubelet, containerd, kube-proxy in the
cluster's own network namespace), the webhook installed from ``manifests/``
unchanged, and RabbitMQ next to the node: the proof's FastStream consumer
and uvicorn web service (``testenv/proof``) in two namespaces, ``plain`` (as
a user writes the manifests today) and ``policy`` (the same, opted in to a
GracefulPolicy). Each rollout publishes N messages, waits until the old
consumers are in their handlers, starts the load generator on the web
Service's ClusterIP and runs ``kubectl rollout restart`` on both
Deployments; it is over when the old Pods are gone and the queue is empty.
The modes alternate in blocks (plain, policy, policy, plain, ...) so that
drift on a shared machine hits both alike.

Reports messages published / acked / processed twice / lost, requests sent /
failed (by kind), the rollout durations and one old Pod's stop per mode,
appends a dated section to ``bench/results.md``, and ends with exactly one
line: ``with policy: L lost, D duplicated of N messages, F failed of R
requests; without: ...``.

Usage: ``.venv/bin/python -m bench.rollout_loss [--quick] [--rollouts 3]
[--messages 6] [--rate 40] [--no-record] [--note TEXT]`` (as root: the node
needs it).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bench.common import load_average, publish, table
from testenv.proof.accounting import (
    ModeFigures,
    Totals,
    draw_stop,
    final_line,
    telling_stop,
)
from testenv.proof.manifests import BENCH, SHORT, Durations, Mode
from testenv.proof.run import Experiment, RolloutResult

TITLE = "Rollouts with and without a GracefulPolicy (FastStream consumer, uvicorn web service)"


def block_order(rollouts: int) -> list[Mode]:
    """plain, policy, policy, plain, plain, policy, ...: each mode first in half the blocks."""
    order: list[Mode] = []
    for index in range(rollouts):
        order += ["plain", "policy"] if index % 2 == 0 else ["policy", "plain"]
    return order


def totals(results: Sequence[RolloutResult]) -> Totals:
    total = Totals()
    for result in results:
        total = total + Totals.of(result.messages, result.requests)
    return total


@dataclass(frozen=True)
class Setup:
    durations: Durations
    messages: int
    rate: float
    rollouts: int


def report(results: dict[Mode, list[RolloutResult]], setup: Setup,
           seconds: dict[Mode, float]) -> list[str]:
    """The Markdown lines of the section (the final line is printed after it)."""
    d = setup.durations
    lines = [
        f"{setup.rollouts} rollout(s) per mode, alternating blocks; per rollout {setup.messages}"
        f" persistent messages (handlers of {d.handler:g} s, FastStream graceful_timeout"
        f" {d.graceful_timeout} s in code, prefetch 2) and {setup.rate:g} requests/s of"
        f" {d.request_ms} ms each through the web Service's ClusterIP (uvicorn"
        f" --timeout-graceful-shutdown {d.http_graceful_timeout}); 2 replicas each, maxSurge 1,"
        f" maxUnavailable 0; terminationGracePeriodSeconds as written:"
        f" {'unset (30 s)' if d.grace is None else f'{d.grace} s'}; policy S = {d.pre_stop} s,"
        f" M = {d.margin} s. Load average at the end: {load_average():.2f}.",
        "",
    ]
    rows = []
    for mode in ("policy", "plain"):
        runs = results.get(mode, [])
        figures = ModeFigures.of((r.messages for r in runs), (r.requests for r in runs))
        durations = [r.seconds for r in runs]
        rows.append([
            "with policy" if mode == "policy" else "without",
            figures.published, figures.acked, figures.duplicated, figures.lost,
            figures.sent, figures.failed, figures.failures(),
            f"{statistics.mean(durations):.1f} / {max(durations):.1f}" if durations else "-",
            f"{seconds.get(mode, 0.0):.0f}",
        ])
    lines += table(["mode", "messages published", "acked", "processed twice", "lost",
                    "requests sent", "failed", "failures by kind",
                    "rollout s (mean / max)", "mode total s"], rows)
    lines += ["", "Per rollout:", ""]
    per = []
    for mode in ("policy", "plain"):
        for index, r in enumerate(results.get(mode, [])):
            per.append([mode, index + 1,
                        f"{r.messages.lost} lost, {r.messages.duplicated} dup of"
                        f" {r.messages.published}" if r.messages else "-",
                        f"{r.requests.failed} of {r.requests.sent}" if r.requests else "-",
                        f"{r.seconds:.1f}",
                        " ".join(str(s.exit_code) for s in r.stops)])
    lines += table(["mode", "rollout", "messages", "requests failed", "rollout s",
                    "old Pods' exit codes"], per)
    for mode in ("policy", "plain"):
        runs = results.get(mode, [])
        stop = telling_stop([s for r in runs for s in r.stops])
        if stop is not None:
            lines += ["", f"One old Pod, {mode}:", "", "```", *draw_stop(stop, mode), "```"]
    return lines


@contextlib.contextmanager
def _experiment(args: argparse.Namespace, durations: Durations) -> Iterator[Experiment]:
    """The node, the broker, the images, the product, both modes installed."""
    from testenv.proof.session import node_ip, proof_session, start_node  # noqa: PLC0415

    def progress(message: str) -> None:
        print(message, flush=True)

    with start_node(progress) as plane, proof_session(
            plane.kubeconfig, node_ip(), durations, messages=args.messages, rate=args.rate,
            progress=progress) as experiment:
        yield experiment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one short rollout per mode (handlers of 8 s; figures indicative)")
    parser.add_argument("--rollouts", type=int, default=3, help="per mode")
    parser.add_argument("--messages", type=int, default=6, help="per rollout")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--note", default="",
                        help="a sentence added to the results (e.g. what was changed for this run)")
    parser.add_argument("--no-record", action="store_true",
                        help="print only; do not append to bench/results.md")
    args = parser.parse_args(argv)
    durations = SHORT if args.quick else BENCH
    rollouts = 1 if args.quick else args.rollouts
    results: dict[Mode, list[RolloutResult]] = {"plain": [], "policy": []}
    seconds: dict[Mode, float] = {"plain": 0.0, "policy": 0.0}
    with _experiment(args, durations) as experiment:
        for index, mode in enumerate(block_order(rollouts)):
            started = time.monotonic()
            result = experiment.rollout(mode, index)
            seconds[mode] += time.monotonic() - started
            results[mode].append(result)
            print(f"  {mode}: {Totals.of(result.messages, result.requests).clause()}"
                  f" ({result.seconds:.1f} s)", flush=True)
    setup = Setup(durations, args.messages, args.rate, rollouts)
    publish(TITLE, report(results, setup, seconds), quick=args.quick, note=args.note,
            record=not args.no_record)
    sys.stdout.flush()
    print(final_line(totals(results["policy"]), totals(results["plain"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
