"""The reference webhook of ``bench.through_apiserver``: graceful's answer, without graceful's work.

It answers every review with one fixed response -- the patch and warnings that
``graceful webhook`` gave the benchmark's first Deployment -- with only the
review's uid put in. The API server therefore does exactly the same work for
both (encode the review, call over TLS, decode the answer, apply the JSON
Patch, decode the patched object), while the reference itself only parses the
review. Through the API server, what the reference adds over no webhook is the
price of any webhook that gives this answer; what graceful adds over the
reference is the price of deciding it.

Every benchmark Deployment has the same shape (containers 0-2, no lifecycle),
so the one patch applies to each of them.

Served by :class:`graceful.webhook.server.WebhookServer` with the same TLS as
the product: ``python -m bench.reference_webhook --cert C --key K --answer
FILE --port-file FILE``, where ``--answer`` holds the ``response`` object of an
AdmissionReview.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from bench.baseline_app import read_review

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]

#: Appended to the answer's first warning, so that a dry run tells which webhook answered.
MARK = " (reference)"


def make_app(answer: dict[str, Any]) -> ASGIApp:
    """An ASGI app answering every review with ``answer`` (a review's ``response``) and its uid."""
    fixed = dict(answer)
    fixed["warnings"] = [f"{warning}{MARK}" if index == 0 else warning
                         for index, warning in enumerate(fixed.get("warnings") or ["reference"])]

    async def app(scope: Scope, receive: Callable[[], Awaitable[Message]],
                  send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":  # a readiness probe
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        review = await read_review(receive)
        response = json.dumps({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {**fixed, "uid": review["request"]["uid"]},
        }).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(response)).encode()),
                                (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": response})

    return app


def main(argv: list[str] | None = None) -> int:
    from graceful.webhook.server import WebhookServer, bind  # noqa: PLC0415
    from graceful.webhook.tls import ReloadingCertificate  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--answer", type=Path, required=True,
                        help="a JSON file holding an AdmissionReview's response object")
    parser.add_argument("--port-file", type=Path, required=True,
                        help="where to write the port chosen")
    args = parser.parse_args(argv)
    app = make_app(json.loads(args.answer.read_text()))
    server = WebhookServer(app, ReloadingCertificate(args.cert, args.key),  # type: ignore[arg-type]
                           bind("127.0.0.1", 0))
    args.port_file.write_text(str(server.address[1]))
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
