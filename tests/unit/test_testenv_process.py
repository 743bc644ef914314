"""testenv processes: a component started from a helper thread outlives that thread."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from testenv.process import Component


def test_component_started_from_a_thread_survives_the_thread(tmp_path: Path) -> None:
    # PR_SET_PDEATHSIG fires when the forking *thread* ends: a kube-apiserver
    # restarted from a background thread used to die with it.
    seconds = f"3{uuid.uuid4().int % 1000}"  # a command line unique to this test
    component = Component(name="sleeper", argv=["sleep", seconds], log=tmp_path / "log",
                          marker=seconds)
    thread = threading.Thread(target=component.start)
    thread.start()
    thread.join()
    try:
        time.sleep(0.3)
        assert component.exit_code() is None
    finally:
        component.stop()
    assert component.exit_code() is not None
