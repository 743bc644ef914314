"""The proof's load generator: paced HTTP requests, one connection each, every failure counted.

Why a new TCP connection per request: a ClusterIP picks an endpoint per
connection (kube-proxy's rules act on the first packet), so only new
connections show whether a terminating Pod is still being chosen; a kept-alive
connection would stay on one Pod and hide the window. Why open loop (request
*i* starts at ``start + i / rate`` whether or not earlier ones finished): a
closed loop slows down exactly when the server stops answering, and would
send fewer requests into the window it is meant to measure.

Bounded by ``--seconds`` and ``--count``; SIGTERM or SIGINT stops sending,
waits for the requests in flight (each bounded by ``--timeout``) and exits.
Each outcome is one JSON line (see ``accounting.Outcome``). Runs in the
node's network namespace, so it reaches the Service's ClusterIP as any
client in the cluster would.

Usage: ``python -m testenv.proof.loadgen --url http://10.0.0.12/work?ms=100
--rate 40 --seconds 60 [--count N] [--timeout 5] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

from testenv.proof.accounting import Outcome, classify_error, classify_status

MAX_RESPONSE = 64 * 1024


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"need an http:// URL, got {url!r}")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.hostname, parts.port or 80, path)


def parse_response(raw: bytes) -> tuple[int, str]:
    """(status, body) of a whole HTTP/1.1 answer; ValueError when it is not one."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no end of headers")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"bad status line {status_line[:80]!r}")
    return int(parts[1]), body.decode("utf-8", "replace").strip()


async def one_request(target: Target, timeout: float) -> Outcome:
    """Connect, send one GET with ``Connection: close``, read the whole answer."""
    started = time.time()
    begin = time.monotonic()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            writer.write(f"GET {target.path} HTTP/1.1\r\nHost: {target.host}\r\n"
                         "Connection: close\r\n\r\n".encode())
            await writer.drain()
            raw = await reader.read(MAX_RESPONSE)
            chunk = raw
            while chunk:
                chunk = await reader.read(MAX_RESPONSE)
                raw += chunk
        if not raw:
            return Outcome(started, "reset", time.monotonic() - begin, detail="empty answer")
        try:
            status, body = parse_response(raw)
        except ValueError as exc:
            return Outcome(started, "reset", time.monotonic() - begin, detail=str(exc))
        kind = classify_status(status)
        return Outcome(started, kind, time.monotonic() - begin,
                       pod=body.splitlines()[0][:80] if kind == "ok" and body else "",
                       detail="" if kind == "ok" else f"HTTP {status}")
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        return Outcome(started, classify_error(exc), time.monotonic() - begin,
                       detail=f"{type(exc).__name__}: {exc}"[:160])
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def run(target: Target, *, rate: float, seconds: float, count: int | None,
              timeout: float, emit: Callable[[Outcome], None],
              stop: asyncio.Event | None = None) -> int:
    """Send paced requests until ``seconds``, ``count`` or ``stop``; return how many were sent."""
    stop = stop or asyncio.Event()
    limit = count if count is not None else int(rate * seconds) + 1
    tasks: set[asyncio.Task[None]] = set()
    begin = time.monotonic()
    sent = 0

    async def fire() -> None:
        emit(await one_request(target, timeout))

    while sent < limit and not stop.is_set():
        due = begin + sent / rate
        if due - begin >= seconds:
            break
        delay = due - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                break
        task = asyncio.create_task(fire())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
    if tasks:
        await asyncio.gather(*tasks)
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop sending after this")
    parser.add_argument("--count", type=int, default=None, help="stop after this many")
    parser.add_argument("--timeout", type=float, default=5.0, help="per request")
    parser.add_argument("--out", default="-", help="JSON lines file (default: stdout)")
    args = parser.parse_args(argv)
    target = Target.parse(args.url)
    out: IO[str] = sys.stdout if args.out == "-" else open(args.out, "a")  # noqa: SIM115

    def emit(outcome: Outcome) -> None:
        out.write(outcome.to_json() + "\n")
        out.flush()

    async def go() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run(target, rate=args.rate, seconds=args.seconds, count=args.count,
                         timeout=args.timeout, emit=emit, stop=stop)

    try:
        asyncio.run(go())
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
