"""Reading manifests: every shape a pipeline produces, and one-line errors for the rest."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from graceful.offline import audit_cli, explain_cli
from graceful.offline.loader import InputError, inventory, load
from tests.offline.conftest import EXAMPLES, POLICY, Writer, deployment, invoke


def test_examples_directory_holds_one_policy_and_three_workloads() -> None:
    found = inventory(load([str(EXAMPLES)]), "default")
    assert [doc.name for _, doc in found.workloads] == ["legacy", "web", "worker"]
    assert [p.name for p in found.policies["default"]] == ["apps"]


def test_multi_document_files_lists_and_json(write: Writer) -> None:
    multi = write("multi.yaml", POLICY + "---\n" + deployment("a") + "---\n")
    listed = write("list.yaml", """\
        apiVersion: v1
        kind: List
        items:
          - {apiVersion: v1, kind: ConfigMap, metadata: {name: settings}}
          - apiVersion: v1
            kind: Pod
            metadata: {name: lonely}
            spec: {containers: [{name: c, image: x}]}
        """)
    as_json = write("obj.json", '{"apiVersion": "apps/v1", "kind": "DaemonSet", '
                                '"metadata": {"name": "agent"}, "spec": {}}')
    docs = load([str(multi), str(listed), str(as_json)])
    assert [d.source.rsplit("/", 1)[-1] for d in docs] == [
        "multi.yaml#1", "multi.yaml#2", "list.yaml item 1", "list.yaml item 2", "obj.json"]
    found = inventory(docs, "default")
    assert [(ns, d.kind, d.name) for ns, d in found.workloads] == [
        ("default", "Deployment", "a"), ("default", "Pod", "lonely"),
        ("default", "DaemonSet", "agent")]


def test_directories_are_read_recursively_and_hidden_ones_skipped(tmp_path: Path,
                                                                  write: Writer) -> None:
    write("apps/a/one.yaml", deployment("one"))
    write("apps/b/two.yml", deployment("two"))
    write("apps/.git/three.yaml", deployment("three"))
    write("apps/notes.txt", "not yaml: [")
    names = [d.name for d in load([str(tmp_path / "apps")])]
    assert names == ["one", "two"]


def test_standard_input() -> None:
    docs = load(["-"], stdin=io.StringIO(deployment("piped")))
    assert [(d.source, d.name) for d in docs] == [("<stdin>", "piped")]


def test_namespaces_default_and_explicit(write: Writer) -> None:
    path = write("ns.yaml", deployment("a") + "---\n" + deployment("b", namespace="team"))
    found = inventory(load([str(path)]), "fallback")
    assert [(ns, d.name) for ns, d in found.workloads] == [("fallback", "a"), ("team", "b")]


@pytest.mark.parametrize(("text", "message"), [
    ("a: [\n", "line 2 not valid YAML"),
    ("- just\n- a list\n", r"not a Kubernetes object \(no kind\)"),
    ("42\n", "not a Kubernetes object"),
    ("kind: Deployment\n---\n7\n", "bad.yaml#2: not a Kubernetes object"),
])
def test_unreadable_documents_are_named(write: Writer, text: str, message: str) -> None:
    path = write("bad.yaml", text)
    with pytest.raises(InputError, match=message) as caught:
        load([str(path)])
    assert "\n" not in str(caught.value)


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or directory"):
        load([str(tmp_path / "nope.yaml")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no \.yaml, \.yml, \.json files"):
        load([str(tmp_path / "empty")])


def test_binary_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "blob.yaml"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(InputError, match="not a UTF-8 text file"):
        load([str(path)])


def test_invalid_policy_names_the_field(write: Writer) -> None:
    path = write("policy.yaml", POLICY.replace("gracefulTimeoutSeconds: 30",
                                               "gracefulTimeoutSeconds: -1"))
    with pytest.raises(InputError, match="gracefulTimeoutSeconds") as caught:
        inventory(load([str(path)]), "default")
    assert "policy.yaml" in str(caught.value) and "'apps'" in str(caught.value)


def test_duplicate_policy_in_one_namespace_is_an_error(write: Writer) -> None:
    one, two = write("one.yaml", POLICY), write("two.yaml", POLICY)
    with pytest.raises(InputError, match="also defined in"):
        inventory(load([str(one), str(two)]), "default")
    elsewhere = write("three.yaml", POLICY.replace("name: apps}", "name: apps, namespace: b}"))
    found = inventory(load([str(one), str(elsewhere)]), "default")
    assert sorted(found.policies) == ["b", "default"]


HELM_TEMPLATE = """\
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: {{ include "app.fullname" . }}
      labels:
        {{- include "app.labels" . | nindent 4 }}
    spec:
      replicas: {{ .Values.replicaCount }}
    """


@pytest.mark.parametrize("cli", ["audit", "explain"])
def test_a_helm_template_is_named_with_the_command_that_renders_it(
        write: Writer, cli: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("templates/deployment.yaml", HELM_TEMPLATE)
    with pytest.raises(InputError) as caught:
        load([str(path)])
    message = str(caught.value)
    assert "line 4: Helm template syntax" in message, message
    assert "helm template RELEASE CHART | graceful audit -f -" in message
    assert "not valid YAML" not in message
    piped = invoke(audit_cli if cli == "audit" else explain_cli, "-f", "-",
                   stdin=textwrap.dedent(HELM_TEMPLATE), monkeypatch=monkeypatch)
    assert piped.code == 2
    assert "<stdin>: line 4: Helm template syntax" in piped.err and "helm template" in piped.err


def test_a_chart_directory_is_named_as_one(write: Writer, tmp_path: Path) -> None:
    write("chart/Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\n")
    write("chart/values.yaml", "replicaCount: 1\n")
    write("chart/templates/deployment.yaml", HELM_TEMPLATE)
    with pytest.raises(InputError, match=r"chart: a Helm chart, not manifests; render it first"):
        load([str(tmp_path / "chart")])


def test_rendered_output_with_braces_in_strings_is_read_as_is(write: Writer) -> None:
    """`helm template` output may keep `{{ }}` inside strings (alert rules): that is data."""
    path = write("rendered.yaml", """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: rules}
        data:
          alert: 'summary: "{{ $labels.instance }} is down"'
        """)
    assert [d.name for d in load([str(path)])] == ["rules"]


def test_the_c_loader_is_used_when_pyyaml_has_it() -> None:
    import yaml  # noqa: PLC0415

    from graceful.offline import loader  # noqa: PLC0415

    expected = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
    assert loader.SafeLoader is expected
    # a safe loader either way: no Python object tags
    with pytest.raises(InputError, match="not valid YAML"):
        load(["-"], stdin=io.StringIO("!!python/object/apply:os.system [echo]\n"))
