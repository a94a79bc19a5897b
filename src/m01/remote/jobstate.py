"""Every change of a job's status, as the updates that make it.

Pure functions: what a claim sets, which jobs are due, what a failed
attempt, a completion, a cancel or a requeue writes. The write strategies
(``IJobWrites``: ``atomicwrites``, ``ticketed``) decide how each update
is applied safely on their server.
"""
import datetime
import uuid

import bson
import pymongo

from m01.remote.clock import stamp
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
    message = stamp(LOST_WORKER_MESSAGE % (
        document.get('worker'),
        document['leaseExpires'].isoformat(timespec='seconds')), now)
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


#: BSON's order of the types a claim-order key may hold; values of other
#: types sort after them, by their representation.
_TYPE_ORDER = ((type(None), 0), (bool, 8), ((int, float), 1), (str, 2),
               (bson.ObjectId, 7), (datetime.datetime, 9))


def sortable(value):
    """A key comparing values of different types in BSON's order."""
    for types, rank in _TYPE_ORDER:
        if isinstance(value, types):
            return (rank, value)
    return (10, repr(value))
