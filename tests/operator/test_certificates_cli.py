"""``graceful operator`` certificate flags and ``GRACEFUL_MANAGE_CERTIFICATES``."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from graceful.certificates.keeper import policy_of
from graceful.operator.cli import add_arguments, run, settings_from


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_match_the_manifests(monkeypatch: pytest.MonkeyPatch) -> None:
    """manifests/30-webhook-service.yaml, 31-webhook-deployment.yaml, 50-webhook-configuration."""
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.delenv("GRACEFUL_MANAGE_CERTIFICATES", raising=False)
    settings = settings_from(parse())
    assert settings.manage_certificates
    assert (settings.webhook_namespace, settings.webhook_service, settings.webhook_secret,
            settings.webhook_configuration) == ("graceful-system", "graceful-webhook",
                                                "graceful-webhook-tls", "graceful-webhook")
    assert settings.certificate_lifetime == dt.timedelta(days=90)
    assert settings.ca_lifetime == dt.timedelta(days=1095)
    assert policy_of(settings).hosts == (
        "graceful-webhook", "graceful-webhook.graceful-system",
        "graceful-webhook.graceful-system.svc",
        "graceful-webhook.graceful-system.svc.cluster.local")


def test_the_secret_lives_in_the_operators_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only replicas that share a Lease are one writer: the Secret follows the Lease."""
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    assert settings_from(parse()).webhook_namespace == "ops"
    assert settings_from(parse("--lease-namespace", "t1")).webhook_namespace == "t1"
    assert settings_from(parse("--lease-namespace", "t1", "--webhook-namespace", "w")
                         ).webhook_namespace == "w"


def test_every_certificate_flag() -> None:
    settings = settings_from(parse(
        "--webhook-service", "hook", "--webhook-namespace", "w", "--webhook-secret", "tls",
        "--webhook-configuration", "cfg", "--webhook-extra-san", "127.0.0.1",
        "--webhook-extra-san", "hook.example", "--webhook-extra-san", "127.0.0.1",
        "--certificate-lifetime", "30s", "--ca-lifetime", "2m", "--certificate-check-seconds",
        "2", "--no-manage-certificates"))
    assert not settings.manage_certificates
    assert (settings.webhook_service, settings.webhook_namespace, settings.webhook_secret,
            settings.webhook_configuration) == ("hook", "w", "tls", "cfg")
    assert settings.webhook_extra_sans == ("127.0.0.1", "hook.example")
    assert settings.certificate_lifetime == dt.timedelta(seconds=30)
    assert settings.ca_lifetime == dt.timedelta(minutes=2)
    assert settings.certificate_check_seconds == 2
    assert policy_of(settings).hosts[-2:] == ("127.0.0.1", "hook.example")


@pytest.mark.parametrize(("value", "managed"), [
    ("false", False), ("FALSE", False), ("0", False), ("no", False), ("off", False),
    ("true", True), ("1", True), ("", True), ("yes", True),
])
def test_the_environment_switch(monkeypatch: pytest.MonkeyPatch, value: str,
                                managed: bool) -> None:
    monkeypatch.setenv("GRACEFUL_MANAGE_CERTIFICATES", value)
    assert settings_from(parse()).manage_certificates is managed


def test_extra_names_are_ips_or_dns_names() -> None:
    settings = settings_from(parse("--webhook-extra-san", "::1", "--webhook-extra-san",
                                   "Hook.Example", "--webhook-extra-san", "*.hooks.example"))
    assert settings.webhook_extra_sans == ("::1", "hook.example", "*.hooks.example")


def test_the_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRACEFUL_MANAGE_CERTIFICATES", "false")
    assert settings_from(parse("--manage-certificates")).manage_certificates


@pytest.mark.parametrize(("argv", "env", "message"), [
    ((), "maybe", "GRACEFUL_MANAGE_CERTIFICATES must be true or false, not 'maybe'"),
    (("--certificate-lifetime", "90 days"), "", "expected a duration like 90d"),
    (("--ca-lifetime", "0s"), "", "must be positive"),
    (("--certificate-lifetime", "90d", "--ca-lifetime", "200d"), "",
     "--ca-lifetime must be at least 3 times --certificate-lifetime"),
    (("--certificate-check-seconds", "0"), "", "--certificate-check-seconds must be positive"),
    (("--webhook-extra-san", "hook_1.example"), "", "not an IP address or a DNS name"),
    (("--webhook-extra-san", "häkchen.example"), "", "not an IP address or a DNS name"),
    (("--webhook-extra-san", ""), "", "not an IP address or a DNS name"),
])
def test_bad_certificate_input_is_exit_code_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        argv: tuple[str, ...], env: str, message: str) -> None:
    monkeypatch.setenv("GRACEFUL_MANAGE_CERTIFICATES", env)
    assert run(parse(*argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("graceful operator: ") and message in err
    assert err.count("\n") == 1
