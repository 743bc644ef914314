"""The proof's HTTP service: a plain ASGI app served by uvicorn's own command line.

Started as ``uvicorn --app-dir /app web:app ... --timeout-graceful-shutdown G``
as a user would, so the webhook reads G from that flag (there is no
annotation on this workload). ``GET /work?ms=N`` answers after N ms with the
Pod's name, so requests are in flight when SIGTERM comes; ``GET /healthz``
is the readiness probe.

On SIGTERM uvicorn closes its listening socket at once and drains the
requests in flight for up to G: anything that still routes a new connection
to this Pod (an endpoint not yet removed everywhere) is refused. That window
is what the preStop sleep S covers.

Journal events (``journal.py``): ``started``, ``sigterm``, ``drained``
(lifespan shutdown: uvicorn's drain is over), ``exit``.
"""

from __future__ import annotations

import asyncio
import atexit
import signal
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from journal import POD, record

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
MAX_MS = 60_000


def _chain_sigterm() -> None:
    """Record SIGTERM, then hand it to uvicorn's handler (installed before lifespan)."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        record("sigterm")
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _chain_sigterm()
            atexit.register(lambda: record("exit"))
            record("started")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            record("drained")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/healthz":
        await _respond(send, 200, b"ok\n")
    elif path == "/work":
        query = parse_qs(scope.get("query_string", b"").decode())
        try:
            ms = min(MAX_MS, max(0, int(query.get("ms", ["100"])[0])))
        except ValueError:
            await _respond(send, 400, b"ms must be an integer\n")
            return
        await asyncio.sleep(ms / 1000)
        await _respond(send, 200, POD.encode() + b"\n")
    else:
        await _respond(send, 404, b"not found\n")
