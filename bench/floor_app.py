"""The webhook's floor: FastAPI as ``graceful webhook`` configures it, deciding nothing.

The baseline (:mod:`bench.baseline_app`) is the ceiling for any Python webhook
on this server; this app is the ceiling for one that keeps FastAPI, as the
webhook does. It is the webhook's own :func:`graceful.webhook.app.bare_app`
with one :class:`graceful.webhook.app.DirectRoute` at ``/mutate`` (the raw
request in, a raw response out), doing exactly what the baseline does: read
the body, parse it, answer ``allowed: true`` with the same bytes. So

- floor minus baseline is what the framework costs a request, and
- graceful minus floor is what the webhook's own work costs (the envelope's
  validation, the policy lookup, the budget engine, the patch, the metrics).

A target that the floor itself misses cannot be met by changing our code
while FastAPI stays the framework.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute

from bench.baseline_app import read_review
from graceful.webhook import app as webhook_app


async def mutate(request: Request) -> Response:
    """Parse the review and allow it, as the baseline does, inside FastAPI."""
    review = await read_review(request.receive)
    answer = json.dumps({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": True},
    }).encode()
    return Response(answer, media_type="application/json")


def create_floor_app() -> FastAPI:
    """The webhook's FastAPI application with a ``/mutate`` route that decides nothing."""
    # An older tree measured for comparison (bench/README.md) may predate either helper.
    bare = getattr(webhook_app, "bare_app", lambda: FastAPI(docs_url=None, redoc_url=None))
    app: FastAPI = bare()
    route: type[APIRoute] = getattr(webhook_app, "DirectRoute", APIRoute)
    app.router.add_api_route("/mutate", mutate, methods=["POST"], route_class_override=route)
    return app


app = create_floor_app()
