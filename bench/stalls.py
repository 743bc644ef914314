"""Stalls or queueing? One client, one request at a time, at a steady pace, to both servers.

A p99 far above the p50 at a modest rate has two possible causes: something
in the server stops the event loop now and then (a collection, a thread
holding the GIL, a timer), or requests that arrive together wait for each
other. The fixed-rate runs of :mod:`bench.webhook_alone` cannot tell them
apart: ten ``hey`` streams queue. Here a single keep-alive TLS connection
sends one review every ``--interval`` seconds and waits for the answer, so no
request ever waits behind another: what is left in the tail is the server's
own stalls (and the machine's). The worst requests are listed with the time
they were sent, so periodic stalls show as a period.

Both servers run in the same sitting, with the same review, the same client
and the same pace (``graceful`` is the webhook's app with one Enforce policy,
``baseline`` a no-op ASGI app parsing the review), alternating ``--rounds``
times. The first ``--warm-up`` seconds of each run are measured but left out
of the percentiles, and reported on their own (a freshly started Pod meets
them).

Usage: ``.venv/bin/python -m bench.stalls [--containers 3] [--seconds 12]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import load_average, percentile, publish, table
from bench.reviews import deployment, review
from bench.webhook_alone import APPS, NAMESPACE, SHAPES, start
from testenv.pki import CertificateAuthority

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass(frozen=True)
class Sample:
    """One request: when it was sent (s after the first) and how long its answer took (ms)."""

    sent: float
    ms: float


@dataclass(frozen=True)
class Summary:
    """The steady-state tail of one run, the warm-up's worst, and the worst requests."""

    app: str
    percentiles: tuple[float, ...]
    maximum: float
    warm_up_max: float
    worst: tuple[Sample, ...]


def summarize(app: str, samples: Sequence[Sample], *, warm_up: float,
              worst: int = 8) -> Summary:
    """Percentiles and maximum after ``warm_up`` seconds; the worst steady requests by time."""
    steady = [s for s in samples if s.sent >= warm_up]
    early = [s.ms for s in samples if s.sent < warm_up]
    if not steady:
        raise ValueError(f"no request was sent after the {warm_up}s warm-up")
    times = [s.ms for s in steady]
    slowest = sorted(steady, key=lambda s: s.ms, reverse=True)[:worst]
    return Summary(app, tuple(percentile(times, p) for p in PERCENTILES), max(times),
                   max(early, default=float("nan")), tuple(sorted(slowest, key=lambda s: s.sent)))


def paced_requests(port: int, body: bytes, *, seconds: float, interval: float) -> list[Sample]:
    """One keep-alive TLS connection, a request every ``interval`` s (or as soon as the last
    answered, if it took longer), for ``seconds``."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # our own throwaway CA; the client measures, not checks
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    headers = {"Content-Type": "application/json"}
    samples: list[Sample] = []
    started = time.monotonic()
    due = started
    try:
        while due - started < seconds:
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sent = time.perf_counter()
            connection.request("POST", "/mutate", body=body, headers=headers)
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"/mutate answered {answer.status}")
            samples.append(Sample(time.monotonic() - started,
                                  (time.perf_counter() - sent) * 1000))
            due += interval
    finally:
        connection.close()
    return samples


def report(summaries: Sequence[Summary], *, containers: int, seconds: float, interval: float,
           warm_up: float, loads: Sequence[float]) -> list[str]:
    """The results section: one row per run, then the worst requests of each."""
    rows = [[s.app, *(f"{v:.2f}" for v in s.percentiles), f"{s.maximum:.2f}",
             f"{s.warm_up_max:.2f}"] for s in summaries]
    lines = [
        f"One keep-alive TLS connection on 127.0.0.1, one review of {containers} container(s)"
        f" every {interval * 1000:g} ms for {seconds:g} s, the answer awaited before the next:"
        f" no request waits behind another. Percentiles leave out the first {warm_up:g} s"
        f" (its worst is the last column). Load {min(loads):.1f}-{max(loads):.1f}.",
        "",
        *table(["server", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
                "warm-up max ms"], rows),
        "",
        "The slowest steady requests of each run (sent at s: took ms):",
        "",
    ]
    for s in summaries:
        shown = ", ".join(f"{w.sent:.2f}: {w.ms:.1f}" for w in s.worst)
        lines.append(f"- {s.app}: {shown}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=3, choices=[c for c, _ in SHAPES])
    parser.add_argument("--seconds", type=float, default=12.0, help="per run")
    parser.add_argument("--interval", type=float, default=0.002, help="seconds between sends")
    parser.add_argument("--warm-up", type=float, default=3.0, help="seconds left out")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per server")
    parser.add_argument("--note", help="a sentence added to the results")
    parser.add_argument("--no-record", action="store_true",
                        help="print only; do not append to bench/results.md")
    args = parser.parse_args(argv)
    size = dict(SHAPES)[args.containers]
    body = json.dumps(review(deployment(args.containers, target_bytes=size,
                                        namespace=NAMESPACE))).encode()
    directory = Path(tempfile.mkdtemp(prefix="bench-stalls-"))
    ca = CertificateAuthority.create("bench-stalls-ca")
    cert, key = ca.issue("bench-webhook", hosts=["127.0.0.1"], server=True).write(
        directory, "serving")
    summaries: list[Summary] = []
    loads: list[float] = []
    for round_ in range(args.rounds):
        for app in APPS:
            run_directory = directory / f"{app}-{round_}"
            run_directory.mkdir()
            served = start(app, run_directory, cert, key)
            try:
                loads.append(load_average())
                samples = paced_requests(served.port, body, seconds=args.seconds,
                                         interval=args.interval)
            finally:
                served.stop()
            summary = summarize(app, samples, warm_up=args.warm_up)
            summaries.append(summary)
            print(f"  {app:8} round {round_ + 1}: p99 {summary.percentiles[2]:.2f} ms,"
                  f" max {summary.maximum:.2f} ms (load {loads[-1]:.2f})")
    publish("Stalls or queueing: one paced connection to each server",
            report(summaries, containers=args.containers, seconds=args.seconds,
                   interval=args.interval, warm_up=args.warm_up, loads=loads),
            note=args.note, record=not args.no_record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
