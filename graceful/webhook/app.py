"""The webhook's HTTP surface: ``POST /mutate``, ``/healthz``, ``/readyz``, ``/metrics``.

The app is a thin adapter, as the architecture asks: ``/mutate`` reads the body
with a bound, parses it (:mod:`graceful.webhook.review`), asks
:func:`graceful.webhook.admit.judge`, counts the outcome and serialises the
answer. It starts nothing: the policy cache is fed by whoever created the app
(:mod:`graceful.webhook.server`), so tests hand it a ready-made cache.

Why ``/mutate`` is a :class:`DirectRoute`: the API server waits for this answer
on every create and update, and FastAPI's per-request machinery (solving the
dependency graph, validating and serialising through the response model) cost
more than the admission decision itself. The route takes the raw ``Request``
and returns a raw ``Response``; it stays a FastAPI route, documented in the
OpenAPI schema with its response model, and its dependencies stay overridable.

Why ``/readyz`` waits for the cache: a webhook that answers before it knows
the policies would admit opted-in workloads unmutated. Kubernetes keeps an
unready Pod out of the Service, and with ``failurePolicy: Ignore`` the API
server admits unchanged meanwhile; the audit reports what slipped through.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
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
    render_answer,
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


class DirectRoute(APIRoute):
    """A FastAPI route whose endpoint takes the ``Request`` and returns a ``Response`` itself.

    FastAPI's own handler solves the endpoint's dependency graph on every
    request (about as costly as the admission decision, bench/results.md);
    this route calls the endpoint's dependencies -- each an ``async def`` of
    the request alone, checked when the route is built -- and then the
    endpoint, directly. While any dependency override is set (tests), FastAPI's
    own handler runs instead, so overrides behave as on every other route.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        solved = super().get_route_handler()
        endpoint = self.endpoint
        dependencies = _request_dependencies(self)
        provider = self.dependency_overrides_provider

        async def handler(request: Request) -> Response:
            if provider is not None and provider.dependency_overrides:
                return await solved(request)
            values = {name: await call(request) for name, call in dependencies}
            response: Response = await endpoint(request, **values)
            return response

        return handler


def _request_dependencies(route: APIRoute
                          ) -> list[tuple[str, Callable[[Request], Awaitable[Any]]]]:
    """``(parameter, dependency)`` for each dependency of ``route``'s endpoint.

    Read from the dependency graph FastAPI built for the route. Raises
    TypeError at start-up for anything :class:`DirectRoute` cannot call
    directly: an endpoint parameter other than the request and such
    dependencies, or a dependency that is not an ``async def`` of the request
    alone.
    """
    def plain(dependant: Any) -> bool:
        return not (dependant.path_params or dependant.query_params or dependant.header_params
                    or dependant.cookie_params or dependant.body_params)

    endpoint = route.dependant
    if not plain(endpoint):
        raise TypeError(f"{route.path}: the endpoint may only take the Request and dependencies")
    found = []
    for dependency in endpoint.dependencies:
        call = dependency.call
        if (dependency.name is None or call is None or not inspect.iscoroutinefunction(call)
                or not plain(dependency) or dependency.dependencies
                or dependency.request_param_name is None
                or len(inspect.signature(call).parameters) != 1):
            raise TypeError(f"{route.path}({dependency.name}): the dependency must be"
                            " an async def of the Request")
        found.append((dependency.name, call))
    return found


def bare_app() -> FastAPI:
    """The FastAPI application the webhook's routes are added to, with none of them yet.

    Kept apart so that ``bench.floor_app`` measures the framework exactly as
    configured here. Nothing here configures OpenTelemetry (metrics are
    Prometheus, ``/metrics``), so FastAPI's per-request check for a configured
    provider is switched off.
    """
    return FastAPI(title="graceful-operator admission webhook", version=__version__,
                   docs_url=None, redoc_url=None,
                   telemetry={"tracing": False, "metrics": False, "logs": False})


def create_app(policies: PolicySource, *, settings: WebhookSettings | None = None,
               metrics: Metrics | None = None) -> FastAPI:
    """The webhook app, answering from ``policies`` (which the caller keeps current)."""
    app = bare_app()
    app.state.policies = policies
    app.state.settings = settings or WebhookSettings()
    app.state.metrics = metrics or Metrics(policies)
    _add_review_schemas(app)

    async def mutate(request: Request, policies: Policies, metrics: MetricsDep,
                     settings: Settings) -> Response:
        started = time.perf_counter()
        try:
            body = await _read_body(request, settings)
            review = parse_review(body, limit=settings.max_body_bytes)
        except BadReview as exc:
            metrics.observe("other", "other", "bad_request", time.perf_counter() - started)
            return JSONResponse({"detail": str(exc)}, status_code=400)
        verdict = judge(review, policies.policies_in, policies.invalid_in,
                        policies.namespace_labels)
        if verdict.missing is not None:
            verdict = await _judge_with_fetched(review, verdict, policies, settings)
        asked = review.request
        content = render_answer(verdict.uid, verdict.patch, verdict.warnings)
        metrics.observe(asked.kind.kind, asked.operation, verdict.outcome,
                        time.perf_counter() - started)
        return Response(content, media_type="application/json")

    app.router.add_api_route(
        "/mutate", mutate, methods=["POST"], response_model=AdmissionReviewResponse,
        response_model_exclude_none=True, response_model_by_alias=True,
        responses=_BAD_REQUEST, openapi_extra=_REVIEW_BODY,
        summary="Answer an admission.k8s.io/v1 AdmissionReview with a JSON Patch",
        route_class_override=DirectRoute)

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
    return judge(review, lambda ns: (*cached(ns), found) if ns == namespace else cached(ns),
                 policies.invalid_in, policies.namespace_labels)


#: The message of the body deadline's cancellation, which tells it from any other.
_BODY_DEADLINE: Final = "graceful: the request body's deadline passed"


async def _read_body(request: Request, settings: WebhookSettings) -> bytes:
    """The body, refused with :class:`BadReview` when too large or too slow to arrive.

    The declared length is checked before anything is read, and the stream is
    counted as it arrives, so a 10 MB body never sits in memory. The ASGI
    messages are read directly (``request.receive``): Starlette's
    ``request.stream()`` is an async generator, which asyncio registers for
    finalisation on every request.

    The deadline is one timer that cancels the task with a message of its own,
    rather than ``asyncio.timeout``, whose context manager cost twice as much
    on every request; the cancellation is taken back (``uncancel``) when it is
    ours, as ``asyncio.timeout`` does, and any other one goes through.
    """
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadReview(f"Content-Length {declared[:20]!r} is not a number")
        if int(declared) > limit:
            raise BadReview(f"request body of {int(declared)} bytes exceeds the limit of"
                            f" {limit} bytes")
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - always run by a task under an ASGI server
        raise RuntimeError("the request body is read outside an asyncio task")
    deadline = asyncio.get_running_loop().call_later(
        settings.body_timeout_seconds, task.cancel, _BODY_DEADLINE)
    try:
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect
                raise BadReview("the client closed the connection before the end of the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BadReview(f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError as exc:
        if exc.args != (_BODY_DEADLINE,):
            raise
        task.uncancel()
        raise BadReview(f"request body not received within {settings.body_timeout_seconds:g}s"
                        ) from None
    finally:
        deadline.cancel()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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
