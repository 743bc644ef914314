"""Every version the local control plane is built from, pinned in one place.

The Go wrapper modules under ``gomod/`` carry no ``go.mod`` of their own: the
builder writes it from these constants, so changing a version here is the only
edit needed to move the test cluster to another release.
"""

from __future__ import annotations

from typing import Final

#: Kubernetes release for kube-apiserver, kube-controller-manager (and kubectl
#: when the machine has none). ``kubectl version`` reports exactly this.
KUBERNETES: Final = "v1.37.2"

#: etcd server release (a v3.6 release, as the Kubernetes release notes require).
ETCD: Final = "v3.6.16"

#: Helm release that renders, lints and installs ``charts/graceful-operator``.
HELM: Final = "v3.22.0"

#: The staging modules (k8s.io/api, k8s.io/apiserver, ...) are published as
#: v0.<minor>.<patch> for Kubernetes v1.<minor>.<patch>.
STAGING: Final = "v0." + KUBERNETES.removeprefix("v1.")

#: Staging modules that k8s.io/kubernetes lists but that are never reached by
#: the binaries we build and are not served by the module proxy.
STAGING_UNPUBLISHED: Final = frozenset({"k8s.io/sample-cli-plugin", "k8s.io/sample-controller"})
