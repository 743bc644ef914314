"""The proof's workloads on their own, without Kubernetes: what SIGTERM and SIGKILL do to them.

The rollout proof rests on these behaviours of FastStream 0.7.8, uvicorn and
RabbitMQ; checking them here, with a real broker on loopback and the apps as
subprocesses, tells a failing rollout test apart from a changed library.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testenv.proof import rabbitmq
from testenv.proof.accounting import parse_journal, parse_outcomes, tally_messages, tally_requests
from testenv.proof.manifests import APPS
from testenv.proof.publisher import message_ids, publish

pytestmark = pytest.mark.e2e
HANDLER = 3.0


@pytest.fixture(scope="module")
def broker() -> Iterator[rabbitmq.RabbitMQ]:
    with rabbitmq.running() as running:
        yield running


def _consumer(broker: rabbitmq.RabbitMQ, journal: Path, pod: str, queue: str,
              **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(APPS / "consumer.py")],
        env={**os.environ, "PROOF_JOURNAL_DIR": str(journal), "POD_NAME": pod,
             "PROOF_AMQP_URL": broker.url(), "PROOF_QUEUE": queue,
             "PROOF_HANDLER_SECONDS": str(HANDLER), "PROOF_GRACEFUL_TIMEOUT": "10", **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _journal(journal: Path) -> list[str]:
    return [line for f in sorted(journal.glob("*.jsonl")) for line in f.read_text().splitlines()]


def _wait_for(journal: Path, pod: str, event: str, count: int = 1) -> None:
    while sum(1 for e in parse_journal(_journal(journal))
              if e.pod == pod and e.event == event) < count:
        time.sleep(0.05)


def _run(broker: rabbitmq.RabbitMQ, tmp_path: Path, queue: str, sig: signal.Signals,
         **env: str) -> tuple[int, list[str]]:
    """Two messages in one consumer's handlers, ``sig`` to it, a second consumer finishes."""
    ids = message_ids(queue, 4)
    first = _consumer(broker, tmp_path, "old", queue, **env)
    try:
        _wait_for(tmp_path, "old", "started")
        publish(broker.url(), queue, ids)
        _wait_for(tmp_path, "old", "start", 2)
        first.send_signal(sig)
        code = first.wait()
    finally:
        first.kill()
        first.wait()
    second = _consumer(broker, tmp_path, "new", queue)
    try:
        _wait_for(tmp_path, "new", "started")
        deadline_ids = set(ids)
        while True:  # until the queue is empty and nothing is in a handler
            ready, unacked, _ = broker.queue_depth(queue)
            events = parse_journal(_journal(tmp_path))
            running = {e.id for e in events if e.pod == "new" and e.event == "start"} - {
                e.id for e in events if e.pod == "new" and e.event == "finish"}
            if ready == unacked == 0 and not running & deadline_ids:
                break
            time.sleep(0.5)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait()
    return code, ids


def test_sigterm_mid_handler_drains_and_acks(broker: rabbitmq.RabbitMQ, tmp_path: Path) -> None:
    code, ids = _run(broker, tmp_path, "drain", signal.SIGTERM)
    events = parse_journal(_journal(tmp_path))
    tally = tally_messages(ids, events)
    assert code == 0
    assert (tally.lost, tally.duplicated, tally.acked) == (0, 0, 4)
    old = [e.event for e in events if e.pod == "old" and e.id]
    assert old.count("finish") == old.count("ack") == 2  # both handlers ran to the end
    # the two messages prefetched behind them came back flagged, yet ran once
    assert tally.redelivered == 2


def test_sigkill_mid_handler_redelivers(broker: rabbitmq.RabbitMQ, tmp_path: Path) -> None:
    code, ids = _run(broker, tmp_path, "kill", signal.SIGKILL)
    tally = tally_messages(ids, parse_journal(_journal(tmp_path)))
    assert code == -signal.SIGKILL
    assert (tally.lost, tally.duplicated, tally.processed) == (0, 2, 4)


def test_ack_first_and_sigkill_lose_the_messages(broker: rabbitmq.RabbitMQ,
                                                 tmp_path: Path) -> None:
    code, ids = _run(broker, tmp_path, "ackfirst", signal.SIGKILL, PROOF_ACK_POLICY="ack_first")
    tally = tally_messages(ids, parse_journal(_journal(tmp_path)))
    assert code == -signal.SIGKILL
    # no_ack consumers ignore prefetch: the first consumer took all four, and died with them
    assert (tally.lost, tally.duplicated, tally.processed) == (4, 0, 0)


def test_uvicorn_finishes_requests_in_flight_and_refuses_new_ones(tmp_path: Path) -> None:
    port = rabbitmq._free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(APPS), "web:app", "--host",
         "127.0.0.1", "--port", str(port), "--timeout-graceful-shutdown", "5",
         "--log-level", "warning"],
        env={**os.environ, "PROOF_JOURNAL_DIR": str(tmp_path), "POD_NAME": "web"})
    out = tmp_path / "load.jsonl"
    load: subprocess.Popen[bytes] | None = None
    try:
        _wait_for(tmp_path, "web", "started")
        load = subprocess.Popen([sys.executable, "-m", "testenv.proof.loadgen", "--url",
                                 f"http://127.0.0.1:{port}/work?ms=400", "--rate", "20",
                                 "--count", "60", "--out", str(out)])
        while len(out.read_text().splitlines() if out.exists() else []) < 10:
            time.sleep(0.05)
        server.send_signal(signal.SIGTERM)
        server.wait()
        load.wait()
    finally:
        for proc in (server, load):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    sigterm = next(e.t for e in parse_journal(_journal(tmp_path)) if e.event == "sigterm")
    outcomes = parse_outcomes(out.read_text().splitlines())
    # every request started before SIGTERM was answered; after it, connections are refused
    assert all(o.kind == "ok" for o in outcomes if o.t < sigterm - 0.05)
    later = tally_requests(o for o in outcomes if o.t > sigterm + 0.5)
    assert later.sent > 0
    assert later.failed == later.sent
    assert set(later.by_kind) == {"refused"}
