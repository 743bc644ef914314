"""The FastAPI dependencies of the webhook, as ``Annotated`` aliases in one place.

Routes declare what they need (``policies: Policies``) and tests swap any of
it with ``app.dependency_overrides[get_policies] = ...``, as in the FastAPI
full-stack template.

Why ``async def`` of the request alone, although nothing is awaited: FastAPI
runs a plain ``def`` dependency in its thread pool (three thread hand-offs per
``/mutate``, as costly as the admission decision), and
:class:`graceful.webhook.app.DirectRoute` calls dependencies of that shape
directly, without FastAPI's per-request dependency solving.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from graceful.webhook.cache import PolicySource
from graceful.webhook.metrics import Metrics
from graceful.webhook.settings import WebhookSettings


async def get_policies(request: Request) -> PolicySource:
    """The policy cache the app was created with."""
    return cast(PolicySource, request.app.state.policies)


async def get_metrics(request: Request) -> Metrics:
    """The app's metrics."""
    return cast(Metrics, request.app.state.metrics)


async def get_settings(request: Request) -> WebhookSettings:
    """The app's settings."""
    return cast(WebhookSettings, request.app.state.settings)


Policies = Annotated[PolicySource, Depends(get_policies)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
Settings = Annotated[WebhookSettings, Depends(get_settings)]
