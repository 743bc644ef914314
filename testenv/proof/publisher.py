"""Publish the proof's messages: persistent, confirmed by RabbitMQ, each with its own id.

Why confirms and a declared queue: a message counts as published only once
the broker has confirmed it, and a message sent to a queue that does not yet
exist is dropped by the default exchange without an error. So the queue is
declared durable first (the consumer declares the same), each message is
persistent, and the ids returned are exactly the confirmed ones: the ledger
compares against them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from faststream.rabbit import RabbitBroker, RabbitQueue


async def publish_async(url: str, queue: str, ids: Sequence[str],
                        seconds: float | None = None) -> list[str]:
    """Publish one message per id; return the ids RabbitMQ confirmed, in order."""
    body: dict[str, object] = {} if seconds is None else {"seconds": seconds}
    confirmed: list[str] = []
    broker = RabbitBroker(url, logger=None)
    async with broker:
        await broker.declare_queue(RabbitQueue(queue, durable=True))
        for ident in ids:
            await broker.publish(json.dumps({"id": ident, **body}).encode(), queue=queue,
                                 persist=True, message_id=ident,
                                 content_type="application/json")
            confirmed.append(ident)
    return confirmed


def publish(url: str, queue: str, ids: Sequence[str], seconds: float | None = None) -> list[str]:
    """:func:`publish_async` for synchronous callers (the bench, the tests)."""
    return asyncio.run(publish_async(url, queue, ids, seconds))


def message_ids(run: str, count: int) -> list[str]:
    """``count`` ids unique to ``run``, so a message from another run is never counted."""
    return [f"{run}-m{index:04d}" for index in range(count)]
