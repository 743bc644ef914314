"""The webhook alone: graceful's /mutate against a baseline ASGI app, same server and TLS.

Two server processes run side by side for the whole run, each serving one
app with :class:`graceful.webhook.server.WebhookServer` (the same uvicorn
configuration, the same TLS context from :mod:`graceful.webhook.tls`, the
same socket setup):

- ``graceful``: :func:`graceful.webhook.app.create_app` with a policy cache
  holding one ``Enforce`` policy, so every review is opted in and patched;
- ``floor``: :mod:`bench.floor_app`, the same parse-and-allow inside the
  webhook's own FastAPI application and route class -- the ceiling for a
  webhook that keeps FastAPI, so that a target the floor misses is known to
  be out of reach of our code;
- ``baseline``: :mod:`bench.baseline_app`, which parses the review and
  answers ``allowed: true`` -- the ceiling for any Python webhook here.

For Deployments with 1, 3 and 10 containers (5, 15 and 50 KB), it measures
requests/s at saturation (``wrk`` with a Lua script POSTing the review) and
p50/p99 latency at fixed rates (``hey -q``), alternating the two servers
measurement by measurement so that drift on a shared machine hits them alike.

Usage: ``.venv/bin/python -m bench.webhook_alone [--quick] [--no-record]``.
Needs ``wrk`` and ``hey`` (``apt-get install -y wrk hey``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any, NoReturn

from bench.common import (
    FixedRate,
    Saturation,
    cpu_seconds,
    hey_fixed_rate,
    load_average,
    on_cpus,
    placement,
    publish,
    require,
    table,
    wrk_saturation,
)
from bench.reviews import deployment, review
from bench.stages import STAGES
from bench.stages import measure as stage_breakdown

if TYPE_CHECKING:
    from graceful.core import GracefulPolicy

APPS = ("graceful", "floor", "baseline")
#: (containers, target size of the Deployment in bytes)
SHAPES = ((1, 5_000), (3, 15_000), (10, 50_000))
RATES = (100, 500, 1000)
NAMESPACE = "bench"
POLICY = "bench"

#: An experiment: serve both apps with this uvicorn ``http`` setting (``httptools``)
#: instead of WebhookServer's guarded h11 protocol; the section must say so (``--note``).
HTTP_OVERRIDE = "BENCH_UVICORN_HTTP"
#: An experiment: ``uvloop`` runs the servers on uvloop (no TLS handshake deadline there).
LOOP_OVERRIDE = "BENCH_EVENT_LOOP"

# Targets of issue 15.
TARGET_THROUGHPUT_RATIO = 0.60
TARGET_P99_MS = 5.0
TARGET_P99_RATIO = 2.0
TARGET_RATE = 500
TARGET_LATENCY_CONTAINERS = (1, 3)


# --- the servers (run in child processes) --------------------------------------------------


def bench_policy() -> GracefulPolicy:
    """The one Enforce policy the reviews opt in to."""
    from graceful.core import GracefulPolicy  # noqa: PLC0415

    return GracefulPolicy.from_object({
        "apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
        "metadata": {"name": POLICY, "namespace": NAMESPACE},
        "spec": {"mode": "Enforce"},
    })


def serve(app_name: str, cert: Path, key: Path, port_file: Path) -> None:
    """Serve one app with the webhook's own server class and TLS; write the port, run."""
    from graceful.webhook.server import WebhookServer, bind  # noqa: PLC0415
    from graceful.webhook.tls import ReloadingCertificate  # noqa: PLC0415

    app: Any
    if app_name == "graceful":
        from graceful.webhook.app import create_app  # noqa: PLC0415
        from graceful.webhook.cache import PolicyCache  # noqa: PLC0415

        app = create_app(PolicyCache.of([bench_policy()]))
    elif app_name == "floor":
        from bench.floor_app import app  # noqa: PLC0415
    else:
        from bench.baseline_app import app  # noqa: PLC0415
    server = WebhookServer(app, ReloadingCertificate(cert, key), bind("127.0.0.1", 0))
    if os.environ.get(HTTP_OVERRIDE):  # an experiment: uvicorn's own protocol, no deadlines
        server.config.http = os.environ[HTTP_OVERRIDE]
    port_file.write_text(str(server.address[1]))
    if os.environ.get(LOOP_OVERRIDE) == "uvloop":
        import uvloop  # noqa: PLC0415

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(server.serve())
        return
    server.run()


@dataclass
class Served:
    name: str
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(app_name: str, directory: Path, cert: Path, key: Path,
          cpus: frozenset[int] | None = None) -> Served:
    port_file = directory / f"{app_name}.port"
    log = (directory / f"{app_name}.log").open("wb")
    process = subprocess.Popen(
        # -P passed on: a run with another graceful first on PYTHONPATH (bench/README.md)
        # must not serve the clone's own from the working directory
        [*on_cpus(cpus), sys.executable, *(["-P"] if sys.flags.safe_path else []), "-m",
         "bench.webhook_alone", "--serve", app_name, "--cert", str(cert), "--key", str(key),
         "--port-file", str(port_file)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{app_name} server did not start:\n"
                             f"{(directory / f'{app_name}.log').read_text()}")
        time.sleep(0.05)
    served = Served(app_name, process, int(port_file.read_text()))
    wait_answering(served, directory)
    return served


def wait_answering(served: Served, directory: Path) -> None:
    """Until the server answers a review (the socket is bound before uvicorn starts)."""
    body = directory / "probe.json"
    body.write_text(json.dumps(review(deployment(1, target_bytes=1000, namespace=NAMESPACE,
                                                 policy=POLICY))))
    curl = [require("curl", "curl"), "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X",
            "POST", "-H", "Content-Type: application/json", "--data-binary", f"@{body}",
            served.url]
    deadline = time.monotonic() + 30
    while subprocess.run(curl, check=False, capture_output=True, text=True).stdout != "200":
        if time.monotonic() > deadline:
            raise SystemExit(f"{served.name} does not answer on {served.url}")
        time.sleep(0.1)


# --- the measurements ----------------------------------------------------------------------


@dataclass
class ShapeResult:
    containers: int
    size: int
    saturation: dict[str, list[Saturation]]
    fixed: dict[str, dict[int, FixedRate]]
    patched: bool
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    """Server CPU µs per request during each saturation run."""
    loads: list[float] = field(default_factory=list)
    """The one-minute load average after each measurement of this shape."""
    stages: dict[str, float] = field(default_factory=dict)
    """bench.stages' in-process breakdown (µs per request)."""

    def rps(self, app: str) -> float:
        return median(s.requests_per_second for s in self.saturation[app])

    def ratio(self, app: str = "graceful") -> float:
        return self.rps(app) / self.rps("baseline")

    def cpu(self, app: str) -> float:
        return median(self.cpu_us[app]) if self.cpu_us.get(app) else float("nan")

    def cpu_ratio(self, app: str = "graceful") -> float:
        """The baseline's CPU per request over ``app``'s: the throughput ratio on equal cores."""
        return self.cpu("baseline") / self.cpu(app)

    @property
    def has_floor(self) -> bool:
        return bool(self.saturation.get("floor")) and "floor" in self.fixed


def check_answer(url: str, body_file: Path) -> bool:
    """Whether the graceful webhook patches this review (it must: the policy opts it in)."""
    out = subprocess.run(
        ["curl", "-sk", "-X", "POST", "-H", "Content-Type: application/json",
         "--data-binary", f"@{body_file}", url], capture_output=True, text=True, check=True,
    ).stdout
    answer = json.loads(out)["response"]
    return bool(answer.get("allowed")) and answer.get("patchType") == "JSONPatch"


def measure(servers: dict[str, Served], directory: Path, *, seconds: int, rounds: int,
            rates: tuple[int, ...], connections: int,
            clients: frozenset[int] | None = None) -> list[ShapeResult]:
    results = []
    for containers, size in SHAPES:
        obj = deployment(containers, target_bytes=size, namespace=NAMESPACE, policy=POLICY)
        body = directory / f"review-{containers}.json"
        body.write_text(json.dumps(review(obj)))
        patched = check_answer(servers["graceful"].url, body)
        saturation: dict[str, list[Saturation]] = {app: [] for app in APPS}
        cpu_us: dict[str, list[float]] = {app: [] for app in APPS}
        loads: list[float] = []
        for round_ in range(rounds):
            order = APPS if round_ % 2 == 0 else APPS[::-1]
            for app in order:
                # a short warm-up so that neither app pays for first-request imports or caches
                wrk_saturation(servers[app].url, body, seconds=1, connections=connections,
                               cpus=clients)
                cpu_before = cpu_seconds(servers[app].process.pid)
                run = wrk_saturation(servers[app].url, body, seconds=seconds,
                                     connections=connections, cpus=clients)
                spent = cpu_seconds(servers[app].process.pid) - cpu_before
                saturation[app].append(run)
                cpu_us[app].append(spent / max(1, run.requests) * 1e6)
                loads.append(load_average())
                print(f"  {containers} containers, {app:8}: "
                      f"{run.requests_per_second:8.0f} req/s at saturation,"
                      f" {cpu_us[app][-1]:5.0f} CPU µs/request (load {loads[-1]:.2f})",
                      flush=True)
        fixed: dict[str, dict[int, FixedRate]] = {app: {} for app in APPS}
        for rate in rates:
            # The target's rate gets alternating rounds, as saturation does: its p99 (the
            # fiftieth-worst of 5,000 requests) is otherwise one scheduler event away from
            # doubling. The other rates are reported from one round.
            runs: dict[str, list[FixedRate]] = {app: [] for app in APPS}
            for round_ in range(rounds if rate == TARGET_RATE else 1):
                for app in (APPS if round_ % 2 == 0 else APPS[::-1]):
                    got = hey_fixed_rate(servers[app].url, body, rate=rate, seconds=seconds,
                                         cpus=clients)
                    runs[app].append(got)
                    loads.append(load_average())
                    print(f"  {containers} containers, {app:8}: {rate:5} req/s asked,"
                          f" {got.achieved:6.0f} done, p50 {got.p50_ms:6.2f} ms,"
                          f" p99 {got.p99_ms:6.2f} ms (load {loads[-1]:.2f})", flush=True)
            for app in APPS:
                fixed[app][rate] = median_run(runs[app])
        stages = stage_breakdown(containers, size)
        print(f"  {containers} containers, stages (µs): "
              + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()), flush=True)
        results.append(ShapeResult(containers, len(body.read_bytes()), saturation, fixed,
                                   patched, cpu_us, loads, stages))
    return results


#: (server CPUs, load-generator CPUs), as bench.common.placement gives them.
Placement = tuple[frozenset[int] | None, frozenset[int] | None]


def median_run(runs: list[FixedRate]) -> FixedRate:
    """One figure for several fixed-rate rounds: the median of each of their figures."""
    if len(runs) == 1:
        return runs[0]
    return FixedRate(runs[0].rate, median(r.achieved for r in runs),
                     median(r.p50_ms for r in runs), median(r.p99_ms for r in runs),
                     sum(r.requests for r in runs))


def report(results: list[ShapeResult], *, seconds: int, rounds: int,
           connections: int, cpus: Placement = (None, None)) -> list[str]:
    lines = [
        f"`graceful` is `graceful webhook`'s app with one Enforce policy (every review is patched);"
        f" `baseline` is bench/baseline_app.py (parse, allow, no patch); `floor` does what the"
        f" baseline does inside the webhook's own FastAPI app and route class"
        f" (bench/floor_app.py). All are served by"
        f" graceful.webhook.server.WebhookServer with the same TLS context, one process each, on"
        f" 127.0.0.1. Saturation: `wrk -t1 -c{connections} -d{seconds}s`, median of {rounds}"
        f" alternating runs. Fixed rates: max(10, rate/50) one-connection `hey -z {seconds}s -c 1"
        f" -q rate/N` processes started a fraction of a period apart, so requests are spread over"
        f" time (each stream is a closed loop: p99 is not corrected for coordinated omission);"
        f" at {TARGET_RATE} req/s, the median of {rounds} alternating rounds.",
        "",
        f"uvicorn {uvicorn_flavour()}. {core_flavour()}. {cpu_placement(*cpus)}.",
        "",
        "Saturation:",
        "",
    ]
    rows = []
    for r in results:
        rows.append([
            r.containers, f"{r.size / 1000:.0f} KB", "yes" if r.patched else "NO",
            f"{r.rps('graceful'):.0f}", f"{r.rps('baseline'):.0f}", f"{r.ratio():.0%}",
            f"{median(s.p50_ms for s in r.saturation['graceful']):.1f} /"
            f" {median(s.p99_ms for s in r.saturation['graceful']):.1f}",
            f"{median(s.p50_ms for s in r.saturation['baseline']):.1f} /"
            f" {median(s.p99_ms for s in r.saturation['baseline']):.1f}",
            f"{r.cpu('graceful'):.0f}", f"{r.cpu('baseline'):.0f}", f"{r.cpu_ratio():.0%}",
            _load_range(r.loads),
        ])
    lines += table(["containers", "review", "patched", "graceful req/s", "baseline req/s",
                    "ratio", "graceful p50/p99 ms", "baseline p50/p99 ms",
                    "graceful CPU µs/req", "baseline CPU µs/req", "CPU ratio", "load"], rows)
    lines += ["", "`CPU µs/req` is the server process's user + system time during the"
              " saturation runs over the requests wrk completed (median of the runs): the"
              " cost of a request whatever else the machine runs. `CPU ratio` (baseline's"
              " over graceful's) is the throughput ratio two servers with a core each"
              " would reach."]
    lines += ["", "Fixed rates (latency in ms; `done` is the rate hey achieved):", ""]
    rows = []
    for r in results:
        for rate in sorted(r.fixed["graceful"]):
            ours, base = r.fixed["graceful"][rate], r.fixed["baseline"][rate]
            rows.append([r.containers, rate,
                         f"{ours.achieved:.0f}", f"{ours.p50_ms:.2f}", f"{ours.p99_ms:.2f}",
                         f"{base.achieved:.0f}", f"{base.p50_ms:.2f}", f"{base.p99_ms:.2f}",
                         f"{ours.p99_ms / base.p99_ms:.2f}"])
    lines += table(["containers", "req/s", "graceful done", "graceful p50", "graceful p99",
                    "baseline done", "baseline p50", "baseline p99", "p99 ratio"], rows)
    if all(r.has_floor for r in results):
        lines += ["", "The floor: FastAPI as the webhook configures it, deciding nothing"
                  " (`floor / baseline` is what the framework leaves of the ceiling;"
                  " `graceful / floor` is what our own work leaves of the floor):", ""]
        rows = []
        for r in results:
            floor_fixed = r.fixed["floor"].get(TARGET_RATE)
            rows.append([
                r.containers, f"{r.rps('floor'):.0f}", f"{r.ratio('floor'):.0%}",
                f"{r.rps('graceful') / r.rps('floor'):.0%}", f"{r.cpu('floor'):.0f}",
                f"{r.cpu_ratio('floor'):.0%}",
                f"{r.cpu('floor') / r.cpu('graceful'):.0%}",
                "-" if floor_fixed is None else
                f"{floor_fixed.p50_ms:.2f} / {floor_fixed.p99_ms:.2f}",
            ])
        lines += table(["containers", "floor req/s", "floor / baseline",
                        "graceful / floor", "floor CPU µs/req", "CPU floor / baseline",
                        "CPU graceful / floor", f"floor p50 / p99 ms at {TARGET_RATE} req/s"],
                       rows)
    lines += ["", "Where a request's time goes, in-process (bench/stages.py: 10th-percentile µs per"
              " request, stages timed inside real requests to the app, no HTTP or TLS):", ""]
    lines += table(["containers", *(f"{stage} µs" for stage in STAGES)],
                   [[r.containers, *(f"{r.stages.get(stage, float('nan')):.0f}"
                                     for stage in STAGES)] for r in results])
    lines += ["", "Targets (issue 15), and the floor's own figure for each (a target the floor"
              " misses is out of reach while FastAPI stays the framework):", ""]
    rows = []
    for r in results:
        rows.append([f"throughput >= 60% of baseline, {r.containers} containers",
                     f"{r.ratio():.1%} (CPU ratio {r.cpu_ratio():.1%})",
                     ratio_verdict(r.ratio(), TARGET_THROUGHPUT_RATIO),
                     _floor_throughput(r)])
    for r in results:
        if TARGET_RATE not in r.fixed["graceful"]:
            continue
        ours, base = r.fixed["graceful"][TARGET_RATE], r.fixed["baseline"][TARGET_RATE]
        floor = r.fixed.get("floor", {}).get(TARGET_RATE)
        if r.containers not in TARGET_LATENCY_CONTAINERS:
            rows.append([f"p99 at {TARGET_RATE} req/s, {r.containers} containers (reported)",
                         f"{ours.p99_ms:.2f} ms, {ours.p99_ms / base.p99_ms:.1f}x baseline", "-",
                         "-" if floor is None else
                         f"{floor.p99_ms:.2f} ms, {floor.p99_ms / base.p99_ms:.1f}x baseline"])
            continue
        rows.append([f"p99 < {TARGET_P99_MS:g} ms at {TARGET_RATE} req/s,"
                     f" {r.containers} containers", f"{ours.p99_ms:.2f} ms",
                     limit_verdict(ours.p99_ms, TARGET_P99_MS, "ms"),
                     "-" if floor is None else f"{floor.p99_ms:.2f} ms: "
                     + limit_verdict(floor.p99_ms, TARGET_P99_MS, "ms")])
        rows.append([f"p99 < {TARGET_P99_RATIO:g}x baseline at {TARGET_RATE} req/s,"
                     f" {r.containers} containers",
                     f"{ours.p99_ms / base.p99_ms:.2f}x ({base.p99_ms:.2f} ms)",
                     limit_verdict(ours.p99_ms / base.p99_ms, TARGET_P99_RATIO, "x"),
                     "-" if floor is None else f"{floor.p99_ms / base.p99_ms:.2f}x: "
                     + limit_verdict(floor.p99_ms / base.p99_ms, TARGET_P99_RATIO, "x")])
    lines += table(["target", "measured", "verdict", "the floor"], rows)
    return lines


def _floor_throughput(result: ShapeResult) -> str:
    """The floor's throughput ratio and its verdict, or ``-`` when it was not measured."""
    if not result.has_floor:
        return "-"
    return (f"{result.ratio('floor'):.1%} (CPU ratio {result.cpu_ratio('floor'):.1%}): "
            + ratio_verdict(result.ratio("floor"), TARGET_THROUGHPUT_RATIO))


def _load_range(loads: list[float]) -> str:
    return f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"


def uvicorn_flavour() -> str:
    """What the servers run: the HTTP protocol (WebhookServer's guarded h11 unless
    ``BENCH_UVICORN_HTTP`` says otherwise) and the event loop (``BENCH_EVENT_LOOP``)."""

    import uvicorn  # noqa: PLC0415

    http = os.environ.get(HTTP_OVERRIDE) or "h11 (WebhookServer's guarded protocol)"
    loop = "uvloop" if os.environ.get(LOOP_OVERRIDE) == "uvloop" else "asyncio"
    return f"{uvicorn.__version__}, HTTP protocol {http}, event loop {loop}"


def run_compiled(argv: list[str]) -> NoReturn:
    """Run this benchmark again in a process that imports the compiled build (testenv.compiled)."""
    from testenv.compiled import compiled_tree, environment  # noqa: PLC0415

    root = Path(__file__).resolve().parents[1]
    tree = compiled_tree(root)
    if os.environ.get("GRACEFUL_BENCH_COMPILED"):  # already tried: the build did not load
        raise SystemExit(f"{tree} did not load compiled: {core_flavour()}")
    env = {**environment(tree, root), "GRACEFUL_BENCH_COMPILED": "1"}
    # -P: the clone's own graceful/ in the working directory must not win over the build
    os.execve(sys.executable, [sys.executable, "-P", "-m", "bench.webhook_alone", *argv], env)


def cpu_placement(servers: frozenset[int] | None, clients: frozenset[int] | None) -> str:
    """Where the servers and the load generators ran (bench.common.placement)."""
    if not servers or not clients:
        return "Servers and load generators shared every CPU"
    return (f"Servers on CPU {','.join(map(str, sorted(servers)))}, wrk and hey on CPU"
            f" {','.join(map(str, sorted(clients)))}")


def compiled_core_modules() -> list[str]:
    """The modules of ``graceful.core`` this process imported compiled (none: Python)."""
    import graceful.core.evaluate  # noqa: PLC0415, F401

    return sorted(name.rsplit(".", 1)[1] for name, module in sys.modules.items()
                  if name.startswith("graceful.core.")
                  and str(getattr(module, "__file__", "")).endswith(".so"))


def core_flavour() -> str:
    """Whether the budget engine ran as Python or compiled (bench/README.md, mypyc)."""
    compiled = compiled_core_modules()
    if not compiled:
        return "graceful.core: Python"
    return f"graceful.core: compiled with mypyc ({', '.join(compiled)})"


def ratio_verdict(measured: float, target: float) -> str:
    """``met`` or by how much a ratio that must reach ``target`` falls short."""
    if measured >= target:
        return "met"
    # to a tenth of a point: 59.7% is a miss, which a whole-number figure would hide
    return (f"missed by {(target - measured) * 100:.1f} points"
            f" (needs {target / measured:.2f}x the throughput)")


def limit_verdict(measured: float, limit: float, unit: str) -> str:
    """``met`` or by how much a figure that must stay under ``limit`` exceeds it."""
    if measured < limit:
        return "met"
    return f"missed by {measured - limit:.1f} {unit} ({measured / limit:.1f}x the limit)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 2 s per measurement, one round, one rate")
    parser.add_argument("--seconds", type=int, default=10, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating saturation runs per app and shape")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--note", default="",
                        help="a sentence added to the results (e.g. what was changed for this run)")
    parser.add_argument("--no-record", action="store_true",
                        help="print only; do not append to bench/results.md")
    parser.add_argument("--pin", action="store_true",
                        help="the servers on the last CPU, wrk and hey on the others (by default"
                             " they share every CPU)")
    parser.add_argument("--python", action="store_true",
                        help="the clone's Python sources for every server and the stage"
                             " breakdown (by default, the budget engine compiled with mypyc as"
                             " the image ships it: setup.py, GRACEFUL_COMPILE=1)")
    parser.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)  # default
    parser.add_argument("--serve", choices=APPS, help=argparse.SUPPRESS)
    parser.add_argument("--cert", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--key", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.cert, args.key, args.port_file)
        return 0

    if not args.python and not compiled_core_modules():
        run_compiled(sys.argv[1:] if argv is None else argv)
    require("wrk", "wrk")
    require("hey", "hey")
    seconds, rounds, rates = args.seconds, args.rounds, RATES
    if args.quick:
        seconds, rounds, rates = 2, 1, (TARGET_RATE,)

    from testenv.pki import CertificateAuthority  # noqa: PLC0415

    directory = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    ca = CertificateAuthority.create("bench-webhook-ca")
    cert, key = ca.issue("bench-webhook", hosts=["127.0.0.1"], server=True).write(
        directory, "serving")
    server_cpus, client_cpus = placement(args.pin)
    servers: dict[str, Served] = {}
    try:
        for app in APPS:
            servers[app] = start(app, directory, cert, key, cpus=server_cpus)
        results = measure(servers, directory, seconds=seconds, rounds=rounds, rates=rates,
                          connections=args.connections, clients=client_cpus)
    finally:
        for served in servers.values():
            served.stop()
    lines = report(results, seconds=seconds, rounds=rounds, connections=args.connections,
                   cpus=(server_cpus, client_cpus))
    publish("Webhook alone vs baseline ASGI app", lines, quick=args.quick, note=args.note,
            record=not args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
