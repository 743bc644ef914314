"""The local Kubernetes control plane for tests and the demo.

``with running() as cluster:`` gives a started cluster whose ``kubeconfig`` is
an admin kubeconfig; ``graceful cluster up`` starts one that outlives the
command. See ``controlplane.py`` for why the API server is real.
"""

from testenv.build import Binaries, BuildError, ensure_binaries
from testenv.controlplane import ControlPlane, PortInUseError, Ports, running
from testenv.process import ComponentError

__all__ = [
    "Binaries",
    "BuildError",
    "ComponentError",
    "ControlPlane",
    "PortInUseError",
    "Ports",
    "ensure_binaries",
    "running",
]
