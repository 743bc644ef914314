"""Fuzzed patches still give objects the API server accepts (``--dry-run=server``).

``tests/webhook/test_fuzz.py`` proves in-process that every patch applies and is
idempotent. What it cannot prove is that the result is still a valid workload
for Kubernetes: a preStop ``sleep`` of a negative length, a grace period that
overflows int64, or a probe period of 0 would apply cleanly with ``jsonpatch``
and then be refused by the API server (or, worse, break a later update). Here
the same generated workloads are judged by the webhook's code, and every one
the API server accepts *as sent* must still be accepted *as patched*, checked
with ``kubectl apply --dry-run=server`` (schema, strict field validation and the
workload validations of the real kube-apiserver, nothing stored), on a sample
of ``SAMPLE`` of them.

``GRACEFUL_FUZZ_DRY_RUN_EXAMPLES`` raises the number of generated workloads
(each a hypothesis example; only the patched ones are sent).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings

from graceful.webhook.admit import judge
from graceful.webhook.review import MAX_BODY_BYTES, parse_review
from tests.conftest import Kubectl
from tests.webhook.conftest import review_dict
from tests.webhook.test_fuzz import LOOKUP, workloads

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("GRACEFUL_FUZZ_DRY_RUN_EXAMPLES", "1500"))
#: How many patched workloads (that the API server accepts as sent) are checked.
SAMPLE = int(os.environ.get("GRACEFUL_FUZZ_DRY_RUN_SAMPLE", "50"))
#: Fewer than this proves nothing: the generator would need fixing.
AT_LEAST = 20


def _generate() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(object as sent, object as patched) for every generated workload that got a patch."""
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(workloads())
    def collect(obj: dict[str, Any]) -> None:
        if not isinstance(obj.get("metadata"), dict):
            return
        body = json.dumps(review_dict(obj)).encode()
        if len(body) > MAX_BODY_BYTES:  # refused with a 400 before any patch (test_review)
            return
        review = parse_review(body)
        response = judge(review, LOOKUP).response
        if response.patch is None:
            return
        ops = json.loads(base64.b64decode(response.patch))
        pairs.append((copy.deepcopy(obj), jsonpatch.apply_patch(copy.deepcopy(obj), ops)))

    collect()
    return pairs


def _placed(obj: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
    """``obj`` named ``name`` in ``namespace``, its labels and selector made consistent.

    The fuzz strategy does not care whether a selector matches its template, nor
    gives a readiness probe a handler (the webhook reads neither); the API server
    does, and would refuse for that alone. Both are added to the object as sent
    and as patched alike.
    """
    placed = copy.deepcopy(obj)
    placed["metadata"].update(name=name, namespace=namespace, labels={"app": name})
    spec = placed.get("spec")
    if placed["kind"] != "Pod" and isinstance(spec, dict):
        spec["selector"] = {"matchLabels": {"app": name}}
        if isinstance(spec.get("template"), dict):
            spec["template"]["metadata"] = {"labels": {"app": name}}
            spec = spec["template"].get("spec")
    for section in ("containers", "initContainers"):
        containers = spec.get(section) if isinstance(spec, dict) else None
        for container in containers if isinstance(containers, list) else []:
            probe = container.get("readinessProbe") if isinstance(container, dict) else None
            if isinstance(probe, dict):  # the strategy sets the timing, not the handler
                probe.setdefault("tcpSocket", {"port": 8080})
    return placed


def _accepted(kubectl: Kubectl, obj: dict[str, Any]) -> tuple[bool, str]:
    """Whether ``kubectl apply --dry-run=server`` accepts ``obj``, and what it said."""
    out = kubectl("apply", "--dry-run=server", "-o", "name", "-f", "-", input=json.dumps(obj),
                  check=False, timeout=120)
    return out.returncode == 0, out.stderr.strip()


def _reason(said: str) -> str:
    """The first field the API server (or kubectl's schema check) complained about."""
    found = re.search(r"(spec[\w.\[\]]*|metadata[\w.\[\]]*)", said)
    return re.sub(r"\[\d+\]", "[]", found[1]) if found else said[:60]


def test_patched_fuzz_workloads_still_validate(kubectl: Kubectl, namespace: str) -> None:
    pairs = _generate()
    valid: list[int] = []
    refused: list[str] = []
    why: Counter[str] = Counter()
    with ThreadPoolExecutor(4) as pool:
        batch = 0
        while len(valid) < SAMPLE and batch * 40 < len(pairs):
            chosen = range(batch * 40, min((batch + 1) * 40, len(pairs)))
            sent = pool.map(lambda i: _accepted(kubectl, _placed(
                pairs[i][0], f"fuzz-{i}", namespace)), chosen)
            for i, (ok, said) in zip(chosen, sent, strict=True):
                if ok:
                    valid.append(i)
                else:
                    why[_reason(said)] += 1
            batch += 1
        valid = valid[:SAMPLE]
        results = pool.map(lambda i: _accepted(kubectl, _placed(
            pairs[i][1], f"fuzz-{i}", namespace)), valid)
        for i, (ok, said) in zip(valid, results, strict=True):
            if not ok:
                refused.append(f"fuzz-{i}: {said}\n  sent:    {json.dumps(pairs[i][0])[:400]}"
                               f"\n  patched: {json.dumps(pairs[i][1])[:400]}")
    tried = min(batch * 40, len(pairs))
    print(f"\n{EXAMPLES} generated workloads, {len(pairs)} got a patch; of {tried} sent,"
          f" the API server accepted {len(valid)} as sent, and"
          f" {len(valid) - len(refused)} of those as patched")
    print(f"why the others were refused as sent: {why.most_common(8)}")
    assert not refused, f"{len(refused)} patched workloads refused:\n" + "\n".join(refused[:5])
    assert len(valid) >= AT_LEAST, "too few valid workloads to prove anything"
