"""The policy cache and its reflector, against a scripted fake API (no cluster)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from graceful.webhook.cache import (
    Backoff,
    PolicyCache,
    Reflector,
    ResourceGone,
    _lines,
)

from .conftest import policy_object


def _obj(name: str, namespace: str = "team-a", version: str = "1", **spec: Any) -> dict[str, Any]:
    obj = policy_object(name, namespace, **spec)
    obj["metadata"]["resourceVersion"] = version
    return obj


def _names(cache: PolicyCache, namespace: str = "team-a") -> list[str]:
    return [p.name for p in cache.policies_in(namespace)]


def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


# --- the cache ---------------------------------------------------------------------------


def test_not_ready_until_the_first_list() -> None:
    cache = PolicyCache()
    assert not cache.ready and cache.policies_in("team-a") == ()
    cache.replace([], "5")
    assert cache.ready and cache.resource_version == "5"


def test_indexed_by_namespace_and_sorted_by_name() -> None:
    cache = PolicyCache()
    cache.replace([_obj("b"), _obj("a"), _obj("c", "team-b")], "3")
    assert _names(cache) == ["a", "b"]
    assert _names(cache, "team-b") == ["c"]
    assert len(cache) == 3


def test_events_add_modify_delete() -> None:
    cache = PolicyCache()
    cache.replace([_obj("a")], "1")
    cache.apply("ADDED", _obj("b", version="2"))
    cache.apply("MODIFIED", _obj("a", version="3", gracefulTimeoutSeconds=90))
    assert _names(cache) == ["a", "b"]
    assert cache.policies_in("team-a")[0].spec.graceful_timeout_seconds == 90
    cache.apply("DELETED", _obj("a", version="4"))
    cache.apply("DELETED", _obj("b", version="5"))
    assert _names(cache) == [] and cache.resource_version == "5"


def test_a_snapshot_is_not_changed_by_later_events() -> None:
    cache = PolicyCache()
    cache.replace([_obj("a")], "1")
    snapshot = cache.policies_in("team-a")
    cache.apply("ADDED", _obj("b"))
    assert [p.name for p in snapshot] == ["a"]


def test_invalid_policies_are_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    cache = PolicyCache()
    bad = _obj("bad", drain={"preStopSleepSeconds": -1})
    with caplog.at_level(logging.WARNING):
        cache.replace([_obj("good"), bad, {"metadata": "nonsense"}], "1")
    assert _names(cache) == ["good"]
    assert "skipped GracefulPolicy team-a/bad: spec.drain.preStopSleepSeconds" in caplog.text


def test_a_policy_that_becomes_invalid_is_dropped() -> None:
    cache = PolicyCache()
    cache.replace([_obj("a")], "1")
    cache.apply("MODIFIED", _obj("a", version="2", mode="Sometimes"))
    assert _names(cache) == []


def test_invalid_policies_are_remembered_with_their_error_until_fixed_or_deleted() -> None:
    cache = PolicyCache()
    cache.replace([_obj("good"), _obj("bad", drain={"preStopSleepSeconds": -1})], "1")
    assert list(cache.invalid_in("team-a")) == ["bad"]
    assert cache.invalid_in("team-a")["bad"].startswith("spec.drain.preStopSleepSeconds")
    cache.apply("MODIFIED", _obj("good", version="2", mode="Sometimes"))
    assert sorted(cache.invalid_in("team-a")) == ["bad", "good"]
    cache.apply("MODIFIED", _obj("bad", version="3"))  # fixed
    assert list(cache.invalid_in("team-a")) == ["good"] and _names(cache) == ["bad"]
    cache.apply("DELETED", _obj("good", version="4"))
    assert cache.invalid_in("team-a") == {} and cache.invalid_in("elsewhere") == {}
    cache.replace([_obj("bad", drain={"preStopSleepSeconds": -1})], "5")
    assert list(cache.invalid_in("team-a")) == ["bad"]
    cache.replace([], "6")
    assert cache.invalid_in("team-a") == {}


def test_relist_forgets_policies_deleted_meanwhile() -> None:
    cache = PolicyCache()
    cache.replace([_obj("a"), _obj("b")], "1")
    cache.replace([_obj("b")], "9")
    assert _names(cache) == ["b"]


# --- the reflector ------------------------------------------------------------------------


Step = list[Mapping[str, Any]] | BaseException


class FakeApi:
    """Serves scripted lists and watches; a watch past the script blocks until interrupted."""

    def __init__(self, lists: list[tuple[list[dict[str, Any]], str] | BaseException],
                 watches: list[Step]) -> None:
        self.lists = lists
        self.watches = watches
        self.list_calls = 0
        self.watch_versions: list[str] = []
        self._interrupted = threading.Event()

    def list(self) -> tuple[list[Mapping[str, Any]], str]:
        self.list_calls += 1
        step = self.lists.pop(0) if self.lists else ([], "0")
        if isinstance(step, BaseException):
            raise step
        items, version = step
        return list(items), version

    def watch(self, resource_version: str, timeout_seconds: int) -> Iterator[Mapping[str, Any]]:
        self.watch_versions.append(resource_version)
        if not self.watches:
            self._interrupted.wait()
            return
        step = self.watches.pop(0)
        if isinstance(step, BaseException):
            raise step
        yield from step

    def interrupt(self) -> None:
        self._interrupted.set()


def _event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


@pytest.fixture
def run() -> Iterator[Callable[[FakeApi], tuple[PolicyCache, Reflector]]]:
    reflectors: list[Reflector] = []

    def start(api: FakeApi) -> tuple[PolicyCache, Reflector]:
        cache = PolicyCache()
        reflector = Reflector(cache, api, backoff=Backoff(initial=0.001, maximum=0.01),
                              watch_timeout=60).start()
        reflectors.append(reflector)
        return cache, reflector

    yield start
    for reflector in reflectors:
        reflector.stop()


def test_lists_then_watches_from_the_list_version(run: Any) -> None:
    api = FakeApi([([_obj("a")], "10")], [[_event("ADDED", _obj("b", version="11"))]])
    cache, _ = run(api)
    _until(lambda: _names(cache) == ["a", "b"])
    assert cache.ready
    _until(lambda: api.watch_versions == ["10", "11"])  # resumed from the last event


def test_bookmarks_advance_the_version(run: Any) -> None:
    bookmark = {"type": "BOOKMARK", "object": {"kind": "GracefulPolicy",
                                              "metadata": {"resourceVersion": "50"}}}
    api = FakeApi([([], "10")], [[bookmark]])
    run(api)
    _until(lambda: api.watch_versions == ["10", "50"])


def test_410_gone_relists(run: Any) -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410,
                                       "message": "too old resource version: 10 (20)"}}
    api = FakeApi([([_obj("a")], "10"), ([_obj("b", version="30")], "30")],
                  [[gone]])
    cache, _ = run(api)
    _until(lambda: _names(cache) == ["b"])
    assert api.list_calls == 2
    _until(lambda: api.watch_versions == ["10", "30"])


def test_410_on_connect_relists(run: Any) -> None:
    api = FakeApi([([], "10"), ([_obj("b")], "30")], [ResourceGone("expired")])
    cache, _ = run(api)
    _until(lambda: _names(cache) == ["b"])


def test_connection_errors_back_off_and_resume_from_the_last_version(
        run: Any, caplog: pytest.LogCaptureFixture) -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    api = FakeApi([([_obj("a")], "10")],
                  [[_event("ADDED", _obj("b", version="12"))], refused, refused, refused,
                   [_event("ADDED", _obj("c", version="13"))]])
    with caplog.at_level(logging.WARNING):
        cache, _ = run(api)
        _until(lambda: _names(cache) == ["a", "b", "c"])
    assert api.list_calls == 1  # no relist needed: the version was still valid
    assert api.watch_versions[:5] == ["10", "12", "12", "12", "12"]
    assert "policy watch failed (ConnectionRefusedError" in caplog.text


def test_the_first_list_is_retried_until_it_works(run: Any) -> None:
    api = FakeApi([ConnectionRefusedError(), TimeoutError(), ([_obj("a")], "10")], [])
    cache, _ = run(api)
    _until(lambda: cache.ready)
    assert _names(cache) == ["a"] and api.list_calls == 3


def test_other_watch_errors_reconnect(run: Any) -> None:
    error = {"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "boom"}}
    api = FakeApi([([], "10")], [[error], [_event("ADDED", _obj("a", version="11"))]])
    cache, _ = run(api)
    _until(lambda: _names(cache) == ["a"])
    assert api.list_calls == 1


def test_malformed_events_reconnect(run: Any) -> None:
    api = FakeApi([([], "10")], [[{"type": "ADDED"}], [_event("ADDED", _obj("a"))]])
    cache, _ = run(api)
    _until(lambda: _names(cache) == ["a"])


def test_stop_interrupts_a_blocked_watch(run: Any) -> None:
    api = FakeApi([([], "10")], [])
    _, reflector = run(api)
    _until(lambda: api.watch_versions == ["10"])
    reflector.stop(timeout=30)  # a hang guard: the fake watch blocks until interrupted
    assert reflector._thread is not None and not reflector._thread.is_alive()


def test_backoff_grows_to_a_maximum_with_jitter() -> None:
    backoff = Backoff(initial=1, maximum=8)
    delays = [backoff.next() for _ in range(6)]
    assert 0.8 <= delays[0] <= 1.2 and 1.6 <= delays[1] <= 2.4
    assert all(6.4 <= d <= 9.6 for d in delays[3:])
    backoff.reset()
    assert backoff.next() <= 1.2


def test_lines_split_records_across_chunks() -> None:
    chunks = [b'{"a":', b' 1}\n{"b"', b": 2}\n\n", b'{"c": 3}']
    assert list(_lines(chunks)) == [b'{"a": 1}', b'{"b": 2}', b'{"c": 3}']


# --- ClusterGracefulPolicies and namespace labels ------------------------------------------


def _cluster_obj(name: str, version: str = "1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "graceful.io/v1alpha1", "kind": "ClusterGracefulPolicy",
            "metadata": {"name": name, "resourceVersion": version},
            "spec": {"namespaceSelector": {"matchLabels": {"tier": "apps"}}, **spec}}


def _namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels, "resourceVersion": "1"}}


def test_cluster_policies_follow_every_namespaces_own() -> None:
    cache = PolicyCache().with_cluster_feeds()
    cache.replace([_obj("local")], "1")
    cache.cluster_feed.replace([_cluster_obj("b"), _cluster_obj("a")], "1")
    assert _names(cache) == ["local", "a", "b"]
    assert _names(cache, "anywhere") == ["a", "b"]  # the engine decides where they serve
    assert len(cache) == 1  # the gauge counts namespaced policies
    cache.cluster_feed.apply("DELETED", _cluster_obj("a", "2"))
    cache.cluster_feed.apply("ADDED", _cluster_obj("c", "3"))
    assert _names(cache, "anywhere") == ["b", "c"]


def test_ready_only_once_every_feed_has_listed() -> None:
    cache = PolicyCache().with_cluster_feeds()
    cache.replace([], "1")
    cache.cluster_feed.replace([], "1")
    assert not cache.ready and not cache.wait_ready(0.01)
    cache.namespace_feed.replace([_namespace("team-a", tier="apps")], "1")
    assert cache.ready and cache.wait_ready(0)


def test_a_plain_cache_does_not_wait_for_cluster_feeds() -> None:
    cache = PolicyCache()
    cache.replace([], "1")
    assert cache.ready  # a cluster without the ClusterGracefulPolicy feeds (tests, offline)


def test_namespace_labels_follow_the_namespaces() -> None:
    cache = PolicyCache().with_cluster_feeds()
    cache.namespace_feed.replace([_namespace("team-a", tier="apps")], "1")
    assert cache.namespace_labels("team-a") == {
        "tier": "apps", "kubernetes.io/metadata.name": "team-a"}
    # unknown (yet): only the name label the API server always sets
    assert cache.namespace_labels("new") == {"kubernetes.io/metadata.name": "new"}
    cache.namespace_feed.apply("MODIFIED", _namespace("team-a", tier="batch"))
    assert cache.namespace_labels("team-a")["tier"] == "batch"
    cache.namespace_feed.apply("DELETED", _namespace("team-a"))
    assert "tier" not in cache.namespace_labels("team-a")


def test_invalid_cluster_policies_are_named_as_the_annotation_names_them(
        caplog: pytest.LogCaptureFixture) -> None:
    cache = PolicyCache().with_cluster_feeds()
    cache.replace([_obj("bad", drain={"preStopSleepSeconds": -1})], "1")
    with caplog.at_level(logging.WARNING):
        cache.cluster_feed.replace([_cluster_obj("wide", mode="Sometimes")], "1")
    assert "skipped ClusterGracefulPolicy wide: spec.mode" in caplog.text
    assert sorted(cache.invalid_in("team-a")) == ["bad", "cluster/wide"]
    assert list(cache.invalid_in("elsewhere")) == ["cluster/wide"]
    assert _names(cache, "elsewhere") == []
    cache.cluster_feed.apply("MODIFIED", _cluster_obj("wide", "2"))  # fixed
    assert list(cache.invalid_in("elsewhere")) == [] and _names(cache, "elsewhere") == ["wide"]


def test_fetch_reads_a_cluster_policy_without_a_namespace() -> None:
    asked: list[tuple[str, str]] = []

    def getter(namespace: str, name: str) -> Mapping[str, Any] | None:
        asked.append((namespace, name))
        return _cluster_obj(name) if not namespace else _obj(name, namespace)

    cache = PolicyCache()
    cache.getter = getter
    found = cache.fetch("team-a", "cluster/wide")
    assert found is not None and found.cluster and found.reference == "cluster/wide"
    local = cache.fetch("team-a", "workers")
    assert local is not None and not local.cluster
    assert asked == [("", "wide"), ("team-a", "workers")]


class _Missing:
    """CustomObjectsApi of a cluster without the ClusterGracefulPolicy CRD."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.calls = 0

    def list_cluster_custom_object(self, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client import ApiException  # noqa: PLC0415

        self.calls += 1
        raise ApiException(status=self.status, reason="Not Found")


def _api(plural: str, status: int) -> Any:
    from kubernetes.client import ApiClient  # noqa: PLC0415

    from graceful.webhook.cache import KubernetesPolicyApi  # noqa: PLC0415

    api = KubernetesPolicyApi(ApiClient(), plural=plural)
    api._custom = _Missing(status)  # type: ignore[assignment]
    return api


def test_a_missing_cluster_policy_crd_is_an_empty_list_and_quiet_watches(
        caplog: pytest.LogCaptureFixture) -> None:
    api = _api("clustergracefulpolicies", 404)
    with caplog.at_level(logging.INFO):
        assert api.list() == ([], "")
        assert list(api.watch("", 5)) == [] and list(api.watch("", 5)) == []
    assert api._custom.calls == 3
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "no ClusterGracefulPolicy CRD" in caplog.text


@pytest.mark.parametrize(("plural", "status"), [("gracefulpolicies", 404),
                                                ("clustergracefulpolicies", 403)])
def test_other_failures_still_raise(plural: str, status: int) -> None:
    from kubernetes.client import ApiException  # noqa: PLC0415

    api = _api(plural, status)
    with pytest.raises(ApiException):
        api.list()
    with pytest.raises(ApiException):
        list(api.watch("1", 5))
