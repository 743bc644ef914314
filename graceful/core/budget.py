"""The drain budget: T >= S + G + M, capped by the policy's ceiling.

Why the grace period counts from the preStop start: the kubelet starts the
``terminationGracePeriodSeconds`` clock when it runs the preStop hook, not
when it sends SIGTERM. The preStop sleep S (the time endpoint removal needs to
reach every load balancer) therefore comes out of T before the app even hears
SIGTERM; then the app drains for up to its own timeout G; native sidecars get
SIGTERM only once the app has exited, so their stop comes next; a margin M
covers process exit. Anything shorter and the
SIGKILL lands in the middle of the drain. See docs/shutdown-budget.md.

Why S is sometimes a lower bound: a preStop hook of the user's (a script,
``nodetool drain``) takes as long as it takes, and the grace period is spent
from its start. Without ``graceful.io/prestop-seconds`` the engine cannot know
that length, so it counts S and says "at least".

Why a ceiling: a typo in an annotation (``3600h``) must not keep a node drain
waiting for weeks. A ceiling that cuts the budget is reported, never silent.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """S, G, M and the ceiling for one pod."""

    pre_stop: int
    timeout: int
    margin: int
    ceiling: int
    pre_stop_known: bool = True
    """False when a preStop hook's length is unknown: S is then only a lower bound."""
    sidecars: int = 0
    """Seconds the native sidecars take after the app has exited: the kubelet sends them
    SIGTERM only then, one after the other (:func:`graceful.core.proxies.sidecars_end`)."""

    @property
    def required(self) -> int:
        """S + G + M, plus the native sidecars' stop: the grace period the drain needs."""
        return self.pre_stop + self.timeout + self.sidecars + self.margin

    @property
    def grace(self) -> int:
        """The grace period the policy allows: ``min(S + G + M, ceiling)``."""
        return min(self.required, self.ceiling)

    @property
    def capped(self) -> bool:
        """Whether the ceiling cuts into the budget."""
        return self.required > self.ceiling

    def explain(self) -> str:
        """``budget 3610s = preStop 5s + timeout 3600s + margin 5s`` (``at least`` if unknown;
        ``+ sidecars 10s`` before the margin when native sidecars stop after the app)."""
        sidecars = f" + sidecars {self.sidecars}s" if self.sidecars else ""
        if not self.pre_stop_known:
            return (f"budget at least {self.required}s = preStop at least {self.pre_stop}s"
                    f" (length unknown) + timeout {self.timeout}s{sidecars}"
                    f" + margin {self.margin}s")
        return (f"budget {self.required}s = preStop {self.pre_stop}s"
                f" + timeout {self.timeout}s{sidecars} + margin {self.margin}s")
