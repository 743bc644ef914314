from __future__ import annotations

from typing import Any

import pytest

from graceful.core.findings import FindingCode
from graceful.core.timeout_sources import from_annotation, from_container, resolve


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "app:1", **fields}


@pytest.mark.parametrize(("fields", "seconds"), [
    ({"command": ["uvicorn", "app:app", "--timeout-graceful-shutdown", "20"]}, 20),
    ({"args": ["--timeout-graceful-shutdown=25"]}, 25),
    ({"command": ["gunicorn"], "args": ["--graceful-timeout", "120", "app:app"]}, 120),
    ({"args": ["--graceful-timeout=45"]}, 45),
    ({"command": ["hypercorn", "--graceful-timeout", "7", "app:app"]}, 7),
    ({"command": ["sh", "-c", "exec gunicorn --graceful-timeout 90 app:app"]}, 90),
    ({"env": [{"name": "GUNICORN_CMD_ARGS", "value": "--workers 2 --graceful-timeout=60"}]}, 60),
    ({"env": [{"name": "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", "value": "33"}]}, 33),
    # the command line wins over GUNICORN_CMD_ARGS, as in gunicorn itself
    ({"env": [{"name": "GUNICORN_CMD_ARGS", "value": "--graceful-timeout 60"}],
      "args": ["--graceful-timeout", "10"]}, 10),
    # the last occurrence wins, as in argparse and click
    ({"args": ["--graceful-timeout", "1", "--graceful-timeout", "2"]}, 2),
])
def test_flags(fields: dict[str, Any], seconds: int) -> None:
    timeout, findings = from_container(container(**fields))
    assert findings == []
    assert timeout is not None and timeout.seconds == seconds


@pytest.mark.parametrize("fields", [
    {"args": ["--graceful-timeout"]},
    {"args": ["--graceful-timeout", "abc"]},
    {"args": ["--graceful-timeout=-5"]},
    {"args": ["--graceful-timeout", "1.5"]},
    {"args": ["--timeout-graceful-shutdown", "٣٠"]},
    {"args": ["--graceful-timeout", "99999999"]},
    {"env": [{"name": "GUNICORN_CMD_ARGS", "value": "--graceful-timeout='unterminated"}]},
])
def test_unreadable_flags_are_findings(fields: dict[str, Any]) -> None:
    timeout, findings = from_container(container(**fields))
    assert timeout is None
    assert [f.code for f in findings] == [FindingCode.UnreadableTimeout]
    assert findings[0].container == "app"
    resolved, _ = resolve(None, container(**fields), 30)
    assert (resolved.seconds, resolved.source) == (30, "policy")


def test_no_flag_no_finding() -> None:
    assert from_container(container(args=["--timeout", "5", 7, None])) == (None, [])
    assert from_container(container(env="junk", command="junk")) == (None, [])


def test_annotation_wins_and_unreadable_annotation_falls_back() -> None:
    good, _ = from_annotation({"graceful.io/graceful-timeout": "1h"})
    assert good is not None and good.seconds == 3600
    resolved, _ = resolve(good, container(args=["--graceful-timeout", "5"]), 30)
    assert (resolved.seconds, resolved.source) == (3600, "annotation")
    bad, findings = from_annotation({"graceful.io/graceful-timeout": "soon" * 50})
    assert bad is None and findings[0].code is FindingCode.UnreadableTimeout
    assert "'soonsoon" in findings[0].message and len(findings[0].message) < 120
    resolved, _ = resolve(bad, container(args=["--graceful-timeout", "5"]), 30)
    assert (resolved.seconds, resolved.source) == (5, "flag")
