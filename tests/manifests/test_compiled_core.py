"""The budget engine compiled with mypyc behaves as the Python one.

``setup.py`` compiles ``graceful/core``'s engine when ``GRACEFUL_COMPILE=1``.
mypyc checks annotated types at run time where Python does not: a function
typed ``str`` that is handed an ``int`` raises TypeError before its own check
can turn that into a clear error. So the tests that exercise the engine (the
core's unit and property tests, the webhook's admission, fuzzing and
hostile-input tests, the offline tools) run here against the compiled build,
in a separate process that imports it instead of the clone's sources.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from testenv.compiled import compiled_tree, environment

ROOT = Path(__file__).resolve().parents[2]
#: Where the engine is exercised; run against the compiled modules.
ENGINE_TESTS = ("tests/unit", "tests/offline", "tests/webhook/test_admit.py",
                "tests/webhook/test_cases.py", "tests/webhook/test_fuzz.py",
                "tests/webhook/test_hostile_annotations.py", "tests/webhook/test_review.py")


def _compiled_modules() -> tuple[str, ...]:
    """``COMPILED_MODULES`` as setup.py writes it (setup.py itself is not imported: it builds)."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "COMPILED_MODULES" for t in targets):
                assert node.value is not None
                return tuple(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no COMPILED_MODULES")


@pytest.fixture(scope="module")
def tree() -> Path:
    return compiled_tree(ROOT)


def _run(tree: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    # -P: the working directory (the clone, with its own graceful/) is not put on sys.path
    return subprocess.run([sys.executable, "-P", *argv], cwd=ROOT, env=environment(tree, ROOT),
                          capture_output=True, text=True, check=False)


def test_the_compiled_build_compiles_every_listed_module_and_nothing_else(tree: Path) -> None:
    modules = _compiled_modules()
    assert "evaluate" in modules and "patch" in modules
    core = tree / "graceful" / "core"
    compiled = {path.name.split(".")[0] for path in core.glob("*.so")}
    assert compiled == set(modules)
    shown = _run(tree, "-c", "import sys, graceful.core.evaluate as _;"
                 " print(sys.modules['graceful.core.evaluate'].__file__)")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().startswith(str(core)) and shown.stdout.strip().endswith(".so")


def test_the_engine_tests_pass_against_the_compiled_build(tree: Path) -> None:
    # importlib mode: pytest does not put the clone's root first on sys.path either
    ran = _run(tree, "-m", "pytest", "--import-mode=importlib", "-q", "-p", "no:cacheprovider",
               "-x", *ENGINE_TESTS)
    tail = "\n".join((ran.stdout + ran.stderr).splitlines()[-25:])
    assert ran.returncode == 0, tail
    assert " passed" in tail and " failed" not in tail
