"""Debounce: ``addJob(name, input, key=..., debounce=seconds)``.

The first add of a key queues a job due ``debounce`` seconds later. An
add with the same key while that job is still queued does not queue
another: it moves the job's due time to ``debounce`` seconds from now
and gives it the new input, in one conditional write of the job
(``IJobWrites.edit``, conditional on the version it was read at, which
was a queued one). Of a burst of adds, one job runs, ``debounce``
seconds after the last add, with the last add's input: two adds racing
for the job each write only over the version they read, and the one
refused reads the job again and writes after the other.

An add made in a transaction writes at its commit (the job's
``JobChanges``; one write for all its adds to one job); a job changed
meanwhile (claimed, or moved by another add) fails the commit with
``ConflictError``, which pyramid_retry answers by running the request
again. Once the job was claimed, an add
is answered as an add of a held key is (its id, or
``DuplicateJobKeyError``): a running job's input is not changed.
"""
import datetime
import time
import weakref

from m01.remote.interfaces import QUEUED
from m01.remote.job import RETAINED, ConflictError, DuplicateJobKeyError
from m01.remote.queue.persistent import JobChanges
from m01.remote.queue.search import editedTerms

#: How often an add tries to move the job holding its key before it
#: gives up to its racers, and the first pause between two tries
#: (doubled each time): a holder added at once by another process is
#: stored within milliseconds of its key.
ATTEMPTS = 8
FIRST_PAUSE = 0.005


class DebounceRaceLost(ConflictError):
    """The job holding the key changed (or was not stored yet) every
    time it was read; a retry of the transaction reads it anew."""


def debouncedFields(document, input, now, debounce):
    """What an add with ``input`` at ``now`` sets on the queued job
    ``document`` it debounces: its input (and the search terms that
    follow it) and its due time."""
    return {'input': input,
            'terms': editedTerms(document['_id'], document.get('terms'),
                                 document.get('input'), input),
            'retryTime': now + datetime.timedelta(seconds=debounce)}


class Debouncer:
    """Moves the queued job holding a key: ``keys`` are the key locks
    (``JobKeys``), ``documentOf(jobid)`` a job's document as the
    transaction sees it, ``pending`` the ``QueueTransaction`` and
    ``jobWrites`` the ``IJobWrites``."""

    def __init__(self, keys, documentOf, pending, jobWrites, now):
        self.keys = keys
        self.documentOf = documentOf
        self.pending = pending
        self.jobWrites = jobWrites
        self.now = now
        # transaction -> {oid: JobChanges}: the adds of one transaction
        # to one stored job make one write at its commit.
        self._changes = weakref.WeakKeyDictionary()

    def add(self, document, immediate):
        """Reserve the key of the new job ``document`` (held its
        ``keyPeriod`` seconds after it ended), or, when it is debounced
        (its ``debounce``), move the queued job holding it, giving it the
        new job's input: ``(None, False)`` when reserved (store the new
        job), ``(holder, True)`` when ``holder`` was moved, ``(holder,
        False)`` when ``holder`` holds the key (and, debounced, is no
        longer queued)."""
        oid, key = document['_id'], document['key']
        period, debounce = document.get('keyPeriod'), document.get('debounce')
        if debounce is None:
            return self.keys.reserve(key, oid, self.documentOf,
                                     period), False
        pause = FIRST_PAUSE
        for _ in range(ATTEMPTS):
            holder = self.keys.reserve(key, oid, self.documentOf, period)
            if holder is None:
                return None, False
            held = self.documentOf(holder)
            if held is not None and held['status'] != QUEUED:
                return holder, False
            if held is not None and self._move(held, document['input'],
                                               debounce, immediate):
                return holder, True
            # Not stored yet (another process is storing it), or changed
            # under us: read it again, after a pause.
            time.sleep(pause)
            pause *= 2
        raise DebounceRaceLost(
            'The job holding the key %r changed, or was not stored, every '
            'time it was read (%d times)' % (key, ATTEMPTS))

    def duplicate(self, jobid, key):
        """The ``DuplicateJobKeyError`` naming the job ``jobid``, which
        holds ``key``, and why."""
        document = self.documentOf(jobid)
        if document is None or document['status'] not in RETAINED:
            why = 'it is queued or running'
        else:
            why = 'it ended at %s and holds its key for %s s after' % (
                document.get('completed'), document.get('keyPeriod'))
        return DuplicateJobKeyError('Job %s holds the key %r: %s'
                                    % (jobid, key, why), jobid)

    def _move(self, document, input, debounce, immediate):
        fields = debouncedFields(document, input, self.now(), debounce)
        added = self.pending.addedDocument(str(document['_id']))
        if added is not None:
            added.update(fields)        # added in this transaction
            return True
        if immediate:
            return self.jobWrites.edit(document['_id'],
                                       document.get('version', 0), fields)
        byJob = self._changes.setdefault(
            self.pending.transactionManager.get(), {})
        changes = byJob.get(document['_id'])
        if changes is None:
            changes = byJob[document['_id']] = JobChanges(
                self.pending, self.jobWrites, document)
        self.pending.dataManager().addEdit(changes, str(document['_id']),
                                           fields)
        return True
