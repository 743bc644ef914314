"""graceful-operator: declared, enforced and audited shutdown budgets for Kubernetes workloads."""

__version__ = "0.1.0"
