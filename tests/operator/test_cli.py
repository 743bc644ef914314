"""``graceful operator`` flags: parsed into settings, bad input is exit code 2."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from kubernetes import client as k8s_client

from graceful.operator.cli import add_arguments, run, settings_from
from graceful.operator.kube import KubeApi
from graceful.operator.main import RESERVED_CONNECTIONS, assemble
from graceful.operator.settings import OperatorSettings


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.setenv("POD_NAME", "graceful-operator-7d9f-abcde")
    settings = settings_from(parse())
    assert settings.namespaces == ()
    assert settings.lease_namespace == "graceful-system"
    assert settings.identity == "graceful-operator-7d9f-abcde"
    assert settings.resync_seconds == 60
    assert settings.liveness_endpoint is None


def test_every_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "ignored-when-the-flag-is-given")
    settings = settings_from(parse(
        "--namespace", "a", "--namespace", "b", "-n", "a", "--lease-namespace", "ops",
        "--resync-seconds", "15", "--identity", "r1",
        "--liveness-endpoint", "http://0.0.0.0:8080/healthz"))
    assert settings.namespaces == ("a", "b")
    assert settings.lease_namespace == "ops"
    assert (settings.resync_seconds, settings.identity) == (15, "r1")
    assert settings.liveness_endpoint == "http://0.0.0.0:8080/healthz"


def test_the_lease_namespace_follows_the_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "graceful-ops")
    assert settings_from(parse()).lease_namespace == "graceful-ops"


def test_identity_without_pod_name_is_host_and_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    identity = settings_from(parse()).identity
    assert identity.rsplit("-", 1)[1].isdigit()


def test_bad_input_is_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse("--resync-seconds", "0")) == 2
    assert "--resync-seconds must be positive" in capsys.readouterr().err
    missing = tmp_path / "nope.yaml"
    assert run(parse("--kubeconfig", str(missing))) == 2
    assert "cannot load credentials" in capsys.readouterr().err
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("clusters: 7\n")
    assert run(parse("--kubeconfig", str(garbage))) == 2


def test_status_writes_and_lease_renewals_never_wait_behind_the_event_poster() -> None:
    settings = OperatorSettings(identity="replica-1", event_concurrency=16)
    cfg = k8s_client.Configuration()
    cfg.host = "https://127.0.0.1:6443"
    operator = assemble(settings, cfg)
    api = operator.auditor.api
    assert isinstance(api, KubeApi)
    assert api.limit - settings.event_concurrency == RESERVED_CONNECTIONS > 0
