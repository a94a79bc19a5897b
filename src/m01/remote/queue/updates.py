"""Every change of a job's status, as the updates that make it.

Pure functions: a new job's document, what a claim sets, which jobs are
due and in which order they are claimed, what a failed attempt, a
completion, a cancel, a requeue, a timeout or a lost worker writes, and
the attempt each records. The write strategies (``IJobWrites``:
``store.atomic``, the embedded one) apply each as one conditional write.
"""
import datetime
import functools
import random
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
    WAITING,
)
from m01.remote.job import DEFAULT_QUEUE, checkSeconds, checkStorable, dueTime
from m01.remote.limits import (
    ATTEMPT_TRACEBACK_TEXT,
    MAX_ATTEMPTS,
    MAX_ERROR_TEXT,
    MAX_ERRORS,
    MAX_LOG_LINE,
    MAX_LOG_LINES,
    MAX_PROGRESS_MESSAGE,
    cutText,
    cutTraceback,
)
from m01.remote.queue.containers import toObjectId
from m01.remote.queue.keys import checkKey
from m01.remote.queue.search import (
    addedTerms,
    errorTerms,
    outputTerms,
    pushTerms,
)
from m01.remote.queue.tracing import currentTraceContext

#: Claims take the highest priority first, then the longest queued.
CLAIM_ORDER = [('priority', pymongo.DESCENDING),
               ('queued', pymongo.ASCENDING), ('_id', pymongo.ASCENDING)]

#: Equality fields, then the claim order, then the due time (a range):
#: MongoDB walks it in claim order, testing the due time on its keys.
CLAIM_INDEX = [('status', pymongo.ASCENDING),
               ('active', pymongo.ASCENDING)] + CLAIM_ORDER + [
               ('retryTime', pymongo.ASCENDING)]
#: The same for a claim restricted to queues: the queue is one more
#: equality field (MongoDB merges the walks of several queues in claim
#: order).
QUEUE_CLAIM_INDEX = CLAIM_INDEX[:2] + [('queue', pymongo.ASCENDING)] + \
    CLAIM_INDEX[2:]

LOST_WORKER_MESSAGE = ('The worker %s stopped answering while it ran the '
                       'job (its lease expired at %s).')
TIMED_OUT_MESSAGE = 'The job timed out after %s s.'

#: How the attempts of a job ended (``attempts[].outcome``).
COMPLETED_OUTCOME = 'completed'
FAILED_OUTCOME = 'failed'        # an error; retried if retries are left
TIMED_OUT_OUTCOME = 'timed out'
LOST_OUTCOME = 'lost'            # its worker stopped renewing the lease
CANCELLED_OUTCOME = 'cancelled'

#: What an outcome keeps (``m01.remote.limits``): the newest attempts,
#: errors and log lines, and how long each text may be.
MAX_LOG_LINE_CHARS = MAX_LOG_LINE
MAX_PROGRESS_MESSAGE_CHARS = MAX_PROGRESS_MESSAGE

#: How a failed job's next attempt is delayed (``retryBackoff``).
BACKOFFS = ('fixed', 'exponential')


def checkKeyOptions(key, keyPeriod, debounce, delay=None, at=None):
    """ValueError unless ``addJob``'s ``keyPeriod`` and ``debounce`` go
    with the other arguments: both need a key, a debounced job is due
    after its debounce (no ``delay`` or ``at``)."""
    if keyPeriod is not None or debounce is not None:
        if key is None:
            raise ValueError('keyPeriod and debounce need a key')
    checkSeconds(keyPeriod, 'keyPeriod', optional=True)
    if debounce is not None:
        checkSeconds(debounce, 'debounce')
        if delay is not None or at is not None:
            raise ValueError('A debounced job is due debounce seconds '
                             'after the last add: give no delay or at')


def newJobDocument(job, input, now, jobid=None, delay=None, at=None,
                   key=None, keyPeriod=None, debounce=None):
    """The document of a new queued job: ``job`` as its factory made it
    from ``input``, due at ``now``, after ``delay`` seconds or ``at`` a
    time (debounced: ``debounce`` seconds), under the id ``jobid`` (a new
    one by default) and holding ``key`` (``keyPeriod`` seconds after its
    end). Raises ValueError for a bad key or a document BSON cannot
    store."""
    checkKeyOptions(key, keyPeriod, debounce, delay, at)
    if debounce is not None:
        delay = debounce
    document = job.dump()
    document.update({
        '_id': toObjectId(jobid) if jobid is not None else bson.ObjectId(),
        'status': QUEUED, 'created': now, 'queued': now,
        'retryTime': dueTime(now, delay, at), 'retryCounter': 0,
        'errors': [], 'tracebacks': [], 'attempts': [], 'output': None,
        'version': 0})
    if key is not None:
        checkKey(key)
        document['key'] = key
    if keyPeriod is not None:
        document['keyPeriod'] = keyPeriod
    if debounce is not None:
        document['debounce'] = debounce
    document['terms'] = addedTerms(document['_id'], input)
    traceContext = currentTraceContext()
    if traceContext:
        document['traceContext'] = traceContext
    checkStorable(document, 'document')
    return document


def newClaimToken():
    return uuid.uuid4().hex


def claimFields(now, worker, leaseTime):
    return {'status': PROCESSING, 'picked': now, 'worker': worker,
            'claim': newClaimToken(),
            'leaseExpires': now + datetime.timedelta(seconds=leaseTime)}


def dueQuery(now, jobQuery=None, excludedNames=(), queues=None,
             excludedQueues=()):
    """The jobs a claim at ``now`` may take: queued, active, due, matching
    ``jobQuery``, of no factory in ``excludedNames`` (paused, or at their
    concurrency limit), in one of ``queues`` (None: any) and in none of
    ``excludedQueues`` (paused). A job stored without a queue is in
    ``default``."""
    due = {'status': QUEUED, 'active': True, 'retryTime': {'$lte': now}}
    if excludedNames:
        due['name'] = {'$nin': sorted(excludedNames)}
    if queues is not None:
        chosen = sorted(set(queues) - set(excludedQueues))
        if DEFAULT_QUEUE in chosen:
            chosen.append(None)
        due['queue'] = chosen[0] if len(chosen) == 1 else \
            {'$in': chosen}
    elif excludedQueues:
        excluded = sorted(excludedQueues)
        if DEFAULT_QUEUE in excluded:
            excluded.append(None)
        due['queue'] = {'$nin': excluded}
    return {'$and': [due, jobQuery]} if jobQuery else due


# the claim order

@functools.total_ordering
class Descending:
    """A sort key ordering its value the other way round."""

    __slots__ = ('key',)

    def __init__(self, key):
        self.key = key

    def __eq__(self, other):
        return self.key == other.key

    def __lt__(self, other):
        return other.key < self.key

    def __hash__(self):
        return hash(self.key)

    def __repr__(self):
        return 'Descending(%r)' % (self.key,)


def orderKey(document, order=CLAIM_ORDER):
    """The key sorting documents as a query sorted by ``order`` does."""
    return tuple(sortable(document.get(field))
                 if direction == pymongo.ASCENDING
                 else Descending(sortable(document.get(field)))
                 for field, direction in order)


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


# retries

def _setting(source, name, default):
    value = source.get(name) if isinstance(source, dict) else \
        getattr(source, name, None)
    return default if value is None else value


def retryDelayFor(source, attempts, randomFraction=random.random):
    """Seconds before the next attempt of a job (a document or a job
    object) whose ``attempts`` attempts failed so far: ``retryDelay``
    (``retryBackoff`` 'fixed'), or ``retryDelay * 2 ** (attempts - 1)``
    ('exponential'), at most ``retryDelayMax``, then moved by up to
    ``retryJitter`` (a fraction) either way."""
    delay = float(_setting(source, 'retryDelay', 10))
    if _setting(source, 'retryBackoff', 'fixed') == 'exponential':
        delay *= 2.0 ** min(max(attempts - 1, 0), 64)
    maximum = _setting(source, 'retryDelayMax', None)
    if maximum is not None:
        delay = min(delay, float(maximum))
    jitter = float(_setting(source, 'retryJitter', 0))
    if jitter:
        delay *= 1 + jitter * (2 * randomFraction() - 1)
    return max(delay, 0.0)


# attempts

def attemptRecord(source, now, outcome, message=None, traceback=None,
                  thread=None):
    """How one attempt of the job went: its worker (and thread), when it
    started (the claim) and ended, and how, with its error."""
    started = _setting(source, 'picked', None)
    record = {'worker': _setting(source, 'worker', None), 'thread': thread,
              'started': started, 'ended': now, 'outcome': outcome}
    if started is not None:
        record['seconds'] = round((now - started).total_seconds(), 3)
    if message is not None:
        record['error'] = cutText(message, MAX_ERROR_TEXT)
    if traceback:
        record['traceback'] = cutTraceback(traceback,
                                           ATTEMPT_TRACEBACK_TEXT)
    return record


def _pushAttempt(update, attempt):
    update.setdefault('$push', {})['attempts'] = {
        '$each': [attempt], '$slice': -MAX_ATTEMPTS}
    return update


def recordedAttempt(update):
    """The attempt record an outcome ``update`` pushes, or None."""
    attempts = (update.get('$push') or {}).get('attempts') or {}
    records = attempts.get('$each') if isinstance(attempts, dict) else None
    return records[-1] if records else None


#: What tells one attempt record from another: an outcome a worker
#: stored names its thread; a cancel, a sweep of lost workers or timeouts
#: names none, even when it ends the same attempt in the same millisecond.
ATTEMPT_IDENTITY = ('worker', 'thread', 'started', 'ended', 'outcome')


def isRecordOf(document, update):
    """Whether the newest attempt of ``document`` is the one the outcome
    ``update`` pushes: whether that outcome was stored."""
    attempt = recordedAttempt(update)
    attempts = (document or {}).get('attempts') or []
    return attempt is not None and bool(attempts) and all(
        attempts[-1].get(key) == attempt.get(key)
        for key in ATTEMPT_IDENTITY)


_CLAIM_FIELDS = {'claim': '', 'leaseExpires': ''}


def failureUpdate(source, message, traceback, now, final,
                  outcome=FAILED_OUTCOME, thread=None, delay=None):
    """The update for a failed attempt of the job ``source`` (a document
    or a job object): back to the queue after its retry delay, or
    ``error`` when ``final`` or its retries are spent.

    The ``message`` and ``traceback`` kept are cut to the limits of
    ``m01.remote.limits`` (and made text BSON can store), and only the
    newest ``MAX_ERRORS`` of each are kept."""
    message = cutText(message, MAX_ERROR_TEXT)
    traceback = cutTraceback(traceback or '')
    attempts = (_setting(source, 'retryCounter', 0) or 0) + 1
    if final or attempts >= _setting(source, 'maxRetries', 3):
        fields = {'status': ERROR, 'completed': now}
    else:
        if delay is None:
            delay = retryDelayFor(source, attempts)
        fields = {'status': QUEUED, 'queued': now,
                  'retryTime': now + datetime.timedelta(seconds=delay)}
    update = {'$set': fields,
              '$inc': {'retryCounter': 1},
              '$push': {
                  'errors': {'$each': [message], '$slice': -MAX_ERRORS},
                  'tracebacks': {'$each': [traceback],
                                 '$slice': -MAX_ERRORS}},
              '$unset': dict(_CLAIM_FIELDS)}
    pushTerms(update, errorTerms(message, source))
    return _pushAttempt(update, attemptRecord(
        source, now, outcome, message, traceback, thread))


def lostWorkerUpdate(document, now):
    message = stamp(LOST_WORKER_MESSAGE % (
        document.get('worker'),
        document['leaseExpires'].isoformat(timespec='seconds')), now)
    return failureUpdate(document, message, '', now, final=False,
                         outcome=LOST_OUTCOME)


def timedOut(document, now):
    """Whether the running job ``document`` has run past its timeout."""
    timeout, picked = document.get('timeout'), document.get('picked')
    return bool(timeout) and picked is not None and \
        picked + datetime.timedelta(seconds=timeout) <= now


def timedOutUpdate(document, now):
    message = stamp(TIMED_OUT_MESSAGE % ('%g' % document['timeout']), now)
    return failureUpdate(document, message, '', now, final=False,
                         outcome=TIMED_OUT_OUTCOME)


def completeUpdate(source, output, now, thread=None):
    update = {'$set': {'status': COMPLETED, 'output': output,
                       'completed': now},
              '$unset': dict(_CLAIM_FIELDS)}
    pushTerms(update, outputTerms(output, source))
    return _pushAttempt(update, attemptRecord(source, now,
                                              COMPLETED_OUTCOME,
                                              thread=thread))


def cancelUpdate(document, now):
    """Cancel the job ``document``; a running one records its attempt as
    cancelled (its worker sees it at its next checkpoint)."""
    update = {'$set': {'status': CANCELLED, 'completed': now},
              '$unset': dict(_CLAIM_FIELDS)}
    if document.get('status') == PROCESSING:
        _pushAttempt(update, attemptRecord(document, now,
                                           CANCELLED_OUTCOME))
    return update


def cancelCondition(document):
    """What a cancel of ``document`` restates: its status, and for a
    running job its claim."""
    condition = {'status': document['status']}
    if document['status'] == PROCESSING:
        condition['claim'] = document.get('claim')
    return condition


def requeueUpdate(now):
    return {'$set': {'status': QUEUED, 'queued': now, 'retryTime': now,
                     'retryCounter': 0},
            '$unset': {'completed': '', 'output': '', 'progress': ''}}


def unclaimUpdate():
    """Give a claimed job that did not start back to the queue, in its
    place (a concurrency limit was reached after the claim)."""
    return {'$set': {'status': QUEUED}, '$unset': dict(_CLAIM_FIELDS)}


def progressUpdate(fraction, message, now):
    return {'$set': {'progress': {
        'fraction': fraction,
        'message': None if message is None
        else cutText(message, MAX_PROGRESS_MESSAGE),
        'at': now}}}


def logUpdate(line, now):
    return {'$push': {'log': {
        '$each': [stamp(cutText(line, MAX_LOG_LINE), now)],
        '$slice': -MAX_LOG_LINES}}}


def versioned(update):
    update = dict(update)
    update['$inc'] = dict(update.get('$inc', {}), version=1)
    return update


#: The statuses a job may be cancelled in.
CANCELLABLE = (WAITING, QUEUED, PROCESSING)
CANCEL_REFUSED = ('Job %s is %s; only waiting, queued or processing jobs '
                  'can be cancelled')

#: The statuses a job may be removed in: not while it runs (it belongs to
#: its worker then; cancel it first).
DELETABLE = (QUEUED, COMPLETED, CANCELLED, ERROR)


def checkDeletable(stati):
    """ValueError unless ``stati`` are statuses a job is removed in."""
    if not stati or not set(stati) <= set(DELETABLE):
        raise ValueError('Jobs are removed in the statuses %s, not %r'
                         % (', '.join(DELETABLE), list(stati)))
