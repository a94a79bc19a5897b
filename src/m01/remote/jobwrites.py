"""Which ``IJobWrites`` strategy a server needs, and the embedded one.

- MongoDB applies a conditional write atomically:
  ``atomicwrites.AtomicJobWrites``.
- The embedded store (mongomock) serialises its calls, so the same writes
  are safe there; only its claim differs (``EmbeddedJobWrites``).
- FerretDB v1 applies an update as a read followed by a write:
  ``ticketed.TicketedJobWrites``.
"""
import threading

import zope.interface

from m01.remote.atomicwrites import AtomicJobWrites
from m01.remote.interfaces import QUEUED, IJobWrites
from m01.remote.jobstate import (
    CLAIM_ORDER,
    claimFields,
    dueQuery,
    versioned,
)
from m01.remote.store import isEmbedded


class EmbeddedJobWrites(AtomicJobWrites):
    """The embedded store: the same conditional writes, but a claim finds
    the oldest due job through an ordered index of the queued jobs
    (``SerializedCollection.claimFirst``), not through a sorted query,
    which mongomock answers by copying and sorting every queued job."""

    def claimNext(self, now, worker, leaseTime, jobQuery=None,
                  excludedNames=()):
        return self.jobs.claimFirst(
            dueQuery(now, jobQuery, excludedNames), CLAIM_ORDER,
            versioned({'$set': claimFields(now, worker, leaseTime)}),
            equal=[('status', QUEUED)])


    def claimMany(self, now, worker, leaseTime, limit, jobQuery=None,
                  excludedNames=()):
        # One call: the index gives up to ``limit`` jobs under the lock.
        return self.jobs.claimMany(
            dueQuery(now, jobQuery, excludedNames), CLAIM_ORDER,
            versioned({'$set': claimFields(now, worker, leaseTime)}),
            limit, equal=[('status', QUEUED)])


    def _change(self, query, update):
        # Applied in place where it can be (``updateEach``).
        return self.jobs.updateEach([(query, versioned(update))]) == [1]

    def finishMany(self, outcomes):
        # One call for all: mongomock has no bulk write of its own.
        modified = self.jobs.updateEach(
            [(self._owned(oid, claim), versioned(update))
             for oid, claim, update in outcomes])
        return [oid for (oid, _, _), count in zip(outcomes, modified,
                                                  strict=True)
                if count != 1]

    def holdClaims(self, claims, until):
        # One call for all, each renewal applied in place; a renewal
        # counts as held when it matched (its lease may be unchanged).
        renew = {'$set': {'leaseExpires': until}}
        matched = self.jobs.updateEach(
            [(self._owned(oid, claim), renew) for oid, claim in claims],
            matched=True)
        return [oid for (oid, _), count in zip(claims, matched, strict=True)
                if count != 1]


def isFerretDB(database):
    """Whether the server behind ``database`` is FerretDB."""
    if isEmbedded(database):
        return False
    return 'ferretdbVersion' in database.client.server_info()


def jobWritesFor(database, prefix, ticketed=None):
    """The strategy the server behind ``database`` needs; ``ticketed``
    true or false forces the ticketed strategy or the others."""
    if ticketed is None:
        ticketed = isFerretDB(database)
    if ticketed:
        from m01.remote.ticketed import TicketedJobWrites
        return TicketedJobWrites(database, prefix)
    if isEmbedded(database):
        return EmbeddedJobWrites(database, prefix)
    return AtomicJobWrites(database, prefix,
                           exactKeyIndexes=not hasQueryPlanner(database))


def hasQueryPlanner(database):
    """Whether the server picks indexes for queries as MongoDB does (its
    build info names the git commit it was built from); mongo-java-server
    uses an index only for a query on exactly its keys."""
    return 'gitVersion' in database.client.server_info()


@zope.interface.implementer(IJobWrites)
class ServerJobWrites:
    """The strategy of ``jobWritesFor``, chosen when it is first used:
    creating a processor must not need its server to be up. Every
    ``IJobWrites`` method is the chosen strategy's."""

    def __init__(self, database, prefix, ticketed=None):
        self._choose = lambda: jobWritesFor(database, prefix, ticketed)
        self._strategy = None
        self._lock = threading.Lock()

    @property
    def strategy(self):
        if self._strategy is None:
            with self._lock:
                if self._strategy is None:
                    self._strategy = self._choose()
        return self._strategy

    def __getattr__(self, name):
        if name in IJobWrites:
            return getattr(self.strategy, name)
        raise AttributeError(name)
