"""``graceful demo`` end to end: the output a user reads, and nothing left behind."""

from __future__ import annotations

import argparse
import io
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from testenv import demo
from testenv.ports import is_listening
from tests.conftest import Cluster, Kubectl

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TABLE_HEADER = re.compile(
    r"^NAME\s+MODE\s+TIMEOUT\s+GRACE\s+MATCHED\s+COMPLIANT\s+MISMATCHED\s+AGE$", re.M)
TABLE_ROW = re.compile(r"^apps\s+Enforce\s+30\s+45\s+3\s+2\s+1\s+\S+$", re.M)


def _graceful(*args: str, timeout: float = 300, env: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graceful.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL,
                          env=env, check=False)


def _ports(out: str) -> list[int]:
    return [int(p) for p in re.findall(r"https://127\.0\.0\.1:(\d+)", out)]


REPORT_ROW = re.compile(r"^graceful-operator\s+2\s+1\s+0\s+0\s+0\s+\S+$", re.M)


def _assert_policy_reports(out: str) -> None:
    """On the demo's own control plane: the wg-policy CRD installed, the report printed."""
    assert "==> installing the PolicyReport CRD (wgpolicyk8s.io/v1alpha2" in out
    reports = out.split("--- kubectl get policyreports -n graceful-demo")[1]
    assert REPORT_ROW.search(reports), reports
    assert "Deployment legacy: fail (PreStopMissing,GracePeriodBelowBudget)" in reports
    assert "Deployment worker: pass (DrainBudget)" in reports


def _assert_report(out: str) -> None:
    # progress while it starts
    assert "==> installing the GracefulPolicy CRD" in out
    assert "==> creating namespace graceful-demo and the legacy Deployment" in out
    assert "==> starting the webhook on https://127.0.0.1:" in out
    assert "==> starting the operator (audits namespace graceful-demo)" in out
    # kubectl showed the webhook's warning
    assert ("worker.yaml: kubectl printed the warning: graceful: budget 3615s = preStop 5s"
            " + timeout 3600s + margin 10s") in out
    # the injected settings, on the Deployment and on the Pods made from it
    injected = out.split("what the webhook injected into the FastStream worker")[1]
    assert "  terminationGracePeriodSeconds: 3615   (Kubernetes' default is 30)" in injected
    assert '  containers[worker].lifecycle.preStop: {"sleep": {"seconds": 5}}' in injected
    # userValues Keep: the web app's readiness probe is kept as written, with a warning
    # (readiness is not part of the budget: the endpoints drop a Pod when it is deleted)
    assert "  containers[web].readinessProbe: periodSeconds 10, failureThreshold 3" in injected
    assert ("web.yaml: kubectl printed the warning: graceful: kept readiness probe of"
            " container web: window 30s > policy's 3s") in out
    # the table, with one mismatch, and why
    assert TABLE_HEADER.search(out), out
    assert TABLE_ROW.search(out), out
    mismatch = out.split("--- the mismatch")[1]
    assert "Deployment legacy:" in mismatch
    assert "  - grace period 30s < budget 615s" in mismatch
    assert "  - container celery: no preStop hook" in mismatch


def test_demo_on_its_own_control_plane() -> None:
    proc = _graceful("demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.startswith("==> starting a local control plane")
    _assert_report(out)
    _assert_policy_reports(out)
    assert re.search(r"^demo finished in \d+\.\ds$", out, re.M)
    for port in _ports(out):  # the API server and the webhook are gone
        assert not is_listening(port), port


def test_ctrl_c_stops_everything() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "graceful.cli", "demo", "--keep"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    out = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if line.startswith("Press Ctrl-C to stop."):
                break
        assert out and out[-1].startswith("Press Ctrl-C"), "".join(out)
        ports = _ports("".join(out))
        assert ports and all(is_listening(p) for p in ports)
        proc.send_signal(signal.SIGINT)
        # about 2 s on a quiet machine; generous for a loaded CI machine
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "interrupted; everything it started is stopped" in err
    for port in ports:
        assert not is_listening(port), port


def test_existing_cluster_after_yes_and_cleans_up(cluster: Cluster, kubectl: Kubectl) -> None:
    proc = _graceful("demo", "--kubeconfig", str(cluster.kubeconfig), "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.startswith(f"graceful demo will change the cluster at {cluster.server}:")
    _assert_report(out)
    # never installs a third party's CRD into someone's cluster
    assert "installing the PolicyReport CRD" not in out
    # its webhook configuration is gone, its namespace is going
    assert kubectl("get", "mutatingwebhookconfiguration", "graceful-demo-webhook",
                   check=False).returncode != 0
    phase = kubectl("get", "namespace", "graceful-demo", "-o", "jsonpath={.status.phase}",
                    check=False)
    assert phase.returncode != 0 or phase.stdout == "Terminating"
    # the CRD stays
    kubectl("get", "crd", "gracefulpolicies.graceful.io")
    deadline = time.monotonic() + 60
    while kubectl("get", "namespace", "graceful-demo", check=False).returncode == 0:
        assert time.monotonic() < deadline, "namespace graceful-demo was not deleted"
        time.sleep(0.5)


def test_existing_cluster_asks_first(cluster: Cluster, kubectl: Kubectl) -> None:
    out = io.StringIO()
    args = argparse.Namespace(kubeconfig=cluster.kubeconfig, yes=False, keep=False,
                              webhook_host="127.0.0.1")
    questions: list[str] = []

    def answer_no(question: str) -> str:
        questions.append(question)
        return "n"

    workdirs = set(Path(tempfile.gettempdir()).glob("graceful-demo-run-*"))
    code = demo.demo(args, console=demo.Console(out=out), ask=answer_no)
    assert code == 1
    # nothing ran, so there are no logs to keep: its working directory is gone too
    assert set(Path(tempfile.gettempdir()).glob("graceful-demo-run-*")) == workdirs
    assert questions == ["Continue? [y/N] "]
    assert "create namespace graceful-demo" in out.getvalue()
    assert out.getvalue().rstrip().endswith("nothing changed")
    assert kubectl("get", "namespace", "graceful-demo", check=False).returncode != 0


def test_existing_cluster_without_a_terminal_needs_yes(cluster: Cluster) -> None:
    proc = _graceful("demo", "--kubeconfig", str(cluster.kubeconfig), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == ("graceful demo: --kubeconfig changes a cluster: confirm with --yes"
                           " (standard input is not a terminal)\n")
    assert proc.stdout == ""


def test_missing_kubeconfig_is_one_line() -> None:
    proc = _graceful("demo", "--kubeconfig", "/nonexistent/kubeconfig", "--yes", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == "graceful demo: --kubeconfig /nonexistent/kubeconfig: no such file\n"
