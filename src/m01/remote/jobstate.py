"""Every change of a job's status, each one conditional atomic write.

The filter of each write restates what must still be true (the status,
the claim token of the worker that owns the job), so two workers can
never both claim a job, and a worker that lost its job (lease expired,
job cancelled) cannot overwrite the newer outcome.
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


def _claimFields(now, worker, leaseTime, token):
    return {'status': PROCESSING, 'picked': now, 'worker': worker,
            'claim': token,
            'leaseExpires': now + datetime.timedelta(seconds=leaseTime)}


def claimNext(collection, now, worker, leaseTime, jobQuery=None):
    """Claim the oldest due queued job; return its document or None."""
    due = {'status': QUEUED, 'active': True, 'retryTime': {'$lte': now}}
    query = {'$and': [due, jobQuery]} if jobQuery else due
    return collection.find_one_and_update(
        query,
        {'$set': _claimFields(now, worker, leaseTime, newClaimToken())},
        sort=CLAIM_ORDER,
        return_document=pymongo.ReturnDocument.AFTER)


def claimJob(collection, oid, now, worker, leaseTime):
    """Claim one given job if it is queued and active."""
    return collection.find_one_and_update(
        {'_id': oid, 'status': QUEUED, 'active': True},
        {'$set': _claimFields(now, worker, leaseTime, newClaimToken())},
        return_document=pymongo.ReturnDocument.AFTER)


def _owned(oid, claim):
    return {'_id': oid, 'status': PROCESSING, 'claim': claim}


def complete(collection, oid, claim, output, now):
    result = collection.update_one(
        _owned(oid, claim),
        {'$set': {'status': COMPLETED, 'output': output, 'completed': now},
         '$unset': {'claim': '', 'leaseExpires': ''}})
    return result.modified_count == 1


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


def fail(collection, oid, claim, update):
    result = collection.update_one(_owned(oid, claim), update)
    return result.modified_count == 1


def cancel(collection, oid, now):
    result = collection.update_one(
        {'_id': oid, 'status': {'$in': [QUEUED, PROCESSING]}},
        {'$set': {'status': CANCELLED, 'completed': now},
         '$unset': {'claim': '', 'leaseExpires': ''}})
    return result.modified_count == 1


def requeue(collection, oid, now):
    """Put a job that ended in error or was cancelled back in the queue
    with its retries reset; its error history is kept."""
    result = collection.update_one(
        {'_id': oid, 'status': {'$in': [ERROR, CANCELLED]}},
        {'$set': {'status': QUEUED, 'queued': now, 'retryTime': now,
                  'retryCounter': 0},
         '$unset': {'completed': '', 'output': ''}})
    return result.modified_count == 1


def extendLeases(collection, claims, until):
    """Extend the lease of every job this process still runs."""
    if not claims:
        return 0
    result = collection.update_many(
        {'status': PROCESSING, 'claim': {'$in': list(claims)}},
        {'$set': {'leaseExpires': until}})
    return result.modified_count


def recoverExpired(collection, now, limit=100):
    """Give jobs whose worker died back to the queue, as failed attempts.

    The candidates are read first, but each write restates the claim
    token and the expired lease, so a worker that renews its lease in
    between keeps its job. Returns ``[(jobid, newStatus)]``.
    """
    recovered = []
    expired = collection.find(
        {'status': PROCESSING, 'leaseExpires': {'$lt': now}},
        {'retryCounter': 1, 'maxRetries': 1, 'retryDelay': 1, 'claim': 1,
         'worker': 1, 'leaseExpires': 1}).limit(limit)
    for document in list(expired):
        message = '[%s] %s' % (
            now.isoformat(timespec='seconds'),
            LOST_WORKER_MESSAGE % (document.get('worker'),
                                   document['leaseExpires'].isoformat(
                                       timespec='seconds')))
        update = failureUpdate(
            document.get('retryCounter'), document.get('maxRetries', 3),
            document.get('retryDelay', 10), message, '', now, final=False)
        result = collection.update_one(
            {'_id': document['_id'], 'status': PROCESSING,
             'claim': document.get('claim'),
             'leaseExpires': {'$lt': now}},
            update)
        if result.modified_count:
            recovered.append((str(document['_id']),
                              update['$set']['status']))
    return recovered
