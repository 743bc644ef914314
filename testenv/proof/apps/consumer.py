"""The proof's message consumer: FastStream on RabbitMQ, slow handlers, a durable journal.

Written as a user writes one: ``graceful_timeout`` is set in code, where no
Kubernetes tool can read it, so the only way the policy learns G is the
``graceful.io/graceful-timeout`` annotation on the Deployment. The
``PROOF_*`` variables only let one image serve the short e2e durations and
the longer bench ones; the webhook reads none of them.

Journal events (see ``journal.py``): ``started``; per message ``start``
(with RabbitMQ's ``redelivered`` flag), ``finish`` and ``ack`` (recorded
right after FastStream's own ack returns, whatever the ack policy);
``sigterm`` when the signal arrives, ``drained`` once FastStream has stopped,
``exit`` as the process ends.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
from typing import Any

from faststream import FastStream
from faststream.middlewares import AckPolicy, BaseMiddleware
from faststream.rabbit import Channel, RabbitBroker, RabbitMessage, RabbitQueue
from journal import record

HANDLER_SECONDS = float(os.environ.get("PROOF_HANDLER_SECONDS", "40"))
GRACEFUL_TIMEOUT = float(os.environ.get("PROOF_GRACEFUL_TIMEOUT", "50"))
PREFETCH = int(os.environ.get("PROOF_PREFETCH", "2"))
QUEUE = os.environ.get("PROOF_QUEUE", "proof")
URL = os.environ.get("PROOF_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
#: "" is FastStream's default (ack after the handler returns); "ack_first" acks on receipt.
ACK = os.environ.get("PROOF_ACK_POLICY", "")


def _message_id(msg: Any) -> str:
    return str(msg.message_id or msg.correlation_id)


class JournalAcks(BaseMiddleware):
    """Records each ack after RabbitMQ's client has sent it.

    FastStream's acknowledgement middleware is the outermost one, so a user
    middleware cannot wrap it; it calls ``message.ack()`` on the very object
    this middleware sees, so wrapping that method records the moment of the
    ack. With ``ack_first`` FastStream 0.7.8 consumes with ``no_ack=True``
    (RabbitMQ drops the message as it delivers it, and ``prefetch_count`` no
    longer applies), so the ack is the delivery itself.
    """

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        ident = _message_id(msg)
        if ACK == "ack_first":
            # FastStream consumes with no_ack=True: RabbitMQ forgot it at delivery
            record("ack", id=ident, status="no_ack")
            return await call_next(msg)
        original = msg.ack

        async def ack(*args: Any, **kwargs: Any) -> None:
            already = msg.committed is not None
            await original(*args, **kwargs)
            if not already:
                record("ack", id=ident, status="acked")

        msg.ack = ack
        return await call_next(msg)


broker = RabbitBroker(URL, graceful_timeout=GRACEFUL_TIMEOUT, middlewares=[JournalAcks])
app = FastStream(broker)
subscriber_options: dict[str, Any] = {"channel": Channel(prefetch_count=PREFETCH)}
if ACK:
    subscriber_options["ack_policy"] = AckPolicy(ACK)


@broker.subscriber(RabbitQueue(QUEUE, durable=True), **subscriber_options)
async def handle(body: dict[str, Any], message: RabbitMessage) -> None:
    ident = _message_id(message)
    record("start", id=ident, redelivered=bool(message.raw_message.redelivered))
    await asyncio.sleep(float(body.get("seconds", HANDLER_SECONDS)))
    record("finish", id=ident)


@app.after_startup
async def started() -> None:
    # FastStream installed its SIGTERM handler when run() began; chain ours in front
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        record("sigterm")
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    record("started", graceful_timeout=GRACEFUL_TIMEOUT, handler_seconds=HANDLER_SECONDS,
           ack_policy=ACK or "default")


@app.after_shutdown
async def drained() -> None:
    record("drained")


if __name__ == "__main__":
    atexit.register(lambda: record("exit"))
    asyncio.run(app.run())
