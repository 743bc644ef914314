"""The wheel (and so the image) holds the product only.

Why: the local cluster, its Go wrapper sources, the demo and the manifest
generator are development tooling (``testenv/``); a cluster never runs them,
and shipping them would let product code start depending on them.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_holds_the_product_and_no_development_tooling(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = tmp_path.glob("graceful_operator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("graceful_operator-")}
    assert top_level == {"graceful"}
    for required in ("graceful/webhook/app.py", "graceful/operator/main.py",
                     "graceful/offline/audit_cli.py", "graceful/offline/explain_cli.py",
                     "graceful/live/client.py",
                     "graceful/core/evaluate.py", "graceful/py.typed"):
        assert required in names
    assert not [n for n in names if n.endswith(".go") or "testenv" in n or "demo" in n]
