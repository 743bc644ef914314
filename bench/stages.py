"""Where one /mutate request's time goes, stage by stage, in-process (no HTTP, no TLS).

The load tests say how fast the webhook is; this says where its time goes, so
that the next regression shows in the stage that caused it. Each stage is the
product's own function, timed on the same review the load tests send:

- ``parse``: :func:`graceful.webhook.review.parse_review` (``json.loads`` and the
  envelope's validation);
- ``evaluate``: :func:`graceful.core.evaluate`, the budget engine;
- ``answer``: the rest of :func:`graceful.webhook.admit.judge` (warnings, the
  patch's base64) and :func:`graceful.webhook.review.render_answer`;
- ``metrics``: one :meth:`graceful.webhook.metrics.Metrics.observe`;
- ``app``: the whole ASGI app called with the review as uvicorn would call
  it; ``framework`` is what ``app`` spends outside the four stages above
  (FastAPI, Starlette, reading the body);
- ``floor app``: :mod:`bench.floor_app` (the baseline's work inside the webhook's
  FastAPI application) and ``baseline app``: :mod:`bench.baseline_app`, called the
  same way. ``floor app`` minus ``baseline app`` is what FastAPI costs a request.

Times are 10th percentiles over a few thousand requests, in microseconds (a
request during which another process took the core does not move them, but a
busy machine still slows every figure through shared caches and cores: look
at the load average recorded next to them).

Usage: ``.venv/bin/python -m bench.stages`` (prints the table; no results file).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from bench.common import load_average, percentile, table
from bench.reviews import deployment, review

ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]],
                    Callable[[MutableMapping[str, Any]], Awaitable[None]]], Awaitable[None]]

#: (containers, target size of the Deployment in bytes), as in bench.webhook_alone.
SHAPES = ((1, 5_000), (3, 15_000), (10, 50_000))
STAGES = ("parse", "evaluate", "answer", "metrics", "framework", "app", "floor app",
          "baseline app")


def _scope(body: bytes) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1", "method": "POST", "scheme": "https", "path": "/mutate",
            "raw_path": b"/mutate", "root_path": "", "query_string": b"",
            "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8443), "state": {}}


def asgi_call(app: ASGIApp, body: bytes) -> Callable[[], Awaitable[int]]:
    """A coroutine function POSTing ``body`` to ``app`` as uvicorn would; returns the status."""
    async def call() -> int:
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])

        await app(_scope(body), receive, send)
        return status

    return call


class _Timed:
    """Wraps a function and records the duration of each call, in ns."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.samples: list[int] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.samples.append(time.perf_counter_ns() - started)

    def low_us(self) -> float:
        """The 10th percentile in µs: another process taking the core only ever adds time."""
        return percentile(self.samples, 10) / 1000 if self.samples else 0.0


def measure(containers: int, size: int, *, number: int = 2000) -> dict[str, float]:
    """µs per request for each of :data:`STAGES` (10th percentile), for one review shape.

    The stages are timed inside real requests to the app (each stage function
    wrapped by a timer while the app runs), not in loops of their own, so that
    caches and the garbage collector treat them as they do when serving.
    A low percentile, because on a shared machine a request during which
    another process took the core is slower by that process's time slice and
    even a median moved by a third between runs; ``framework`` is the
    request's figure minus the stages' (so it slightly overstates).
    """
    from bench.baseline_app import app as baseline  # noqa: PLC0415
    from bench.floor_app import create_floor_app  # noqa: PLC0415
    from bench.webhook_alone import NAMESPACE, bench_policy  # noqa: PLC0415
    from graceful.webhook import admit, server  # noqa: PLC0415
    from graceful.webhook import app as app_module  # noqa: PLC0415
    from graceful.webhook.cache import PolicyCache  # noqa: PLC0415

    policy = bench_policy()
    app = app_module.create_app(PolicyCache.of([policy]))
    body = json.dumps(review(deployment(containers, target_bytes=size,
                                        namespace=NAMESPACE, policy=policy.name))).encode()
    # Older trees (bench/README.md, "the webhook as it was before a commit") may lack a
    # stage: it is then counted in ``framework``.
    # the answer's serialiser: ``render_answer`` now, ``render`` in older trees
    renderer = "render_answer" if hasattr(app_module, "render_answer") else "render"
    timers = {"parse": _Timed(app_module.parse_review), "judge": _Timed(app_module.judge),
              "evaluate": _Timed(admit.evaluate),
              "render": _Timed(getattr(app_module, renderer, lambda *_: b"")),
              "metrics": _Timed(app.state.metrics.observe)}
    originals = (app_module.parse_review, app_module.judge, admit.evaluate,
                 getattr(app_module, renderer, None))
    settle_garbage_collector = getattr(server, "settle_garbage_collector", lambda: None)
    loop = asyncio.new_event_loop()
    settle_garbage_collector()  # as the servers do
    try:
        app_module.parse_review, app_module.judge = timers["parse"], timers["judge"]
        admit.evaluate = timers["evaluate"]
        if originals[3] is not None:
            setattr(app_module, renderer, timers["render"])
        app.state.metrics.observe = timers["metrics"]
        ours, theirs = _Timed(asgi_call(app, body)), _Timed(asgi_call(baseline, body))
        floor = _Timed(asgi_call(create_floor_app(), body))
        for timed in (ours, floor, theirs):
            _requests(loop, timed, number // 10)  # warm-up, not counted
            timed.samples.clear()
        for timer in timers.values():
            timer.samples.clear()
        for _ in range(5):  # alternating, so that drift hits both
            _requests(loop, ours, number // 5)
            _requests(loop, floor, number // 5)
            _requests(loop, theirs, number // 5)
    finally:
        app_module.parse_review, app_module.judge, admit.evaluate = originals[:3]
        if originals[3] is not None:
            setattr(app_module, renderer, originals[3])
        loop.close()
    figures = {stage: timer.low_us() for stage, timer in timers.items()}
    figures["app"], figures["baseline app"] = ours.low_us(), theirs.low_us()
    figures["floor app"] = floor.low_us()
    figures["answer"] = max(0.0, figures.pop("judge") - figures["evaluate"]) + figures.pop(
        "render")
    inside = sum(figures[stage] for stage in ("parse", "evaluate", "answer", "metrics"))
    figures["framework"] = max(0.0, figures["app"] - inside)
    return figures


def _requests(loop: asyncio.AbstractEventLoop, call: _Timed, number: int) -> None:
    """``number`` sequential requests, each timed by ``call``."""
    async def timed_many() -> None:
        for _ in range(number):
            started = time.perf_counter_ns()
            await call.function()
            call.samples.append(time.perf_counter_ns() - started)

    loop.run_until_complete(timed_many())


def breakdown(shapes: tuple[tuple[int, int], ...] = SHAPES, *, number: int = 300
              ) -> list[str]:
    """The per-stage table (µs per request) for each shape, with the load average."""
    rows = []
    for containers, size in shapes:
        load = load_average()
        figures = measure(containers, size, number=number)
        rows.append([containers, *(f"{figures[stage]:.0f}" for stage in STAGES), f"{load:.2f}"])
    return table(["containers", *(f"{stage} µs" for stage in STAGES), "load"], rows)


def main() -> int:
    print("\n".join(breakdown()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
