"""Unique jobs: at most one live (queued or processing) job per key
(or, with a period, one job until that long after it ended).

``addJob(..., key='invoice-42')`` reserves the key before the job is
stored, by inserting a lock ``{_id: 'key:invoice-42', job: <id>}``. The
insert of a given ``_id`` is atomic on every store, so of two processes
adding the same key one wins; the other finds the lock and answers with
the job it names.

A job's end releases its key with one conditional write on the lock,
only while it names that job: a delete, or, for a key held for a period
after the job ended (``addJob(..., key=..., keyPeriod=seconds)``, the
lock's ``period``), setting the lock's ``until`` (the end plus the
period); the lock holds until then, whatever became of its job.

A lock outlives its job when the release was missed (a process died
between the job's end and the release): the next reservation that meets
a lock whose job has ended (or never appeared; a job with a period:
whose period has passed) takes it over, deleting it only while it is
the reservation it read (its ``token``), so a release and a takeover
racing for one lock never remove a newer lock in its place.
"""
import datetime
import uuid

import pymongo.errors
import zope.interface

from m01.remote.interfaces import PROCESSING, QUEUED, WAITING, IUpkeep
from m01.remote.job import checkSeconds

#: A lock whose job does not exist is left alone this long: its job may
#: be in a transaction not committed yet.
PENDING_AGE = datetime.timedelta(minutes=10)
#: Seconds between two tidy passes (each reads every lock).
TIDY_INTERVAL = 60.0
#: A reservation tries this often before it gives up to its racers.
ATTEMPTS = 5

MAX_KEY_LENGTH = 200


class KeyRaceLost(RuntimeError):
    """The key changed hands too often while it was reserved."""


def checkKey(key):
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError('A job key is a non-empty string of at most %d '
                         'characters, not %r' % (MAX_KEY_LENGTH, key))


@zope.interface.implementer(IUpkeep)
class JobKeys:
    """The key locks of one database (``collection``), ``now`` telling
    the time and ``jobWrites`` (``IJobWrites``) a stored job's state;
    ``jobs`` (the jobs collection) tells when a job that holds its key
    for a period ended, where its release was missed."""

    def __init__(self, collection, now, jobWrites, jobs=None):
        self.collection = collection
        self.now = now
        self.jobWrites = jobWrites
        self.jobs = jobs
        self._lastTidy = None

    @staticmethod
    def waiting(oid):
        """The status of the job ``oid`` where it waits to be stored (an
        outbox's rows, ``IJobOutbox.status``), else None: its key stays
        taken meanwhile. Nothing waits unless an outbox is used."""
        return None

    @staticmethod
    def _lockId(key):
        return 'key:' + key

    def reserve(self, key, oid, documentOf, period=None):
        """Reserve ``key`` for the job ``oid``: None when reserved, else
        the id (a string) of the job holding it. ``documentOf(oid)``
        is a job's document as the caller sees it (its pending jobs
        included), or None when there is no such job. With ``period``
        (seconds) the key stays held that long after the job ended."""
        checkKey(key)
        checkPeriod(period)
        lockId = self._lockId(key)
        mine = {'_id': lockId, 'job': oid, 'key': key}
        if period is not None:
            mine['period'] = period
        for _ in range(ATTEMPTS):
            now = self.now()
            try:
                self.collection.insert_one(dict(
                    mine, at=now, token=uuid.uuid4().hex))
                return None
            except pymongo.errors.DuplicateKeyError:
                pass
            lock = self.collection.find_one({'_id': lockId})
            if lock is None:
                continue                        # released meanwhile
            document = documentOf(lock['job'])
            if document:
                status, ended = document['status'], document.get('completed')
            else:
                status, ended = self.waiting(lock['job']), None
            if self._holds(lock, status, ended, now):
                return str(lock['job'])
            self._end(lock)                     # stale: take it over
        raise KeyRaceLost('the key %r changed hands %d times while it was '
                          'reserved' % (key, ATTEMPTS))

    @staticmethod
    def _holds(lock, status, ended, now):
        """Whether ``lock`` still stands for its job, whose status is
        ``status`` (None when there is no such job) and which ended at
        ``ended`` (if it did)."""
        if status in (WAITING, QUEUED, PROCESSING):
            return True                 # also a job queued again
        if lock.get('until') is not None:
            return lock['until'] > now
        if status is None:
            return lock['at'] > now - PENDING_AGE
        return heldUntil(lock.get('period'), ended, now) is not None

    def release(self, key, oid, ended=None, period=None):
        """The job ``oid`` ended (at ``ended``): free its key, if it still
        holds it; with ``period`` keep it held until ``period`` seconds
        after ``ended``. One conditional write."""
        until = heldUntil(period, ended or self.now())
        if until is None:
            self.collection.delete_one({'_id': self._lockId(key),
                                        'job': oid})
        else:
            self.collection.update_one({'_id': self._lockId(key),
                                        'job': oid},
                                       {'$set': {'until': until}})

    def _end(self, lock):
        """Remove ``lock`` if it is still the reservation read; whether
        it was."""
        return self.collection.delete_one(
            {'_id': lock['_id'], 'job': lock['job'],
             'token': lock.get('token')}).deleted_count == 1

    # IUpkeep

    def tidy(self, now):
        """Free the keys of jobs that ended without releasing them, at
        most every ``TIDY_INTERVAL`` seconds."""
        if self._lastTidy is not None and \
                (now - self._lastTidy).total_seconds() < TIDY_INTERVAL:
            return 0
        self._lastTidy = now
        freed = 0
        for lock in self.collection.find():
            status, ended = self._ended(lock)
            if not self._holds(lock, status, ended, now) and \
                    self._end(lock):
                freed += 1
        return freed

    def _ended(self, lock):
        """The status of the job of ``lock`` and when it ended."""
        if lock.get('period') is not None and self.jobs is not None:
            document = self.jobs.find_one({'_id': lock['job']},
                                          {'status': 1, 'completed': 1})
            if document is not None:
                return document['status'], document.get('completed')
        state = self.jobWrites.state(lock['job'])
        if state:
            return state[0], None
        return self.waiting(lock['job']), None


def checkPeriod(period):
    """A key's period is None or a number of seconds."""
    checkSeconds(period, 'keyPeriod', optional=True)


def heldUntil(period, ended, now=None):
    """Until when a key held ``period`` seconds after its job ``ended``
    stays held (None without a period or end, or, given ``now``, when
    that time has passed)."""
    if period is None or ended is None:
        return None
    until = ended + datetime.timedelta(seconds=period)
    if now is not None and until <= now:
        return None
    return until
