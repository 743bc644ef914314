"""The package with its budget engine compiled by mypyc, built once per source tree.

``setup.py`` compiles ``graceful/core``'s engine when ``GRACEFUL_COMPILE=1``.
This builds that wheel from a copy of the package's sources (so the clone
never holds compiled modules beside the ``.py`` files it is edited in) and
unpacks it under ``${XDG_CACHE_HOME:-~/.cache}/graceful/compiled/KEY``, where
KEY follows the sources, the build files, Python and mypy. Put the returned
directory first on ``PYTHONPATH`` and run Python with ``-P`` (so that a
clone's own ``graceful/`` in the working directory does not win) to run the
compiled build: ``tests/manifests/test_compiled_core.py`` runs the core's
tests that way, and ``bench.webhook_alone --compiled`` measures it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from testenv.build import cache_root
from testenv.filelock import exclusive

#: What the build reads besides ``graceful/``.
BUILD_FILES = ("setup.py", "pyproject.toml", "README.md")


class CompileError(RuntimeError):
    """The compiled build failed; the message ends with the build's own output."""


def _key(repo_root: Path) -> str:
    from mypy.version import __version__ as mypy_version  # noqa: PLC0415

    digest = hashlib.sha256(f"{sys.version}\0{mypy_version}\0".encode())
    sources = sorted((repo_root / "graceful").rglob("*.py"))
    for path in [*(repo_root / name for name in BUILD_FILES), *sources]:
        digest.update(str(path.relative_to(repo_root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def compiled_tree(repo_root: Path, progress: Callable[[str], None] = print) -> Path:
    """A directory holding the ``graceful`` package with the compiled modules beside it."""
    root = cache_root() / "compiled"
    root.mkdir(parents=True, exist_ok=True)
    target = root / _key(repo_root)
    with exclusive(root / ".lock"):
        if (target / ".complete").exists():
            return target
        progress(f"compiling graceful/core with mypyc -> {target} (a minute or two)")
        with tempfile.TemporaryDirectory(prefix="graceful-compile-") as scratch:
            source = Path(scratch) / "src"
            source.mkdir()
            for name in BUILD_FILES:
                shutil.copy2(repo_root / name, source / name)
            shutil.copytree(repo_root / "graceful", source / "graceful",
                            ignore=shutil.ignore_patterns("__pycache__", "*.so"))
            wheels = Path(scratch) / "wheels"
            built = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "-q", "--wheel-dir", str(wheels), str(source)],
                env={**os.environ, "GRACEFUL_COMPILE": "1"}, capture_output=True, text=True,
                check=False)
            if built.returncode != 0:
                tail = "\n".join((built.stdout + built.stderr).splitlines()[-30:])
                raise CompileError(f"the compiled build failed:\n{tail}")
            (wheel,) = wheels.glob("graceful_operator-*.whl")
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(partial)
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
            (target / ".complete").write_text(wheel.name + "\n")
        _prune(root, keep=target)
    return target


#: Compiled trees kept (each a few MB): one per recent source tree, for a few worktrees.
KEEP = 4


def _prune(root: Path, keep: Path) -> None:
    """Remove all but the ``KEEP`` most recently built trees (``keep`` always stays)."""
    built = sorted((p for p in root.iterdir() if p.is_dir() and p != keep),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    for old in built[KEEP - 1:]:
        shutil.rmtree(old, ignore_errors=True)


def environment(tree: Path, repo_root: Path) -> dict[str, str]:
    """The environment that runs ``tree``'s package, with the clone's other packages."""
    path = os.pathsep.join(p for p in (str(tree), str(repo_root),
                                       os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}
