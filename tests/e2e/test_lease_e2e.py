"""Leader election against a real kube-apiserver: a Lease namespace that does not exist.

``graceful operator`` run by hand against a cluster without ``graceful-system``
used to log the same 404 every two seconds and never say what to do. Here the
elector talks to the real API server (the 404 is the API server's own
answer) and the test counts what it logs.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from graceful.operator.kube import KubeApi, load_configuration
from graceful.operator.lease import LeaseElector
from tests.conftest import Cluster, Kubectl

pytestmark = pytest.mark.e2e


def test_a_missing_lease_namespace_is_said_once_with_the_fix(
        cluster: Cluster, kubectl: Kubectl, caplog: pytest.LogCaptureFixture) -> None:
    missing = f"t-lease-{uuid.uuid4().hex[:8]}"
    leading: list[bool] = []

    async def scenario() -> None:
        api = KubeApi(load_configuration(str(cluster.kubeconfig)))
        elector = LeaseElector(api, namespace=missing, identity="by-hand",
                               on_change=leading.append)
        try:
            for _ in range(3):
                await elector.attempt()
            assert not elector.is_leader()
            kubectl("create", "namespace", missing)
            await elector.attempt()
            assert elector.is_leader()
        finally:
            await elector.release()
            await api.close()

    caplog.set_level(logging.DEBUG, logger="graceful.operator.lease")
    try:
        asyncio.run(scenario())
    finally:
        kubectl("delete", "namespace", missing, "--wait=false", "--ignore-not-found", check=False)
    records = [r for r in caplog.records if r.name == "graceful.operator.lease"]
    loud = [r for r in records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    told = loud[0].getMessage()
    assert f"namespace {missing!r} does not exist" in told
    assert f"kubectl create namespace {missing}" in told and "--lease-namespace" in told
    quiet = [r for r in records if r.levelno == logging.DEBUG and "not found" in r.getMessage()]
    assert len(quiet) == 2, "the two later attempts are logged at debug level only"
    assert any(f"namespace {missing!r} exists now" in r.getMessage() for r in records)
    assert leading == [True, False]
