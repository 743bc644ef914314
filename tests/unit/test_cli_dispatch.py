"""`graceful cluster` and `graceful demo` outside a clone say where they run."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from graceful import cli


def test_development_subcommand_without_testenv_names_the_clone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.import_module

    def without_testenv(name: str, package: str | None = None) -> ModuleType:
        if name.split(".", maxsplit=1)[0] == "testenv":
            raise ModuleNotFoundError(f"No module named {name!r}", name="testenv")
        return real(name, package)

    monkeypatch.setattr(cli.importlib, "import_module", without_testenv)
    assert cli.main(["cluster", "up"]) == 2
    err = capsys.readouterr().err
    assert "development tooling" in err and "./scripts/bootstrap" in err


def test_product_subcommand_import_error_is_reported_plainly() -> None:
    exc = ModuleNotFoundError("No module named 'kopf'", name="kopf")
    assert cli._unavailable("operator", "graceful.operator.cli", exc) == (
        "operator is unavailable: No module named 'kopf'"
    )
