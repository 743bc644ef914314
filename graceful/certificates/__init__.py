"""graceful.certificates: the webhook's certificate authority, in a room of its own.

The API server calls the webhook over TLS and trusts only the CAs in the
webhook configuration's ``caBundle``. Unless cert-manager does it
(``--no-manage-certificates``), this package keeps a CA and the webhook's
serving certificate in a Secret and the ``caBundle`` in step with them,
rotating both without a moment in which the API server distrusts the webhook.
It has nothing to do with auditing; the operator process only runs it, as a
background task of the Lease holder.

- ``issuer``: the one X.509 issuer (also behind the local cluster's PKI);
- ``rotation``: pure decisions (what to issue, when to rotate, what to trust);
- ``keeper``: reads and writes the Secret and the configuration.
"""
