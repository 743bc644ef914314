"""schemathesis against the webhook's own OpenAPI document (``/openapi.json``).

Every operation the document declares (``POST /mutate``, ``GET /healthz``,
``/readyz``, ``/metrics``) is called in-process with schema-valid *and*
schema-violating requests. Checked on every response:

- never a 5xx (``not_a_server_error``);
- the status code, the content type, the headers and the body are the ones
  the document declares (``status_code_conformance``, ``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``);
- a schema-violating request is refused (``negative_data_rejection``).

One check is replaced rather than run as is: schemathesis' *positive data
acceptance* expects every schema-valid body to be answered 2xx. The document
cannot express the review's cross-field rules (``request.object`` is required
for CREATE and UPDATE and must be of ``request.kind``), and the webhook refuses
such a review with a documented 400 that says so. :func:`only_cross_field_refusals`
accepts exactly those 400s and fails on any other refusal of valid data.

``GRACEFUL_SCHEMATHESIS_EXAMPLES`` raises the examples per operation.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis  # in the test extras: a missing package fails loudly, never skips
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from graceful.webhook.app import create_app
from graceful.webhook.cache import PolicyCache

from .conftest import policy

EXAMPLES = int(os.environ.get("GRACEFUL_SCHEMATHESIS_EXAMPLES", "300"))

#: What a schema-valid review may still be refused for: rules the document cannot state.
CROSS_FIELD = ("request.object: required for", "request.object: kind",
               "request.object: apiVersion")

APP = create_app(PolicyCache.of([policy()]))
# The document FastAPI serves at /openapi.json, read without a request: loading it over
# ASGI (``from_asgi``) starts anyio's portal thread at import, and the node tests need a
# session with no thread before they enter their network namespace. Calls still go to
# the app in-process (``schema.app``).
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP
schema.config.generation.update(modes=list(GenerationMode))

SEEN: Counter[tuple[str, str, int]] = Counter()


@schemathesis.check
def only_cross_field_refusals(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                              case: schemathesis.Case[Any]) -> bool | None:
    """A schema-valid request is answered 2xx, or 400 for a documented cross-field rule."""
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return None
    if response.status_code < 400:
        return True
    detail = str(response.json().get("detail", "")) if response.status_code == 400 else ""
    if not detail.startswith(CROSS_FIELD):
        raise AssertionError(f"schema-valid request refused with {response.status_code}:"
                             f" {response.text[:300]}")
    return True


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_openapi_document_holds(case: schemathesis.Case[Any]) -> None:
    response = case.call_and_validate(
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
        additional_checks=[only_cross_field_refusals])
    mode = case.meta.generation.mode.value if case.meta is not None else "explicit"
    SEEN[(f"{case.method} {case.path}", mode, response.status_code)] += 1


@pytest.fixture(scope="module", autouse=True)
def _summary() -> object:
    yield None
    if SEEN:
        total = sum(SEEN.values())
        print(f"\nschemathesis: {total} calls;"
              f" {sorted((*k, v) for k, v in SEEN.items())}")


def test_the_document_declares_every_route() -> None:
    paths = set(APP.openapi()["paths"])
    assert {"/mutate", "/healthz", "/readyz", "/metrics"} <= paths


def test_the_tested_document_is_the_one_served() -> None:
    from fastapi.testclient import TestClient  # noqa: PLC0415

    with TestClient(APP) as client:
        assert client.get("/openapi.json").json() == APP.openapi()
