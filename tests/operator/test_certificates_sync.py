"""The keeper's I/O on the in-memory API: what it writes, where, and how it handles races.

The fake answers 404 and 409 with resourceVersions like the API server; the
real API server is in ``tests/e2e/test_certificates_e2e.py``. What is checked
here is what needs races or failures on demand: another replica creating the
Secret first, a configuration changed between read and write, a foreign
Secret, a follower that must not write, and that every call stays within the
operator's RBAC (``manifests/21-rbac-operator.yaml``).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import logging
from typing import Any

import pytest

from graceful.certificates.keeper import (
    CONFIGURATIONS,
    CertificateKeeper,
    SyncReport,
    secret_object,
)
from graceful.certificates.rotation import (
    CA_CRT,
    TLS_CRT,
    decode_data,
    encode_data,
    inspect,
    load_certificates,
)
from graceful.operator.settings import OperatorSettings
from graceful.webhook.config import webhook_configuration
from tests.operator.fakes import FakeApi

SETTINGS = OperatorSettings(identity="op-a", webhook_namespace="graceful-system",
                            retry_seconds=0.05, renew_every=0.05)
SECRETS = "/api/v1/namespaces/graceful-system/secrets"
SECRET = f"{SECRETS}/graceful-webhook-tls"
CONFIG = f"{CONFIGURATIONS}/graceful-webhook"
#: Every call the RBAC of the operator allows for certificates.
ALLOWED = {("GET", SECRET), ("POST", SECRETS), ("PUT", SECRET), ("GET", CONFIG), ("PUT", CONFIG)}


def with_configuration(api: FakeApi) -> FakeApi:
    config = webhook_configuration(ca_bundle=b"placeholder",
                                   service=("graceful-system", "graceful-webhook", 443))
    config["metadata"]["resourceVersion"] = "1"
    api.objects[CONFIG] = config
    return api


def secret_files(api: FakeApi) -> dict[str, bytes]:
    return decode_data(api.objects[SECRET]["data"])


def config_bundles(api: FakeApi) -> list[bytes]:
    return [base64.b64decode(hook["clientConfig"]["caBundle"])
            for hook in api.objects[CONFIG]["webhooks"]]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_first_pass_creates_the_secret_and_sets_the_ca_bundle() -> None:
    api = with_configuration(FakeApi())
    keeper = CertificateKeeper(api, SETTINGS)
    report = run(keeper.sync())
    assert (report.secret, report.configuration) == ("created", "updated")
    stored = api.objects[SECRET]
    assert stored["type"] == "kubernetes.io/tls"
    assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "graceful-operator"
    files = secret_files(api)
    assert set(files) == {"tls.crt", "tls.key", "ca.crt", "ca.key"}
    checked = inspect(files, keeper.policy.hosts, dt.datetime.now(dt.UTC))
    assert checked.usable and not checked.serving_problems
    assert config_bundles(api) == [files[CA_CRT]]
    assert set(api.calls) <= ALLOWED


def test_a_second_pass_and_a_restart_write_nothing() -> None:
    api = with_configuration(FakeApi())
    run(CertificateKeeper(api, SETTINGS).sync())
    before = copy.deepcopy(api.objects)
    api.calls.clear()
    report = run(CertificateKeeper(api, SETTINGS).sync())  # a new process
    assert (report.secret, report.configuration) == ("unchanged", "unchanged")
    assert api.objects == before
    assert {method for method, _ in api.calls} == {"GET"}


def test_a_follower_reads_but_never_writes() -> None:
    api = with_configuration(FakeApi())
    report = run(CertificateKeeper(api, SETTINGS, is_leader=lambda: False).sync())
    assert report.secret == "skipped"
    assert SECRET not in api.objects
    assert {method for method, _ in api.calls} == {"GET"}


class RacingApi(FakeApi):
    """Another replica writes just before our first write of ``path``."""

    def __init__(self, method: str, path: str, other: dict[str, Any]) -> None:
        super().__init__()
        self.race = (method, path)
        self.other = other

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: Any = None, content_type: str = "application/json") -> Any:
        if (method, path) == self.race:
            self.race = ("", "")
            target, version = (SECRET, "100") if path == SECRETS else (path, "101")
            self.objects[target] = {**copy.deepcopy(self.other),
                                    "metadata": {**self.other["metadata"],
                                                 "resourceVersion": version}}
        return await super().request(method, path, body=body, params=params,
                                     content_type=content_type)


def test_a_secret_created_meanwhile_by_another_replica_is_kept() -> None:
    """409 on create: read again; the other replica's valid Secret wins, nobody overwrites."""
    other_api = FakeApi()
    run(CertificateKeeper(other_api, SETTINGS).sync())
    theirs = other_api.objects[SECRET]
    api = with_configuration(RacingApi("POST", SECRETS, theirs))
    report = run(CertificateKeeper(api, SETTINGS).sync())
    assert report.secret == "unchanged"
    assert api.objects[SECRET]["data"] == theirs["data"]
    assert config_bundles(api) == [decode_data(theirs["data"])[CA_CRT]]
    assert [c for c in api.calls if c[0] == "POST"] == [("POST", SECRETS)]


def test_a_configuration_changed_between_read_and_write_is_read_again() -> None:
    config = webhook_configuration(ca_bundle=b"placeholder", url="https://example.test/mutate")
    config["metadata"]["labels"]["edited"] = "meanwhile"
    api = with_configuration(RacingApi("PUT", CONFIG, config))
    report = run(CertificateKeeper(api, SETTINGS).sync())
    assert report.configuration == "updated"
    stored = api.objects[CONFIG]
    assert stored["metadata"]["labels"]["edited"] == "meanwhile"  # their change survives
    assert stored["webhooks"][0]["clientConfig"]["url"] == "https://example.test/mutate"
    assert config_bundles(api) == [secret_files(api)[CA_CRT]]
    assert [c for c in api.calls if c[0] == "PUT"] == [("PUT", CONFIG), ("PUT", CONFIG)]


def test_an_invalid_secret_written_by_someone_else_is_replaced_and_the_log_says_why(
        caplog: pytest.LogCaptureFixture) -> None:
    api = with_configuration(FakeApi())
    api.objects[SECRET] = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                           "metadata": {"name": "graceful-webhook-tls",
                                        "namespace": "graceful-system", "resourceVersion": "5",
                                        "labels": {"team": "ops"}},
                           "data": encode_data({TLS_CRT: b"not a certificate"})}
    with caplog.at_level(logging.INFO, logger="graceful.certificates.keeper"):
        report = run(CertificateKeeper(api, SETTINGS).sync())
    assert report.secret == "updated"
    stored = api.objects[SECRET]
    assert stored["type"] == "Opaque"  # a Secret's type cannot change; the files are what count
    assert stored["metadata"]["labels"]["team"] == "ops"
    assert inspect(secret_files(api), CertificateKeeper(api, SETTINGS).policy.hosts,
                   dt.datetime.now(dt.UTC)).usable
    assert ("replaced Secret graceful-system/graceful-webhook-tls (no ca.crt; no ca.key)"
            in caplog.text)


def test_without_a_configuration_the_secret_is_still_made_and_the_absence_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    api = FakeApi()
    keeper = CertificateKeeper(api, SETTINGS)
    with caplog.at_level(logging.INFO, logger="graceful.certificates.keeper"):
        first = run(keeper.sync())
        second = run(keeper.sync())
    assert (first.secret, first.configuration) == ("created", "missing")
    assert (second.secret, second.configuration) == ("unchanged", "missing")
    assert caplog.text.count("no MutatingWebhookConfiguration graceful-webhook yet") == 1


def test_an_unreadable_configuration_is_an_error_and_a_new_ca_waits(
        caplog: pytest.LogCaptureFixture) -> None:
    """Forbidden to read the configuration: never serve a certificate it may not trust."""
    settings = SETTINGS.model_copy(update={"certificate_lifetime": dt.timedelta(days=10),
                                          "ca_lifetime": dt.timedelta(days=30)})
    t0 = dt.datetime.now(dt.UTC)

    def keeper_at(days: float) -> CertificateKeeper:
        return CertificateKeeper(api, settings, wall=lambda: t0 + dt.timedelta(days=days))

    api = FakeApi()
    run(keeper_at(0).sync())
    run(keeper_at(19).sync())  # the serving certificate renewed, the CA not due yet
    files = secret_files(api)
    api.fail[("GET", CONFIGURATIONS)] = 403
    with caplog.at_level(logging.INFO, logger="graceful.certificates.keeper"):
        report = run(keeper_at(20.1).sync())
    assert "cannot read MutatingWebhookConfiguration graceful-webhook" in caplog.text
    assert report.configuration == "unreadable"
    assert report.secret == "updated"  # the new CA joins the bundle...
    after = secret_files(api)
    assert len(load_certificates(after[CA_CRT])) == 2
    assert after[TLS_CRT] == files[TLS_CRT]  # ...and the certificate is not switched
    again = run(keeper_at(20.1).sync())
    assert again.waiting and again.secret == "unchanged"


def test_the_next_pass_comes_when_due_soon_when_waiting_and_at_least_every_check() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    keeper = CertificateKeeper(FakeApi(), SETTINGS.model_copy(
        update={"certificate_check_seconds": 30, "ca_settle_seconds": 5}), wall=lambda: now)
    assert keeper.delay_after(SyncReport(waiting=True)) == 5
    assert keeper.delay_after(SyncReport(next_check=now + dt.timedelta(seconds=7))) == 7
    assert keeper.delay_after(SyncReport(next_check=now + dt.timedelta(days=7))) == 30
    assert keeper.delay_after(SyncReport(next_check=now - dt.timedelta(seconds=7))) == 0.5
    assert keeper.delay_after(SyncReport()) == 30


def test_the_secret_keeps_its_metadata_and_version_on_update() -> None:
    current = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "s", "namespace": "n", "resourceVersion": "9",
                            "managedFields": [{}], "annotations": {"a": "b"}},
               "data": {"x": "eQ=="}, "stringData": {"y": "z"}}
    body = secret_object("n", "s", {"tls.crt": b"c"}, current)
    assert body["metadata"]["resourceVersion"] == "9"
    assert body["metadata"]["annotations"] == {"a": "b"}
    assert "managedFields" not in body["metadata"] and "stringData" not in body
    assert body["data"] == {"tls.crt": "Yw=="}


def test_the_loop_starts_when_leadership_comes_and_survives_errors() -> None:
    async def scenario() -> None:
        api = with_configuration(FakeApi())
        leading = False
        checks: list[None] = []
        keeper = CertificateKeeper(api, SETTINGS, is_leader=lambda: leading,
                                   on_check=lambda: checks.append(None))
        api.fail[("GET", SECRET)] = 500
        task = asyncio.create_task(keeper.run())
        await asyncio.sleep(0.2)
        assert SECRET not in api.objects and keeper.passes == 0  # a follower does nothing
        leading = True
        keeper.leadership_changed(True)
        await asyncio.sleep(0.2)
        assert keeper.passes >= 2 and SECRET not in api.objects  # failing, retrying
        assert checks == []  # a failed pass is not a completed check
        del api.fail[("GET", SECRET)]
        for _ in range(50):
            if checks:  # a completed pass: the Secret and the caBundle written
                break
            await asyncio.sleep(0.05)
        assert SECRET in api.objects
        assert config_bundles(api) == [secret_files(api)[CA_CRT]]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
