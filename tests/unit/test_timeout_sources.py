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
    {"command": ["gunicorn"], "args": ["--graceful-timeout"]},
    {"command": ["gunicorn", "--graceful-timeout", "abc"]},
    {"command": ["gunicorn"], "args": ["--graceful-timeout=-5"]},
    {"command": ["hypercorn", "--graceful-timeout", "1.5"]},
    {"command": ["uvicorn"], "args": ["--timeout-graceful-shutdown", "٣٠"]},
    {"command": ["gunicorn"], "args": ["--graceful-timeout", "99999999"]},
    {"env": [{"name": "GUNICORN_CMD_ARGS", "value": "--graceful-timeout='unterminated"}]},
    {"env": [{"name": "SPRING_LIFECYCLE_TIMEOUT_PER_SHUTDOWN_PHASE", "value": "soon"}]},
])
def test_unreadable_flags_are_findings(fields: dict[str, Any]) -> None:
    timeout, findings = from_container(container(**fields))
    assert timeout is None
    assert [f.code for f in findings] == [FindingCode.UnreadableTimeout]
    assert findings[0].container == "app"
    resolved, _ = resolve(None, container(**fields), 30)
    assert (resolved.seconds, resolved.source) == (30, "policy")


@pytest.mark.parametrize(("fields", "seconds"), [
    ({"command": ["uvicorn", "app:app"],
      "env": [{"name": "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", "value": "40"}]}, 40),
    ({"command": ["granian", "--interface", "asgi", "--workers-kill-timeout", "15", "app"]}, 15),
    ({"command": ["granian"], "env": [{"name": "GRANIAN_WORKERS_KILL_TIMEOUT", "value": "9"}]},
     9),
    ({"command": ["dramatiq", "tasks", "--worker-shutdown-timeout", "600000"]}, 600),
    ({"command": ["dramatiq", "tasks", "--worker-shutdown-timeout=1500"]}, 2),  # ms, rounded up
    ({"command": ["taskiq", "worker", "broker:b", "--wait-tasks-timeout", "12.5"]}, 13),
    ({"command": ["bundle", "exec", "sidekiq", "-t", "25"]}, 25),
    ({"command": ["sidekiq", "-t25"]}, 25),
    ({"command": ["sidekiq", "--timeout=8"]}, 8),
    ({"command": ["java", "-jar", "app.jar",
                  "--spring.lifecycle.timeout-per-shutdown-phase=45s"]}, 45),
    ({"command": ["java", "-Dspring.lifecycle.timeout-per-shutdown-phase=2m", "-jar", "a"]},
     120),
    ({"command": ["java", "-jar", "a.jar"],
      "env": [{"name": "SPRING_LIFECYCLE_TIMEOUT_PER_SHUTDOWN_PHASE", "value": "PT1M30S"}]}, 90),
    ({"env": [{"name": "SPRING_LIFECYCLE_TIMEOUT_PER_SHUTDOWN_PHASE", "value": "30000"}]}, 30),
    ({"command": ["python", "-u", "-m", "uvicorn", "--timeout-graceful-shutdown", "11"]}, 11),
    ({"command": ["/usr/bin/tini", "--", "env", "A=1", "gunicorn", "--graceful-timeout", "6"]},
     6),
    ({"command": ["sh", "-c", "migrate && exec gunicorn --graceful-timeout 70 app:app"]}, 70),
    ({"command": ["poetry", "run", "hypercorn", "--graceful-timeout", "3", "app"]}, 3),
    ({"args": ["gunicorn", "--graceful-timeout", "21"]}, 21),  # entrypoint passes args on
])
def test_the_flags_of_each_program(fields: dict[str, Any], seconds: int) -> None:
    timeout, findings = from_container(container(**fields))
    assert findings == []
    assert timeout is not None and timeout.seconds == seconds


@pytest.mark.parametrize("fields", [
    {"command": ["/server", "--graceful-timeout=30s"]},  # a Go binary's own duration flag
    {"args": ["--graceful-timeout=30s"]},  # an entrypoint we cannot see: not ours to judge
    {"command": ["sh", "-c", "gunicorn app:app; /server --graceful-timeout=1m"]},
    {"command": ["celery", "worker", "--timeout", "5"]},
    {"command": ["uvicorn", "--graceful-timeout", "5"]},  # gunicorn's flag, not uvicorn's
    {"args": ["-t", "5"]},  # sidekiq's -t is not distinctive enough without the program
])
def test_flags_of_other_programs_are_not_read(fields: dict[str, Any]) -> None:
    assert from_container(container(**fields)) == (None, [])


def test_an_unreadable_command_line_falls_back_to_a_readable_variable() -> None:
    timeout, findings = from_container(container(
        command=["uvicorn", "app:app", "--timeout-graceful-shutdown", "soon"],
        env=[{"name": "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", "value": "44"}]))
    assert timeout is not None and (timeout.seconds, timeout.source) == (44, "env")
    assert [f.code for f in findings] == [FindingCode.UnreadableTimeout]
    assert "soon" in findings[0].message


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
