"""``graceful webhook``: one-line errors with exit code 2, and a real run in a subprocess."""

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

from graceful.cli import main
from graceful.webhook.server import bind
from testenv.pki import CertificateAuthority

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    ca = CertificateAuthority.create()
    cert, key = ca.issue("w", hosts=["127.0.0.1"], server=True).write(tmp_path, "w")
    _, other = ca.issue("o", hosts=["127.0.0.1"], server=True).write(tmp_path, "o")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    return {"cert": cert, "key": key, "other_key": other, "kubeconfig": kubeconfig,
            "ca": tmp_path / "ca.crt"}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["webhook", *argv])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(("args", "message"), [
    (["--cert", "{missing}", "--key", "{key}"], r"--cert .*missing\.crt: no such file"),
    (["--cert", "{cert}", "--key", "{missing}"], r"--key .*missing\.crt: no such file"),
    (["--cert", "{cert}", "--key", "{other_key}"], "not a matching PEM certificate and key"),
    (["--cert", "{key}", "--key", "{key}"], "not a matching PEM certificate and key"),
    (["--cert", "{cert}", "--key", "{key}", "--kubeconfig", "{missing}"],
     r"--kubeconfig .*missing\.crt: no such file"),
    (["--cert", "{cert}", "--key", "{key}", "--kubeconfig", "{cert}"], "--kubeconfig"),
    (["--cert", "{cert}", "--key", "{key}", "--port", "70000", "--kubeconfig", "{kubeconfig}"],
     "--port: Input should be less than or equal to 65535"),
    (["--cert", "{cert}", "--key", "{key}", "--cert-reload-seconds", "0",
      "--kubeconfig", "{kubeconfig}"], "--cert-reload-seconds: Input should be greater than 0"),
])
def test_bad_input_is_one_line_and_exit_2(files: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          args: list[str], message: str) -> None:
    paths = {**{k: str(v) for k, v in files.items()}, "missing": str(tmp_path / "missing.crt")}
    code, err = _run(capsys, *(a.format(**paths) for a in args))
    assert code == 2
    assert re.search(message, err), err
    assert err.startswith("graceful webhook: ") and err.count("\n") == 1


def test_outside_a_cluster_without_kubeconfig(files: dict[str, Path],
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code, err = _run(capsys, "--cert", str(files["cert"]), "--key", str(files["key"]))
    assert code == 2
    assert err == "graceful webhook: not running in a cluster: give --kubeconfig FILE\n"


def test_port_in_use(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        code, err = _run(capsys, "--cert", str(files["cert"]), "--key", str(files["key"]),
                         "--kubeconfig", str(files["kubeconfig"]), "--host", "127.0.0.1",
                         "--port", str(port))
    finally:
        taken.close()
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err


def test_missing_required_flags_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["webhook"])
    assert info.value.code == 2
    assert "--cert" in capsys.readouterr().err


def test_serves_then_stops_cleanly_on_sigterm(files: dict[str, Path]) -> None:
    """The real command: TLS up, not ready (no API server), exit 0 on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "graceful.cli", "webhook", "--cert", str(files["cert"]),
         "--key", str(files["key"]), "--host", "127.0.0.1", "--port", "0",
         "--kubeconfig", str(files["kubeconfig"])],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        url = None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            match = re.search(r"serving (https://127\.0\.0\.1:\d+)/mutate", line)
            url = match[1] if match else None
        assert url, "no 'serving' line"
        context = ssl.create_default_context(cafile=str(files["ca"]))
        with httpx.Client(base_url=url, verify=context, timeout=5) as client:
            for _ in range(100):
                try:
                    response = client.get("/healthz")
                    break
                except httpx.ConnectError:
                    time.sleep(0.05)
            assert response.status_code == 200
            assert client.get("/readyz").status_code == 503  # the API server is unreachable
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()




def test_the_environment_feeds_what_no_flag_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """``GRACEFUL_WEBHOOK_PORT`` takes effect unless ``--port`` is given (issue 14)."""
    import argparse  # noqa: PLC0415

    from graceful.webhook.cli import add_arguments  # noqa: PLC0415
    from graceful.webhook.settings import WebhookSettings  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    monkeypatch.setenv("GRACEFUL_WEBHOOK_PORT", "9443")
    args = parser.parse_args(["--cert", "c", "--key", "k"])
    assert not hasattr(args, "port")
    assert WebhookSettings().port == 9443
    assert parser.parse_args(["--cert", "c", "--key", "k", "--port", "1"]).port == 1
