"""Keeping the webhook's TLS Secret and the configuration's caBundle up to date.

The decisions are in :mod:`graceful.certificates.rotation`; this module reads
the Secret and the MutatingWebhookConfiguration, asks for a decision, and
writes. Each pass is::

    GET Secret, GET configuration -> decide -> POST/PUT Secret -> PUT configuration

and uses only what the operator's RBAC grants (``graceful-operator-certificates``
and ``graceful-operator-webhook-ca``): ``create`` Secrets and ``get``/``update``
the one named Secret in its own namespace; ``get``/``update`` the one named
webhook configuration. Nothing is listed or watched, so a pass is polled:
at start (as soon as this replica leads, so the Secret exists before the
webhook's Pods can mount it), then when the next renewal is due, and at least
every ``certificate_check_seconds`` (a configuration re-applied without its
caBundle is repaired within that time).

Why the writes are safe with several replicas: only the Lease holder writes;
a Secret created meanwhile by someone else (409 on create) or changed since it
was read (409 on update, resourceVersion) restarts the pass from a fresh read,
so two writers converge on one Secret instead of overwriting each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graceful.certificates.rotation import (
    CA_CRT,
    SECRET_TYPE,
    CertificatePolicy,
    Summary,
    decide,
    decode_data,
    encode_data,
    inspect,
    render,
    service_hosts,
    trusted_by,
    with_ca_bundle,
)
from graceful.core.names import MANAGED_BY_LABEL, MANAGER
from graceful.operator.kube import Api, ApiError
from graceful.operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
LABELS = {"app.kubernetes.io/name": "graceful-webhook",
          "app.kubernetes.io/component": "webhook",
          "app.kubernetes.io/part-of": "graceful-operator",
          MANAGED_BY_LABEL: MANAGER}
#: Passes started again after a conflict before giving up until the next check.
MAX_ATTEMPTS = 5


class _Conflict(Exception):
    """Somebody else wrote first: read again and decide again."""


@dataclass
class SyncReport:
    """What one pass did, for the log and for tests."""

    secret: str = "unchanged"  # noqa: S105 (a name, not a password)
    """``created``, ``updated``, ``unchanged``, or ``skipped`` (not the leader)."""
    configuration: str = "unchanged"
    """``updated``, ``unchanged``, ``missing``, ``unreadable`` or ``skipped``."""
    reasons: tuple[str, ...] = ()
    waiting: bool = False
    """A new serving certificate waits until the configuration trusts the new CA."""
    next_check: dt.datetime | None = None


def policy_of(settings: OperatorSettings) -> CertificatePolicy:
    return CertificatePolicy(
        hosts=service_hosts(settings.webhook_service, settings.webhook_namespace,
                            settings.webhook_extra_sans),
        serving_lifetime=settings.certificate_lifetime,
        ca_lifetime=settings.ca_lifetime,
    )


def secret_object(namespace: str, name: str, files: Mapping[str, bytes],
                  current: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Secret to write: ``current`` (its type, labels and resourceVersion kept) with new data.

    A Secret's type cannot change, so one created by somebody else as
    ``Opaque`` stays ``Opaque`` (the webhook only reads the files).
    """
    if current is None:
        return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
                "metadata": {"name": name, "namespace": namespace, "labels": dict(LABELS)},
                "data": encode_data(files)}
    body = {key: value for key, value in current.items() if key not in ("data", "stringData")}
    metadata = dict(current.get("metadata") or {})
    metadata.pop("managedFields", None)
    metadata["labels"] = {**(metadata.get("labels") or {}), **LABELS}
    body["metadata"] = metadata
    body["data"] = encode_data(files)
    return body


class CertificateKeeper:
    """The loop that keeps the Secret and the caBundle; writes only while leading."""

    def __init__(self, api: Api, settings: OperatorSettings, *,
                 is_leader: Callable[[], bool] = lambda: True,
                 wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 clock: Callable[[], float] = time.monotonic,
                 on_check: Callable[[], None] = lambda: None) -> None:
        self.api = api
        self.settings = settings
        self.policy = policy_of(settings)
        self.is_leader = is_leader
        self.wall = wall
        self.clock = clock
        # called after each completed pass: the operator counts them on /metrics, so
        # "two more checks wrote nothing" is waited for, not slept for
        self.on_check = on_check
        self.passes = 0
        self.writes = 0
        self._wake = asyncio.Event()
        self._last_configuration_state = ""
        self._announced = False

    @property
    def secret_path(self) -> str:
        return f"/api/v1/namespaces/{self.settings.webhook_namespace}/secrets"

    @property
    def configuration_path(self) -> str:
        return f"{CONFIGURATIONS}/{self.settings.webhook_configuration}"

    @property
    def secret_ref(self) -> str:
        return f"{self.settings.webhook_namespace}/{self.settings.webhook_secret}"

    def leadership_changed(self, leading: bool) -> None:
        """Called by the elector: a new leader checks the certificates at once."""
        self._announced = False
        if leading:
            self._wake.set()

    # -- one pass ------------------------------------------------------------------------------

    async def _get(self, path: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self.api.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    async def sync(self) -> SyncReport:
        """One pass, started again from a fresh read after a conflict."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return await self._sync_once()
            except _Conflict as exc:
                logger.info("certificates: %s; reading again (attempt %d)", exc, attempt)
        raise ApiError(409, f"still conflicting after {MAX_ATTEMPTS} attempts")

    async def _sync_once(self) -> SyncReport:
        self.passes += 1
        secret = await self._get(f"{self.secret_path}/{self.settings.webhook_secret}")
        configuration: dict[str, Any] | None = None
        configuration_state = "present"
        try:
            configuration = await self._get(self.configuration_path)
            if configuration is None:
                configuration_state = "missing"
        except ApiError as exc:
            # Without it, a new CA's certificate waits (trusted=frozenset()): never serve a
            # certificate the API server may not trust yet.
            configuration_state = "unreadable"
            self._note_configuration("unreadable", logging.ERROR,
                                     "certificates: cannot read MutatingWebhookConfiguration"
                                     f" {self.settings.webhook_configuration}: {exc}")
        if configuration_state == "missing":
            self._note_configuration("missing", logging.INFO,
                                     "certificates: no MutatingWebhookConfiguration"
                                     f" {self.settings.webhook_configuration} yet; its caBundle"
                                     " is set once it exists")
        trusted = (frozenset() if configuration_state == "unreadable"
                   else trusted_by(configuration))

        now = self.wall()
        files = decode_data(secret.get("data")) if secret is not None else None
        stored = inspect(files, self.policy.hosts, now) if files is not None else None
        decision = decide(stored, self.policy, now, trusted=trusted)
        report = SyncReport(reasons=decision.reasons, waiting=decision.waiting,
                            next_check=decision.next_check)
        if decision.waiting:
            logger.info("certificates: %s", "; ".join(decision.reasons))
        if decision.changed:
            if not self.is_leader():
                report.secret = report.configuration = "skipped"  # noqa: S105
                return report
            files = render(stored, decision, self.policy, now)
            await self._write_secret(secret, files, created=secret is None)
            report.secret = "created" if secret is None else "updated"
            verb = ("created" if secret is None else
                    "replaced" if decision.replace else "updated")
            logger.info("certificates: %s Secret %s (%s): %s", verb, self.secret_ref,
                        "; ".join(decision.reasons), Summary.of(files))
            # the next renewal is decided from what was just written; a new CA's
            # certificate follows once the configuration trusts it, so look again soon
            written = inspect(files, self.policy.hosts, now)
            report.next_check = decide(written, self.policy, now, trusted=None).next_check
            report.waiting = report.waiting or decision.new_ca
        elif not self._announced and not decision.waiting and files is not None:
            self._announced = True
            logger.info("certificates: Secret %s is valid, nothing to renew (%s); next check"
                        " at %s", self.secret_ref, Summary.of(files), decision.next_check)
        if configuration is None or files is None:
            report.configuration = "missing" if configuration_state == "missing" else (
                "unreadable" if configuration_state == "unreadable" else "unchanged")
            return report
        self._note_configuration("present", logging.DEBUG, "")
        updated = with_ca_bundle(configuration, files.get(CA_CRT, b""))
        if updated is None:
            return report
        if not self.is_leader():
            report.configuration = "skipped"
            return report
        updated.pop("status", None)
        (updated.get("metadata") or {}).pop("managedFields", None)
        try:
            await self.api.request("PUT", self.configuration_path, body=updated)
        except ApiError as exc:
            if exc.status == 409:
                raise _Conflict("the webhook configuration changed meanwhile") from exc
            raise
        self.writes += 1
        report.configuration = "updated"
        logger.info("certificates: caBundle of MutatingWebhookConfiguration %s now holds %d CA(s)",
                    self.settings.webhook_configuration, Summary.of(files).cas)
        return report

    async def _write_secret(self, current: dict[str, Any] | None, files: Mapping[str, bytes],
                            *, created: bool) -> None:
        name = self.settings.webhook_secret
        body = secret_object(self.settings.webhook_namespace, name, files, current)
        try:
            if created:
                await self.api.request("POST", self.secret_path, body=body)
            else:
                await self.api.request("PUT", f"{self.secret_path}/{name}", body=body)
        except ApiError as exc:
            if exc.status == 409:
                raise _Conflict(f"Secret {self.secret_ref} "
                                f"{'created' if created else 'changed'} meanwhile") from exc
            raise
        self.writes += 1

    def _note_configuration(self, state: str, level: int, message: str) -> None:
        """Log a change of the configuration's state once, not on every pass."""
        if state != self._last_configuration_state:
            self._last_configuration_state = state
            if message:
                logger.log(level, "%s", message)

    # -- the loop ------------------------------------------------------------------------------

    def delay_after(self, report: SyncReport) -> float:
        """Seconds until the next pass."""
        check = self.settings.certificate_check_seconds
        if report.waiting:
            return min(check, self.settings.ca_settle_seconds)
        if report.next_check is None:
            return check
        due = (report.next_check - self.wall()).total_seconds()
        return max(0.5, min(check, due))

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def run(self) -> None:
        """Forever: a pass whenever leading and due; errors are logged and retried."""
        logger.info("certificates: keeping Secret %s for %s and the caBundle of %s",
                    self.secret_ref, ", ".join(self.policy.hosts),
                    self.settings.webhook_configuration)
        while True:
            if not self.is_leader():
                await self._sleep(self.settings.renew_every)
                continue
            try:
                report = await self.sync()
                delay = self.delay_after(report)
                self.on_check()
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                hint = (" (does the operator's service account have the"
                        " graceful-operator-certificates Role?)" if exc.status == 403 else "")
                logger.error("certificates: Secret %s: %s%s", self.secret_ref, exc, hint)
                delay = self.settings.retry_seconds
            except Exception:
                logger.exception("certificates: Secret %s", self.secret_ref)
                delay = self.settings.retry_seconds
            await self._sleep(delay)
