"""Offline tools: the engine's verdicts on manifests, with no cluster.

Why offline at all: a mismatch found in a pull request costs a comment; the
same mismatch found by the operator costs a rollout that already lost
messages. ``graceful audit`` and ``graceful explain`` read the same YAML a
pipeline would apply, take GracefulPolicies from the same files, and call the
same :func:`graceful.core.evaluate` as the webhook and the operator, so the
three can never disagree about what "compliant" means.

``render`` regenerates the generated files under ``manifests/``.
"""
