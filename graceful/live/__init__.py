"""``graceful explain`` and ``graceful audit --cluster`` on the objects a cluster runs.

The offline tools read manifests; these modules read the same kinds of objects
from an API server instead (read-only: get and list), put them in the same
:class:`graceful.offline.loader.Inventory`, and hand them to the same
functions, so a live verdict can never differ from a file's for the same object.
"""
