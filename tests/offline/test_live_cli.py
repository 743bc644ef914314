"""The live commands without a cluster: KIND/NAME as kubectl reads it, and the errors a user
gets before any object is read (usage, no kubeconfig, unknown context, a dead server)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from graceful.live.client import Client, Forbidden, LiveError, NotFound, default_namespace
from graceful.live.fetch import selector_string
from graceful.live.target import TargetError, parse_target
from graceful.offline import audit_cli, explain_cli
from tests.offline.conftest import invoke


@pytest.mark.parametrize(("text", "kind", "name"), [
    ("deployment/worker", "Deployment", "worker"),
    ("deploy/worker", "Deployment", "worker"),
    ("Deployments/worker", "Deployment", "worker"),
    ("deployment.apps/worker", "Deployment", "worker"),
    ("sts/db-0", "StatefulSet", "db-0"),
    ("ds/agent", "DaemonSet", "agent"),
    ("job/once", "Job", "once"),
    ("cronjobs.batch/nightly", "CronJob", "nightly"),
    ("cj/nightly", "CronJob", "nightly"),
    ("po/web-1", "Pod", "web-1"),
    ("pod/web-1", "Pod", "web-1"),
])
def test_kind_name_as_kubectl_reads_it(text: str, kind: str, name: str) -> None:
    target = parse_target(text)
    assert (target.resource.kind, target.name) == (kind, name)


def test_api_paths() -> None:
    assert parse_target("deploy/w").resource.path("apps", "w") == (
        "/apis/apps/v1/namespaces/apps/deployments/w")
    assert parse_target("po/p").resource.path(None) == "/api/v1/pods"


@pytest.mark.parametrize(("text", "message"), [
    ("worker", "expected KIND/NAME, e.g. deployment/worker"),
    ("deployment/", "expected KIND/NAME"),
    ("/worker", "expected KIND/NAME"),
    ("deployment/a/b", "expected KIND/NAME"),
    ("replicaset/worker", "'replicaset' is not a workload kind graceful reads (one of:"
                          " deployment (deploy), statefulset (sts), daemonset (ds), job (jobs),"
                          " cronjob (cj), pod (po))"),
    ("deployment.batch/worker", "Deployment is in the apps API group, not 'batch'"),
])
def test_bad_kind_name(text: str, message: str) -> None:
    with pytest.raises(TargetError, match=r".*") as caught:
        parse_target(text)
    assert message in str(caught.value)


def test_selector_string() -> None:
    assert selector_string({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "t", "operator": "In", "values": ["x", "y"]},
        {"key": "u", "operator": "NotIn", "values": ["z"]},
        {"key": "v", "operator": "Exists"}, {"key": "w", "operator": "DoesNotExist"}]}) == (
        "a=1,b=2,t in (x,y),u notin (z),v,!w")
    assert selector_string(None) is None
    assert selector_string({"matchExpressions": [{"key": "k", "operator": "Gt"}]}) is None


def kubeconfig(tmp_path: Path, server: str, namespace: str | None = None) -> Path:
    context: dict[str, str] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "here",
        "clusters": [{"name": "c", "cluster": {"server": server,
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "here", "context": context},
                     {"name": "other", "context": {"cluster": "c", "user": "u",
                                                   "namespace": "elsewhere"}}],
    }))
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_namespace_comes_from_the_context(tmp_path: Path) -> None:
    path = str(kubeconfig(tmp_path, "https://127.0.0.1:1", namespace="apps"))
    assert default_namespace(path, None) == "apps"
    assert default_namespace(path, "other") == "elsewhere"
    assert default_namespace(str(kubeconfig(tmp_path, "https://127.0.0.1:1")), None) == "default"
    with pytest.raises(LiveError, match="context 'nope' not found in the kubeconfig"):
        default_namespace(path, "nope")


def test_usage_errors() -> None:
    neither = invoke(explain_cli)
    assert neither.code == 2
    assert "give either KIND/NAME (a live workload) or -f FILE (manifests)" in neither.err
    both = invoke(audit_cli, "--cluster", "-f", "x.yaml")
    assert both.code == 2 and "give either -f FILE (manifests) or --cluster" in both.err
    assert invoke(audit_cli, "-A", "-f", "x.yaml").code == 2
    bad = invoke(explain_cli, "rs/worker")
    assert bad.code == 2 and "'rs' is not a workload kind graceful reads" in bad.err


def test_no_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "absent"
    result = invoke(explain_cli, "deploy/worker", "--kubeconfig", str(missing))
    assert result.code == 2
    assert f"graceful explain: no usable kubeconfig ({missing}):" in result.err
    assert "pass --kubeconfig FILE, set KUBECONFIG, or log in to a cluster first" in result.err
    audit = invoke(audit_cli, "--cluster", "-n", "x", "--kubeconfig", str(missing))
    assert audit.code == 2 and "no usable kubeconfig" in audit.err


def test_unreachable_server(tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{closed_port()}"
    path = kubeconfig(tmp_path, server)
    result = invoke(explain_cli, "deploy/worker", "-n", "apps", "--kubeconfig", str(path))
    assert result.code == 2
    assert f"graceful explain: cannot reach the API server at {server}:" in result.err
    audit = invoke(audit_cli, "--cluster", "--kubeconfig", str(path))
    assert audit.code == 2 and f"cannot reach the API server at {server}" in audit.err


def test_status_codes_become_messages(tmp_path: Path) -> None:
    client = Client(str(kubeconfig(tmp_path, "https://127.0.0.1:1")))
    try:
        forbidden = client._failure(403, "User \"u\" cannot list", "list",
                                    "gracefulpolicies.graceful.io", "apps")
        assert isinstance(forbidden, Forbidden)
        assert str(forbidden).startswith(
            "forbidden: missing permission 'list' on 'gracefulpolicies.graceful.io'"
            " in namespace apps")
        cluster = client._failure(403, "no", "list", "clustergracefulpolicies.graceful.io", None)
        assert "at cluster scope" in str(cluster)
        assert isinstance(client._failure(404, "gone", "get", "pods", "a"), NotFound)
        assert "401 Unauthorized" in str(client._failure(401, "", "get", "pods", "a"))
        assert "answered 500: boom" in str(client._failure(500, "boom", "get", "pods", "a"))
    finally:
        client.close()
