from __future__ import annotations

import pytest

from graceful.core.duration import MAX_SECONDS, DurationError, parse_seconds


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0), ("3600", 3600), ("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400),
    ("1h30m15s", 5415), ("2m30s", 150), (" 60 ", 60), ("168h", MAX_SECONDS),
])
def test_accepted(text: str, seconds: int) -> None:
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("text", [
    "", " ", "-5", "-1h", "1.5", "1.5h", "0x10", "1_000", "1e3", "90S",
    "\u0663\u0666\u0660\u0660", "\uff13\uff16\uff10\uff10",  # Arabic-Indic, fullwidth
    "1d", "30m1h", "h", "1hm", "169h", str(MAX_SECONDS + 1), "9" * 40, "1h 30m", "+5",
    "10ms", "1µs", "\u200b60", "60\n0",
])
def test_rejected(text: str) -> None:
    with pytest.raises(DurationError):
        parse_seconds(text)


def test_rejects_non_strings() -> None:
    with pytest.raises(DurationError):
        parse_seconds(60)
