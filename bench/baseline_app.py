"""The ceiling for any Python webhook on this server: parse the review, allow, no patch.

Served by the same uvicorn with the same TLS settings as ``graceful webhook``,
so the ratio between the two is the cost of our own work (policy lookup, the
budget engine, the patch), not of HTTP, TLS or JSON.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


async def read_review(receive: Callable[[], Awaitable[Message]]) -> Any:
    """The request body, parsed as JSON (the one thing any webhook must do)."""
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return json.loads(body)


async def app(scope: Scope, receive: Callable[[], Awaitable[Message]],
              send: Callable[[Message], Awaitable[None]]) -> None:
    if scope["type"] != "http":
        return
    review = await read_review(receive)
    response = json.dumps({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": True},
    }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": response})
