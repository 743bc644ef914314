"""Slowloris against the real TLS server: slow clients never starve a normal /mutate.

Hundreds of connections are held open at once, each in one of the ways a slow
or hostile client holds a server: a TCP connection that never starts TLS, a
TLS connection that never sends a byte, request headers trickled one byte at a
time, and a body trickled one byte at a time. While they are all open, normal
reviews are answered within a second; and the server does not keep any of them
forever, whatever they keep sending: headers must be complete within
``header_timeout`` and bodies within ``body_timeout_seconds``.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from graceful.webhook.app import create_app
from graceful.webhook.cache import PolicyCache
from graceful.webhook.server import WebhookServer, bind
from graceful.webhook.settings import WebhookSettings
from graceful.webhook.tls import ReloadingCertificate
from testenv.pki import CertificateAuthority

from .conftest import opted_in, policy, review_dict, start_in_thread

HEADER_TIMEOUT = 2.0
HANDSHAKE_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
#: Slow clients of each kind held open at once (4 kinds).
PER_KIND = 75


class Running:
    def __init__(self, server: WebhookServer, ca: CertificateAuthority) -> None:
        self.server = server
        self.ca = ca
        self.port = server.address[1]

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca.cert_pem.decode())

    def tls(self) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return self.context().wrap_socket(raw, server_hostname="127.0.0.1")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"https://127.0.0.1:{self.port}", verify=self.context(),
                            timeout=10)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    ca = CertificateAuthority.create("slowloris-ca")
    cert, key = ca.issue("graceful-webhook", hosts=["127.0.0.1"], server=True).write(
        tmp_path, "serving")
    app = create_app(PolicyCache.of([policy()]),
                     settings=WebhookSettings(body_timeout_seconds=BODY_TIMEOUT))
    server = WebhookServer(app, ReloadingCertificate(cert, key), bind("127.0.0.1", 0),
                           header_timeout=HEADER_TIMEOUT, handshake_timeout=HANDSHAKE_TIMEOUT)
    thread = start_in_thread(server)
    try:
        yield Running(server, ca)
    finally:
        server.stop()
        thread.join(15)


def _closed_by_peer(sock: socket.socket) -> bool:
    """True when the server closed (or reset) the connection; never blocks."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        if isinstance(sock, ssl.SSLSocket):
            sock.setblocking(False)
            try:
                data = sock.recv(65536)
            except ssl.SSLWantReadError:
                return False
            finally:
                sock.setblocking(True)
        else:
            data = sock.recv(65536)
    except (ConnectionError, ssl.SSLError, OSError):
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 4")


class Slow:
    """The slow clients, and a thread that trickles a byte to each every ``every`` s."""

    def __init__(self, running: Running, per_kind: int) -> None:
        self.raw: list[socket.socket] = []  # TCP, never a ClientHello
        self.silent: list[ssl.SSLSocket] = []  # TLS, never a byte
        self.headers: list[ssl.SSLSocket] = []  # headers, a byte at a time
        self.bodies: list[ssl.SSLSocket] = []  # complete headers, a body byte at a time
        for _ in range(per_kind):
            self.raw.append(socket.create_connection(("127.0.0.1", running.port), timeout=10))
            self.silent.append(running.tls())
            head = running.tls()
            head.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\n")
            self.headers.append(head)
            body = running.tls()
            body.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                         b"\r\nContent-Length: 100000\r\n\r\n{")
            self.bodies.append(body)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def _trickle(self, every: float = 0.25) -> None:
        while not self._stop.wait(every):
            for sock in self.headers:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X")  # an endless header name
                    self.sent += 1
            for sock in self.bodies:
                with contextlib.suppress(OSError):
                    sock.sendall(b" ")
                    self.sent += 1

    def __enter__(self) -> Slow:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in [*self.raw, *self.silent, *self.headers, *self.bodies]:
            sock.close()

    def kinds(self) -> dict[str, list[socket.socket]]:
        return {"no TLS handshake": list(self.raw), "TLS, silent": list(self.silent),
                "headers trickled": list(self.headers), "body trickled": list(self.bodies)}


def _timed_mutate(client: httpx.Client) -> float:
    started = time.monotonic()
    response = client.post("/mutate", json=review_dict(opted_in()))
    took = time.monotonic() - started
    assert response.status_code == 200 and "patch" in response.json()["response"]
    return took


def _until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out after {timeout}s: {what}"
        time.sleep(0.1)
    return time.monotonic() - started


def test_slow_clients_do_not_starve_a_normal_review(running: Running) -> None:
    with Slow(running, PER_KIND) as slow:
        time.sleep(0.5)  # the trickle is going
        latencies = []
        for _ in range(10):  # a fresh connection each time, as after an API server restart
            with running.client() as client:
                latencies.append(_timed_mutate(client))
        with running.client() as client:  # and a kept-alive one
            latencies.extend(_timed_mutate(client) for _ in range(10))
        print(f"\n{4 * PER_KIND} slow connections open; /mutate latencies: max"
              f" {max(latencies) * 1000:.0f} ms, {slow.sent} bytes trickled so far")
        assert max(latencies) < 1.0, latencies


def test_trickling_clients_are_cut_off_whatever_they_send(running: Running) -> None:
    with Slow(running, 20) as slow:
        started = time.monotonic()
        still_open = slow.kinds()

        def all_closed() -> bool:
            for kind, socks in still_open.items():
                still_open[kind] = [s for s in socks if not _closed_by_peer(s)]
            return not any(still_open.values())

        limit = max(HEADER_TIMEOUT, BODY_TIMEOUT, HANDSHAKE_TIMEOUT) + 10
        try:
            took = _until(all_closed, limit, "the server to close every slow connection")
        except AssertionError:
            left = {kind: len(socks) for kind, socks in still_open.items() if socks}
            raise AssertionError(f"still open after {limit}s: {left}") from None
        print(f"\nall {4 * 20} slow connections closed by the server after {took:.1f}s"
              f" (handshake {HANDSHAKE_TIMEOUT}s, header {HEADER_TIMEOUT}s,"
              f" body {BODY_TIMEOUT}s timeouts)")
        assert time.monotonic() - started >= min(HEADER_TIMEOUT, BODY_TIMEOUT) * 0.9
        with running.client() as client:
            assert _timed_mutate(client) < 1.0


def test_a_kept_alive_connection_cannot_trickle_its_next_request(running: Running) -> None:
    with running.tls() as tls:
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert tls.recv(4096).startswith(b"HTTP/1.1 200")
        tls.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next one, never finished
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < HEADER_TIMEOUT + 10:
            with contextlib.suppress(OSError):
                tls.sendall(b"X")
            if _closed_by_peer(tls):
                closed = True
                break
            time.sleep(0.2)
        assert closed, "a kept-alive connection trickled its next request for ever"


def test_a_normal_request_is_not_cut_by_the_header_timeout(running: Running) -> None:
    with running.client() as client:  # a kept-alive connection, idle longer than the timeout
        assert _timed_mutate(client) < 1.0
        time.sleep(HEADER_TIMEOUT + 0.5)
        assert _timed_mutate(client) < 1.0


def _upload(running: Running, size: int, results: list[str]) -> None:
    """POST ``size`` bytes of chunked body; what the server answered (or how it hung up)."""
    try:
        with running.tls() as tls:
            tls.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"[" * 65536
            sent = 0
            try:
                while sent < size:
                    tls.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
                tls.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server answered and closed while we were still sending
            answer = tls.recv(4096)
            results.append(answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed")
    except OSError as exc:
        results.append(f"closed ({type(exc).__name__})")


def test_oversized_uploads_are_refused_without_starving_others(running: Running) -> None:
    """Ten clients stream 10 MB bodies without a Content-Length at once."""
    results: list[str] = []
    uploads = [threading.Thread(target=_upload, args=(running, 10 * 1024 * 1024, results))
               for _ in range(10)]
    for thread in uploads:
        thread.start()
    latencies = []
    with running.client() as client:
        while any(thread.is_alive() for thread in uploads):
            latencies.append(_timed_mutate(client))
    for thread in uploads:
        thread.join(30)
    print(f"\n10 uploads of 10 MB: {sorted(results)}; {len(latencies)} reviews meanwhile,"
          f" max {max(latencies) * 1000:.0f} ms")
    assert len(results) == 10
    assert all(r.startswith(("HTTP/1.1 400", "closed")) for r in results), results
    assert max(latencies) < 1.0


def test_an_oversized_header_is_refused(running: Running) -> None:
    answer = b""
    with running.tls() as tls:
        # the server may answer and close before the client has finished sending
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000
                        + b"\r\n\r\n")
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            answer = tls.recv(4096)
    # However the bytes are split into reads, the request never reaches the app.
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:100]
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:100]
    with running.client() as client:
        assert _timed_mutate(client) < 1.0


def test_the_command_applies_the_deadlines_and_the_open_files_limit(tmp_path: Path) -> None:
    """``graceful webhook`` itself: header timeout from its environment, soft NOFILE = hard."""
    ca = CertificateAuthority.create("cli-ca")
    cert, key = ca.issue("w", hosts=["127.0.0.1"], server=True).write(tmp_path, "w")
    kubeconfig = tmp_path / "kubeconfig"  # unreachable: the policy watch retries meanwhile
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1',"
        " insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "graceful.cli", "webhook", "--cert", str(cert), "--key", str(key),
         "--host", "127.0.0.1", "--port", "0", "--kubeconfig", str(kubeconfig),
         "--log-level", "error"],
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1",
             "GRACEFUL_WEBHOOK_HEADER_TIMEOUT_SECONDS": "1"})
    try:
        assert process.stderr is not None
        port = 0
        deadline = time.monotonic() + 30
        while not port and time.monotonic() < deadline:
            found = re.search(r"serving https://127\.0\.0\.1:(\d+)/mutate"
                              r" \(request headers within (\S+)\)", process.stderr.readline())
            port = int(found[1]) if found else 0
        assert port, "no 'serving' line"
        assert found is not None and found[2] == "1s", found  # the environment's, not 5 s
        limits = Path(f"/proc/{process.pid}/limits")
        if limits.exists():
            [line] = [x for x in limits.read_text().splitlines()
                      if x.startswith("Max open files")]
            soft, hard = line.split()[3:5]
            assert soft == hard, line
        context = ssl.create_default_context(cadata=ca.cert_pem.decode())
        for _ in range(100):
            with contextlib.suppress(OSError):
                raw = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            time.sleep(0.05)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the rest
            started = time.monotonic()
            tls.settimeout(60)  # a hang guard: the server must be the one to close
            try:
                closed = tls.recv(4096) == b""
            except ConnectionResetError:
                closed = True
            took = time.monotonic() - started
        assert closed, "the server kept a connection whose headers never came"
        assert took >= 0.5, took  # not before the deadline (how soon after: a benchmark's job)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
