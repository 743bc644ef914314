"""Serving the app with uvicorn, over TLS only, on a socket bound up front.

Why bind the socket ourselves: a port that is taken or an address that does
not exist becomes one clear error before anything starts (uvicorn would log it
and exit), and ``--port 0`` works: the chosen port is printed.

Why no plain-HTTP listener at all, not even for probes: the API server only
speaks TLS to webhooks, and the kubelet's probes can use ``scheme: HTTPS``.
One listener means one thing to secure.

Slow clients (slowloris): the event loop never blocks on a client, so what a
slow client can take is a connection, and with enough of them the file
descriptors and memory. None is kept longer than a deadline, whatever it keeps
sending: the TLS handshake within ``handshake_timeout``, the request line and
headers within ``header_timeout`` of the first byte (or of the connection), the
body within the app's ``body_timeout_seconds``, and an idle kept-alive
connection within ``timeout_keep_alive``. The soft limit on open files is raised
to the hard one at startup (:func:`raise_open_files_limit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

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


#: Request line and headers must be complete this long after they start (the API server
#: sends them in one write); the body then has the app's ``body_timeout_seconds``.
HEADER_TIMEOUT = 5.0
#: Largest request line plus headers accepted. h11 enforces its own 16 KiB only
#: while the headers are incomplete, so a large head that arrives in one read
#: would pass; this limit holds however the bytes are split.
MAX_HEAD_BYTES = 16 * 1024
_TOO_LARGE = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n"
              b"connection: close\r\ncontent-length: 38\r\n\r\n"
              b"request line and headers over 16 KiB\r\n")
#: A TLS handshake not finished by then is dropped (asyncio's default is 60 s).
HANDSHAKE_TIMEOUT = 5.0


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the new soft limit (-1: unknown)."""
    try:
        import resource  # noqa: PLC0415 - POSIX only

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    except (ImportError, OSError, ValueError):
        return -1


#: Net allocations of container objects between two young-generation collections
#: (CPython's default is 700). A review of a 50 KB Deployment allocates a few
#: thousand dicts and lists and frees them when answered; with the default the
#: collector ran several times during each parse, promoting the live tree to
#: older generations that it then walked again. Above one review's size it
#: only runs for what outlives requests (cycles), which is little.
GC_YOUNG_THRESHOLD = 50_000


def settle_garbage_collector(young_threshold: int = GC_YOUNG_THRESHOLD) -> None:
    """Collect once, freeze what start-up left, and collect young objects less often.

    ``gc.freeze()`` moves every object alive now (modules, classes, the app,
    the policy cache) to a permanent generation that collections no longer
    traverse: a full collection then walks only what was allocated since,
    instead of the hundred thousand objects of FastAPI, pydantic and uvicorn,
    which was a pause of milliseconds at a random request.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)


class _GuardedH11(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for a request's line and headers.

    uvicorn only times out an idle kept-alive connection; a client that sends
    nothing after the handshake, or trickles a header byte every few seconds,
    would hold its connection for ever. Here a timer runs from the connection
    (or from the first byte of the next request on a kept-alive connection)
    until h11 has parsed the request's headers; when it fires, the connection
    is closed. A lost connection also cancels uvicorn's keep-alive timer,
    whatever the reason it was lost, so nothing of it outlives the client.
    """

    header_timeout: float = HEADER_TIMEOUT
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    _head_seen: int = 0

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        awaiting_head = cycle is None or cycle.response_complete
        if self._header_timer is None and awaiting_head:
            self._arm_header_timer()  # the first byte of the next request
        if awaiting_head and self._head_too_large(data):
            return
        super().data_received(data)
        if self.cycle is not cycle:  # h11 parsed a whole request line and headers
            self._disarm_header_timer()
            self._head_seen = 0

    def _head_too_large(self, data: bytes) -> bool:
        """Refuse (400, close) a request whose line and headers exceed MAX_HEAD_BYTES."""
        end = data.find(b"\r\n\r\n")
        head = self._head_seen + (len(data) if end < 0 else end)
        self._head_seen = head if end < 0 else 0
        if head <= MAX_HEAD_BYTES:
            return False
        self._disarm_header_timer()
        if self.transport is not None and not self.transport.is_closing():
            log.debug("refusing a request whose head is over %d bytes", MAX_HEAD_BYTES)
            self.transport.write(_TOO_LARGE)
            self.transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)
        # uvicorn cancels its keep-alive timer only when the connection ended
        # cleanly (``exc is None``). After a reset, the usual end of a client
        # that closes without TLS close_notify, the pending timer would keep
        # this protocol, its transport and asyncio's 256 KiB TLS read buffer
        # alive for ``timeout_keep_alive`` seconds after the client left.
        self._unset_keepalive_if_required()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport is not None and not self.transport.is_closing():
            log.debug("closing a connection whose request headers took over %gs",
                      self.header_timeout)
            self.transport.close()


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising SIGTERM after the graceful shutdown.

    uvicorn re-raises the signal it caught so that the default handler ends the
    process; ``graceful webhook`` instead returns from ``run`` and exits 0.
    """

    on_exit: Callable[[], None] | None = None
    """Called on the first SIGTERM/SIGINT, before the graceful shutdown starts."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.on_exit is not None and not self.should_exit:
            self.on_exit()
        super().handle_exit(sig, frame)

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

    handshake_timeout: float = HANDSHAKE_TIMEOUT

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's startup, with a TLS handshake deadline on the listening server."""
        loop = asyncio.get_running_loop()
        try:
            loop.create_server = functools.partial(  # type: ignore[method-assign]
                loop.create_server, ssl_handshake_timeout=self.handshake_timeout)
        except AttributeError:  # a loop without instance attributes keeps its default
            await super().startup(sockets)
            return
        try:
            await super().startup(sockets)
        finally:
            del loop.create_server


class WebhookServer:
    """uvicorn serving ``app`` on ``sock`` with a certificate that follows its files."""

    def __init__(self, app: FastAPI, certificate: ReloadingCertificate, sock: socket.socket, *,
                 reload_interval: float = 5.0, access_log: bool = False,
                 header_timeout: float = HEADER_TIMEOUT,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 on_exit: Callable[[], None] | None = None) -> None:
        self.certificate = certificate
        self.sock = sock
        self.reload_interval = reload_interval

        def tls(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
            return certificate.context

        protocol = type("GuardedH11", (_GuardedH11,), {"header_timeout": header_timeout})
        self.config = uvicorn.Config(
            app, ssl_context_factory=tls, lifespan="off", access_log=access_log, http=protocol,
            log_config=None, server_header=False, proxy_headers=False,
            # the API server reuses connections; keep them a little longer than its idle timer
            timeout_keep_alive=30, timeout_graceful_shutdown=10,
        )
        self.server = _Server(self.config)
        self.server.handshake_timeout = handshake_timeout
        self.server.on_exit = on_exit

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
        """:meth:`serve` in a new event loop; in the main thread, the process is tuned first.

        The collector settings are the process's, so only its owner (``graceful
        webhook``, the benchmark servers) changes them, not a test that serves
        from a thread.
        """
        if threading.current_thread() is threading.main_thread():
            settle_garbage_collector()
        asyncio.run(self.serve())

    @property
    def started(self) -> bool:
        return self.server.started

    def stop(self) -> None:
        """Ask the server to finish the requests in flight and exit."""
        self.server.should_exit = True
