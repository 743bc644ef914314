"""The webhook's HTTP surface: ``POST /mutate``, ``/healthz``, ``/readyz``, ``/metrics``.

The app is a thin adapter, as the architecture asks: ``/mutate`` reads the body
with a bound, parses it (:mod:`graceful.webhook.review`), asks
:func:`graceful.webhook.admit.judge`, counts the outcome and serialises the
answer. It starts nothing: the policy cache is fed by whoever created the app
(:mod:`graceful.webhook.server`), so tests hand it a ready-made cache.

Why ``/readyz`` waits for the cache: a webhook that answers before it knows
the policies would admit opted-in workloads unmutated. Kubernetes keeps an
unready Pod out of the Service, and with ``failurePolicy: Ignore`` the API
server admits unchanged meanwhile; the audit reports what slipped through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from graceful import __version__
from graceful.webhook.admit import Verdict, judge
from graceful.webhook.cache import PolicySource
from graceful.webhook.deps import MetricsDep, Policies, Settings
from graceful.webhook.metrics import CONTENT_TYPE, Metrics
from graceful.webhook.review import (
    AdmissionReview,
    AdmissionReviewResponse,
    BadReview,
    Problem,
    parse_review,
)
from graceful.webhook.settings import WebhookSettings

log = logging.getLogger(__name__)

_BAD_REQUEST: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": Problem, "description": "The body is not a usable AdmissionReview."},
}
#: The request body, documented for OpenAPI clients (the route reads it itself).
_REVIEW_SCHEMA: Final = AdmissionReview.model_json_schema(
    by_alias=True, ref_template="#/components/schemas/{model}")
_REVIEW_DEFS: Final[dict[str, Any]] = _REVIEW_SCHEMA.pop("$defs", {})
_REVIEW_BODY: Final[dict[str, Any]] = {
    "requestBody": {"required": True,
                    "content": {"application/json": {"schema": _REVIEW_SCHEMA}}},
}


class Health(BaseModel):
    """The body of ``/healthz`` and ``/readyz``."""

    status: str


def create_app(policies: PolicySource, *, settings: WebhookSettings | None = None,
               metrics: Metrics | None = None) -> FastAPI:
    """The webhook app, answering from ``policies`` (which the caller keeps current)."""
    app = FastAPI(title="graceful-operator admission webhook", version=__version__,
                  docs_url=None, redoc_url=None)
    app.state.policies = policies
    app.state.settings = settings or WebhookSettings()
    app.state.metrics = metrics or Metrics(policies)
    _add_review_schemas(app)

    @app.post("/mutate", response_model=AdmissionReviewResponse,
              response_model_exclude_none=True, response_model_by_alias=True,
              responses=_BAD_REQUEST, openapi_extra=_REVIEW_BODY,
              summary="Answer an admission.k8s.io/v1 AdmissionReview with a JSON Patch")
    async def mutate(request: Request, policies: Policies, metrics: MetricsDep,
                     settings: Settings) -> Any:
        started = time.perf_counter()
        try:
            body = await _read_body(request, settings)
            review = parse_review(body, limit=settings.max_body_bytes)
        except BadReview as exc:
            metrics.observe("other", "other", "bad_request", time.perf_counter() - started)
            return JSONResponse({"detail": str(exc)}, status_code=400)
        verdict = judge(review, policies.policies_in, policies.invalid_in)
        if verdict.missing is not None:
            verdict = await _judge_with_fetched(review, verdict, policies, settings)
        asked = review.request
        metrics.observe(asked.kind.kind, asked.operation, verdict.outcome,
                        time.perf_counter() - started)
        if verdict.outcome == "mutated":
            log.debug("mutated %s %s/%s", asked.kind.kind, asked.namespace, asked.name)
        answer = AdmissionReviewResponse(response=verdict.response)
        # Serialised here: returning a Response skips FastAPI's re-validation of the model.
        return Response(answer.model_dump_json(by_alias=True, exclude_none=True),
                        media_type="application/json")

    @app.get("/healthz", response_model=Health, summary="The process is alive")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health,
             responses={503: {"model": Health, "description": "The policy cache has not synced"}},
             summary="Ready once the GracefulPolicy cache has synced")
    async def readyz(policies: Policies) -> Any:
        if policies.ready:
            return Health(status="ready")
        return JSONResponse({"status": "waiting for the GracefulPolicy cache to sync"},
                            status_code=503)

    @app.get("/metrics", response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {}},
                              "description": "Prometheus text format"}},
             summary="Prometheus metrics")
    async def prometheus(metrics: MetricsDep) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return app


async def _judge_with_fetched(review: AdmissionReview, verdict: Verdict, policies: PolicySource,
                              settings: WebhookSettings) -> Verdict:
    """Judge again with the named policy read from the API server, if the cache missed it.

    The watch delivers a new policy a moment after it is created, so a policy
    applied in the same ``kubectl apply`` as its workloads can be missing from
    the cache when the first workload arrives. The lookup runs in a thread
    (the client blocks) and is bounded by ``policy_fetch_seconds``, well inside
    the API server's ``timeoutSeconds``; a lookup that fails or times out leaves
    the verdict as it was. The policy found is not put in the cache: the watch
    stays its only writer, so a deletion cannot be undone by a late lookup.
    """
    fetch = getattr(policies, "fetch", None)
    if fetch is None or verdict.missing is None:
        return verdict
    namespace, name = verdict.missing
    try:
        found = await asyncio.wait_for(asyncio.to_thread(fetch, namespace, name),
                                       timeout=settings.policy_fetch_seconds)
    except Exception:  # a slow or failing API server: the cache's answer stands
        log.warning("looking up GracefulPolicy %s/%s failed", namespace, name, exc_info=True)
        return verdict
    if found is None:
        return verdict
    cached = policies.policies_in
    return judge(review, lambda ns: (*cached(ns), found) if ns == namespace else cached(ns))


async def _read_body(request: Request, settings: WebhookSettings) -> bytes:
    """The body, refused with :class:`BadReview` when too large or too slow to arrive.

    The declared length is checked before anything is read, and the stream is
    counted as it arrives, so a 10 MB body never sits in memory.
    """
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadReview(f"Content-Length {declared[:20]!r} is not a number")
        if int(declared) > limit:
            raise BadReview(f"request body of {int(declared)} bytes exceeds the limit of"
                            f" {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(settings.body_timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BadReview(f"request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BadReview(f"request body not received within {settings.body_timeout_seconds:g}s"
                        ) from None
    return b"".join(chunks)


def _add_review_schemas(app: FastAPI) -> None:
    """Put the AdmissionReview sub-schemas where the request body's ``$ref``s point."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = original()
            document.setdefault("components", {}).setdefault("schemas", {}).update(_REVIEW_DEFS)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
