"""Build hook: with ``GRACEFUL_COMPILE=1`` the budget engine is compiled with mypyc.

Everything else about the package (metadata, dependencies, what it holds) is
in ``pyproject.toml``. Without the variable the build is pure Python, as an
editable install for development always is, so an edited module is never
shadowed by a stale compiled one.

Why compile: the webhook answers every create and update of a workload, and
the engine is most of the time it spends of its own (bench/results.md, issue
15). mypyc compiles these modules from the same typed source, unchanged, to
C extensions that evaluate a review in about half the time. The modules that
hold pydantic models (``policy``, ``report``, ``policy_report``) or are not
on the admission path (``stale``, ``rollout``) stay Python. Every module below
is tested compiled as well as pure (``tests/manifests/test_compiled_core.py``).
"""

from __future__ import annotations

import os

from setuptools import setup

#: The modules of ``graceful/core`` a compiled build compiles.
COMPILED_MODULES = (
    "budget", "duration", "evaluate", "findings", "names", "patch", "plan", "podspec",
    "prestop", "proxies", "selection", "timeout_sources",
)


def ext_modules() -> list[object]:
    """The compiled modules when ``GRACEFUL_COMPILE=1``; none otherwise."""
    if os.environ.get("GRACEFUL_COMPILE") != "1":
        return []
    from mypyc.build import mypycify  # noqa: PLC0415 - needed only for a compiled build

    return list(mypycify([f"graceful/core/{name}.py" for name in COMPILED_MODULES],
                         opt_level="3"))


setup(ext_modules=ext_modules())
