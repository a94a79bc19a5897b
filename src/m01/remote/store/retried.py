"""A primary stepping down mid-change: no job lost, none run twice.

When a replica set's primary steps down (or the connection to it is
cut) while a write is on its way, the write may or may not have been
applied. pymongo retries it once (retryable writes), and the server,
which remembers the transaction number, applies it once; only when the
retry fails too (the election is not over) does the error reach us,
as ``NotPrimaryError`` or ``AutoReconnect``, and the write's fate is
unknown. So for each change the queue makes:

* A claim (``claimNext``, ``claimJob``: one ``find_one_and_update``)
  raises, and the worker treats it as a failed step: it claims nothing.
  If the claim was not applied, the job is still queued. If it was, the
  job is marked ``processing`` under a claim token nobody holds: nobody
  runs it and nobody renews its lease, so once the lease has expired any
  process's lease keeper gives it back to the queue as a ``lost``
  attempt (which counts as one of its retries), and a worker runs it.
  It is never run twice: only the holder of its claim token could run
  it, and nobody holds that one. A claim is not retried here: a second
  claim would take another job and leave the first to its lease all the
  same.
* An outcome (``finish``, ``finishMany``, ``unclaim``: conditional on
  the claim token) is retried until the server answers, for up to
  ``retrySeconds`` (a processor's: ``RETRY_LEASES`` leases; an election
  takes seconds, a reset or a silent connection a socket timeout; the
  job's lease is renewed meanwhile by the lease keeper, which renews
  nothing else). Whether the claim still holds is the server's to say: a
  worker cut off past its lease finds, once the network heals, its
  outcome stored if no other worker took the job over meanwhile (every
  worker may have been cut off too), or refused if one did; giving up at
  the lease would run it again in the first case too. Retrying cannot
  write it twice: once applied, the job no longer holds the claim, and
  the retry matches nothing. So when a retry matches nothing, the job is
  read: if its newest attempt is the one this outcome recorded
  (``queue.updates.isRecordOf``), the outcome was applied and the
  transaction goes on to commit what the job wrote through it. Without
  this the commit would abort, losing the job's own writes although its
  outcome was stored, and the job would run again.
* What a worker's unit of work wrote through its transaction (while
  ``queue.transaction.HOLDING_CLAIMS`` says so) is retried the same way,
  each write safe to repeat: the fence of a unit of work
  (``holdClaims``, a lease renewal conditional on each claim); the jobs
  it added (``insertJobs``), under ids fixed before the first try, so
  that after a lost answer the ones already stored are found by id and
  only the others inserted; the fields it set on a loaded job (``edit``,
  conditional on the version it read), found applied when the job is at
  the next version with those fields. A request's jobs and fields (a
  transaction that ran no claimed job) are tried once: its error is the
  request's to show or retry, and it never waits minutes for a server.

If the server does not answer in time the error propagates, the
transaction aborts, and the job runs again once its lease has expired
(at least once, as after a crash): its worker was cut off for longer
than ``RETRY_LEASES`` leases.

The other changes need nothing of this kind: a lease renewal that fails
is tried again at the next tick, lease recovery at the next round, and
a cancel, a retry or an edit from a page fails with the error shown.
"""
import datetime
import logging
import time

import pymongo.errors
import zope.interface

from m01.remote.interfaces import IJobWrites
from m01.remote.queue.transaction import HOLDING_CLAIMS
from m01.remote.queue.updates import isRecordOf

logger = logging.getLogger('m01.remote')

#: Seconds an outcome is retried while the server does not answer, by
#: default.
RETRY_SECONDS = 30.0
#: A processor's writes are retried for this many leases.
RETRY_LEASES = 10
#: The first pause between two attempts, doubled up to MAX_PAUSE: short,
#: so that a retry lands soon after the network heals, before another
#: worker's lease keeper takes the job over (each try waits up to the
#: socket timeout anyway while nothing answers).
FIRST_PAUSE = 0.1
MAX_PAUSE = 0.5


@zope.interface.implementer(IJobWrites)
class RetriedOutcomes:
    """``writes`` (an ``IJobWrites``) with its outcomes retried across a
    step-down; ``jobs`` is the jobs collection, read to learn whether an
    outcome whose answer was lost was applied. Everything else is the
    one of ``writes``."""

    def __init__(self, writes, jobs, retrySeconds=RETRY_SECONDS,
                 sleep=time.sleep):
        self.writes = writes
        self.jobs = jobs
        self.retrySeconds = retrySeconds
        self.sleep = sleep

    def __getattr__(self, name):
        if name == 'writes':   # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(self.writes, name)

    def _answered(self, change):
        """``change()``'s answer, retried across connection failures for
        up to ``retrySeconds``, and whether an earlier try may have been
        applied (its answer was lost). ``change`` is told (its
        ``uncertain`` argument, when it takes one) whether an earlier try
        may have been applied."""
        return self._tried(lambda uncertain: change())

    def _tried(self, change):
        deadline = time.monotonic() + self.retrySeconds
        pause = FIRST_PAUSE
        uncertain = False
        while True:
            try:
                return change(uncertain), uncertain
            except pymongo.errors.ConnectionFailure as error:
                if time.monotonic() + pause > deadline:
                    if uncertain:
                        logger.warning(
                            'A write of the queue was retried for %.1f s '
                            'without an answer (%s): given up',
                            self.retrySeconds, error)
                    raise
                if not uncertain:
                    logger.info('A write of the queue got no answer '
                                   '(%s): retried for up to %.1f s',
                                   error, self.retrySeconds)
                uncertain = True
                self.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE)

    def _retried(self, change, applied):
        """Make ``change()``; after a lost answer, ``applied()`` tells
        whether a change that now matches nothing had been made."""
        done, uncertain = self._answered(change)
        return done or (uncertain and applied())

    def finish(self, oid, claim, update):
        return self._retried(
            lambda: self.writes.finish(oid, claim, update),
            lambda: self._stored(oid, update))

    def finishMany(self, outcomes):
        # The batch is retried whole: an outcome applied before an answer
        # was lost is refused the second time, and told from one refused
        # for good by the attempt it recorded.
        refused, uncertain = self._answered(
            lambda: self.writes.finishMany(outcomes))
        if not (uncertain and refused):
            return refused
        updates = {oid: update for oid, _claim, update in outcomes}
        return [oid for oid in refused
                if not self._stored(oid, updates[oid])]

    def unclaim(self, oid, claim):
        return self._retried(lambda: self.writes.unclaim(oid, claim),
                             lambda: False)

    def holdClaims(self, claims, until):
        # A lease renewal conditional on each claim: repeated, it renews
        # the same leases, and tells the same lost claims.
        return self._answered(
            lambda: self.writes.holdClaims(claims, until))[0]

    def insertJobs(self, documents):
        # Under ids fixed before the first try: after a lost answer the
        # jobs stored already are found by id, and only the others are
        # inserted (an ordered insert stops at its first failure).
        if not HOLDING_CLAIMS.get():
            return self.writes.insertJobs(documents)
        ids = [document['_id'] for document in documents]

        def insert(uncertain):
            missing = documents
            if uncertain:
                stored = {document['_id'] for document in self.jobs.find(
                    {'_id': {'$in': ids}}, {'_id': 1})}
                missing = [document for document in documents
                           if document['_id'] not in stored]
            if missing:
                self.writes.insertJobs(missing)
        self._tried(insert)

    def edit(self, oid, version, fields):
        if not HOLDING_CLAIMS.get():
            return self.writes.edit(oid, version, fields)
        return self._retried(
            lambda: self.writes.edit(oid, version, fields),
            lambda: self._edited(oid, version, fields))

    def _edited(self, oid, version, fields):
        """Whether ``fields`` were set on ``oid`` at ``version`` (it is at
        the next version, with those fields)."""
        document = self.jobs.find_one(
            {'_id': oid, 'version': version + 1},
            dict.fromkeys(fields, 1))
        return document is not None and all(
            _same(document.get(name), value)
            for name, value in fields.items())

    def _stored(self, oid, update):
        """Whether the outcome ``update`` of ``oid`` was stored."""
        return isRecordOf(
            self.jobs.find_one({'_id': oid}, {'attempts': {'$slice': -1}}),
            update)


def _same(stored, value):
    """Whether ``stored`` (as read back) is the ``value`` written: the
    server keeps times to the millisecond."""
    if isinstance(value, datetime.datetime) and \
            isinstance(stored, datetime.datetime):
        return abs(stored - value) < datetime.timedelta(milliseconds=1)
    return stored == value
