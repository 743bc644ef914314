"""Serving the app with uvicorn, over TLS only, on a socket bound up front.

Why bind the socket ourselves: a port that is taken or an address that does
not exist becomes one clear error before anything starts (uvicorn would log it
and exit), and ``--port 0`` works: the chosen port is printed.

Why no plain-HTTP listener at all, not even for probes: the API server only
speaks TLS to webhooks, and the kubelet's probes can use ``scheme: HTTPS``.
One listener means one thing to secure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI

from graceful.webhook.tls import ReloadingCertificate

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6); OSError if impossible."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising SIGTERM after the graceful shutdown.

    uvicorn re-raises the signal it caught so that the default handler ends the
    process; ``graceful webhook`` instead returns from ``run`` and exits 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


class WebhookServer:
    """uvicorn serving ``app`` on ``sock`` with a certificate that follows its files."""

    def __init__(self, app: FastAPI, certificate: ReloadingCertificate, sock: socket.socket, *,
                 reload_interval: float = 5.0, access_log: bool = False) -> None:
        self.certificate = certificate
        self.sock = sock
        self.reload_interval = reload_interval

        def tls(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
            return certificate.context

        self.config = uvicorn.Config(
            app, ssl_context_factory=tls, lifespan="off", access_log=access_log,
            log_config=None, server_header=False, proxy_headers=False,
            # the API server reuses connections; keep them a little longer than its idle timer
            timeout_keep_alive=30, timeout_graceful_shutdown=10,
        )
        self.server = _Server(self.config)

    @property
    def address(self) -> tuple[str, int]:
        """The host and port actually bound."""
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"https://{f'[{host}]' if ':' in host else host}:{port}"

    async def serve(self) -> None:
        """Serve until :meth:`stop` (or SIGTERM/SIGINT in the main thread)."""
        watcher = asyncio.create_task(self.certificate.watch(self.reload_interval))
        log.info("graceful webhook listening on %s (TLS >= 1.2)", self.url)
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def run(self) -> None:
        """:meth:`serve` in a new event loop."""
        asyncio.run(self.serve())

    @property
    def started(self) -> bool:
        return self.server.started

    def stop(self) -> None:
        """Ask the server to finish the requests in flight and exit."""
        self.server.should_exit = True
