"""The policy models reject what the API server rejects, naming the same field."""

from __future__ import annotations

import pytest

from graceful.core import GracefulPolicy, PolicyError, PolicySpec
from tests.cases import InvalidPolicy, load_invalid_policies

INVALID = load_invalid_policies()


def test_the_table_is_large_enough() -> None:
    assert len(INVALID) >= 15


@pytest.mark.parametrize("bad", INVALID, ids=[b.name for b in INVALID])
def test_invalid_policy_is_rejected_naming_the_field(bad: InvalidPolicy) -> None:
    with pytest.raises(PolicyError) as error:
        GracefulPolicy.from_object(bad.object())
    message = str(error.value)
    assert f"{bad.field}:" in message
    assert bad.model in message


def test_defaults_fill_an_empty_spec() -> None:
    policy = GracefulPolicy.from_object({"metadata": {"name": "p", "namespace": "n",
                                                      "generation": 4}, "spec": {}})
    assert (policy.name, policy.namespace, policy.generation) == ("p", "n", 4)
    spec = policy.spec
    assert spec.mode == "Enforce" and spec.user_values == "Keep"
    assert spec.drain.pre_stop_action == "Sleep"
    assert spec.default_grace_period() == 40
    assert spec.budget_seconds(3600) == 3610


def test_default_grace_period_is_capped() -> None:
    spec = PolicySpec.model_validate({"gracefulTimeoutSeconds": 60,
                                      "drain": {"maxGracePeriodSeconds": 70}})
    assert spec.default_grace_period() == 70
    assert spec.budget_seconds(3600) == 3610


@pytest.mark.parametrize("obj", [
    [], {"metadata": {}}, {"metadata": {"name": 5}},
    {"kind": "Deployment", "metadata": {"name": "x"}},
    {"apiVersion": "graceful.io/v2", "metadata": {"name": "x"}},
    {"metadata": {"name": "x"}, "spec": "junk"},
    {"metadata": {"name": "x"}, "status": {"matched": -1}},
])
def test_unusable_objects_raise_policy_error(obj: object) -> None:
    with pytest.raises(PolicyError):
        GracefulPolicy.from_object(obj)  # type: ignore[arg-type]


def test_round_trip_through_to_object() -> None:
    policy = GracefulPolicy.from_object({
        "metadata": {"name": "p", "namespace": "n", "labels": {"team": "a"}},
        "spec": {"selector": {"matchLabels": {"app": "w"}}, "readiness": {},
                 "containers": ["app"], "userValues": "Overwrite"}})
    again = GracefulPolicy.from_object(policy.to_object())
    assert again.spec == policy.spec and again.labels == {"team": "a"}


def test_platform_limits_are_bounded_and_the_shortest_cuts_first() -> None:
    spec = PolicySpec.model_validate({"drain": {"platformLimits": [
        {"name": "cluster-autoscaler", "seconds": 600}, {"name": "spot", "seconds": 120}]}})
    limit = spec.drain.shortest_limit()
    assert limit is not None and (limit.name, limit.seconds) == ("spot", 120)
    assert PolicySpec().drain.shortest_limit() is None
    for bad in ({"name": "", "seconds": 1}, {"name": "x", "seconds": 0}, {"name": "x"}):
        try:
            GracefulPolicy.from_object({"metadata": {"name": "p"},
                                        "spec": {"drain": {"platformLimits": [bad]}}})
        except PolicyError as exc:
            assert "spec.drain.platformLimits[0]" in str(exc)
        else:
            raise AssertionError(f"accepted {bad}")
