"""Build settings of the local control plane, checked without building."""

from __future__ import annotations

from pathlib import Path

from testenv import build, versions

GOMOD = Path(build.__file__).parent / "gomod"


def test_versions_are_pinned_only_in_versions_py() -> None:
    # The wrapper modules carry no go.mod: the builder writes it from versions.py.
    assert sorted(p.name for p in GOMOD.iterdir()) == [
        "etcd", "helm", "kube-apiserver", "kube-controller-manager", "kube-proxy",
        "kube-scheduler", "kubectl", "kubelet",
    ]
    assert not list(GOMOD.rglob("go.mod")) and not list(GOMOD.rglob("go.sum"))
    for main in GOMOD.rglob("main.go"):
        assert "v1." not in main.read_text() and "v3.6" not in main.read_text()
        assert "v3.22" not in main.read_text()


def test_kubernetes_binaries_are_stamped_with_the_release() -> None:
    flags = build.ldflags(build.KUBE_APISERVER)
    assert f"k8s.io/component-base/version.gitVersion={versions.KUBERNETES}" in flags
    assert "k8s.io/component-base/version.gitMinor=37" in flags
    assert "gitVersion" not in build.ldflags(build.ETCD)


def test_staging_version_follows_kubernetes() -> None:
    assert "v0." + versions.KUBERNETES.split(".", 1)[1] == versions.STAGING


def test_cache_is_keyed_by_version_under_xdg_cache(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = build.binary_path(build.KUBE_APISERVER)
    assert path.is_relative_to(tmp_path / "graceful" / "bin")
    assert versions.KUBERNETES in path.parent.name
    assert build.cache_key(build.ETCD) != build.cache_key(build.KUBE_APISERVER)


def test_helm_is_stamped_with_its_release_and_the_clusters_kubernetes() -> None:
    flags = build.ldflags(build.HELM)
    assert f"helm.sh/helm/v3/internal/version.version={versions.HELM}" in flags
    minor = versions.KUBERNETES.split(".")[1]
    assert f"helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={minor}" in flags
    assert f"helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor={minor}" in flags
    assert "component-base" not in flags and not build.HELM.kubernetes
    # upstream's command is a main package: built as it is, not through a wrapper
    assert build.HELM.package == "helm.sh/helm/v3/cmd/helm"
    assert build.cache_key(build.HELM).startswith(f"helm-{versions.HELM}-")
