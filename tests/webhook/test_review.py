"""Bad input: every malformed review is a 400 with a message, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from graceful.webhook.review import MAX_BODY_BYTES, BadReview, parse_review

from .conftest import opted_in, review_dict


def _without(path: str) -> dict[str, Any]:
    data = review_dict(opted_in())
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[part]
    del target[last]
    return data


def _with(path: str, value: Any) -> dict[str, Any]:
    data = review_dict(opted_in())
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[part]
    target[last] = value
    return data


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


BAD: list[tuple[str, bytes, str]] = [
    ("empty body", b"", "empty request body"),
    ("whitespace", b"  \n", "empty request body"),
    ("malformed JSON", b'{"apiVersion": ', "malformed JSON"),
    ("truncated", _json(review_dict(opted_in()))[:-5], "malformed JSON"),
    ("not UTF-8", b'{"a": "\xff\xfe"}', "malformed JSON"),
    ("NaN", b'{"apiVersion": NaN}', "malformed JSON: expected value at line 1 column 16"),
    ("Infinity", b'{"a": -Infinity}', "malformed JSON: invalid number at line 1 column 8"),
    ("UTF-16", '{"a": 1}'.encode("utf-16"), "malformed JSON: expected value at line 1 column 1"),
    ("a lone surrogate", b'{"a": "\\ud800"}', "malformed JSON"),
    ("trailing bytes", b'{"a": 1} {}', "malformed JSON: trailing characters at line 1 column 10"),
    ("too deep", b"[" * 100_000 + b"]" * 100_000, "malformed JSON"),
    ("huge integer", b'{"a": ' + b"9" * 5000 + b"}", "malformed JSON"),
    ("a JSON array", b"[]", "the body is a JSON array"),
    ("a JSON string", b'"AdmissionReview"', "the body is a JSON string"),
    ("not an AdmissionReview", _json({"apiVersion": "v1", "kind": "Pod"}),
     "not an AdmissionReview: kind is 'Pod'"),
    ("no kind", _json(_without("kind")), "not an AdmissionReview: kind is null"),
    ("v1beta1", _json(_with("apiVersion", "admission.k8s.io/v1beta1")),
     "unsupported apiVersion 'admission.k8s.io/v1beta1': expected admission.k8s.io/v1"),
    ("no apiVersion", _json(_without("apiVersion")), "unsupported apiVersion null"),
    ("no request", _json(_without("request")), "request: missing"),
    ("null request", _json(_with("request", None)), "request: missing"),
    ("request not an object", _json(_with("request", [1])), "request: Input should be"),
    ("no uid", _json(_without("request.uid")), "request.uid: Field required"),
    ("empty uid", _json(_with("request.uid", "")), "request.uid: String should have at least"),
    ("uid not a string", _json(_with("request.uid", 42)), "request.uid: Input should be a valid"),
    ("no kind in request", _json(_without("request.kind")), "request.kind: Field required"),
    ("unknown operation", _json(_with("request.operation", "PATCH")), "request.operation"),
    ("object not an object", _json(_with("request.object", "x")),
     "request.object: Input should be a valid dictionary"),
    ("no object on CREATE", _json(_with("request.object", None)),
     "request.object: required for CREATE"),
    ("object of another kind", _json(_with("request.object", {**opted_in(), "kind": "Pod"})),
     "request.object: kind 'Pod' does not match request.kind 'Deployment'"),
    ("object of another group", _json(_with("request.object", {**opted_in(),
                                                                "apiVersion": "v1"})),
     "request.object: apiVersion 'v1' does not match request.kind 'apps/v1'"),
    ("dryRun not a bool", _json(_with("request.dryRun", "maybe")), "request.dryRun"),
]


@pytest.mark.parametrize(("body", "message"), [(b, m) for _, b, m in BAD],
                         ids=[name for name, _, _ in BAD])
def test_parse_says_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(BadReview) as info:
        parse_review(body)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("body", "message"), [(b, m) for _, b, m in BAD],
                         ids=[name for name, _, _ in BAD])
def test_http_answers_400_with_the_message(client: TestClient, body: bytes,
                                           message: str) -> None:
    response = client.post("/mutate", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_oversized_body_is_refused_before_parsing(client: TestClient) -> None:
    body = b" " * (MAX_BODY_BYTES + 1)
    response = client.post("/mutate", content=body)
    assert response.status_code == 400
    assert f"exceeds the limit of {MAX_BODY_BYTES} bytes" in response.json()["detail"]


def test_oversized_streamed_body_without_length_is_refused(client: TestClient) -> None:
    def chunks() -> Any:
        for _ in range(11):  # 11 MiB, no Content-Length (chunked)
            yield b" " * (1024 * 1024)

    response = client.post("/mutate", content=chunks())
    assert response.status_code == 400
    assert "exceeds the limit" in response.json()["detail"]


def test_bad_content_length_is_refused(client: TestClient) -> None:
    response = client.post("/mutate", content=b"{}", headers={"content-length": "-1"})
    assert response.status_code == 400


def test_a_body_just_under_the_limit_is_parsed() -> None:
    data = review_dict(opted_in())
    data["request"]["object"]["metadata"]["annotations"]["pad"] = ""
    size = len(_json(data))
    data["request"]["object"]["metadata"]["annotations"]["pad"] = "x" * (MAX_BODY_BYTES - size)
    body = _json(data)
    assert len(body) == MAX_BODY_BYTES
    assert parse_review(body).request.uid == data["request"]["uid"]


def test_unknown_fields_are_ignored() -> None:
    data = review_dict(opted_in())
    data["request"]["somethingNew"] = {"x": 1}
    data["extra"] = True
    assert parse_review(_json(data)).request.operation == "CREATE"


def test_delete_needs_no_object() -> None:
    data = review_dict(None, operation="DELETE", kind="Deployment")
    assert parse_review(_json(data)).request.object is None


def test_null_dry_run_is_false() -> None:
    assert parse_review(_json(_with("request.dryRun", None))).request.dry_run is False
