"""Job changes on a server that applies a conditional write atomically.

MongoDB applies ``find_one_and_update`` and ``update_one`` to one
document atomically, its filter evaluated and the update applied as one
step. So each change of ``IJobWrites`` is one such write whose filter
restates the precondition: a claim is one ``find_one_and_update`` of the
oldest due job, served by the claim index; an outcome is one
``update_one`` conditional on the claim token.
"""
import pymongo
import pymongo.errors
import zope.interface

from m01.remote.interfaces import (
    CANCELLED,
    ERROR,
    PROCESSING,
    QUEUED,
    IJobWrites,
)
from m01.remote.job import DuplicateJobError
from m01.remote.queue.updates import (
    CANCELLABLE,
    CLAIM_INDEX,
    CLAIM_ORDER,
    QUEUE_CLAIM_INDEX,
    cancelCondition,
    cancelUpdate,
    checkDeletable,
    claimFields,
    dueQuery,
    isRecordOf,
    lostWorkerUpdate,
    orderKey,
    requeueUpdate,
    timedOut,
    timedOutUpdate,
    unclaimUpdate,
    versioned,
)

#: What lease recovery and timeouts read of a running job.
RUNNING_FIELDS = {'retryCounter': 1, 'maxRetries': 1, 'retryDelay': 1,
                  'retryBackoff': 1, 'retryDelayMax': 1, 'retryJitter': 1,
                  'claim': 1, 'worker': 1, 'leaseExpires': 1, 'version': 1,
                  'status': 1, 'picked': 1, 'timeout': 1}

#: How often a change whose job moved between its read and its write is
#: tried again.
ATTEMPTS = 5


@zope.interface.implementer(IJobWrites)
class AtomicJobWrites:
    """Each change is one conditional write the server applies atomically.
    """

    def __init__(self, database, prefix, exactKeyIndexes=False):
        self.jobs = database[prefix + 'jobs']
        self.exactKeyIndexes = exactKeyIndexes

    def ensureIndexes(self):
        indexes = self.jobs.index_information()
        if 'm01_remote_claim' in indexes and [
                (field, int(direction)) for field, direction
                in indexes['m01_remote_claim']['key']] != CLAIM_INDEX:
            # An index of the claim order before priorities: replaced.
            self.jobs.drop_index('m01_remote_claim')
        self.jobs.create_index(CLAIM_INDEX, name='m01_remote_claim')
        self.jobs.create_index(QUEUE_CLAIM_INDEX,
                               name='m01_remote_queue_claim')
        self.jobs.create_index([('status', 1), ('leaseExpires', 1)],
                               name='m01_remote_lease')
        if self.exactKeyIndexes:
            # For a server that uses an index only for a query naming
            # exactly its keys (mongo-java-server): the claim and outcome
            # writes name (_id, version) and (_id, claim). MongoDB serves
            # them from the _id index and needs neither.
            for field in ('version', 'claim'):
                self.jobs.create_index([('_id', 1), (field, 1)], unique=True,
                                       name='m01_remote_id_%s' % field)

    def insertJobs(self, documents):
        """Store new job documents (all queued) in one write."""
        try:
            self.jobs.insert_many(documents, ordered=True)
        except pymongo.errors.BulkWriteError as e:
            codes = {error.get('code') for error in
                     e.details.get('writeErrors', ())}
            if codes == {11000}:
                raise DuplicateJobError(
                    'A job with one of these ids exists already: %s'
                    % ', '.join(str(d['_id']) for d in documents)) from e
            raise

    def claimNext(self, now, worker, leaseTime, jobQuery=None,
                  excludedNames=(), queues=None, excludedQueues=()):
        return self.jobs.find_one_and_update(
            dueQuery(now, jobQuery, excludedNames, queues, excludedQueues),
            versioned({'$set': claimFields(now, worker, leaseTime)}),
            sort=CLAIM_ORDER, return_document=pymongo.ReturnDocument.AFTER)

    def claimMany(self, now, worker, leaseTime, limit, jobQuery=None,
                  excludedNames=(), queues=None, excludedQueues=()):
        # Three commands for up to ``limit`` jobs: the candidates in claim
        # order with their versions; one bulk write claiming each only at
        # the version it was due at (a job another worker took, or that
        # changed, since has another version and is not claimed: each
        # update is atomic); and the candidates read back by id, this
        # claim's token telling what it won. One token for the batch:
        # each outcome restates it.
        candidates = list(self.jobs.find(
            dueQuery(now, jobQuery, excludedNames, queues, excludedQueues),
            {'_id': 1, 'version': 1}).sort(CLAIM_ORDER).limit(limit))
        if not candidates:
            return []
        fields = claimFields(now, worker, leaseTime)
        update = versioned({'$set': fields})
        self.jobs.bulk_write([pymongo.UpdateOne(
            {'_id': document['_id'], 'version': document.get('version', 0)},
            update) for document in candidates], ordered=False)
        won = [document for document in self.jobs.find(
            {'_id': {'$in': [document['_id'] for document in candidates]}})
            if document.get('claim') == fields['claim']]
        return sorted(won, key=orderKey)

    def claimJob(self, oid, now, worker, leaseTime):
        return self.jobs.find_one_and_update(
            {'_id': oid, 'status': QUEUED, 'active': True},
            versioned({'$set': claimFields(now, worker, leaseTime)}),
            return_document=pymongo.ReturnDocument.AFTER)

    def _change(self, query, update):
        return self.jobs.update_one(query, versioned(update)
                                    ).modified_count == 1

    def _owned(self, oid, claim):
        # A claim token is set with status processing and unset by every
        # change that ends it, so it restates both.
        return {'_id': oid, 'claim': claim}

    def finish(self, oid, claim, update):
        return self._change(self._owned(oid, claim), update)

    def finishMany(self, outcomes):
        if not outcomes:
            return []
        if len(outcomes) == 1:
            oid, claim, update = outcomes[0]
            return [] if self.finish(oid, claim, update) else [oid]
        result = self.jobs.bulk_write(
            [pymongo.UpdateOne(self._owned(oid, claim), versioned(update))
             for oid, claim, update in outcomes], ordered=False)
        if result.modified_count == len(outcomes):
            return []
        # Some were refused: those that are not as their outcome wrote
        # them (an outcome ends the attempt its claim began).
        updates = {oid: update for oid, _, update in outcomes}
        refused = []
        for document in self.jobs.find(
                {'_id': {'$in': list(updates)}}, {'attempts': {'$slice': -1}}):
            if not isRecordOf(document, updates[document['_id']]):
                refused.append(document['_id'])
        return refused

    def unclaim(self, oid, claim):
        return self._change(self._owned(oid, claim), unclaimUpdate())

    def report(self, oid, claim, update):
        # Not versioned: a report changes nothing a condition restates.
        return self.jobs.update_one(self._owned(oid, claim),
                                    update).matched_count == 1

    def state(self, oid):
        document = self.jobs.find_one({'_id': oid},
                                      {'status': 1, 'claim': 1})
        if document is None:
            return None
        return document['status'], document.get('claim')

    def cancel(self, oid, now):
        for _ in range(ATTEMPTS):
            document = self.jobs.find_one({'_id': oid})
            if document is None or \
                    document['status'] not in CANCELLABLE:
                return False
            if self._change(dict(cancelCondition(document), _id=oid),
                            cancelUpdate(document, now)):
                return True
        return False

    def requeue(self, oid, now):
        return self._change({'_id': oid,
                             'status': {'$in': [ERROR, CANCELLED]}},
                            requeueUpdate(now))

    def edit(self, oid, version, fields):
        return self._change({'_id': oid, 'version': version},
                            {'$set': fields})

    def extendLeases(self, claims, until):
        if not claims:
            return 0
        return self.jobs.update_many(
            {'status': PROCESSING, 'claim': {'$in': list(claims)}},
            {'$set': {'leaseExpires': until}}).modified_count

    def holdClaims(self, claims, until):
        if not claims:
            return []
        # Not versioned, as a renewal: a hold changes nothing a condition
        # restates.
        renew = {'$set': {'leaseExpires': until}}
        if len(claims) == 1:
            oid, claim = claims[0]
            held = self.jobs.update_one(self._owned(oid, claim),
                                        renew).matched_count
            return [] if held else [oid]
        result = self.jobs.bulk_write(
            [pymongo.UpdateOne(self._owned(oid, claim), renew)
             for oid, claim in claims], ordered=False)
        if result.matched_count == len(claims):
            return []
        # Some no longer hold: those not under their claim now (a claim
        # once lost is never held again, so none is missed).
        current = {document['_id']: document.get('claim')
                   for document in self.jobs.find(
                       {'_id': {'$in': [oid for oid, _ in claims]}},
                       {'claim': 1})}
        return [oid for oid, claim in claims if current.get(oid) != claim]

    def _endRunning(self, documents, now, condition, updateFor):
        ended = []
        for document in documents:
            update = updateFor(document, now)
            query = dict(condition, _id=document['_id'], status=PROCESSING,
                         claim=document.get('claim'))
            if self._change(query, update):
                ended.append((str(document['_id']),
                              update['$set']['status']))
        return ended

    def recoverExpired(self, now, limit=100):
        expired = self.jobs.find(
            {'status': PROCESSING, 'leaseExpires': {'$lt': now}},
            RUNNING_FIELDS).limit(limit)
        return self._endRunning(expired, now, {'leaseExpires': {'$lt': now}},
                                lostWorkerUpdate)

    def stopTimedOut(self, now, limit=100):
        running = self.jobs.find(
            {'status': PROCESSING, 'timeout': {'$gt': 0}},
            RUNNING_FIELDS).limit(limit)
        return self._endRunning(
            [document for document in running if timedOut(document, now)],
            now, {}, timedOutUpdate)

    def delete(self, oids, stati):
        checkDeletable(stati)
        if not oids:
            return 0
        return self.jobs.delete_many(
            {'_id': {'$in': list(oids)},
             'status': {'$in': list(stati)}}).deleted_count

