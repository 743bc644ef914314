"""Nothing of a connection outlives it: the server frees what a closed client held.

A client that closes a TLS connection without close_notify, or resets it, ends
it with an exception on the server's side. uvicorn cancels its keep-alive timer
only on a clean end, so the timer kept the protocol, its transport and
asyncio's 256 KiB TLS read buffer alive for ``timeout_keep_alive`` (30 s) after
the client had gone: at a few hundred closed connections a second, that is
gigabytes. These tests close connections in each way a client can, then count
the server's protocol objects that are still reachable once the server has
seen every connection end. The collector runs first, so what is counted is
held, not garbage waiting for a collection.
"""

from __future__ import annotations

import gc
import json
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from graceful.webhook import server as module
from graceful.webhook.app import create_app
from graceful.webhook.cache import PolicyCache
from graceful.webhook.server import WebhookServer, bind
from graceful.webhook.tls import ReloadingCertificate
from testenv.pki import CertificateAuthority

from .conftest import opted_in, policy, review_dict, start_in_thread

CLIENTS = 20


class Served:
    def __init__(self, server: WebhookServer, context: ssl.SSLContext) -> None:
        self.server = server
        self.context = context

    def connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.server.address[1]), timeout=10)
        return self.context.wrap_socket(raw, server_hostname="127.0.0.1")

    def review(self, sock: ssl.SSLSocket) -> None:
        """Send one review and read its whole answer, leaving the connection kept alive."""
        body = json.dumps(review_dict(opted_in())).encode()
        sock.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        head, _, rest = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(rest) < length:
            rest += sock.recv(65536)

    def open_connections(self) -> int:
        return len(self.server.server.server_state.connections)

    def protocols_alive(self) -> int:
        """The server's HTTP protocol objects still reachable after a full collection."""
        gc.collect()
        state = self.server.server.server_state
        return sum(1 for obj in gc.get_objects()
                   if isinstance(obj, module._GuardedH11) and obj.server_state is state)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    ca = CertificateAuthority.create("closed-connections-ca")
    cert, key = ca.issue("graceful-webhook", hosts=["127.0.0.1"], server=True).write(
        tmp_path, "serving")
    server = WebhookServer(create_app(PolicyCache.of([policy()])),
                           ReloadingCertificate(cert, key), bind("127.0.0.1", 0))
    thread = start_in_thread(server)
    try:
        yield Served(server, ssl.create_default_context(cadata=ca.cert_pem.decode()))
    finally:
        server.stop()
        thread.join(15)


def _close(sock: ssl.SSLSocket, how: str) -> None:
    if how == "reset":  # RST: SO_LINGER with a zero timeout
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    elif how == "close_notify":
        sock.unwrap().close()
    else:  # "without close_notify": the TCP connection only, as wrk and many clients do
        sock.close()


@pytest.mark.parametrize("how", ["reset", "without close_notify", "close_notify"])
def test_a_closed_connection_leaves_nothing_behind(served: Served, how: str) -> None:
    for _ in range(CLIENTS):
        sock = served.connect()
        served.review(sock)  # answered: uvicorn's keep-alive timer is now armed
        _close(sock, how)
    deadline = time.monotonic() + 10
    while served.open_connections():
        assert time.monotonic() < deadline, f"{served.open_connections()} connections still open"
        time.sleep(0.02)
    assert served.protocols_alive() == 0


def test_open_connections_are_counted(served: Served) -> None:
    """The count above sees protocols that are alive (else it would prove nothing)."""
    socks = [served.connect() for _ in range(3)]
    try:
        for sock in socks:
            served.review(sock)
        assert served.protocols_alive() == 3
    finally:
        for sock in socks:
            sock.close()
