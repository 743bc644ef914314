"""Property-based fuzzing of the webhook: hostile and malformed reviews never break it.

Two levels: the parse+admit path (what /mutate does, minus HTTP) with many
examples, and the HTTP route with fewer. Properties:

- a body is either a 400 with a message or a 200 AdmissionReview for the same uid;
- allowed is always true; warnings are short;
- a patch applies cleanly to the object with ``jsonpatch``, and admitting the
  result again yields no patch (idempotence);
- the grace period never exceeds the policy's ceiling unless the user set it;
- annotation values never reach a command line.

``GRACEFUL_FUZZ_EXAMPLES`` raises the number of examples (the default keeps a CI
run above 10,000 reviews in total).
"""

from __future__ import annotations

import base64
import copy
import json
import os
from typing import Any

import jsonpatch
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from graceful.core import GracefulPolicy
from graceful.webhook.admit import judge
from graceful.webhook.app import create_app
from graceful.webhook.cache import PolicyCache
from graceful.webhook.review import AdmissionReviewResponse, BadReview, parse_review

from .conftest import NAMESPACE, policy_object, review_dict

EXAMPLES = int(os.environ.get("GRACEFUL_FUZZ_EXAMPLES", "10000"))
CEILING = 600

POLICIES = [
    GracefulPolicy.from_object(policy_object("workers", drain={"maxGracePeriodSeconds": CEILING})),
    GracefulPolicy.from_object(policy_object("exec", drain={"preStopAction": "Exec",
                                                            "preStopSleepSeconds": 3})),
    GracefulPolicy.from_object(policy_object("audit", mode="Audit")),
    GracefulPolicy.from_object(policy_object(
        "tuned", readiness={"periodSeconds": 1, "failureThreshold": 2}, userValues="Overwrite",
        selector={"matchLabels": {"tier": "worker"}})),
]
LOOKUP = PolicyCache.of(POLICIES).policies_in

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8)

timeouts = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.sampled_from(["3600", "90s", "15m", "1h", "1.5", "-1", "0", "1e9", "99999999999999999999",
                     "$(reboot)", "; rm -rf /", "`id`", "60 && curl x", "\u0663\u0666\u0660\u0660",
                     "\uff11\uff12", "\x00", "1h30m", "PT1H", "", " 60 ", "inf", "NaN"]),
    st.text(max_size=40),
    st.text(max_size=5).map(lambda t: t * 10_000),
)

commands = st.lists(st.one_of(
    st.sampled_from(["gunicorn", "uvicorn", "faststream", "celery", "hypercorn", "python", "-m",
                     "--graceful-timeout", "--timeout-graceful-shutdown", "--graceful-timeout=30",
                     "--timeout-graceful-shutdown=-5", "app:app", "run", "sh", "-c", "worker"]),
    timeouts,
), max_size=6)

pre_stops = st.one_of(
    st.none(),
    st.none(),
    st.builds(lambda s: {"sleep": {"seconds": s}}, st.integers(-5, 10_000)),
    st.builds(lambda c: {"exec": {"command": c}}, st.lists(st.text(max_size=10), max_size=4)),
    st.just({"exec": {"command": ["sleep", "7"]}}),
    st.just({"httpGet": {"path": "/drain", "port": 8080}}),
    json_values,
)


@st.composite
def containers(draw: st.DrawFn, index: int) -> dict[str, Any]:
    container: dict[str, Any] = {"name": f"c{index}", "image": "registry.example/app:1"}
    if draw(st.booleans()):
        container["command"] = draw(commands)
    if draw(st.booleans()):
        container["args"] = draw(commands)
    pre_stop = draw(pre_stops)
    if pre_stop is not None:
        container["lifecycle"] = {"preStop": pre_stop}
    if draw(st.booleans()):
        container["readinessProbe"] = {
            "periodSeconds": draw(st.integers(1, 100) if draw(st.integers(0, 9))
                                  else st.integers(-1, 0) | json_scalars),
            "failureThreshold": draw(st.integers(1, 100)),
        }
    if draw(st.integers(0, 29)) == 0:  # now and then, garbage anywhere in the container
        container[draw(st.sampled_from(["lifecycle", "command", "env", "name"]))] = draw(
            json_values)
    return container


@st.composite
def workloads(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Deployment", "StatefulSet", "DaemonSet", "Pod"]))
    annotations: dict[str, Any] = {}
    if draw(st.integers(0, 5)):
        annotations["graceful.io/policy"] = draw(
            st.sampled_from(["workers", "workers", "exec", "audit", "tuned", "missing"]))
    if draw(st.booleans()):
        annotations["graceful.io/graceful-timeout"] = draw(timeouts)
    labels = {"tier": "worker"} if draw(st.booleans()) else {}
    count = draw(st.integers(0, 4))
    pod: dict[str, Any] = {"containers": [draw(containers(i)) for i in range(count)]}
    if draw(st.booleans()):
        pod["initContainers"] = [{**draw(containers(9)), "restartPolicy": draw(
            st.sampled_from(["Always", "Never", None]))}]
    grace = draw(st.none() | st.integers(0, 10**6) | st.integers(0, 100) if draw(
        st.integers(0, 9)) else json_scalars)
    if grace is not None:
        pod["terminationGracePeriodSeconds"] = grace
    metadata: dict[str, Any] = {"name": "fuzz", "annotations": annotations, "labels": labels}
    obj: dict[str, Any]
    if kind == "Pod":
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod}
    else:
        obj = {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata,
               "spec": {"selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels}, "spec": pod}}}
    if draw(st.integers(0, 29)) == 0:  # garbage at the top of the object
        obj[draw(st.sampled_from(["metadata", "spec"]))] = draw(json_values)
    return obj


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Mostly well-formed reviews, some damaged envelopes, some raw junk."""
    choice = draw(st.integers(0, 19))
    if choice == 0:
        return draw(st.binary(max_size=200))
    if choice == 1:
        return json.dumps(draw(json_values)).encode()
    obj = draw(workloads())
    data = review_dict(obj, operation=draw(st.sampled_from(
        ["CREATE"] * 5 + ["UPDATE"] * 4 + ["DELETE"])), dry_run=draw(st.booleans()),
        uid=draw(st.text(min_size=1, max_size=40)))
    if choice == 2:  # damage the envelope or the request
        target = data if draw(st.booleans()) else data["request"]
        key = draw(st.sampled_from(sorted(target)))
        target[key] = draw(json_values)
    return json.dumps(data).encode()


def _check(body: bytes) -> None:
    try:
        review = parse_review(body)
    except BadReview as exc:
        assert str(exc) and "\n" not in str(exc)
        event("400")
        return
    verdict = judge(review, LOOKUP)
    event(verdict.outcome)
    response = verdict.response
    assert response.uid == review.request.uid
    assert response.allowed is True
    assert all(len(w) < 120 for w in response.warnings or [])
    AdmissionReviewResponse(response=response).model_dump_json(by_alias=True)  # serialisable
    if response.patch is None:
        assert response.patch_type is None
        return
    obj = review.request.object
    assert obj is not None
    ops = json.loads(base64.b64decode(response.patch))
    result = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
    # idempotence: the patched object needs nothing more
    again = review.model_copy(update={"request": review.request.model_copy(
        update={"object": result, "operation": "UPDATE" if obj["kind"] != "Pod" else "CREATE"})})
    assert judge(again, LOOKUP).response.patch is None, ops
    # annotation values never reach a command line: the only text a patch brings is
    # "sleep" and whole numbers; any other string it carries was already in the spec.
    # (Searching the patch's JSON for the annotation's text instead fails whenever a
    # short value such as "add" or "eep" is part of an op name, a path or "sleep".)
    existing = set(_strings(obj.get("spec")))
    for text in _strings([op.get("value") for op in ops]):
        assert text == "sleep" or (text.isascii() and text.isdigit()) or text in existing, text
    # the ceiling holds, except for a value the user set above it and that is kept
    spec = result["spec"] if obj["kind"] == "Pod" else result["spec"]["template"]["spec"]
    for op in ops:
        if op["path"].endswith("/terminationGracePeriodSeconds"):
            assert spec["terminationGracePeriodSeconds"] <= max(CEILING, 3900)


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value (keys excluded)."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [value] if isinstance(value, str) else []


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bodies())
def test_admission_never_breaks(body: bytes) -> None:
    _check(body)


CLIENT = TestClient(create_app(PolicyCache.of(POLICIES)))


@settings(max_examples=max(EXAMPLES // 20, 100), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bodies())
def test_http_answers_200_or_400(body: bytes) -> None:
    response = CLIENT.post("/mutate", content=body)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["detail"]
        return
    data = response.json()
    assert data["apiVersion"] == "admission.k8s.io/v1" and data["kind"] == "AdmissionReview"
    assert data["response"]["uid"] == json.loads(body)["request"]["uid"]
    assert data["response"]["allowed"] is True


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["add", "eep", '": "', "/spec", "ate"]),
       st.sampled_from(["workers", "exec"]))
def test_a_short_annotation_that_is_part_of_the_patch_text_is_not_a_failure(
        raw: str, name: str) -> None:
    """Values found in the op names, paths or ``sleep`` (the long run hit one)."""
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "w", "annotations": {"graceful.io/policy": name,
                                     "graceful.io/graceful-timeout": raw}},
        "spec": {"selector": {}, "template": {"spec": {"containers": [
            {"name": "app", "image": "x"}]}}}}
    _check(json.dumps(review_dict(obj)).encode())


def test_namespace_of_fuzzed_reviews_is_the_policies_one() -> None:
    assert review_dict({"metadata": {}})["request"]["namespace"] == NAMESPACE
