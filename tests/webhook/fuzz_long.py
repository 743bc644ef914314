"""The long fuzz run: the properties of ``test_fuzz.py`` over many more reviews.

CI runs 10,000 generated reviews per run (``tests/webhook/test_fuzz.py``); this
script runs the same properties, on the same strategies, as long as asked,
without pytest and without hypothesis' example database (every run explores
afresh; ``--seed`` repeats one)::

    .venv/bin/python -m tests.webhook.fuzz_long --examples 200000
    .venv/bin/python -m tests.webhook.fuzz_long --examples 20000 --http 5000 --hostile 50000

Properties (parse + admit, what /mutate does minus HTTP): every body is a 400
with a one-line message or a 200 AdmissionReview for the same uid, allowed;
warnings under 120 characters; every patch applies with ``jsonpatch`` and is
idempotent; no annotation text in a patch; the ceiling holds. ``--http`` also
posts reviews to the FastAPI app (200 or 400, never 500); ``--hostile`` runs the
per-policy annotation properties of ``test_hostile_annotations.py``.

Prints the number of examples, their outcomes and the time; exit code 0 when
every property held, 1 with the shrunk failing example otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.webhook import test_fuzz, test_hostile_annotations

OUTCOMES: Counter[str] = Counter()


def _count(name: str, payload: Any = "") -> None:  # replaces hypothesis.event in test_fuzz
    OUTCOMES[str(name)] += 1


def _settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    phases=[Phase.generate, Phase.shrink], print_blob=True,
                    suppress_health_check=list(HealthCheck))


def _run(label: str, examples: int, test: Callable[[], None]) -> bool:
    OUTCOMES.clear()
    started = time.monotonic()
    try:
        test()
    except Exception as exc:  # hypothesis re-raises the shrunk failure
        print(f"{label}: FAILED after {sum(OUTCOMES.values())} examples"
              f" ({time.monotonic() - started:.0f}s):")
        traceback.print_exception(exc, file=sys.stdout)  # with hypothesis' notes: the example
        return False
    took = time.monotonic() - started
    print(f"{label}: {examples} examples passed in {took:.0f}s"
          f" ({examples / took:.0f}/s); outcomes {dict(OUTCOMES.most_common())}", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.webhook.fuzz_long",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200_000,
                        help="generated reviews for parse+admit (default: %(default)s)")
    parser.add_argument("--http", type=int, default=0,
                        help="generated reviews posted to the app (default: %(default)s)")
    parser.add_argument("--hostile", type=int, default=0,
                        help="generated annotation values (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run")
    args = parser.parse_args(argv)
    setattr(test_fuzz, "event", _count)  # noqa: B010 - count the outcomes test_fuzz reports

    def seeded(test: Any) -> Any:
        return seed(args.seed)(test) if args.seed is not None else test

    ok = True
    if args.examples:
        @seeded
        @_settings(args.examples)
        @given(test_fuzz.bodies())
        def admission(body: bytes) -> None:
            test_fuzz._check(body)

        ok &= _run("parse+admit", args.examples, admission)
    if args.http:
        @seeded
        @_settings(args.http)
        @given(test_fuzz.bodies())
        def http(body: bytes) -> None:
            response = test_fuzz.CLIENT.post("/mutate", content=body)
            _count(str(response.status_code))
            assert response.status_code in (200, 400), response.text
            if response.status_code == 200:
                answer = response.json()["response"]
                assert answer["uid"] == json.loads(body)["request"]["uid"]
                assert answer["allowed"] is True

        ok &= _run("POST /mutate", args.http, http)
    if args.hostile:
        @seeded
        @_settings(args.hostile)
        @given(value=test_hostile_annotations.hostile_text,
               policy_name=st.sampled_from(["sleep", "exec"]))
        def hostile(value: str, policy_name: str) -> None:
            _count(policy_name)
            test_hostile_annotations._check(value, policy_name)

        ok &= _run("hostile annotations", args.hostile, hostile)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
