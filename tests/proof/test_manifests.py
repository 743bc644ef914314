"""The proof's manifests: the shape the issue asks for, and what the webhook decides for them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from graceful.core.evaluate import evaluate
from graceful.core.policy import GracefulPolicy
from testenv.proof import manifests, versions

ROOT = Path(__file__).resolve().parents[2]


def _objects(mode: manifests.Mode,
             d: manifests.Durations = manifests.SHORT) -> list[dict[str, Any]]:
    return manifests.objects(mode, d, amqp_url="amqp://guest:guest@10.1.0.1:5672/",
                             journal_root="/var/tmp/journal")


def _by_kind(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize("mode", manifests.MODES)
def test_both_deployments_roll_one_at_a_time_with_two_replicas(mode: manifests.Mode) -> None:
    for name in ("consumer", "web"):
        spec = _by_kind(_objects(mode), "Deployment", name)["spec"]
        assert spec["replicas"] == 2
        assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_the_variants_differ_only_by_the_policy_and_the_annotations() -> None:
    plain, with_policy = _objects("plain", manifests.BENCH), _objects("policy", manifests.BENCH)
    assert [o["kind"] for o in with_policy if o["kind"] == "GracefulPolicy"] == ["GracefulPolicy"]
    for name in ("consumer", "web"):
        a = _by_kind(plain, "Deployment", name)
        b = _by_kind(with_policy, "Deployment", name)
        assert "annotations" not in a["metadata"]
        assert b["metadata"]["annotations"]["graceful.io/policy"] == manifests.POLICY_NAME
        # journal directories and queue names are per mode; everything else is equal
        assert a["spec"]["strategy"] == b["spec"]["strategy"]
        assert a["spec"]["template"]["spec"]["containers"][0]["command"] == \
            b["spec"]["template"]["spec"]["containers"][0]["command"]
        assert "terminationGracePeriodSeconds" not in a["spec"]["template"]["spec"]


def _decide(mode: manifests.Mode, name: str, d: manifests.Durations) -> Any:
    objs = _objects(mode, d)
    policies = [GracefulPolicy.from_object(o) for o in objs if o["kind"] == "GracefulPolicy"]
    return evaluate(_by_kind(objs, "Deployment", name), policies)


@pytest.mark.parametrize("d", [manifests.SHORT, manifests.BENCH])
def test_the_consumer_s_g_reaches_the_policy_only_through_the_annotation(
        d: manifests.Durations) -> None:
    decision = _decide("policy", "consumer", d)
    assert decision.plan is not None
    plan = decision.plan.container("consumer")
    assert plan is not None
    assert (plan.timeout.seconds, plan.timeout.source) == (d.graceful_timeout, "annotation")
    assert decision.plan.grace_period_seconds == max(d.pre_stop + d.graceful_timeout + d.margin,
                                                     d.grace or 30)
    # the code's graceful_timeout is longer than the handlers, so a drain within T finishes them
    assert d.graceful_timeout > d.handler


@pytest.mark.parametrize("d", [manifests.SHORT, manifests.BENCH])
def test_the_web_service_s_g_is_read_from_uvicorn_s_flag(d: manifests.Durations) -> None:
    decision = _decide("policy", "web", d)
    assert decision.plan is not None
    plan = decision.plan.container("web")
    assert plan is not None
    assert (plan.timeout.seconds, plan.timeout.source) == (d.http_graceful_timeout, "flag")
    assert plan.timeout.detail == "uvicorn --timeout-graceful-shutdown"
    assert decision.plan.grace_period_seconds == max(
        d.pre_stop + d.http_graceful_timeout + d.margin, d.grace or 30)


@pytest.mark.parametrize("d", [manifests.SHORT, manifests.BENCH])
def test_the_plain_consumer_is_killed_before_its_handlers_end(d: manifests.Durations) -> None:
    assert not _decide("plain", "consumer", d).opted_in
    grace = 30 if d.grace is None else d.grace
    assert grace < d.handler < d.graceful_timeout


def test_the_config_map_carries_the_apps_as_they_are_in_the_repository() -> None:
    data = _by_kind(_objects("plain"), "ConfigMap", "proof-apps")["data"]
    assert set(data) == set(manifests.APP_FILES)
    assert data["consumer.py"] == (manifests.APPS / "consumer.py").read_text()


def test_the_dev_venv_pins_the_same_faststream_as_the_image() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [p for p in project["project"]["optional-dependencies"]["test"]
            if re.match(r"faststream\b", p)]
    assert pins == [f"faststream[rabbit]=={versions.FASTSTREAM}"]
    assert f"faststream[rabbit]=={versions.FASTSTREAM}" in versions.PACKAGES
