"""The HTTP surface: /mutate round trip, health, readiness, metrics, OpenAPI."""

from __future__ import annotations

import json
import re
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Request, Response
from fastapi.testclient import TestClient

from graceful.webhook.app import DirectRoute, create_app
from graceful.webhook.cache import PolicyCache
from graceful.webhook.deps import get_policies

from .conftest import NAMESPACE, deployment, opted_in, patched, policy, policy_object, review_dict


def test_mutate_round_trip(client: TestClient) -> None:
    obj = opted_in()
    body = review_dict(obj, uid="abc")
    response = client.post("/mutate", json=body)
    assert response.status_code == 200
    data = response.json()
    assert data["apiVersion"] == "admission.k8s.io/v1"
    assert data["kind"] == "AdmissionReview"
    answer = data["response"]
    assert answer["uid"] == "abc" and answer["allowed"] is True
    assert set(answer) == {"uid", "allowed", "patch", "patchType", "warnings"}
    result = patched(obj, answer)
    assert result["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 70


def test_untouched_answer_has_no_patch_fields(client: TestClient) -> None:
    answer = client.post("/mutate", json=review_dict(deployment(), uid="u")).json()["response"]
    assert answer == {"uid": "u", "allowed": True}


def test_a_workload_naming_an_invalid_policy_is_told_why() -> None:
    cache = PolicyCache()
    cache.replace([policy_object(drain={"preStopSleepSeconds": -1})], "1")
    with TestClient(create_app(cache)) as client:
        answer = client.post("/mutate", json=review_dict(opted_in())).json()["response"]
    assert "patch" not in answer
    (told,) = answer["warnings"]
    assert told.startswith("graceful: policy 'workers' is invalid: spec.drain.preStopSleepSeconds")
    assert "not found" not in told


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_waits_for_the_cache_to_sync() -> None:
    cache = PolicyCache()
    with TestClient(create_app(cache)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "sync" in response.json()["status"]
        assert client.get("/healthz").status_code == 200  # alive all the same
        cache.replace([policy_object()], "10")
        response = client.get("/readyz")
        assert response.status_code == 200 and response.json() == {"status": "ready"}


def test_policies_can_be_overridden_like_any_dependency() -> None:
    app = create_app(PolicyCache())
    app.dependency_overrides[get_policies] = lambda: PolicyCache.of([policy()])
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        answer = client.post("/mutate", json=review_dict(opted_in())).json()["response"]
        assert "patch" in answer


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if found == labels:
            return float(match[3])
    return 0.0


def test_metrics_count_requests_by_kind_operation_and_outcome(client: TestClient) -> None:
    client.post("/mutate", json=review_dict(opted_in()))
    client.post("/mutate", json=review_dict(opted_in(kind="StatefulSet"), operation="UPDATE"))
    client.post("/mutate", json=review_dict(deployment()))
    client.post("/mutate", content=b"nonsense")
    obj = opted_in()
    once = patched(obj, client.post("/mutate", json=review_dict(obj)).json()["response"])
    client.post("/mutate", json=review_dict(once, operation="UPDATE"))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    total = "graceful_webhook_admission_requests_total"
    assert _sample(text, total, kind="Deployment", operation="CREATE", outcome="mutated") == 2
    assert _sample(text, total, kind="StatefulSet", operation="UPDATE", outcome="mutated") == 1
    assert _sample(text, total, kind="Deployment", operation="CREATE", outcome="skipped") == 1
    assert _sample(text, total, kind="Deployment", operation="UPDATE", outcome="unchanged") == 1
    assert _sample(text, total, kind="other", operation="other", outcome="bad_request") == 1
    count = "graceful_webhook_admission_duration_seconds_count"
    assert _sample(text, count, kind="Deployment", outcome="mutated") == 2
    assert _sample(text, "graceful_webhook_policy_cache_ready") == 1
    assert _sample(text, "graceful_webhook_policies") == 1


def test_metric_labels_stay_bounded(client: TestClient) -> None:
    for i in range(20):
        obj = {"apiVersion": "example.com/v1", "kind": f"Kind{i}", "metadata": {"name": "x"}}
        client.post("/mutate", json=review_dict(obj, kind=f"Kind{i}"))
    text = client.get("/metrics").text
    assert "Kind1" not in text
    total = "graceful_webhook_admission_requests_total"
    assert _sample(text, total, kind="other", operation="CREATE", outcome="skipped") == 20


def test_two_apps_in_one_process_have_separate_metrics() -> None:
    first, second = create_app(PolicyCache.of([])), create_app(PolicyCache.of([]))
    with TestClient(first) as a, TestClient(second) as b:
        a.post("/mutate", json=review_dict(deployment()))
        assert "outcome=\"skipped\"" in a.get("/metrics").text
        assert "outcome=\"skipped\"" not in b.get("/metrics").text


def test_openapi_documents_the_review_body_and_the_400(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    mutate = document["paths"]["/mutate"]["post"]
    schema = mutate["requestBody"]["content"]["application/json"]["schema"]
    assert schema["title"] == "AdmissionReview"
    assert "400" in mutate["responses"] and "200" in mutate["responses"]
    refs = re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(document))
    assert set(refs) <= set(document["components"]["schemas"])
    assert "503" in document["paths"]["/readyz"]["get"]["responses"]


def test_wrong_method_is_not_a_500(client: TestClient) -> None:
    assert client.get("/mutate").status_code == 405


def test_a_policy_the_cache_missed_is_read_from_the_api_server() -> None:
    cache = PolicyCache.of([])
    asked: list[tuple[str, str]] = []

    def get(namespace: str, name: str) -> dict[str, object] | None:
        asked.append((namespace, name))
        return policy_object(name) if name == "workers" else None

    cache.getter = get
    with TestClient(create_app(cache)) as client:
        found = client.post("/mutate", json=review_dict(opted_in())).json()["response"]
        obj = opted_in()
        obj["metadata"]["annotations"]["graceful.io/policy"] = "typo"
        missing = client.post("/mutate", json=review_dict(obj)).json()["response"]
        text = client.get("/metrics").text
    assert "patch" in found and "patch" not in missing
    assert asked == [(NAMESPACE, "workers"), (NAMESPACE, "typo")]
    assert len(cache) == 0  # the watch stays the cache's only writer
    total = "graceful_webhook_admission_requests_total"
    assert _sample(text, total, kind="Deployment", operation="CREATE", outcome="mutated") == 1
    # counted apart from "unchanged": a missing policy is worth an alert of its own
    assert _sample(text, total, kind="Deployment", operation="CREATE",
                   outcome="policy_not_found") == 1


async def _path(request: Request) -> str:
    return request.url.path


def _blocking(request: Request) -> str:  # FastAPI would run it in its thread pool
    return "x"


async def _tagged(request: Request, path: Annotated[str, Depends(_path)]) -> Response:
    return Response(path.encode())


async def _blocked(request: Request, value: Annotated[str, Depends(_blocking)]) -> Response:
    return Response(value)


def test_a_direct_route_calls_its_request_dependencies() -> None:
    app = FastAPI()
    app.router.add_api_route("/x", _tagged, route_class_override=DirectRoute)
    with TestClient(app) as client:
        assert client.get("/x").text == "/x"
        app.dependency_overrides[_path] = lambda: "overridden"  # FastAPI's own handler then
        assert client.get("/x").text == "overridden"


def test_a_direct_route_refuses_what_it_cannot_call_at_start_up() -> None:
    app = FastAPI()
    with pytest.raises(TypeError, match="async def of the Request"):
        app.router.add_api_route("/x", _blocked, route_class_override=DirectRoute)
