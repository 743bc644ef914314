"""The real server: uvicorn over TLS on 127.0.0.1, a test CA, rotation without restart."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from graceful.webhook.app import create_app
from graceful.webhook.cache import PolicyCache
from graceful.webhook.server import WebhookServer, bind
from graceful.webhook.settings import WebhookSettings
from graceful.webhook.tls import CertificateError, ReloadingCertificate, server_context
from testenv.pki import CertificateAuthority

from .conftest import opted_in, policy, review_dict, start_in_thread

HOSTS = ["127.0.0.1", "localhost"]


@dataclass
class Served:
    server: WebhookServer
    ca: CertificateAuthority
    cert: Path
    key: Path
    port: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        return context

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.client_context(), timeout=5)

    def served_serial(self) -> int:
        """The serial number of the certificate a new connection gets."""
        context = self.client_context()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


def _read_response(tls: ssl.SSLSocket) -> bytes:
    """One whole HTTP response (headers and a Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = tls.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    running: list[tuple[WebhookServer, threading.Thread]] = []

    def start(settings: WebhookSettings | None = None) -> Served:
        ca = CertificateAuthority.create("webhook-test-ca")
        cert, key = ca.issue("graceful-webhook", hosts=HOSTS, server=True).write(
            tmp_path, "serving")
        sock = bind("127.0.0.1", 0)
        app = create_app(PolicyCache.of([policy()]), settings=settings)
        server = WebhookServer(app, ReloadingCertificate(cert, key), sock, reload_interval=0.05)
        thread = start_in_thread(server)
        running.append((server, thread))
        return Served(server, ca, cert, key, server.address[1])

    yield start
    for server, thread in running:
        server.stop()
        thread.join(10)


def test_serves_mutate_over_tls(serve: Callable[..., Served]) -> None:
    served = serve()
    with served.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        response = client.post("/mutate", json=review_dict(opted_in(), uid="x"))
        assert response.status_code == 200
        assert response.json()["response"]["patchType"] == "JSONPatch"
        assert "graceful_webhook_admission_requests_total" in client.get("/metrics").text


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_accepted(serve: Callable[..., Served],
                                      version: ssl.TLSVersion) -> None:
    served = serve()
    context = served.client_context()
    context.minimum_version = context.maximum_version = version
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                 ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]


def _tls_1_1_client() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client really offer TLS 1.1
    return context


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_1_1_is_refused_by_the_server(serve: Callable[..., Served]) -> None:
    served = serve()
    # Control: this client does speak TLS 1.1 to a server that allows it...
    loose = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    loose.minimum_version = ssl.TLSVersion.TLSv1
    loose.set_ciphers("DEFAULT:@SECLEVEL=0")
    loose.load_cert_chain(served.cert, served.key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def accept() -> None:
            conn, _ = listener.accept()
            with loose.wrap_socket(conn, server_side=True):
                pass

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        with socket.create_connection(listener.getsockname(), timeout=5) as raw, \
                _tls_1_1_client().wrap_socket(raw) as tls:
            assert tls.version() == "TLSv1.1"
        thread.join(5)
    # ...so the failure against the webhook is the webhook refusing it.
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw, \
            pytest.raises(ssl.SSLError):
        _tls_1_1_client().wrap_socket(raw)


def test_plain_http_is_refused(serve: Callable[..., Served]) -> None:
    served = serve()
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            answer = raw.recv(4096)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{served.port}/healthz", timeout=5)


def test_a_rotated_certificate_is_served_without_restart(serve: Callable[..., Served]) -> None:
    served = serve()
    first = served.served_serial()
    with served.client() as client:  # a connection made before the rotation
        assert client.get("/healthz").status_code == 200
        renewed = served.ca.issue("graceful-webhook", hosts=HOSTS, server=True)
        _write_atomically(served.key, renewed.key_pem)
        _write_atomically(served.cert, renewed.cert_pem)
        deadline = time.monotonic() + 5
        while served.served_serial() == first:
            assert time.monotonic() < deadline, "the new certificate was not picked up"
            time.sleep(0.02)
        assert client.get("/healthz").status_code == 200  # still fine
    assert served.served_serial() == x509.load_pem_x509_certificate(
        renewed.cert_pem).serial_number
    assert served.server.certificate.reloads == 1


def test_a_new_ca_is_picked_up_too(serve: Callable[..., Served]) -> None:
    served = serve()
    other = CertificateAuthority.create("another-ca")
    pair = other.issue("graceful-webhook", hosts=HOSTS, server=True)
    _write_atomically(served.key, pair.key_pem)
    _write_atomically(served.cert, pair.cert_pem)
    served.ca = other
    deadline = time.monotonic() + 5
    while True:
        try:
            served.served_serial()
            break
        except ssl.SSLCertVerificationError:
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_a_half_written_pair_keeps_the_old_certificate(serve: Callable[..., Served],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    served = serve()
    first = served.served_serial()
    renewed = served.ca.issue("graceful-webhook", hosts=HOSTS, server=True)
    _write_atomically(served.cert, renewed.cert_pem)  # the key is not there yet
    time.sleep(0.3)
    assert served.served_serial() == first
    assert "certificate not reloaded" in caplog.text
    _write_atomically(served.key, renewed.key_pem)
    deadline = time.monotonic() + 5
    while served.served_serial() == first:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_an_oversized_body_is_refused_before_it_is_sent(serve: Callable[..., Served]) -> None:
    served = serve()
    context = served.client_context()
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 10485760\r\n\r\n")
        answer = _read_response(tls)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"exceeds the limit" in answer


def test_a_slow_body_does_not_starve_other_requests(serve: Callable[..., Served]) -> None:
    served = serve(WebhookSettings(body_timeout_seconds=3.0))
    context = served.client_context()
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as slow:
        slow.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        with served.client() as client:
            assert client.post("/mutate", json=review_dict(opted_in())).status_code == 200
        # Served while the slow one still waits for its body (an order, not a stopwatch):
        slow.setblocking(False)
        with pytest.raises(ssl.SSLWantReadError):
            slow.recv(1)
        slow.setblocking(True)
        answer = _read_response(slow)  # the slow one is cut off after body_timeout_seconds
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"not received within 3s" in answer


def test_unusable_files_are_one_clear_error(tmp_path: Path) -> None:
    ca = CertificateAuthority.create()
    cert, key = ca.issue("a", hosts=HOSTS, server=True).write(tmp_path, "a")
    _, other_key = ca.issue("b", hosts=HOSTS, server=True).write(tmp_path, "b")
    with pytest.raises(CertificateError, match="no such file"):
        server_context(tmp_path / "missing.crt", key)
    with pytest.raises(CertificateError, match="not a matching PEM certificate and key"):
        server_context(cert, other_key)
    (tmp_path / "junk.crt").write_text("hello")
    with pytest.raises(CertificateError, match="not a matching PEM"):
        server_context(tmp_path / "junk.crt", key)


def test_minimum_version_is_tls_1_2(tmp_path: Path) -> None:
    ca = CertificateAuthority.create()
    cert, key = ca.issue("a", hosts=HOSTS, server=True).write(tmp_path, "a")
    reloading = ReloadingCertificate(cert, key)
    assert reloading.context.minimum_version == ssl.TLSVersion.TLSv1_2
