"""The body deadline of ``/mutate`` cancels only what it started, and only its own wait.

The deadline is a timer that cancels the request's task with a message of its
own (``graceful.webhook.app._read_body``). These tests drive ``_read_body``
with a body that never comes, and check that the deadline becomes a
:class:`BadReview` with the task's cancellation taken back, that any other
cancellation still cancels, and that a body in time leaves no timer behind.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from graceful.webhook.app import _read_body
from graceful.webhook.review import BadReview
from graceful.webhook.settings import WebhookSettings


def _request(messages: list[dict[str, Any]]) -> Request:
    """A POST whose body messages are ``messages``, then nothing, ever."""
    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    scope = {"type": "http", "method": "POST", "path": "/mutate", "headers": []}
    return Request(scope, receive)


SETTINGS = WebhookSettings(body_timeout_seconds=0.05)


def test_a_body_that_never_ends_is_a_bad_review_and_the_task_is_not_left_cancelled() -> None:
    async def scenario() -> int:
        request = _request([{"type": "http.request", "body": b"{", "more_body": True}])
        with pytest.raises(BadReview, match=r"not received within 0\.05s"):
            await _read_body(request, SETTINGS)
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0)  # a cancellation still pending would be raised here
        return task.cancelling()

    assert asyncio.run(scenario()) == 0


def test_another_cancellation_goes_through() -> None:
    async def scenario() -> None:
        request = _request([{"type": "http.request", "body": b"{", "more_body": True}])
        reading = asyncio.create_task(_read_body(request, WebhookSettings()))
        await asyncio.sleep(0.01)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading

    asyncio.run(scenario())


def test_a_body_in_time_leaves_no_timer_behind() -> None:
    """The task lives on past the deadline once the body is read (no late cancellation)."""
    async def scenario() -> bytes:
        request = _request([{"type": "http.request", "body": b"{}", "more_body": True},
                            {"type": "http.request", "body": b"", "more_body": False}])
        body = await _read_body(request, SETTINGS)
        await asyncio.sleep(SETTINGS.body_timeout_seconds * 3)
        return body

    assert asyncio.run(scenario()) == b"{}"
