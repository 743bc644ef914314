"""Shared helpers for the benchmarks: percentiles, load generators, the results file.

Absolute times on a shared two-core machine drift from run to run, so every
script measures the product and its baseline side by side in the same run and
reports ratios next to the absolute figures.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results.md"


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (``pct`` in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def machine() -> str:
    """One line that says what these figures were measured on."""
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load average unknown"
    return (f"{platform.system()} {platform.release()} {platform.machine()},"
            f" {os.cpu_count()} cores ({cpu}){mem}, Python {platform.python_version()}, {load}")


def load_average() -> float:
    """The one-minute load average (other work on the machine skews every figure)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    # after "pid (comm) ", fields[0] is the state (field 3); utime and stime are fields 14, 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def format_section(title: str, lines: Sequence[str], *, stamp: str, machine_line: str) -> str:
    """One dated Markdown section of bench/results.md."""
    section = [f"## {title} ({stamp})", "", f"Machine: {machine_line}", "", *lines, ""]
    return "\n".join(section) + "\n"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return out


def append_results(title: str, lines: Sequence[str]) -> None:
    """Append one dated section to bench/results.md and echo it."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = format_section(title, lines, stamp=stamp, machine_line=machine())
    print(text)
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by the scripts under bench/.\n\n")
    with RESULTS.open("a") as out:
        out.write(text)


def publish(title: str, lines: Sequence[str], *, quick: bool = False, note: str | None = None,
            record: bool = True) -> None:
    """Print a bench's section, or append it to bench/results.md (``record``).

    ``--quick`` runs are labelled as such in the title; a ``--note`` heads the section.
    """
    body = [f"Note: {note}", "", *lines] if note else list(lines)
    title = title + (" (--quick)" if quick else "")
    if record:
        append_results(title, body)
    else:
        print("\n".join(body))


def require(tool: str, package: str) -> str:
    """The path of ``tool``, or exit saying which Debian package provides it."""
    path = shutil.which(tool)
    if path is None:
        raise SystemExit(f"{tool} is not installed: apt-get install -y {package}"
                         f" (Debian/Ubuntu package {package!r})")
    return path


WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("{body}", "rb"))
wrk.body = f:read("*a")
f:close()
"""


@dataclass(frozen=True)
class Saturation:
    """What wrk measured with every connection busy."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int


def on_cpus(cpus: frozenset[int] | None) -> list[str]:
    """The ``taskset`` prefix that starts a command on ``cpus`` with every thread it makes
    (util-linux; a Go program has threads before a later ``sched_setaffinity`` could run)."""
    if not cpus:
        return []
    return [require("taskset", "util-linux"), "-c", ",".join(str(c) for c in sorted(cpus))]


def placement(pin: bool) -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """(server CPUs, load-generator CPUs): the last allowed CPU for the servers, the rest for
    the clients, when ``pin`` and there are at least two; else (None, None).

    On a shared two-core machine a client process that preempts the server in
    the middle of a request adds a scheduler time slice to that request's
    latency, more often the longer the request: the p99 at a fixed rate then
    measures where the clients ran, not the server. Apart, each side has its core.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if not pin or len(allowed) < 2:
        return None, None
    return frozenset(allowed[-1:]), frozenset(allowed[:-1])


def wrk_saturation(url: str, body_file: Path, *, seconds: int = 10, connections: int = 32,
                   threads: int = 1, cpus: frozenset[int] | None = None) -> Saturation:
    """Requests per second (and latency) at saturation, from wrk with a POST Lua script."""
    wrk = require("wrk", "wrk")
    script = body_file.with_suffix(".lua")
    script.write_text(WRK_SCRIPT.format(body=body_file))
    out = subprocess.run(
        [*on_cpus(cpus), wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> Saturation:
    """The figures of one ``wrk --latency`` run; RuntimeError if any request failed."""
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} failed responses:\n{out}")
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        out)
    if sockets and any(int(n) for n in sockets.groups()):
        raise RuntimeError(f"wrk saw socket errors:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rate or not total:
        raise RuntimeError(f"could not read wrk output:\n{out}")
    return Saturation(float(rate.group(1)), _wrk_latency(out, "50%"), _wrk_latency(out, "99%"),
                      int(total.group(1)))


def _wrk_latency(out: str, label: str) -> float:
    match = re.search(rf"^\s*{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if not match:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
    return float(match.group(1)) * scale


@dataclass(frozen=True)
class FixedRate:
    """What hey measured at a requested rate."""

    rate: int
    achieved: float
    p50_ms: float
    p99_ms: float
    requests: int


def hey_workers(rate: int, per_worker_max: int = 50) -> int:
    """Load streams for ``rate`` req/s, each asked for at most ``per_worker_max`` req/s.

    Each stream is a closed loop throttled to its share of the rate: one whose
    request takes longer than its period falls behind, so the load stays near
    the asked rate only while every stream has time to spare.
    """
    return max(10, math.ceil(rate / per_worker_max))


def hey_fixed_rate(url: str, body_file: Path, *, rate: int, seconds: int = 10,
                   cpus: frozenset[int] | None = None) -> FixedRate:
    """p50/p99 latency (ms) at ``rate`` requests/s, from hey's per-request CSV.

    Why several one-connection ``hey`` processes instead of one ``hey -c N``:
    hey's workers all start at once and tick with the same period, so a single
    hey sends its N requests in synchronised bursts and the last of each burst
    waits for the N-1 before it; the p50 then measures the burst, not the
    server. Streams started one after the other, a fraction of the period
    apart, spread the requests over the period as independent clients (the
    API server's calls) would.
    """
    hey = require("hey", "hey")
    streams = hey_workers(rate)
    per_stream = rate / streams
    period = 1 / per_stream
    processes = []
    try:
        for _ in range(streams):
            started = time.monotonic()
            processes.append(subprocess.Popen(
                [*on_cpus(cpus), hey, "-z", f"{seconds}s", "-c", "1", "-q", f"{per_stream:g}",
                 "-m", "POST",
                 "-T", "application/json", "-D", str(body_file), "-o", "csv", url],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            time.sleep(max(0.0, period / streams - (time.monotonic() - started)))
        outputs = [process.communicate(timeout=seconds + 60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    latencies: list[float] = []
    for process, (out, err) in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"hey failed ({process.returncode}): {err.strip()[:500]}")
        latencies += parse_hey_csv(out)
    return FixedRate(rate, len(latencies) / seconds, percentile(latencies, 50),
                     percentile(latencies, 99), len(latencies))


def parse_hey_csv(out: str) -> list[float]:
    """Latencies in ms from ``hey -o csv``; RuntimeError on any non-200 answer."""
    latencies: list[float] = []
    for row in csv.DictReader(io.StringIO(out)):
        if row.get("status-code") != "200":
            raise RuntimeError(f"hey saw a {row.get('status-code')!r} response")
        latencies.append(float(row["response-time"]) * 1000)
    return latencies
