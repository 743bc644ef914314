"""``graceful audit``: verdicts, exit codes, text and JSON reports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from graceful.offline import audit_cli
from tests.offline.conftest import EXAMPLES, POLICY, ROOT, Writer, deployment, invoke


def test_examples_as_written_are_mismatched_and_the_webhook_fixes_them() -> None:
    result = invoke(audit_cli, "-f", str(EXAMPLES))
    assert result.code == 1
    lines = result.out.splitlines()
    assert lines[0].startswith("MISMATCH  Deployment/legacy  namespace default  policy apps")
    assert "          - GracePeriodBelowBudget: grace period 30s < budget 615s" in lines
    # web's probe sets 10s x 3 itself: Keep never lowers a value the user wrote
    assert "ReadinessWindowTooLong" not in result.out
    assert result.out.count("the webhook fixes these on admission") == 3
    assert lines[-1] == "3 opted in: 0 compliant, 3 mismatched; 0 not opted in"


def test_examples_as_admitted_pass() -> None:
    result = invoke(audit_cli, "-f", str(EXAMPLES), "--admitted")
    assert result.code == 0, result.out
    assert [line.split()[0] for line in result.out.splitlines()[:3]] == ["PASS"] * 3
    assert result.out.splitlines()[-1].endswith("(checked as admitted by the webhook)")


def test_compliant_manifest_passes(write: Writer) -> None:
    path = write("ok.yaml", POLICY + "---\n" + deployment(
        annotations={"graceful.io/policy": "apps"}, grace=40, pre_stop=5))
    result = invoke(audit_cli, "-f", str(path))
    assert result.code == 0
    assert result.out.startswith("PASS      Deployment/api  namespace default  policy apps")


def test_not_opted_in_workloads_are_skipped_not_failed(write: Writer) -> None:
    path = write("plain.yaml", deployment("plain"))
    result = invoke(audit_cli, "-f", str(path))
    assert result.code == 0
    assert result.out.splitlines() == [
        f"SKIP      Deployment/plain  namespace default  ({path})",
        "0 opted in: 0 compliant, 0 mismatched; 1 not opted in",
    ]


def test_missing_policy_is_a_mismatch_even_when_admitted(write: Writer) -> None:
    path = write("orphan.yaml", deployment(annotations={"graceful.io/policy": "nope"}))
    for extra in ((), ("--admitted",)):
        result = invoke(audit_cli, "-f", str(path), *extra)
        assert result.code == 1
        assert "PolicyNotFound: policy 'nope' not found" in result.out


def test_policies_are_per_namespace(write: Writer) -> None:
    path = write("two.yaml", POLICY + "---\n" + deployment(
        "elsewhere", namespace="other", annotations={"graceful.io/policy": "apps"},
        grace=40, pre_stop=5))
    result = invoke(audit_cli, "-f", str(path))
    assert result.code == 1
    assert "PolicyNotFound" in result.out
    # with the policy placed into the same namespace by -n, it passes
    result = invoke(audit_cli, "-f", str(path), "-n", "other")
    assert result.code == 0, result.out


def test_a_cap_is_not_fixed_by_the_webhook(write: Writer) -> None:
    path = write("capped.yaml", POLICY + "---\n" + deployment(
        annotations={"graceful.io/policy": "apps", "graceful.io/graceful-timeout": "1h"}))
    result = invoke(audit_cli, "-f", str(path), "--admitted")
    assert result.code == 1
    assert "BudgetCapped" in result.out


def test_json_report(write: Writer) -> None:
    result = invoke(audit_cli, "-f", str(EXAMPLES), "-o", "json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["summary"] == {"workloads": 3, "optedIn": 3, "compliant": 0,
                                 "mismatched": 3, "notOptedIn": 0}
    worker = next(r for r in report["results"] if r["name"] == "worker")
    assert worker["verdict"] == "MISMATCH" and worker["fixedByWebhook"] is True
    assert worker["gracePeriodSeconds"] == 3615 and worker["mode"] == "Enforce"
    assert {f["code"] for f in worker["findings"]} == {"PreStopMissing",
                                                       "GracePeriodBelowBudget"}
    assert worker["findings"][0]["container"] == "worker"


def test_standard_input_and_repeated_files(monkeypatch: pytest.MonkeyPatch,
                                           write: Writer) -> None:
    policy = write("policy.yaml", POLICY)
    piped = deployment(annotations={"graceful.io/policy": "apps"}, grace=40, pre_stop=5)
    result = invoke(audit_cli, "-f", str(policy), "-f", "-", stdin=piped,
                    monkeypatch=monkeypatch)
    assert result.code == 0
    assert "(<stdin>)" in result.out


@pytest.mark.parametrize("text", ["a: [\n", "- 1\n", POLICY.replace("600", "0")])
def test_unreadable_input_exits_2_with_one_line(write: Writer, text: str) -> None:
    path = write("bad.yaml", text)
    result = invoke(audit_cli, "-f", str(path))
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith("graceful audit: ") and result.err.count("\n") == 1


def test_through_the_graceful_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "graceful.cli", "audit", "-f",
                           str(EXAMPLES / "worker.yaml"), "-f", str(EXAMPLES / "policy.yaml")],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("MISMATCH  Deployment/worker")
    proc = subprocess.run([sys.executable, "-m", "graceful.cli", "audit", "-f", "/nonexistent"],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 2
    assert proc.stderr == "graceful audit: /nonexistent: no such file or directory\n"


CLUSTER_POLICY = """\
apiVersion: graceful.io/v1alpha1
kind: ClusterGracefulPolicy
metadata:
  name: standard
spec:
  namespaceSelector:
    matchLabels:
      graceful.io/budget: standard
  selector:
    matchExpressions:
      - key: app
        operator: Exists
  gracefulTimeoutSeconds: 60
"""


def namespace_doc(name: str, labels: dict[str, str]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": name, "labels": labels}}) + "\n"


def test_a_cluster_policy_serves_a_namespace_its_selector_selects(write: Writer) -> None:
    path = write("cluster.yaml", "---\n".join([
        CLUSTER_POLICY, namespace_doc("apps", {"graceful.io/budget": "standard"}),
        namespace_doc("other", {}),
        deployment("api", namespace="apps", grace=70, pre_stop=5),
        deployment("web", namespace="other")]))
    result = invoke(audit_cli, "-f", str(path), "--output", "json")
    report = json.loads(result.out)
    by_name = {r["name"]: r for r in report["results"]}
    assert by_name["api"]["policy"] == "cluster/standard" and by_name["api"]["compliant"]
    assert not by_name["web"]["optedIn"]  # `other` is not selected


def test_a_namespaced_policy_wins_over_the_cluster_policy(write: Writer) -> None:
    path = write("both.yaml", "---\n".join([
        CLUSTER_POLICY, namespace_doc("default", {"graceful.io/budget": "standard"}),
        POLICY + "  selector: {matchLabels: {app: api}}\n",
        deployment("api", grace=40, pre_stop=5)]))
    result = invoke(audit_cli, "-f", str(path), "--output", "json")
    (only,) = json.loads(result.out)["results"]
    assert only["policy"] == "apps"
