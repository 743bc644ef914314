"""The operator's webhook certificates against a real kube-apiserver.

``graceful operator`` runs as a subprocess with its Lease, and so its Secret,
in the test's namespace, and keeps the caBundle of a MutatingWebhookConfiguration
made by the shared generator (:func:`webhook_configuration`) under a name of
the test's own. The webhook is registered by URL on 127.0.0.1 (there is no
Service without a kubelet), so the operator is told to add that IP to the
certificate (``--webhook-extra-san``): the API server checks the serving
certificate against the URL's host. ``graceful webhook`` then serves the very
files the operator wrote, the way the kubelet would mount them, and the API
server mutating a Deployment proves the whole chain.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from graceful.certificates.rotation import (
    CA_CRT,
    CA_KEY,
    TLS_CRT,
    TLS_KEY,
    cert_hosts,
    decode_data,
    encode_data,
    fingerprint,
    issued_by,
    key_matches,
    load_certificates,
    load_key,
    new_ca,
    new_serving,
    service_hosts,
)
from graceful.webhook.config import webhook_configuration
from testenv.ports import free_port
from tests.conftest import Cluster, Kubectl
from tests.e2e.test_webhook_e2e import deployment, install_policy, policy

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "gracefulpolicy.yaml"
SECRET = "graceful-webhook-tls"
#: How long a wait polls before it calls the test hung: a guard, not a promise of speed.
PATIENCE = 60.0


def graceful_command() -> list[str]:
    script = Path(sys.executable).parent / "graceful"
    return [str(script)] if script.exists() else [sys.executable, "-m", "graceful.cli"]


def until(check: Callable[[], Any], timeout: float, what: str,
          logs: Callable[[], str] = lambda: "") -> Any:
    """Poll ``check`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s: {what}\n{logs()}"
        time.sleep(0.1)


@dataclass
class Process:
    """A ``graceful`` subprocess with its log."""

    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*graceful_command(), *self.argv], stdout=out, stderr=out,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float = PATIENCE) -> None:
        def seen() -> bool:
            assert self.process is not None and self.process.poll() is None, (
                f"{self.argv[0]} exited:\n{self.text()}")
            return re.search(pattern, self.text()) is not None

        until(seen, timeout, f"{pattern!r} in the log", self.text)

    def checks(self) -> float:
        """The certificate keeper's completed passes, from the operator's /metrics."""
        assert self.metrics_port is not None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                        timeout=5) as answer:
                text = answer.read().decode()
        except (urllib.error.URLError, ConnectionError):
            return 0.0  # not serving yet
        [line] = [x for x in text.splitlines()
                  if x.startswith("graceful_operator_certificate_checks_total ")]
        return float(line.split()[-1])

    def wait_for_checks(self, more: int, timeout: float = PATIENCE) -> None:
        """Until the keeper completed ``more`` passes after now (``--certificate-check-seconds
        1``): what a pass would have written, it has written by then."""
        target = self.checks() + more
        until(lambda: self.checks() >= target, timeout, f"{more} more certificate checks",
              self.text)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Env(Protocol):
    """What a test gets: its namespace, its configuration's name, processes to start."""

    namespace: str
    configuration: str
    port: int

    def operator(self, *extra: str, env: dict[str, str] | None = None,
                 identity: str = "op-a") -> Process: ...

    def webhook(self, files: dict[str, bytes]) -> Process: ...


@dataclass
class Setup:
    cluster: Cluster
    kubectl: Kubectl
    namespace: str
    directory: Path
    configuration: str = field(default_factory=lambda: f"graceful-cert-{uuid.uuid4().hex[:6]}")
    port: int = field(default_factory=free_port)
    started: list[Process] = field(default_factory=list)

    def operator(self, *extra: str, env: dict[str, str] | None = None,
                 identity: str = "op-a") -> Process:
        port = free_port()
        process = Process(
            ["operator", "--kubeconfig", str(self.cluster.kubeconfig), "--namespace",
             self.namespace, "--lease-namespace", self.namespace, "--identity", identity,
             "--webhook-configuration", self.configuration, "--webhook-extra-san", "127.0.0.1",
             "--certificate-check-seconds", "1", "--metrics-port", str(port), *extra],
            self.directory / f"operator-{identity}.log", env=env or {}, metrics_port=port)
        self.started.append(process)
        return process.start()

    def webhook(self, files: dict[str, bytes]) -> Process:
        """``graceful webhook`` serving ``files`` as the kubelet would mount them."""
        write_files(self.directory, files)
        process = Process(
            ["webhook", "--cert", str(self.directory / TLS_CRT), "--key",
             str(self.directory / TLS_KEY), "--host", "127.0.0.1", "--port", str(self.port),
             "--kubeconfig", str(self.cluster.kubeconfig), "--log-level", "info"],
            self.directory / "webhook.log")
        self.started.append(process)
        process.start()
        until(lambda: served_certificate(self.port) is not None, PATIENCE, "the webhook to listen",
              process.text)
        return process


@pytest.fixture(scope="module")
def crd(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(CRD.parent))  # both CRDs
    kubectl("wait", "--for", "condition=established", "--timeout=60s",
            "crd/gracefulpolicies.graceful.io")


@pytest.fixture
def setup(crd: None, cluster: Cluster, kubectl: Kubectl, namespace: str,
          tmp_path: Path) -> Iterator[Setup]:
    """A webhook configuration by URL without a caBundle yet, as the manifests install it."""
    here = Setup(cluster, kubectl, namespace, tmp_path)
    config = webhook_configuration(name=here.configuration, ca_bundle=b"set by the operator",
                                   url=f"https://127.0.0.1:{here.port}/mutate")
    for hook in config["webhooks"]:
        del hook["clientConfig"]["caBundle"]
    kubectl("create", "-f", "-", input=json.dumps(config))
    try:
        yield here
    finally:
        for process in here.started:
            process.stop()
        kubectl("delete", "mutatingwebhookconfiguration", here.configuration,
                "--ignore-not-found", check=False)


# --- reading what the operator wrote -------------------------------------------------------


def secret(kubectl: Kubectl, namespace: str) -> dict[str, Any] | None:
    proc = kubectl("get", "secret", SECRET, "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        assert "NotFound" in proc.stderr, proc.stderr
        return None
    found: dict[str, Any] = json.loads(proc.stdout)
    return found


def files_of(obj: dict[str, Any]) -> dict[str, bytes]:
    return decode_data(obj.get("data"))


def configuration(kubectl: Kubectl, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        kubectl("get", "mutatingwebhookconfiguration", name, "-o", "json").stdout)
    return found


def ca_bundle(config: dict[str, Any]) -> bytes:
    (hook,) = config["webhooks"]
    return base64.b64decode(hook["clientConfig"].get("caBundle", ""))


def write_files(directory: Path, files: dict[str, bytes]) -> None:
    """Replace the files at once (rename), like the kubelet's atomic writer."""
    for name in (TLS_KEY, TLS_CRT):
        temporary = directory / f".{name}.tmp"
        temporary.write_bytes(files[name])
        temporary.chmod(0o600)
        temporary.replace(directory / name)


def served_certificate(port: int) -> x509.Certificate | None:
    """The certificate the webhook presents right now (not verified: just looked at)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw, \
                context.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    except OSError:
        return None
    return x509.load_der_x509_certificate(der) if der else None


def mutated(kubectl: Kubectl, namespace: str, name: str) -> bool:
    """Does the API server, calling the webhook, mutate this Deployment (server dry-run)?"""
    out = kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-",
                  input=json.dumps(deployment(namespace, name))).stdout
    return "preStop" in out


def resource_version(obj: dict[str, Any]) -> int:
    """Versions of one etcd are ordered (the testenv has one): used to order two writes."""
    return int(obj["metadata"]["resourceVersion"])


# --- tests ---------------------------------------------------------------------------------


def test_the_operator_creates_the_secret_and_the_api_server_calls_the_webhook_with_it(
        setup: Setup, kubectl: Kubectl, namespace: str) -> None:
    operator = setup.operator()
    stored = until(lambda: secret(kubectl, namespace), PATIENCE, "the Secret", operator.text)
    assert stored["type"] == "kubernetes.io/tls"
    files = files_of(stored)
    assert set(files) == {TLS_CRT, TLS_KEY, CA_CRT, CA_KEY}
    (ca,) = load_certificates(files[CA_CRT])
    cert = load_certificates(files[TLS_CRT])[0]
    cert_key, ca_key = load_key(files[TLS_KEY]), load_key(files[CA_KEY])
    assert cert_key is not None and key_matches(cert, cert_key)
    assert ca_key is not None and key_matches(ca, ca_key)
    assert issued_by(cert, ca)
    assert cert_hosts(cert) == {
        "graceful-webhook", f"graceful-webhook.{namespace}", f"graceful-webhook.{namespace}.svc",
        f"graceful-webhook.{namespace}.svc.cluster.local", "127.0.0.1"}
    now = dt.datetime.now(dt.UTC)
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    assert cert.not_valid_after_utc - now > dt.timedelta(days=89)

    until(lambda: ca_bundle(configuration(kubectl, setup.configuration)) == files[CA_CRT], PATIENCE,
          "the caBundle", operator.text)

    webhook = setup.webhook(files)
    install_policy(kubectl, namespace, policy(namespace))  # waits for a mutated dry-run
    kubectl("apply", "-f", "-", input=json.dumps(deployment(namespace, "worker")))
    created = json.loads(kubectl("get", "deployment", "worker", "-n", namespace,
                                 "-o", "json").stdout)
    spec = created["spec"]["template"]["spec"]
    assert "preStop" in spec["containers"][0]["lifecycle"], webhook.text()
    assert spec["terminationGracePeriodSeconds"] > 30
    assert "Forbidden" not in operator.text() and "Traceback" not in operator.text()


def test_a_short_lived_certificate_is_renewed_and_served_without_touching_the_ca(
        setup: Setup, kubectl: Kubectl, namespace: str) -> None:
    operator = setup.operator("--certificate-lifetime", "9s", "--ca-lifetime", "1h")
    first = until(lambda: secret(kubectl, namespace), PATIENCE, "the Secret", operator.text)
    until(lambda: ca_bundle(configuration(kubectl, setup.configuration))
          == files_of(first)[CA_CRT], PATIENCE, "the caBundle", operator.text)
    config_version = resource_version(configuration(kubectl, setup.configuration))
    webhook = setup.webhook(files_of(first))
    install_policy(kubectl, namespace, policy(namespace))

    def renewed() -> dict[str, Any] | None:
        found = secret(kubectl, namespace)
        return found if found and files_of(found)[TLS_CRT] != files_of(first)[TLS_CRT] else None

    second = until(renewed, PATIENCE, "a renewed serving certificate", operator.text)
    old_cert = load_certificates(files_of(first)[TLS_CRT])[0]
    new_cert = load_certificates(files_of(second)[TLS_CRT])[0]
    assert files_of(second)[CA_CRT] == files_of(first)[CA_CRT]
    assert files_of(second)[TLS_KEY] != files_of(first)[TLS_KEY]
    remaining = old_cert.not_valid_after_utc - new_cert.not_valid_before_utc
    assert dt.timedelta(0) < remaining, "renewed before the old one expired"
    assert "tls.crt expires at" in operator.text()
    # the kubelet would now update the mounted files; the webhook reloads them
    write_files(setup.directory, files_of(second))
    until(lambda: served_certificate(setup.port) == new_cert, PATIENCE, "the webhook to reload",
          webhook.text)
    assert mutated(kubectl, namespace, "after-renewal")
    assert resource_version(configuration(kubectl, setup.configuration)) == config_version


def test_a_ca_near_its_end_rotates_with_both_cas_trusted_and_no_failed_call(
        setup: Setup, kubectl: Kubectl, namespace: str) -> None:
    """A Secret from an earlier operator whose CA has less than a third of its life left."""
    now = dt.datetime.now(dt.UTC)
    old_ca, old_key = new_ca(now - dt.timedelta(days=800), dt.timedelta(days=1095))
    cert_pem, key_pem = new_serving(old_ca, old_key, service_hosts(
        "graceful-webhook", namespace, ["127.0.0.1"]), now, dt.timedelta(days=90))
    old_files = {
        TLS_CRT: cert_pem, TLS_KEY: key_pem,
        CA_CRT: old_ca.public_bytes(serialization.Encoding.PEM),
        CA_KEY: old_key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())}
    kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": SECRET, "namespace": namespace}, "data": encode_data(old_files)}))
    config = configuration(kubectl, setup.configuration)
    config["webhooks"][0]["clientConfig"]["caBundle"] = encode_data(old_files)[CA_CRT]
    kubectl("replace", "-f", "-", input=json.dumps(config))
    webhook = setup.webhook(old_files)
    install_policy(kubectl, namespace, policy(namespace))  # the old pair works

    operator = setup.operator()

    def switched() -> dict[str, Any] | None:
        found = secret(kubectl, namespace)
        return found if found and files_of(found)[TLS_CRT] != cert_pem else None

    new = until(switched, PATIENCE, "a serving certificate from the new CA", operator.text)
    trusting = configuration(kubectl, setup.configuration)
    bundle = load_certificates(ca_bundle(trusting))
    assert len(bundle) == 2 and fingerprint(bundle[0]) == fingerprint(old_ca)
    new_ca_cert = bundle[1]
    new_files = files_of(new)
    assert ca_bundle(trusting) == new_files[CA_CRT]
    new_cert = load_certificates(new_files[TLS_CRT])[0]
    assert issued_by(new_cert, new_ca_cert) and not issued_by(new_cert, old_ca)
    new_key = load_key(new_files[CA_KEY])
    assert new_key is not None and key_matches(new_ca_cert, new_key)
    # the configuration trusted the new CA before the certificate moved to it
    assert resource_version(trusting) < resource_version(new), operator.text()
    assert "a new CA joins the bundle" in operator.text()
    assert "tls.crt was signed by a previous CA" in operator.text()
    # a Pod still serving the old certificate keeps working with the new bundle...
    assert mutated(kubectl, namespace, "old-pair-new-bundle"), webhook.text()
    # ...and so does one serving the new certificate
    write_files(setup.directory, new_files)
    until(lambda: served_certificate(setup.port) == new_cert, PATIENCE, "the webhook to reload",
          webhook.text)
    assert mutated(kubectl, namespace, "new-pair-new-bundle"), webhook.text()


def test_a_restart_keeps_a_valid_certificate_and_an_invalid_one_is_replaced(
        setup: Setup, kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "secret", "generic", SECRET, "-n", namespace,
            "--from-literal=tls.crt=left by someone else")
    first = setup.operator(identity="op-a")
    first.wait_for_log(r"replaced Secret .*no ca\.crt; no ca\.key")
    stored = until(lambda: (s := secret(kubectl, namespace)) and CA_CRT in s["data"] and s,
                   PATIENCE, "the replaced Secret", first.text)
    assert stored["type"] == "Opaque"  # a Secret's type cannot change
    until(lambda: ca_bundle(configuration(kubectl, setup.configuration))
          == files_of(stored)[CA_CRT], PATIENCE, "the caBundle", first.text)
    config_version = resource_version(configuration(kubectl, setup.configuration))
    first.stop()

    second = setup.operator(identity="op-b")
    second.wait_for_log(r"acquired leadership")
    second.wait_for_log(r"Secret .* is valid, nothing to renew")
    second.wait_for_checks(2)
    after = secret(kubectl, namespace)
    assert after is not None
    assert resource_version(after) == resource_version(stored)
    assert files_of(after) == files_of(stored)
    assert resource_version(configuration(kubectl, setup.configuration)) == config_version
    assert "created Secret" not in second.text() and "updated Secret" not in second.text()


def test_of_two_replicas_only_the_leader_writes(
        setup: Setup, kubectl: Kubectl, namespace: str) -> None:
    replicas = [setup.operator(identity="op-a"), setup.operator(identity="op-b")]
    stored = until(lambda: secret(kubectl, namespace), PATIENCE, "the Secret",
                   lambda: "\n".join(r.text() for r in replicas))
    until(lambda: ca_bundle(configuration(kubectl, setup.configuration))
          == files_of(stored)[CA_CRT], PATIENCE, "the caBundle")
    # two more checks by the leader; the follower only waits
    until(lambda: [r for r in replicas if "acquired leadership" in r.text()], PATIENCE, "a leader")
    [leader] = [r for r in replicas if "acquired leadership" in r.text()]
    leader.wait_for_checks(2)
    logs = [r.text() for r in replicas]
    leaders = [log for log in logs if "acquired leadership" in log]
    assert len(leaders) == 1
    (follower,) = [log for log in logs if "acquired leadership" not in log]
    assert "created Secret" in leaders[0] and "created Secret" not in follower
    assert "certificates: keeping Secret" in follower  # it runs, and writes nothing
    assert "Secret" not in follower.split("certificates: keeping Secret", 1)[1]
    after = secret(kubectl, namespace)
    assert after is not None and resource_version(after) == resource_version(stored)


def test_two_writers_that_race_converge_on_one_secret(
        setup: Setup, kubectl: Kubectl, namespace: str) -> None:
    """Two leaders of different Leases (a misconfiguration) writing the same Secret:
    a 409 on create or update makes the loser read again and keep the winner's Secret."""
    other = f"{namespace}-b"
    kubectl("create", "namespace", other)
    try:
        a = setup.operator(identity="op-a")
        b = setup.operator("--webhook-namespace", namespace, "--lease-namespace", other,
                           identity="op-b")
        for operator in (a, b):
            operator.wait_for_log(r"acquired leadership")
            operator.wait_for_log(r"certificates: (created|replaced|updated) Secret|is valid")
        for operator in (a, b):  # each has read the other's Secret back since
            operator.wait_for_checks(2)
        stored = secret(kubectl, namespace)
        assert stored is not None
        created = [op for op in (a, b) if "created Secret" in op.text()]
        assert len(created) == 1, a.text() + b.text()
        assert "updated Secret" not in a.text() + b.text()
        assert ca_bundle(configuration(kubectl, setup.configuration)) == (
            files_of(stored)[CA_CRT])
        for operator in (a, b):
            assert "ERROR" not in operator.text() and "Traceback" not in operator.text()
    finally:
        kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_graceful_manage_certificates_false_touches_nothing(
        setup: Setup, kubectl: Kubectl, namespace: str) -> None:
    before = configuration(kubectl, setup.configuration)
    operator = setup.operator(env={"GRACEFUL_MANAGE_CERTIFICATES": "false"})
    operator.wait_for_log(r"acquired leadership")
    operator.wait_for_log(r"webhook certificates are not managed")
    time.sleep(3)  # three check intervals, were the checks running
    assert secret(kubectl, namespace) is None
    after = configuration(kubectl, setup.configuration)
    assert resource_version(after) == resource_version(before)
    assert "caBundle" not in after["webhooks"][0]["clientConfig"]
    assert "certificates:" not in operator.text()


def test_as_installed_with_exactly_the_operators_rbac(
        crd: None, kubectl: Kubectl, tmp_path: Path) -> None:
    """The manifests' names, namespace and RBAC: the operator as its service account.

    The configuration is the installed one (a Service, no caBundle); a missing
    permission (a Secret not named in the Role, a list, a watch) shows as a
    403 in the log or as a Secret that never appears.
    """
    from tests.e2e.test_manifests_e2e import _token_kubeconfig  # noqa: PLC0415
    from tests.manifests.conftest import MANIFESTS, NAMESPACE  # noqa: PLC0415

    files = [arg for name in ("00-namespace.yaml", "10-serviceaccounts.yaml",
                              "21-rbac-operator.yaml", "50-webhook-configuration.yaml")
             for arg in ("-f", str(MANIFESTS / name))]
    kubectl("apply", *files)
    kubectl("delete", "secret", SECRET, "-n", NAMESPACE, "--ignore-not-found")
    operator = Process(["operator", "--identity", "certificates-rbac", "--kubeconfig",
                        str(_token_kubeconfig(kubectl, "graceful-operator",
                                              tmp_path / "operator.kubeconfig"))],
                       tmp_path / "operator.log", env={"POD_NAMESPACE": NAMESPACE})
    try:
        operator.start()
        stored = until(lambda: secret(kubectl, NAMESPACE), PATIENCE, "the Secret", operator.text)
        files_ = files_of(stored)
        until(lambda: ca_bundle(configuration(kubectl, "graceful-webhook")) == files_[CA_CRT],
              PATIENCE, "the caBundle of graceful-webhook", operator.text)
        cert = load_certificates(files_[TLS_CRT])[0]
        assert cert_hosts(cert) == set(service_hosts("graceful-webhook", NAMESPACE))
        text = operator.text()
        assert "403" not in text and "orbidden" not in text, text
    finally:
        operator.stop()
        kubectl("delete", "mutatingwebhookconfiguration", "graceful-webhook",
                "--ignore-not-found", check=False)
        kubectl("delete", "secret", SECRET, "-n", NAMESPACE, "--ignore-not-found", check=False)
        kubectl("delete", "--ignore-not-found", "--wait=false", *files[2:6], check=False)
