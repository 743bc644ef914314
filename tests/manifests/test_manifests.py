"""The install manifests, checked without a cluster: shape, security, RBAC, wiring.

The same facts are proven against a real API server in
tests/e2e/test_manifests_e2e.py (server-side dry-run and `kubectl auth can-i`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from testenv import render
from tests.manifests.conftest import (
    MANIFESTS,
    NAMESPACE,
    OVERLAY,
    PART_OF,
    ROOT,
    by_kind,
    containers,
    manifest_files,
    objects,
    one,
    pod_spec,
    selector_matches,
)

CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                  "MutatingWebhookConfiguration"}
DEPLOYMENTS = ("graceful-webhook", "graceful-operator")


# -- files ---------------------------------------------------------------------

def test_every_file_parses_into_named_objects() -> None:
    files = manifest_files()
    assert len(files) >= 10
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, f"{path.name} is empty"
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path.name
            assert doc["metadata"]["name"], path.name


def test_namespaced_objects_live_in_graceful_system() -> None:
    for obj in objects():
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in obj["metadata"], obj["metadata"]["name"]
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]


def test_the_namespace_comes_first_and_enforces_restricted_pod_security() -> None:
    first = objects([manifest_files()[0]])
    assert [o["kind"] for o in first] == ["Namespace"]
    labels = first[0]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_kustomization_lists_every_file() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "Kustomization").read_text())
    assert kustomization["resources"] == [p.name for p in manifest_files()]
    # kubectl apply -f manifests/ would choke on a Kustomization object
    assert not list(MANIFESTS.glob("kustomization.y*ml"))


def test_every_object_but_the_crd_says_what_it_is_part_of() -> None:
    for obj in objects():
        if obj["kind"] != "CustomResourceDefinition":
            labels = obj["metadata"].get("labels", {})
            assert labels.get("app.kubernetes.io/part-of") == PART_OF, obj["metadata"]["name"]


def test_crd_is_the_copy_of_crds() -> None:
    path = ROOT / render.CRD_TARGET
    assert path.read_text() == render.crd(), "run python -m testenv.render"
    assert yaml.safe_load(path.read_text()) == yaml.safe_load(
        (ROOT / "crds" / "gracefulpolicy.yaml").read_text())


def test_cluster_crd_is_derived_from_the_namespaced_one() -> None:
    for relative in (render.CLUSTER_CRD_SOURCE, render.CLUSTER_CRD_TARGET,
                     render.CHART_CLUSTER_CRD_TARGET):
        assert yaml.safe_load((ROOT / relative).read_text()) == yaml.safe_load(
            render.cluster_crd()), "run python -m testenv.render"
    cluster = yaml.safe_load(render.cluster_crd())
    namespaced = yaml.safe_load((ROOT / "crds" / "gracefulpolicy.yaml").read_text())
    assert cluster["spec"]["scope"] == "Cluster"
    assert cluster["spec"]["names"]["shortNames"] == ["cgp"]
    (version,), (source,) = cluster["spec"]["versions"], namespaced["spec"]["versions"]
    assert version["additionalPrinterColumns"] == source["additionalPrinterColumns"]
    spec, source_spec = (v["schema"]["openAPIV3Schema"]["properties"]["spec"]
                         for v in (version, source))
    assert spec["x-kubernetes-validations"] == source_spec["x-kubernetes-validations"]
    assert spec["required"] == ["namespaceSelector"]
    for name, field in source_spec["properties"].items():
        kept = {k: v for k, v in field.items() if k != "description"}
        assert {k: v for k, v in spec["properties"][name].items() if k != "description"} == kept
    assert {k: v for k, v in spec["properties"]["namespaceSelector"].items()
            if k != "description"} == {k: v for k, v in source_spec["properties"]["selector"]
                                       .items() if k != "description"}


def test_webhook_configuration_is_the_generators_output() -> None:
    path = ROOT / render.WEBHOOK_TARGET
    assert path.read_text() == render.webhook_configuration(), (
        "run python -m testenv.render")


# -- deployments -----------------------------------------------------------------

@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_pods_run_non_root_without_privileges(name: str) -> None:
    deployment = one("Deployment", name)
    pod = pod_spec(deployment)
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 65532 and context["runAsGroup"] == 65532
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    for container in containers(deployment):
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["privileged"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_tmp_is_the_only_writable_path(name: str) -> None:
    deployment = one("Deployment", name)
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    for container in containers(deployment):
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
        for path, mount in mounts.items():
            if path != "/tmp":
                assert mount.get("readOnly") is True, path


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_resources_image_and_service_account(name: str) -> None:
    deployment = one("Deployment", name)
    pod = pod_spec(deployment)
    assert pod["serviceAccountName"] == name
    assert one("ServiceAccount", name)["metadata"]["namespace"] == NAMESPACE
    for container in containers(deployment):
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert "memory" in container["resources"]["limits"]
        image = container["image"]
        assert image.startswith("graceful-operator:") and not image.endswith(":latest")
        assert container["args"][0] == name.removeprefix("graceful-")
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector_matches(deployment["spec"]["selector"], template_labels)


def test_webhook_is_highly_available_and_probed_over_https() -> None:
    deployment = one("Deployment", "graceful-webhook")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = pod_spec(deployment)
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector_matches(anti[0]["podAffinityTerm"]["labelSelector"], labels)
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https",
                                                      "scheme": "HTTPS"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https",
                                                     "scheme": "HTTPS"}
    assert f"--port={ports['https']}" in container["args"]
    # it drains like everything else: endpoints drop it before it stops serving
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] >= 1


def test_webhook_mounts_its_certificate_secret() -> None:
    pod = pod_spec(one("Deployment", "graceful-webhook"))
    volumes = {v["name"]: v for v in pod["volumes"]}
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] != "/tmp"]
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"] == "graceful-webhook-tls"
    assert secret["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == 65532  # group-readable key for the non-root user
    base = mount["mountPath"]
    assert f"--cert={base}/tls.crt" in container["args"]
    assert f"--key={base}/tls.key" in container["args"]


def test_operator_serves_the_liveness_probe_it_is_checked_on() -> None:
    (container,) = pod_spec(one("Deployment", "graceful-operator"))["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe = container["livenessProbe"]["httpGet"]
    assert (f"--liveness-endpoint=http://0.0.0.0:{ports[probe['port']]}{probe['path']}"
            in container["args"])


def test_pdb_keeps_one_webhook() -> None:
    pdb = one("PodDisruptionBudget", "graceful-webhook")
    assert pdb["spec"]["minAvailable"] == 1
    labels = one("Deployment", "graceful-webhook")["spec"]["template"]["metadata"]["labels"]
    assert selector_matches(pdb["spec"]["selector"], labels)
    other = one("Deployment", "graceful-operator")["spec"]["template"]["metadata"]["labels"]
    assert not selector_matches(pdb["spec"]["selector"], other)


def test_service_reaches_the_webhook_pods() -> None:
    service = one("Service", "graceful-webhook")
    deployment = one("Deployment", "graceful-webhook")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, labels)
    (port,) = service["spec"]["ports"]
    (container,) = pod_spec(deployment)["containers"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    assert port["port"] == render.SERVICE_PORT


# -- the webhook configuration ------------------------------------------------------

def _webhooks() -> list[dict[str, Any]]:
    (config,) = by_kind("MutatingWebhookConfiguration")
    hooks: list[dict[str, Any]] = config["webhooks"]
    return hooks


def test_webhook_configuration_points_at_the_service_and_never_blocks() -> None:
    service = one("Service", "graceful-webhook")
    for hook in _webhooks():
        target = hook["clientConfig"]["service"]
        assert (target["namespace"], target["name"]) == (NAMESPACE, service["metadata"]["name"])
        assert target.get("port", 443) == service["spec"]["ports"][0]["port"]
        assert target["path"] == "/mutate"
        assert "caBundle" not in hook["clientConfig"]  # the operator or cert-manager fills it
        assert hook["failurePolicy"] == "Ignore"
        assert hook["sideEffects"] == "None"
        assert hook["admissionReviewVersions"] == ["v1"]


def test_webhook_never_sees_kube_system_its_namespace_or_its_own_pods() -> None:
    own_pod_labels = [one("Deployment", n)["spec"]["template"]["metadata"]["labels"]
                      for n in DEPLOYMENTS]
    for hook in _webhooks():
        for namespace in ("kube-system", NAMESPACE):
            labels = {"kubernetes.io/metadata.name": namespace}
            assert not selector_matches(hook["namespaceSelector"], labels), namespace
        assert selector_matches(hook["namespaceSelector"],
                                {"kubernetes.io/metadata.name": "team-a"})
        for labels in own_pod_labels:
            assert not selector_matches(hook.get("objectSelector") or {}, labels)
        assert selector_matches(hook.get("objectSelector") or {}, {"app": "worker"})


# -- RBAC ----------------------------------------------------------------------------

def _roles() -> list[dict[str, Any]]:
    return by_kind("ClusterRole") + by_kind("Role")


#: What the product may delete: only the reports it writes itself (by name, after listing
#: them by its own label), when the workloads they report on are gone.
DELETABLE = {("wgpolicyk8s.io", "policyreports")}


def test_no_wildcards_and_no_escalation_verbs() -> None:
    for role in _roles():
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), (role["metadata"]["name"], rule)
            assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(
                rule["verbs"]), (role["metadata"]["name"], rule)
            if "delete" in rule["verbs"]:
                targets = {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
                assert targets <= DELETABLE, (role["metadata"]["name"], rule)
            assert "nonResourceURLs" not in rule


def test_nobody_reads_secrets_cluster_wide() -> None:
    for role in by_kind("ClusterRole"):
        for rule in role["rules"]:
            assert "secrets" not in rule["resources"], role["metadata"]["name"]
    secret_rules = [(role, rule) for role in by_kind("Role") for rule in role["rules"]
                    if "secrets" in rule["resources"]]
    assert secret_rules
    for role, rule in secret_rules:
        assert role["metadata"]["namespace"] == NAMESPACE
        assert "list" not in rule["verbs"] and "watch" not in rule["verbs"]
        if set(rule["verbs"]) - {"create"}:  # everything but create is limited by name
            assert rule["resourceNames"] == ["graceful-webhook-tls"]


def test_nothing_creates_pods_or_writes_workloads() -> None:
    for role in _roles():
        for rule in role["rules"]:
            writes = set(rule["verbs"]) - {"get", "list", "watch"}
            if writes:
                assert not {"pods", "deployments", "statefulsets", "daemonsets", "replicasets",
                            "jobs", "cronjobs",
                            "gracefulpolicies", "clustergracefulpolicies", "namespaces",
                            "roles", "clusterroles", "rolebindings",
                            "clusterrolebindings", "serviceaccounts"} & set(rule["resources"]), (
                    role["metadata"]["name"], rule)


def test_webhook_only_reads_policies_and_namespace_labels() -> None:
    role = one("ClusterRole", "graceful-webhook")
    assert role["rules"] == [
        {"apiGroups": ["graceful.io"], "resources": ["gracefulpolicies", "clustergracefulpolicies"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}]


def test_operator_may_patch_only_our_webhook_configuration() -> None:
    (config,) = by_kind("MutatingWebhookConfiguration")
    rules = [rule for role in _roles() for rule in role["rules"]
             if "mutatingwebhookconfigurations" in rule["resources"]]
    assert rules
    for rule in rules:
        assert rule["resourceNames"] == [config["metadata"]["name"]]


def test_bindings_grant_existing_roles_to_our_service_accounts() -> None:
    roles = {(r["kind"], r["metadata"]["name"]) for r in _roles()}
    accounts = {(NAMESPACE, sa["metadata"]["name"]) for sa in by_kind("ServiceAccount")}
    bindings = by_kind("ClusterRoleBinding") + by_kind("RoleBinding")
    assert len(bindings) == len(_roles())
    for binding in bindings:
        ref = binding["roleRef"]
        assert (ref["kind"], ref["name"]) in roles
        if binding["kind"] == "RoleBinding":
            assert ref["kind"] == "Role"
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert (subject["namespace"], subject["name"]) in accounts


# -- the cert-manager overlay ----------------------------------------------------------

def test_overlay_resources_and_patch_targets_exist() -> None:
    kustomization = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    assert kustomization["resources"][0] == "../../manifests"
    for resource in kustomization["resources"][1:]:
        assert (OVERLAY / resource).is_file()
    base = {(o["kind"], o["metadata"]["name"]) for o in objects()}
    for entry in kustomization["patches"]:
        if "target" in entry:
            assert (entry["target"]["kind"], entry["target"]["name"]) in base
        else:
            patch = yaml.safe_load(entry["patch"])
            assert (patch["kind"], patch["metadata"]["name"]) in base


def test_overlay_certificate_fills_the_secret_the_webhook_mounts() -> None:
    certificate = yaml.safe_load((OVERLAY / "certificate.yaml").read_text())
    issuer = yaml.safe_load((OVERLAY / "issuer.yaml").read_text())
    assert certificate["spec"]["secretName"] == "graceful-webhook-tls"
    assert certificate["spec"]["issuerRef"] == {"kind": "Issuer",
                                                "name": issuer["metadata"]["name"]}
    assert "selfSigned" in issuer["spec"]
    service = one("Service", "graceful-webhook")
    assert f"{service['metadata']['name']}.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    kustomization = (OVERLAY / "kustomization.yaml").read_text()
    assert (f"cert-manager.io/inject-ca-from: {NAMESPACE}/{certificate['metadata']['name']}"
            in kustomization)


def test_render_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert render.main(["--check"]) == 0
    (tmp_path / "crds").mkdir()
    (tmp_path / "manifests").mkdir()
    (tmp_path / "crds" / "gracefulpolicy.yaml").write_text(
        (ROOT / "crds" / "gracefulpolicy.yaml").read_text())
    (tmp_path / render.CRD_TARGET).write_text("# edited by hand\n")
    assert render.main(["--root", str(tmp_path), "--check"]) == 1
    assert "out of date: manifests/01-crd-gracefulpolicy.yaml, manifests/50-webhook" in (
        capsys.readouterr().err)
    assert render.main(["--root", str(tmp_path)]) == 0
    assert render.main(["--root", str(tmp_path), "--check"]) == 0
    for relative in (render.CRD_TARGET, render.WEBHOOK_TARGET):
        assert (tmp_path / relative).read_text() == (ROOT / relative).read_text()


def test_the_readme_states_exactly_what_rbac_grants_on_secrets() -> None:
    """`create` cannot be limited by resourceNames: the README must not claim 'only one'."""
    granted = {(verb, tuple(rule.get("resourceNames", ())))
               for role in by_kind("Role") + by_kind("ClusterRole")
               for rule in role["rules"] if "secrets" in rule["resources"]
               for verb in rule["verbs"]}
    assert granted == {("create", ()), ("get", ("graceful-webhook-tls",)),
                       ("update", ("graceful-webhook-tls",))}
    (secrets_role,) = [r for r in by_kind("Role")
                       if any("secrets" in rule["resources"] for rule in r["rules"])]
    assert secrets_role["metadata"]["namespace"] == NAMESPACE
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "touch only that one Secret" not in readme
    assert ("`get` and `update` only `graceful-webhook-tls`, and `create` Secrets in"
            " `graceful-system`") in readme
