"""graceful.webhook: the mutating admission webhook, a thin adapter over graceful.core.

An AdmissionReview comes in (:mod:`.review`), :func:`.admit.admit` asks
``graceful.core.evaluate`` about the object using the namespace's policies from
an in-memory cache fed by a watch (:mod:`.cache`), and the answer goes back as
a base64 JSON Patch plus warnings. :mod:`.app` is the FastAPI surface,
:mod:`.tls` and :mod:`.server` serve it over TLS only with certificates that
rotate without a restart, :mod:`.config` generates the
MutatingWebhookConfiguration, and :mod:`.cli` is ``graceful webhook``.

Imports stay lazy here so ``graceful webhook --help`` is quick.
"""
