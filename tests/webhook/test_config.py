"""The generated MutatingWebhookConfiguration."""

from __future__ import annotations

import base64

import pytest

from graceful.webhook.config import webhook_configuration

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_service_configuration() -> None:
    config = webhook_configuration(ca_bundle=CA, service=("graceful-system", "graceful-webhook",
                                                          443))
    assert config["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert config["kind"] == "MutatingWebhookConfiguration"
    assert config["metadata"]["name"] == "graceful-webhook"
    (hook,) = config["webhooks"]
    assert hook["clientConfig"] == {
        "caBundle": base64.b64encode(CA).decode(),
        "service": {"namespace": "graceful-system", "name": "graceful-webhook",
                    "path": "/mutate", "port": 443},
    }
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["timeoutSeconds"] == 5
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["matchPolicy"] == "Equivalent"
    apps, cronjobs, jobs, core = hook["rules"]
    assert (cronjobs["resources"], cronjobs["operations"]) == (["cronjobs"], ["CREATE", "UPDATE"])
    assert (jobs["resources"], jobs["operations"]) == (["jobs"], ["CREATE"])  # immutable template
    assert apps == {"apiGroups": ["apps"], "apiVersions": ["v1"],
                    "resources": ["deployments", "statefulsets", "daemonsets"],
                    "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}
    assert core["apiGroups"] == [""] and core["resources"] == ["pods"]
    assert core["operations"] == ["CREATE"]


def test_namespace_selector_excludes_kube_system_and_the_operator_namespace() -> None:
    config = webhook_configuration(ca_bundle=CA, url="https://127.0.0.1:8443/mutate",
                                   operator_namespace="ops")
    (expression,) = config["webhooks"][0]["namespaceSelector"]["matchExpressions"]
    assert expression == {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                          "values": ["kube-system", "ops"]}


def test_object_selector_keeps_the_webhook_off_its_own_deployment() -> None:
    config = webhook_configuration(ca_bundle=CA, url="https://127.0.0.1:8443/mutate")
    (expression,) = config["webhooks"][0]["objectSelector"]["matchExpressions"]
    assert expression == {"key": "app.kubernetes.io/part-of", "operator": "NotIn",
                          "values": ["graceful-operator"]}


def test_url_configuration_and_options() -> None:
    config = webhook_configuration(name="x", ca_bundle=CA, url="https://127.0.0.1:9443/mutate",
                                   failure_policy="Fail", timeout_seconds=2)
    hook = config["webhooks"][0]
    assert hook["clientConfig"]["url"] == "https://127.0.0.1:9443/mutate"
    assert "service" not in hook["clientConfig"]
    assert hook["failurePolicy"] == "Fail" and hook["timeoutSeconds"] == 2
    assert config["metadata"]["name"] == "x"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "exactly one of service or url"),
    ({"url": "https://a/mutate", "service": ("a", "b", 443)}, "exactly one"),
    ({"url": "http://a/mutate"}, "https://"),
    ({"url": "https://a/mutate", "timeout_seconds": 31}, "between 1 and 30"),
    ({"url": "https://a/mutate", "failure_policy": "Sometimes"}, "Ignore or Fail"),
    ({"url": "https://a/mutate", "ca_bundle": b""}, "ca_bundle is empty"),
])
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"ca_bundle": CA, **kwargs}
    with pytest.raises(ValueError, match=message):
        webhook_configuration(**arguments)  # type: ignore[arg-type]
