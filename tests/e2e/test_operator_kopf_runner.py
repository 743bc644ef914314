"""The operator in-process under ``kopf.testing.KopfRunner``, against the real API server.

What the subprocess tests (``test_audit_e2e``) cannot see from outside: the
auditor's own counters. A test waits for them (an audit pass, one evaluation
per edit) instead of sleeping, and the wiring is ``main.assemble``, the same
``kopf.run`` gets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kopf.testing import KopfRunner

from graceful.operator.kube import load_configuration
from graceful.operator.main import Operator, assemble
from graceful.operator.settings import OperatorSettings
from tests.conftest import Cluster, Kubectl
from tests.e2e.test_audit_e2e import CRD, apply, compliant, counts, deployment, policy

pytestmark = pytest.mark.e2e


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Until ``check()`` is truthy (the timeout only ends a hung test)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)
    return value


@pytest.fixture(scope="module")
def crd(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(CRD))
    kubectl("wait", "--for", "condition=established", "--timeout=60s",
            "crd/gracefulpolicies.graceful.io")


@pytest.fixture
def running(crd: None, cluster: Cluster, namespace: str) -> Iterator[Operator]:
    settings = OperatorSettings(namespaces=(namespace,), lease_namespace=namespace,
                                identity="in-process", manage_certificates=False)
    operator = assemble(settings, load_configuration(str(cluster.kubeconfig)))
    with KopfRunner(["run", "--standalone", "--namespace", namespace],
                    registry=operator.registry, settings=operator.kopf_settings, timeout=60):
        yield operator


def test_an_edit_is_one_evaluation_and_one_status_write(
        running: Operator, kubectl: Kubectl, namespace: str) -> None:
    auditor = running.auditor
    apply(kubectl, policy(namespace), deployment(namespace, "legacy"),
          compliant(namespace, "good"), compliant(namespace, "fine"))
    wait_for(lambda: counts(kubectl, namespace) == ("3", "2", "1"), "MATCHED 3")
    wait_for(lambda: not auditor.tracker, "a quiet auditor")
    evaluated, writes = auditor.metrics.evaluations._value.get(), auditor.status_writes
    apply(kubectl, compliant(namespace, "legacy"))
    wait_for(lambda: counts(kubectl, namespace) == ("3", "3", "0"), "COMPLIANT 3")
    wait_for(lambda: not auditor.tracker, "a quiet auditor")
    # The Deployment's status moves too (its controller), but only the edit is evaluated.
    assert auditor.metrics.evaluations._value.get() - evaluated == 1
    assert auditor.status_writes - writes == 1
    assert auditor.gate.opened
