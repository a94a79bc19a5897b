"""Job changes on a server that applies a conditional write atomically.

MongoDB applies ``find_one_and_update`` and ``update_one`` to one
document atomically, its filter evaluated and the update applied as one
step. So each change of ``IJobWrites`` is one such write whose filter
restates the precondition: a claim is one ``find_one_and_update`` of the
oldest due job, served by the claim index; an outcome is one
``update_one`` conditional on the claim token.
"""
import pymongo
import zope.interface

from m01.remote.interfaces import (
    CANCELLED,
    ERROR,
    PROCESSING,
    QUEUED,
    IJobWrites,
)
from m01.remote.jobstate import (
    CLAIM_INDEX,
    CLAIM_ORDER,
    cancelUpdate,
    claimFields,
    completeUpdate,
    dueQuery,
    lostWorkerUpdate,
    requeueUpdate,
    versioned,
)

EXPIRED_FIELDS = {'retryCounter': 1, 'maxRetries': 1, 'retryDelay': 1,
                  'claim': 1, 'worker': 1, 'leaseExpires': 1, 'version': 1,
                  'status': 1}


@zope.interface.implementer(IJobWrites)
class AtomicJobWrites:
    """Each change is one conditional write the server applies atomically.
    """

    def __init__(self, database, prefix):
        self.jobs = database[prefix + 'jobs']

    def ensureIndexes(self):
        self.jobs.create_index(CLAIM_INDEX, name='m01_remote_claim')
        self.jobs.create_index([('status', 1), ('leaseExpires', 1)],
                               name='m01_remote_lease')

    def insertJobs(self, documents):
        """Store new job documents (all queued) in one write."""
        self.jobs.insert_many(documents, ordered=True)

    def claimNext(self, now, worker, leaseTime, jobQuery=None):
        """Claim the oldest due queued job; its document or None."""
        return self.jobs.find_one_and_update(
            dueQuery(now, jobQuery),
            versioned({'$set': claimFields(now, worker, leaseTime)}),
            sort=CLAIM_ORDER, return_document=pymongo.ReturnDocument.AFTER)

    def claimJob(self, oid, now, worker, leaseTime):
        """Claim the given job if it is queued and active."""
        return self.jobs.find_one_and_update(
            {'_id': oid, 'status': QUEUED, 'active': True},
            versioned({'$set': claimFields(now, worker, leaseTime)}),
            return_document=pymongo.ReturnDocument.AFTER)

    def _change(self, query, update):
        return self.jobs.update_one(query, versioned(update)
                                    ).modified_count == 1

    def complete(self, oid, claim, output, now):
        return self._change({'_id': oid, 'status': PROCESSING,
                             'claim': claim}, completeUpdate(output, now))

    def fail(self, oid, claim, update):
        return self._change({'_id': oid, 'status': PROCESSING,
                             'claim': claim}, update)

    def cancel(self, oid, now):
        return self._change({'_id': oid,
                             'status': {'$in': [QUEUED, PROCESSING]}},
                            cancelUpdate(now))

    def requeue(self, oid, now):
        """Queue a job in error or cancelled again, retries reset and its
        error history kept."""
        return self._change({'_id': oid,
                             'status': {'$in': [ERROR, CANCELLED]}},
                            requeueUpdate(now))

    def extendLeases(self, claims, until):
        """Extend the lease of every job this process still runs."""
        if not claims:
            return 0
        return self.jobs.update_many(
            {'status': PROCESSING, 'claim': {'$in': list(claims)}},
            {'$set': {'leaseExpires': until}}).modified_count

    def _expired(self, now, limit):
        return list(self.jobs.find(
            {'status': PROCESSING, 'leaseExpires': {'$lt': now}},
            EXPIRED_FIELDS).limit(limit))

    def recoverExpired(self, now, limit=100):
        """Give jobs whose worker died back to the queue as failed
        attempts (or to ``error``); ``[(jobid, newStatus)]``."""
        recovered = []
        for document in self._expired(now, limit):
            update = lostWorkerUpdate(document, now)
            if self._change({'_id': document['_id'], 'status': PROCESSING,
                             'claim': document.get('claim'),
                             'leaseExpires': {'$lt': now}}, update):
                recovered.append((str(document['_id']),
                                  update['$set']['status']))
        return recovered

    def maintain(self, now):
        return 0   # nothing kept besides the jobs
