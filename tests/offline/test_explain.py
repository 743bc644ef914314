"""``graceful explain``: per container, the timeline as written and after admission."""

from __future__ import annotations

import yaml

from graceful.offline import explain_cli
from tests.offline.conftest import EXAMPLES, POLICY, Writer, deployment, invoke


def test_examples_worker() -> None:
    result = invoke(explain_cli, "-f", str(EXAMPLES / "worker.yaml"),
                    "-f", str(EXAMPLES / "policy.yaml"), "--width", "70")
    assert result.code == 0, result.err
    out = result.out
    assert out.startswith("Deployment default/worker: policy apps (Enforce): preStop 5s,"
                          " margin 10s, ceiling 3900s\n")
    assert ("container worker: G = 3600s from the graceful.io/graceful-timeout annotation\n"
            in out)
    written, admitted = out.split("  after admission (the webhook's patch):")
    assert "30s of drain 3600s" in written
    assert "SIGKILL at 30s cuts the drain: the app needs until 3615s" not in written
    assert "SIGKILL at 30s cuts the drain" in written
    assert "drain 3600s" in admitted and "cut" not in admitted.split("findings")[0]
    assert "ok: SIGKILL at 3615s comes after the drain ends (3615s needed)" in admitted
    assert "  - GracePeriodBelowBudget: grace period 30s < budget 3615s" in out


def test_gunicorn_flag_and_readiness() -> None:
    result = invoke(explain_cli, "-f", str(EXAMPLES), "--width", "70")
    web = result.out.split("Deployment default/web")[1].split("Deployment default/worker")[0]
    assert "container web: G = 60s from its command line (gunicorn --graceful-timeout)" in web
    # drawn as written and after admission: the user's 10s x 3 is kept (Keep)
    assert web.count("readiness window 30s (after SIGTERM it only changes 'serving'") == 2


def test_not_opted_in_shows_what_kubernetes_gives(write: Writer) -> None:
    path = write("plain.yaml", deployment(
        "plain", annotations={"graceful.io/graceful-timeout": "2m"}))
    result = invoke(explain_cli, "-f", str(path))
    assert result.code == 0
    assert "Deployment default/plain: not opted in" in result.out
    assert "G = 120s from the graceful.io/graceful-timeout annotation" in result.out
    assert "SIGKILL at 30s cuts the drain" in result.out
    assert "after admission" not in result.out


def test_compliant_and_audit_only(write: Writer) -> None:
    audit_policy = POLICY.replace("spec:\n", "spec:\n  mode: Audit\n")
    path = write("ok.yaml", audit_policy + "---\n" + deployment(
        annotations={"graceful.io/policy": "apps"}))
    result = invoke(explain_cli, "-f", str(path))
    assert "policy apps (Audit)" in result.out
    assert "the webhook changes nothing here (the policy only audits)" in result.out


def test_an_unknown_hook_is_not_drawn_as_the_policy_sleep(write: Writer) -> None:
    obj = yaml.safe_load(deployment(annotations={"graceful.io/policy": "apps"}, grace=40))
    obj["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = {
        "preStop": {"httpGet": {"path": "/drain", "port": 80}}}
    path = write("hook.yaml", POLICY + "---\n" + yaml.safe_dump(obj))
    result = invoke(explain_cli, "-f", str(path))
    assert result.code == 0, result.err
    assert "its own preStop hook (length unknown)" in result.out
    assert "own preStop (length unknown), then SIGTERM" in result.out
    assert "unused" not in result.out and "^SIGTERM" not in result.out
    assert "declare it (graceful.io/prestop-seconds)" in result.out
    obj["metadata"]["annotations"]["graceful.io/prestop-seconds"] = "12"
    path = write("declared.yaml", POLICY + "---\n" + yaml.safe_dump(obj))
    result = invoke(explain_cli, "-f", str(path))
    assert "its own preStop hook (12s, declared)" in result.out
    assert "preStop 12s" in result.out and "^SIGTERM" in result.out


def test_no_workload_and_bad_input_exit_2(write: Writer) -> None:
    result = invoke(explain_cli, "-f", str(write("p.yaml", POLICY)))
    assert result.code == 2
    assert result.err == ("graceful explain: no Deployment, StatefulSet, DaemonSet or Pod"
                          " in the input\n")
    result = invoke(explain_cli, "-f", str(write("bad.yaml", "a: [")))
    assert result.code == 2 and result.err.startswith("graceful explain: ")


def test_the_platform_limit_that_cuts_the_drain_is_named(write: Writer) -> None:
    policy = yaml.safe_load(POLICY)
    policy["spec"].setdefault("drain", {})["platformLimits"] = [
        {"name": "cluster-autoscaler", "seconds": 600}, {"name": "spot notice", "seconds": 120}]
    obj = yaml.safe_load(deployment(annotations={"graceful.io/policy": "apps",
                                                 "graceful.io/graceful-timeout": "3600"}))
    path = write("limits.yaml", yaml.safe_dump(policy) + "---\n" + yaml.safe_dump(obj))
    result = invoke(explain_cli, "-f", str(path))
    assert result.code == 0, result.err
    assert "but spot notice allows 120s: on that shutdown SIGKILL comes at 120s" in result.out


def test_the_native_sidecars_stop_is_named_with_the_budget(write: Writer) -> None:
    obj = yaml.safe_load(deployment(annotations={"graceful.io/policy": "apps"}))
    obj["spec"]["template"]["spec"]["initContainers"] = [{
        "name": "shipper", "image": "example/shipper:1", "restartPolicy": "Always",
        "command": ["uvicorn", "shipper:app", "--timeout-graceful-shutdown", "12"]}]
    path = write("sidecar.yaml", POLICY + "---\n" + yaml.safe_dump(obj))
    result = invoke(explain_cli, "-f", str(path))
    assert result.code == 0, result.err
    assert "sidecar shipper: stopped by the kubelet after the app containers" in result.out
    assert "the native sidecars' stop adds 12s after the app has exited: budget 52s" in (
        result.out)
