"""Every change of a job's status, and how it is made safe.

Each change names what must still be true (the status, the claim token of
the worker that owns the job), so two workers never both claim a job and
a worker that lost its job (lease expired, job cancelled) cannot
overwrite the newer outcome.

MongoDB (and the embedded store, whose calls are serialised) applies a
conditional ``find_one_and_update`` / ``update_one`` atomically: there,
each change is that one write (``AtomicJobWrites``).

FerretDB v1 does not: see ``m01.remote.ticketed`` for how changes are
made safe there.
"""
import datetime
import uuid

import pymongo

from m01.remote.interfaces import (
    CANCELLED,
    COMPLETED,
    ERROR,
    PROCESSING,
    QUEUED,
)

CLAIM_ORDER = [('queued', pymongo.ASCENDING), ('_id', pymongo.ASCENDING)]

CLAIM_INDEX = [('status', pymongo.ASCENDING), ('active', pymongo.ASCENDING),
               ('retryTime', pymongo.ASCENDING)] + CLAIM_ORDER

LOST_WORKER_MESSAGE = ('The worker %s stopped answering while it ran the '
                       'job (its lease expired at %s).')


def newClaimToken():
    return uuid.uuid4().hex


def claimFields(now, worker, leaseTime):
    return {'status': PROCESSING, 'picked': now, 'worker': worker,
            'claim': newClaimToken(),
            'leaseExpires': now + datetime.timedelta(seconds=leaseTime)}


def dueQuery(now, jobQuery=None):
    due = {'status': QUEUED, 'active': True, 'retryTime': {'$lte': now}}
    return {'$and': [due, jobQuery]} if jobQuery else due


def failureUpdate(retryCounter, maxRetries, retryDelay, message, traceback,
                  now, final):
    """The update for a failed attempt: back to the queue or ``error``."""
    attempts = (retryCounter or 0) + 1
    if final or attempts >= maxRetries:
        fields = {'status': ERROR, 'completed': now}
    else:
        fields = {'status': QUEUED, 'queued': now,
                  'retryTime': now + datetime.timedelta(seconds=retryDelay)}
    return {'$set': fields,
            '$inc': {'retryCounter': 1},
            '$push': {'errors': message, 'tracebacks': traceback},
            '$unset': {'claim': '', 'leaseExpires': ''}}


def lostWorkerUpdate(document, now):
    message = '[%s] %s' % (
        now.isoformat(timespec='seconds'),
        LOST_WORKER_MESSAGE % (document.get('worker'),
                               document['leaseExpires'].isoformat(
                                   timespec='seconds')))
    return failureUpdate(document.get('retryCounter'),
                         document.get('maxRetries', 3),
                         document.get('retryDelay', 10), message, '', now,
                         final=False)


def completeUpdate(output, now):
    return {'$set': {'status': COMPLETED, 'output': output,
                     'completed': now},
            '$unset': {'claim': '', 'leaseExpires': ''}}


def cancelUpdate(now):
    return {'$set': {'status': CANCELLED, 'completed': now},
            '$unset': {'claim': '', 'leaseExpires': ''}}


def requeueUpdate(now):
    return {'$set': {'status': QUEUED, 'queued': now, 'retryTime': now,
                     'retryCounter': 0},
            '$unset': {'completed': '', 'output': ''}}


def versioned(update):
    update = dict(update)
    update['$inc'] = dict(update.get('$inc', {}), version=1)
    return update


EXPIRED_FIELDS = {'retryCounter': 1, 'maxRetries': 1, 'retryDelay': 1,
                  'claim': 1, 'worker': 1, 'leaseExpires': 1, 'version': 1,
                  'status': 1}


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

    def purgeTickets(self, now):
        return 0


class EmbeddedJobWrites(AtomicJobWrites):
    """The embedded store: the same conditional writes, but a claim finds
    the oldest due job by testing the stored jobs in place, not through a
    sorted query, which mongomock answers by copying and sorting every
    queued job (``SerializedCollection.claimFirst``)."""

    def claimNext(self, now, worker, leaseTime, jobQuery=None):
        return self.jobs.claimFirst(
            dueQuery(now, jobQuery), CLAIM_ORDER,
            versioned({'$set': claimFields(now, worker, leaseTime)}),
            equal=[('status', QUEUED)])


def isFerretDB(database):
    """Whether the server behind ``database`` is FerretDB."""
    from m01.remote.store import isEmbedded
    if isEmbedded(database):
        return False
    return 'ferretdbVersion' in database.client.server_info()


def jobWritesFor(database, prefix, ticketed=None):
    """The write strategy the server needs (see the module docstring)."""
    if ticketed is None:
        ticketed = isFerretDB(database)
    if ticketed:
        from m01.remote.ticketed import TicketedJobWrites
        return TicketedJobWrites(database, prefix)
    from m01.remote.store import isEmbedded
    if isEmbedded(database):
        return EmbeddedJobWrites(database, prefix)
    return AtomicJobWrites(database, prefix)
