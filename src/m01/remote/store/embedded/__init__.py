"""The embedded in-memory store (``mongomock://``): everything that knows
mongomock, and nothing outside ``m01.remote.store`` imports it.

``connect`` gives a client of a fresh store behind one lock
(``client``); where the mongomock in use is a tested one
(``compat.indexed``) its collections are indexed for the queue's claims
and writes (``index``, ``updates``) and jobs are claimed through that
index (``writes.EmbeddedJobWrites``).
"""
import mongomock

from m01.remote.store.embedded.client import SerializedClient
from m01.remote.store.embedded.compat import indexed  # noqa: F401


def connect(**options):
    """A client of a fresh in-memory store: nothing is kept across
    restarts, and only this process sees it."""
    return SerializedClient(mongomock.MongoClient(**options))
