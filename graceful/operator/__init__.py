"""graceful.operator: the kopf audit controller behind ``kubectl get gracefulpolicies``.

The webhook only sees what is created or updated while it runs; workloads
admitted before it, while it was down, under ``mode: Audit``, or edited later
drift silently. This controller finds them and reports them where users look:
each policy's status (and so its printer columns) and Events on the workload.

It is a thin adapter around ``graceful.core`` (the same ``evaluate`` the
webhook calls). The modules, from the cluster inwards:

- ``handlers``: the kopf registry (indexes of small projections, one event
  handler that marks namespaces dirty, startup and cleanup);
- ``reconciler``: the single writer that audits dirty namespaces and writes
  status and Events, only while holding the Lease;
- ``lease``: leader election with a ``coordination.k8s.io`` Lease;
- ``audit``, ``events``, ``batching``, ``projection``: pure decisions,
  unit-tested without a cluster;
- ``kube``: the few HTTP calls of its own; ``cli``/``main``: the command.

It never writes to the workloads it audits.
"""
