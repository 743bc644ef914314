"""``graceful webhook`` on SIGTERM, as a real process watching a real API server.

The policy watch is stopped first, on the signal, so nothing it could still
log (the retry of a watch interrupted by the stop) comes after the process has
said it is done; the process exits 0 with its own last line last.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from testenv.pki import CertificateAuthority
from tests.conftest import Cluster, Kubectl

pytestmark = pytest.mark.e2e

CRD = Path(__file__).resolve().parents[2] / "crds" / "gracefulpolicy.yaml"


def _wait(condition: object, what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}:\n{log.read_text()}"
        time.sleep(0.05)


def test_sigterm_stops_the_watch_first_and_logs_nothing_after_the_last_line(
        cluster: Cluster, kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("apply", "-f", str(CRD))
    kubectl("wait", "--for", "condition=established", "--timeout=60s",
            "crd/gracefulpolicies.graceful.io")
    ca = CertificateAuthority.create("shutdown-ca")
    cert, key = ca.issue("graceful-webhook", hosts=["127.0.0.1"],
                         server=True).write(tmp_path, "serving")
    log = tmp_path / "webhook.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "graceful.cli", "webhook", "--cert", str(cert),
             "--key", str(key), "--host", "127.0.0.1", "--port", "0",
             "--kubeconfig", str(cluster.kubeconfig), "--log-level", "info"],
            stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait(lambda: re.search(r"serving (https://127\.0\.0\.1:\d+)/mutate", log.read_text()),
              "the webhook did not start", log)
        url = re.search(r"serving (https://127\.0\.0\.1:\d+)/mutate", log.read_text())[1]  # type: ignore[index]
        context = ssl.create_default_context(cadata=ca.cert_pem.decode())

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", verify=context, timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(ready, "the policy cache never synced", log)
        # the watch is established once the cache synced; let it be blocked in its read
        _wait(lambda: "policy cache synced" in log.read_text(), "no sync line", log)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    text = "\n".join(lines)
    assert "policy watch failed" not in text and " WARNING " not in text, text
    assert lines[-1].endswith("graceful webhook stopped"), text
    watch_stopped = next(i for i, line in enumerate(lines) if "policy watch stopped" in line)
    finished = next(i for i, line in enumerate(lines) if "Finished server process" in line)
    assert watch_stopped < finished, "the watch must stop before the server finishes:\n" + text
