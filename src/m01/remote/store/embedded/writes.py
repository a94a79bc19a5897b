"""``IJobWrites`` on the embedded store: the atomic strategy's
conditional writes (safe there, every call being serialised), its claims
and its writes of one job made under one hold of the store's lock, read
from the store's index and applied in place where the index fits the
mongomock in use (``client.SerializedCollection``)."""
from m01.remote.interfaces import QUEUED
from m01.remote.queue.updates import (
    CLAIM_ORDER,
    claimFields,
    dueQuery,
    versioned,
)
from m01.remote.store.atomic import AtomicJobWrites


class EmbeddedJobWrites(AtomicJobWrites):
    """The embedded store: the same conditional writes, but a claim finds
    the oldest due job through an ordered index of the queued jobs
    (``SerializedCollection.claimFirst``), not through a sorted query,
    which mongomock answers by copying and sorting every queued job."""

    def claimNext(self, now, worker, leaseTime, jobQuery=None,
                  excludedNames=(), queues=None, excludedQueues=()):
        return self.jobs.claimFirst(
            dueQuery(now, jobQuery, excludedNames, queues, excludedQueues),
            CLAIM_ORDER,
            versioned({'$set': claimFields(now, worker, leaseTime)}),
            equal=_equal(queues, excludedQueues))

    def claimMany(self, now, worker, leaseTime, limit, jobQuery=None,
                  excludedNames=(), queues=None, excludedQueues=()):
        # One call: the index gives up to ``limit`` jobs under the lock.
        return self.jobs.claimMany(
            dueQuery(now, jobQuery, excludedNames, queues, excludedQueues),
            CLAIM_ORDER,
            versioned({'$set': claimFields(now, worker, leaseTime)}),
            limit, equal=_equal(queues, excludedQueues))

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


def _equal(queues, excludedQueues):
    """The equality pairs of the index a claim reads: the queued jobs of
    its one queue, or all queued jobs (the others skipped as the query
    says). The embedded store is in memory: every job it holds was
    stored with its queue."""
    chosen = set(queues or ()) - set(excludedQueues)
    if queues is not None and len(chosen) == 1:
        return [('status', QUEUED), ('queue', chosen.pop())]
    return [('status', QUEUED)]
