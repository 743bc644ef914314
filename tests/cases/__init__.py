"""The table of cases shared by the core, webhook and e2e tests.

Each ``*.yaml`` file in this directory is one case (format in
docs/architecture.md): a policy (or ``policies``), a workload ``object`` and
what to ``expect`` — whether it opts in, the whole object after the patch
(``mutated``; omitted means the patch must be empty), substrings of the
admission warnings, and the finding codes of the object as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from graceful.core import GracefulPolicy, namespace_labels

CASES_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Expect:
    """What a case expects from ``evaluate``."""

    opted_in: bool
    mutated: dict[str, Any] | None = None
    """The whole object after the patch; None means the patch is empty."""
    warnings_contain: list[str] = field(default_factory=list)
    """Each must be a substring of one of the warnings."""
    findings: list[str] = field(default_factory=list)
    """Finding codes of the object as given (order does not matter, repeats do)."""


@dataclass(frozen=True)
class Case:
    """One row of the table."""

    name: str
    description: str
    object: dict[str, Any]
    expect: Expect
    policies: list[dict[str, Any]] = field(default_factory=list)
    """GracefulPolicy objects of the workload's namespace, and ClusterGracefulPolicies."""
    previous: dict[str, Any] | None = None
    """For an UPDATE: the object as stored before it (None: the case is a CREATE)."""
    """GracefulPolicy objects of the workload's namespace, and ClusterGracefulPolicies."""
    namespace_labels: dict[str, str] = field(default_factory=dict)
    """Labels of the workload's namespace (what a cluster policy's namespaceSelector reads)."""
    path: Path | None = None

    @property
    def cluster_policies(self) -> list[dict[str, Any]]:
        return [p for p in self.policies if p["kind"] == "ClusterGracefulPolicy"]

    @property
    def namespaced_policies(self) -> list[dict[str, Any]]:
        return [p for p in self.policies if p["kind"] != "ClusterGracefulPolicy"]

    def ns_labels(self, namespace: str = "cases") -> dict[str, str]:
        """The namespace's labels as the API server keeps them."""
        return namespace_labels(namespace, self.namespace_labels)

    @property
    def kind(self) -> str:
        return str(self.object["kind"])

    def graceful_policies(self) -> list[GracefulPolicy]:
        """The policies as :class:`graceful.core.GracefulPolicy`."""
        return [GracefulPolicy.from_object(p) for p in self.policies]


def _case(path: Path) -> Case:
    raw = yaml.safe_load(path.read_text())
    policies = raw.get("policies") or ([raw["policy"]] if raw.get("policy") else [])
    expect = raw["expect"]
    return Case(
        name=raw["name"],
        description=raw.get("description", ""),
        object=raw["object"],
        policies=policies,
        previous=raw.get("previous"),
        namespace_labels=dict(raw.get("namespace_labels") or {}),
        expect=Expect(
            opted_in=bool(expect["opted_in"]),
            mutated=expect.get("mutated"),
            warnings_contain=list(expect.get("warnings_contain") or []),
            findings=list(expect.get("findings") or []),
        ),
        path=path,
    )


@dataclass(frozen=True)
class InvalidPolicy:
    """A GracefulPolicy spec that must be rejected, and how the rejection reads."""

    name: str
    spec: dict[str, Any]
    field: str
    """The field path both the API server's and the model's messages name."""
    server: str
    """A substring of the API server's message."""
    model: str
    """A substring of :class:`graceful.core.PolicyError`'s message."""

    def object(self, name: str | None = None) -> dict[str, Any]:
        """The policy as an API object."""
        return {"apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
                "metadata": {"name": name or self.name}, "spec": self.spec}


def load_invalid_policies() -> list[InvalidPolicy]:
    """Every spec of ``policies/invalid.yaml``."""
    raw = yaml.safe_load((CASES_DIR / "policies" / "invalid.yaml").read_text())
    return [InvalidPolicy(**item) for item in raw]


def load_cases() -> list[Case]:
    """Every case, sorted by file name."""
    return [_case(path) for path in sorted(CASES_DIR.glob("*.yaml"))]
