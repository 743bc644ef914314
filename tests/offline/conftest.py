"""Helpers for the offline CLI tests: run a subcommand in-process, capture its output."""

from __future__ import annotations

import argparse
import io
import textwrap
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def invoke(module: ModuleType, *argv: str, stdin: str | None = None,
           monkeypatch: pytest.MonkeyPatch | None = None) -> Outcome:
    parser = argparse.ArgumentParser(prog="graceful")
    module.add_arguments(parser)
    args = parser.parse_args(list(argv))
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = module.run(args)
    return Outcome(code, out.getvalue(), err.getvalue())


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a dedented YAML text into tmp_path/NAME and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return _write


POLICY = """\
apiVersion: graceful.io/v1alpha1
kind: GracefulPolicy
metadata: {name: apps}
spec:
  gracefulTimeoutSeconds: 30
  drain: {preStopSleepSeconds: 5, safetyMarginSeconds: 5, maxGracePeriodSeconds: 600}
"""


def deployment(name: str = "api", *, annotations: dict[str, str] | None = None,
               grace: int | None = None, pre_stop: int | None = None,
               labels: dict[str, str] | None = None, namespace: str | None = None) -> str:
    """A Deployment as YAML text, with just the fields the budget reads."""
    container: dict[str, object] = {"name": "app", "image": "example/app:1"}
    if pre_stop is not None:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": pre_stop}}}
    pod: dict[str, object] = {"containers": [container]}
    if grace is not None:
        pod["terminationGracePeriodSeconds"] = grace
    meta: dict[str, object] = {"name": name, "labels": labels or {"app": name}}
    if annotations:
        meta["annotations"] = annotations
    if namespace:
        meta["namespace"] = namespace
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
           "spec": {"selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}}
    return yaml.safe_dump(obj, sort_keys=False)


Writer = Callable[[str, str], Path]
