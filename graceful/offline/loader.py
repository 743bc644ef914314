"""Reading Kubernetes objects from files, directories and standard input.

Manifests come in every shape a pipeline produces: one object per file, many
documents per file (``---``), ``kind: List`` (``kubectl get -o yaml``), JSON,
and directories of all of these. Anything that is not a Kubernetes object is
an input error (exit code 2), reported in one line naming the file and the
document, because a CI check that silently skips a file is worse than none.

Helm charts are the one input that is almost YAML: a template (``{{ ... }}``)
is only a manifest once Helm has rendered it, and a parser error on line 7 does
not say so. A chart directory, or a file that fails to parse and holds template
syntax, is reported as such, with the command that renders it. A file that
parses is never second-guessed: rendered output legitimately carries ``{{``
in strings (alerting rules in a ConfigMap, for one).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from graceful.core import (
    ANNOTATION_POLICY,
    CLUSTER_KIND,
    KIND,
    WORKLOAD_KINDS,
    GracefulPolicy,
    PolicyError,
    namespace_labels,
)

#: libyaml's safe loader when PyYAML was built with it, else the pure-Python one.
#: Same documents, same errors (both are safe loaders), several times faster on
#: large install files: parsing is most of the time an audit of one takes.
SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: File names read when a directory is given (recursively, in sorted order).
SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"
#: What to do with a Helm chart or template, said in every error about one.
RENDER_FIRST = "render it first: helm template RELEASE CHART | graceful audit -f -"
_TEMPLATE = re.compile(r"\{\{.*?\}\}")


class InputError(ValueError):
    """Input that cannot be read; the message names the file and the document."""


@dataclass(frozen=True)
class Document:
    """One Kubernetes object and where it came from."""

    source: str
    """``path`` or ``path#N`` (the N-th document, from 1) or ``<stdin>#N``."""
    obj: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        meta = self.obj.get("metadata")
        if isinstance(meta, Mapping):
            for key in ("name", "generateName"):
                if isinstance(meta.get(key), str):
                    return str(meta[key])
        return ""

    def namespace(self, default: str) -> str:
        meta = self.obj.get("metadata")
        if isinstance(meta, Mapping) and isinstance(meta.get("namespace"), str):
            return str(meta["namespace"]) or default
        return default


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        if (path / "Chart.yaml").is_file():
            raise InputError(f"{path}: a Helm chart, not manifests; {RENDER_FIRST}")
        found = sorted(p for p in path.rglob("*")
                       if p.is_file() and p.suffix in SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not found:
            raise InputError(f"{path}: no {', '.join(SUFFIXES)} files in this directory")
        return found
    if path.exists():
        return [path]
    raise InputError(f"{path}: no such file or directory")


def _documents(label: str, stream: IO[str] | str) -> Iterator[Document]:
    try:
        loaded = list(yaml.load_all(stream, Loader=SafeLoader))
    except yaml.YAMLError as exc:
        template = _template_line(stream if isinstance(stream, str) else "")
        if template is not None:
            raise InputError(f"{label}: line {template}: Helm template syntax ({{{{ ... }}}});"
                             f" {RENDER_FIRST}") from None
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise InputError(f"{label}:{where} not valid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise InputError(f"{label}: not a text file") from None
    many = len(loaded) > 1
    for index, item in enumerate(loaded, start=1):
        where = f"{label}#{index}" if many else label
        if item is None:  # an empty document, e.g. a trailing '---'
            continue
        yield from _objects(where, item)


def _template_line(text: str) -> int | None:
    """The first line (from 1) holding a Go template action, or None."""
    for number, line in enumerate(text.splitlines(), start=1):
        if _TEMPLATE.search(line):
            return number
    return None


def _objects(where: str, item: Any) -> Iterator[Document]:
    if not isinstance(item, Mapping) or not isinstance(item.get("kind"), str):
        raise InputError(f"{where}: not a Kubernetes object (no kind)")
    if item["kind"].endswith("List") and isinstance(item.get("items"), list):
        for number, child in enumerate(item["items"], start=1):
            yield from _objects(f"{where} item {number}", child)
        return
    yield Document(where, item)


def load(paths: Iterable[str], stdin: IO[str] | None = None) -> list[Document]:
    """Every object in ``paths`` (files, directories, or ``-`` for standard input)."""
    documents: list[Document] = []
    read_stdin = False
    for raw in paths:
        if raw == STDIN:
            if read_stdin:
                raise InputError("-: standard input given twice")
            read_stdin = True
            documents.extend(_documents("<stdin>", (stdin or sys.stdin).read()))
            continue
        for path in _files(Path(raw)):
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{path}: not a UTF-8 text file") from None
            except OSError as exc:
                raise InputError(f"{path}: {exc.strerror or exc}") from None
            documents.extend(_documents(str(path), text))
    return documents


@dataclass(frozen=True)
class Inventory:
    """The workloads and the policies found in the input, by namespace."""

    workloads: list[tuple[str, Document]]
    """(namespace, document) for each Deployment, StatefulSet, DaemonSet and Pod."""
    policies: dict[str, list[GracefulPolicy]]
    """namespace -> its GracefulPolicies."""
    cluster_policies: list[GracefulPolicy] = field(default_factory=list)
    """The ClusterGracefulPolicies of the input."""
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    """namespace -> its labels, for the Namespace objects of the input."""

    def policies_for(self, namespace: str) -> list[GracefulPolicy]:
        """What the engine chooses from for a workload of ``namespace``."""
        return [*self.policies.get(namespace, []), *self.cluster_policies]

    def labels_for(self, namespace: str) -> dict[str, str]:
        """The labels of ``namespace`` (its name label, when the input has no Namespace)."""
        return namespace_labels(namespace, self.labels.get(namespace))


def _opted_in(doc: Document) -> bool:
    meta = doc.obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return isinstance(annotations, Mapping) and ANNOTATION_POLICY in annotations


def inventory(documents: Iterable[Document], default_namespace: str) -> Inventory:
    """Sort objects into workloads and policies; other kinds are ignored.

    A policy without a namespace belongs to ``default_namespace``, like the
    workloads without one (which is what ``kubectl apply -n`` would do).
    """
    workloads: list[tuple[str, Document]] = []
    policies: dict[str, list[GracefulPolicy]] = {}
    cluster: dict[str, GracefulPolicy] = {}
    labels: dict[str, dict[str, str]] = {}
    seen: dict[tuple[str, str], str] = {}
    for doc in documents:
        namespace = doc.namespace(default_namespace)
        graceful = str(doc.obj.get("apiVersion", "")).startswith("graceful.io/")
        if doc.kind == CLUSTER_KIND and graceful:
            try:
                policy = GracefulPolicy.from_object(doc.obj)
            except PolicyError as exc:
                message = " ".join(str(exc).split())
                raise InputError(f"{doc.source}: {CLUSTER_KIND} {doc.name!r}: {message}") from None
            if policy.name in cluster:
                raise InputError(f"{doc.source}: {CLUSTER_KIND} {policy.name} is defined twice")
            cluster[policy.name] = policy
        elif doc.kind == "Namespace" and doc.obj.get("apiVersion") == "v1":
            meta = doc.obj.get("metadata") or {}
            raw = meta.get("labels") if isinstance(meta, dict) else None
            labels[doc.name] = ({str(k): str(v) for k, v in raw.items()}
                                if isinstance(raw, dict) else {})
        elif doc.kind == KIND and str(doc.obj.get("apiVersion", "")).startswith("graceful.io/"):
            obj = dict(doc.obj)
            meta = dict(obj.get("metadata") or {})
            meta["namespace"] = namespace
            obj["metadata"] = meta
            try:
                policy = GracefulPolicy.from_object(obj)
            except PolicyError as exc:
                message = " ".join(str(exc).split())
                raise InputError(f"{doc.source}: GracefulPolicy {doc.name!r}: {message}") from None
            key = (namespace, policy.name)
            if key in seen:
                raise InputError(f"{doc.source}: GracefulPolicy {namespace}/{policy.name}"
                                 f" is also defined in {seen[key]}")
            seen[key] = doc.source
            policies.setdefault(namespace, []).append(policy)
        elif doc.kind in WORKLOAD_KINDS or _opted_in(doc):
            # an annotated object of a kind the engine does not handle is reported
            # (UnsupportedKind), never skipped in silence
            workloads.append((namespace, doc))
    return Inventory(workloads, policies, [cluster[n] for n in sorted(cluster)], labels)
