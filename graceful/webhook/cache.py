"""GracefulPolicies in memory, kept current by a list+watch of the API server.

ClusterGracefulPolicies and the labels of Namespaces (what a cluster
policy's ``namespaceSelector`` reads) are cached the same way, each by a
reflector of its own feeding one :class:`PolicyCache`; which policy applies is
still decided by ``graceful.core`` alone.

Why a cache: the API server waits for the webhook on every create and update
of a workload (``timeoutSeconds``, a few seconds at most). Reading the
policies from the API on each request would add a round trip to every deploy
and make the webhook fail whenever the API server is slow to answer *it*.
Policies change rarely, so the webhook keeps all of them in memory, indexed by
namespace, and answers from there.

The feeding loop is client-go's reflector, in small: list everything, then
watch from the list's ``resourceVersion``; resume a broken watch from the last
version seen (bookmarks included), relist when the server says that version
is gone (410), and back off exponentially while the server is unreachable, so
the cache survives an API server restart without a restart of its own. It
runs in a thread because the official client is blocking.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from graceful.core import (
    CLUSTER_PLURAL,
    CLUSTER_POLICY_PREFIX,
    GROUP,
    PLURAL,
    VERSION,
    GracefulPolicy,
    PolicyError,
    namespace_labels,
)

log = logging.getLogger(__name__)


class PolicySource(Protocol):
    """What the webhook needs from a cache: readiness and a namespace's policies."""

    @property
    def ready(self) -> bool: ...

    def policies_in(self, namespace: str) -> tuple[GracefulPolicy, ...]: ...

    def invalid_in(self, namespace: str) -> Mapping[str, str]: ...

    def namespace_labels(self, namespace: str) -> dict[str, str]: ...


class Store(Protocol):
    """What a :class:`Reflector` feeds: a full list, then one event at a time."""

    def replace(self, objects: Iterable[Mapping[str, Any]], resource_version: str) -> None: ...

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None: ...


class PolicyCache:
    """Every usable GracefulPolicy of the cluster, by namespace; safe across threads.

    Readers get an immutable snapshot (a tuple); writers replace a namespace's
    entry under a lock, so an admission never sees a half-applied update.
    With :meth:`with_cluster_feeds`, it also holds the ClusterGracefulPolicies
    (:attr:`cluster_feed`) and the Namespaces' labels (:attr:`namespace_feed`),
    and is ready once all three have been listed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_namespace: dict[str, dict[str, GracefulPolicy]] = {}
        self._sorted: dict[str, tuple[GracefulPolicy, ...]] = {}
        self._invalid: dict[str, dict[str, str]] = {}
        """namespace -> name -> why a policy that exists cannot be used."""
        self._cluster: tuple[GracefulPolicy, ...] = ()
        self._cluster_invalid: dict[str, str] = {}
        """``cluster/NAME`` -> why a ClusterGracefulPolicy that exists cannot be used."""
        self._labels: dict[str, dict[str, str]] = {}
        self._synced = threading.Event()
        self._feeds: list[threading.Event] = [self._synced]
        self.resource_version: str | None = None
        """The version of the last list or event applied."""
        self.getter: Callable[[str, str], Mapping[str, Any] | None] | None = None
        """Reads one policy from the API server (None: not found), for :meth:`fetch`;
        the namespace ``""`` asks for a ClusterGracefulPolicy."""
        self.cluster_feed = _ClusterFeed(self)
        self.namespace_feed = _NamespaceFeed(self)

    @classmethod
    def of(cls, policies: Iterable[GracefulPolicy],
           labels: Mapping[str, Mapping[str, str]] | None = None) -> PolicyCache:
        """A cache that is already synced, holding ``policies`` (for tests and offline use).

        ClusterGracefulPolicies among ``policies`` serve the namespaces whose
        ``labels`` (namespace -> labels) their namespaceSelector matches.
        """
        cache = cls()
        with cache._lock:
            cluster: dict[str, GracefulPolicy] = {}
            for policy in policies:
                if policy.cluster:
                    cluster[policy.name] = policy
                    continue
                cache._by_namespace.setdefault(policy.namespace, {})[policy.name] = policy
            cache._sorted = {ns: _sorted(byname) for ns, byname in cache._by_namespace.items()}
            cache._cluster = _sorted(cluster)
            cache._labels = {ns: dict(v) for ns, v in (labels or {}).items()}
        cache._synced.set()
        return cache

    def with_cluster_feeds(self) -> PolicyCache:
        """Wait for the cluster policies and the namespaces too before being ready."""
        self._feeds = [self._synced, self.cluster_feed.synced, self.namespace_feed.synced]
        return self

    @property
    def ready(self) -> bool:
        """True once every feed has applied a full list (and ever after)."""
        return all(feed.is_set() for feed in self._feeds)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until every feed's first list is applied; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for feed in self._feeds:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not feed.wait(left):
                return False
        return True

    def policies_in(self, namespace: str) -> tuple[GracefulPolicy, ...]:
        """The policies of ``namespace``, by name, then every ClusterGracefulPolicy.

        Whether a cluster policy serves the namespace is the engine's decision
        (its namespaceSelector against :meth:`namespace_labels`), not the cache's.
        """
        return self._sorted.get(namespace, ()) + self._cluster

    def invalid_in(self, namespace: str) -> Mapping[str, str]:
        """The policies that exist but cannot be used there: name (or ``cluster/NAME``) -> error."""
        local = self._invalid.get(namespace, {})
        cluster = self._cluster_invalid
        return {**local, **cluster} if cluster and local else cluster or local

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        """The labels of ``namespace``; only its name label when it is not known (yet)."""
        return namespace_labels(namespace, self._labels.get(namespace))

    def __len__(self) -> int:
        return sum(len(policies) for policies in self._sorted.values())

    def fetch(self, namespace: str, name: str) -> GracefulPolicy | None:
        """The policy as the API server has it now, for a miss; None if absent or unusable.

        Blocking; the webhook calls it in a thread, bounded in time. It does
        not change the cache (the watch is its only writer).
        """
        if self.getter is None:
            return None
        if name.startswith(CLUSTER_POLICY_PREFIX):
            obj = self.getter("", name.removeprefix(CLUSTER_POLICY_PREFIX))
        else:
            obj = self.getter(namespace, name)
        return None if obj is None else _policy(obj)[0]

    def replace(self, objects: Iterable[Mapping[str, Any]], resource_version: str) -> None:
        """Forget everything and hold the policies of a fresh list."""
        by_namespace: dict[str, dict[str, GracefulPolicy]] = {}
        invalid: dict[str, dict[str, str]] = {}
        for obj in objects:
            policy, error = _policy(obj)
            if policy is not None:
                by_namespace.setdefault(policy.namespace, {})[policy.name] = policy
            elif error is not None:
                namespace, name = _identity(obj)
                if name is not None:
                    invalid.setdefault(namespace, {})[name] = error
        with self._lock:
            self._by_namespace = by_namespace
            self._invalid = invalid
            self._sorted = {ns: _sorted(byname) for ns, byname in by_namespace.items()}
            self.resource_version = resource_version
        if not self._synced.is_set():
            log.info("policy cache synced: %d policies", len(self))
        self._synced.set()

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        """Apply one watch event (ADDED, MODIFIED or DELETED)."""
        namespace, name = _identity(obj)
        if name is None:
            log.warning("ignored a %s event for a policy without a name", event_type)
            return
        policy, error = (None, None) if event_type == "DELETED" else _policy(obj)
        with self._lock:
            wrong = dict(self._invalid.get(namespace, {}))
            wrong.pop(name, None)
            if error is not None:
                wrong[name] = error
            self._invalid = ({**self._invalid, namespace: wrong} if wrong else
                             {ns: w for ns, w in self._invalid.items() if ns != namespace})
            byname = dict(self._by_namespace.get(namespace, {}))
            if policy is None:  # deleted, or no longer usable
                byname.pop(name, None)
            else:
                byname[name] = policy
            if byname:
                self._by_namespace[namespace] = byname
                self._sorted = {**self._sorted, namespace: _sorted(byname)}
            else:
                self._by_namespace.pop(namespace, None)
                self._sorted = {ns: p for ns, p in self._sorted.items() if ns != namespace}
            version = _resource_version(obj)
            if version:
                self.resource_version = version


class _ClusterFeed:
    """The ClusterGracefulPolicies of a :class:`PolicyCache` (a :class:`Store`)."""

    def __init__(self, cache: PolicyCache) -> None:
        self.cache = cache
        self.byname: dict[str, GracefulPolicy] = {}
        self.invalid: dict[str, str] = {}
        self.synced = threading.Event()

    def replace(self, objects: Iterable[Mapping[str, Any]], resource_version: str) -> None:
        byname: dict[str, GracefulPolicy] = {}
        invalid: dict[str, str] = {}
        for obj in objects:
            _, name = _identity(obj)
            policy, error = _policy(obj)
            if policy is not None and policy.cluster:
                byname[policy.name] = policy
            elif error is not None and name is not None:
                invalid[name] = error
        with self.cache._lock:
            self.byname, self.invalid = byname, invalid
            self._publish()
        if not self.synced.is_set():
            log.info("cluster policy cache synced: %d policies", len(byname))
        self.synced.set()

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        _, name = _identity(obj)
        if name is None:
            return
        policy, error = (None, None) if event_type == "DELETED" else _policy(obj)
        with self.cache._lock:
            self.byname.pop(name, None)
            self.invalid.pop(name, None)
            if policy is not None and policy.cluster:
                self.byname[name] = policy
            elif error is not None:
                self.invalid[name] = error
            self._publish()

    def _publish(self) -> None:
        """Swap in fresh snapshots (the caller holds the lock)."""
        self.cache._cluster = _sorted(self.byname)
        self.cache._cluster_invalid = {f"{CLUSTER_POLICY_PREFIX}{name}": error
                                       for name, error in self.invalid.items()}


class _NamespaceFeed:
    """The labels of every Namespace, for the cluster policies' namespaceSelector."""

    def __init__(self, cache: PolicyCache) -> None:
        self.cache = cache
        self.synced = threading.Event()

    def replace(self, objects: Iterable[Mapping[str, Any]], resource_version: str) -> None:
        labels = {}
        for obj in objects:
            name, found = _labels(obj)
            if name is not None:
                labels[name] = found
        with self.cache._lock:
            self.cache._labels = labels
        self.synced.set()

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        name, found = _labels(obj)
        if name is None:
            return
        with self.cache._lock:
            labels = dict(self.cache._labels)
            if event_type == "DELETED":
                labels.pop(name, None)
            else:
                labels[name] = found
            self.cache._labels = labels


def _labels(obj: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    _, name = _identity(obj)
    metadata = obj.get("metadata")
    raw = metadata.get("labels") if isinstance(metadata, Mapping) else None
    found = ({str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {})
    return name, found


def _sorted(byname: Mapping[str, GracefulPolicy]) -> tuple[GracefulPolicy, ...]:
    return tuple(byname[name] for name in sorted(byname))


def _identity(obj: Mapping[str, Any]) -> tuple[str, str | None]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return "", None
    name = metadata.get("name")
    namespace = metadata.get("namespace")
    return (namespace if isinstance(namespace, str) else "",
            name if isinstance(name, str) else None)


def _resource_version(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    version = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
    return version if isinstance(version, str) and version else None


def _policy(obj: Mapping[str, Any]) -> tuple[GracefulPolicy | None, str | None]:
    """The policy in ``obj``, or None (logged) and why it cannot be used."""
    try:
        return GracefulPolicy.from_object(obj), None
    except PolicyError as exc:
        namespace, name = _identity(obj)
        kind = obj.get("kind") or "GracefulPolicy"
        where = f"{namespace}/{name}" if namespace else name
        log.warning("skipped %s %s: %s", kind, where, exc)
        return None, str(exc)


# --- feeding the cache --------------------------------------------------------------------


class ResourceGone(Exception):
    """The watched resourceVersion is too old (HTTP 410): relist."""


class PolicyApi(Protocol):
    """The two calls a reflector needs; the real one is :class:`KubernetesPolicyApi`."""

    def list(self) -> tuple[list[Mapping[str, Any]], str]:
        """Every policy of the cluster and the list's resourceVersion."""
        ...

    def watch(self, resource_version: str, timeout_seconds: int) -> Iterator[Mapping[str, Any]]:
        """Watch events after ``resource_version``; :class:`ResourceGone` on 410."""
        ...

    def interrupt(self) -> None:
        """Abort a watch blocked in another thread (used to stop)."""
        ...


@dataclass
class Backoff:
    """Exponential backoff with jitter between failed attempts."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    _current: float = 0.0

    def next(self) -> float:
        """The next delay: initial, then growing up to the maximum, +-20% jitter."""
        self._current = self.initial if not self._current else min(
            self._current * self.factor, self.maximum)
        return self._current * random.uniform(0.8, 1.2)  # noqa: S311 - not cryptographic

    def reset(self) -> None:
        self._current = 0.0


class Reflector:
    """Keeps a :class:`PolicyCache` current from a :class:`PolicyApi`, in a thread."""

    def __init__(self, cache: Store, api: PolicyApi, *, backoff: Backoff | None = None,
                 watch_timeout: int = 300) -> None:
        self.cache = cache
        self.api = api
        self.backoff = backoff or Backoff()
        self.watch_timeout = watch_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Reflector:
        """Run :meth:`run` in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="policy-reflector", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask the loop to end and interrupt a blocked watch; returns at once.

        Safe in a signal handler: the webhook calls it on SIGTERM, before the
        server drains, so the watch is gone before the last line is logged.
        """
        self._stop.set()
        try:
            self.api.interrupt()
        except Exception:  # stopping must not fail
            log.debug("interrupting the watch failed", exc_info=True)

    def stop(self, timeout: float = 5.0) -> None:
        """:meth:`request_stop`, then wait for the thread."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """List, then watch, until stopped; never raises."""
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    items, version = self.api.list()
                    self.cache.replace(items, version)
                    self.backoff.reset()
                started = time.monotonic()
                version, events = self._watch(version)
                if not events and time.monotonic() - started < 1.0:
                    # a server that ends every watch at once (shutting down): don't spin
                    self._stop.wait(self.backoff.next())
            except ResourceGone:
                log.info("policy watch: resourceVersion %s is gone; relisting", version)
                version = None
            except Exception as exc:
                if self._stop.is_set():  # the interrupted watch of a stop: not a failure
                    log.debug("policy watch ended by stop: %s", _short(exc))
                    break
                delay = self.backoff.next()
                log.warning("policy watch failed (%s); retrying in %.1fs", _short(exc), delay)
                self._stop.wait(delay)
        log.info("policy watch stopped")

    def _watch(self, version: str) -> tuple[str, int]:
        """Apply events until the stream ends; returns the last version seen and a count."""
        events = 0
        timeout = int(self.watch_timeout * random.uniform(0.8, 1.0)) or 1  # noqa: S311
        for event in self.api.watch(version, timeout):
            if self._stop.is_set():
                break
            kind = event.get("type")
            obj = event.get("object")
            if not isinstance(obj, Mapping):
                raise ValueError(f"watch event {kind!r} without an object")
            if kind == "ERROR":
                code = obj.get("code")
                if code == 410:
                    raise ResourceGone(str(obj.get("message", "")))
                raise RuntimeError(f"watch error {code}: {obj.get('message', '')}")
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self.cache.apply(kind, obj)
            version = _resource_version(obj) or version
            events += 1
            self.backoff.reset()
        return version, events


class KubernetesPolicyApi:
    """:class:`PolicyApi` over the official client (``kubernetes.client.ApiClient``).

    ``plural`` is ``gracefulpolicies`` or ``clustergracefulpolicies``;
    ``namespaces`` lists and watches Namespaces instead (their labels).
    """

    def __init__(self, api_client: Any, *, connect_timeout: float = 5.0,
                 plural: str = PLURAL) -> None:
        from kubernetes import client  # noqa: PLC0415 - heavy import, only when used

        if plural not in (PLURAL, CLUSTER_PLURAL, "namespaces"):
            raise ValueError(f"cannot watch {plural!r}")
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._plural = plural
        self._connect_timeout = connect_timeout
        self._response: Any = None
        self._api_exception: type[Exception] = client.ApiException

    def _call(self, **kwargs: Any) -> Any:
        if self._plural == "namespaces":
            kwargs.setdefault("_preload_content", False)  # raw JSON: labels are all we read
            return self._core.list_namespace(**kwargs)
        return self._custom.list_cluster_custom_object(GROUP, VERSION, self._plural, **kwargs)

    def _missing_crd(self, exc: Exception) -> bool:
        """A 404 for ClusterGracefulPolicies: the CRD is not installed, not a failure."""
        return getattr(exc, "status", None) == 404 and self._plural == CLUSTER_PLURAL

    def list(self) -> tuple[list[Mapping[str, Any]], str]:
        try:
            result: Any = self._call(_request_timeout=(self._connect_timeout, 30))
        except self._api_exception as exc:
            if self._missing_crd(exc):
                # No ClusterGracefulPolicy CRD (an older install): nothing to cache. The
                # watch from "" retries until it exists, and then starts with an ADDED
                # event for every object, so nothing created meanwhile is missed.
                log.info("no ClusterGracefulPolicy CRD in the cluster: cluster policies"
                         " apply once it is installed")
                return [], ""
            raise
        if self._plural == "namespaces":
            result = json.loads(result.data)
        return list(result.get("items") or []), str(result["metadata"]["resourceVersion"])

    def watch(self, resource_version: str, timeout_seconds: int) -> Iterator[Mapping[str, Any]]:
        try:
            response: Any = self._call(
                watch=True, **({"resource_version": resource_version} if resource_version else {}),
                allow_watch_bookmarks=True, timeout_seconds=timeout_seconds,
                _preload_content=False,
                # the server ends the watch after timeout_seconds; silence beyond is a dead link
                _request_timeout=(self._connect_timeout, timeout_seconds + 15),
            )
        except self._api_exception as exc:
            if getattr(exc, "status", None) == 410:
                raise ResourceGone(str(exc)) from None
            if self._missing_crd(exc):
                return  # still no CRD: an empty watch, retried after the reflector's backoff
            raise
        self._response = response
        try:
            for line in _lines(response.stream(amt=None, decode_content=True)):
                yield json.loads(line)
        finally:
            self._response = None
            response.release_conn()

    def get(self, namespace: str, name: str, *, timeout: float = 2.0
            ) -> Mapping[str, Any] | None:
        """One policy, or None when the API server says it does not exist (404).

        The namespace ``""`` reads the ClusterGracefulPolicy ``name``.
        """
        try:
            if namespace:
                result: Any = self._custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _request_timeout=(timeout, timeout))
            else:
                result = self._custom.get_cluster_custom_object(
                    GROUP, VERSION, CLUSTER_PLURAL, name, _request_timeout=(timeout, timeout))
        except self._api_exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise
        return result if isinstance(result, Mapping) else None

    def interrupt(self) -> None:
        response = self._response
        if response is not None:
            response.shutdown()


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Newline-delimited JSON records from a stream of arbitrary chunks."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())
    if pending.strip():
        yield pending


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
