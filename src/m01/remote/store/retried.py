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
* An outcome (``finish``, ``unclaim``: one ``update_one`` conditional on
  the claim token) is retried here until the server answers, for up to
  ``RETRY_SECONDS`` (an election takes seconds; the job's lease is
  renewed meanwhile). Retrying cannot write it twice: once applied, the
  job no longer holds the claim, and the retry matches nothing. So when
  a retry matches nothing, the job is read: if its newest attempt is
  the one this outcome recorded, the outcome was applied and the
  transaction goes on to commit what the job wrote through it. Without
  this the commit would abort, losing the job's own writes although
  its outcome was stored. If the server does not answer in time the
  error propagates, the transaction aborts, and the job runs again
  once its lease has expired (at least once, as after a crash).

The other changes need nothing of this kind: a lease renewal that fails
is tried again at the next tick, lease recovery at the next round, and
a cancel, a retry or an edit from a page fails with the error shown.
"""
import time

import pymongo.errors
import zope.interface

from m01.remote.interfaces import IJobWrites
from m01.remote.queue.updates import isRecordOf

#: Seconds an outcome is retried while the server does not answer.
RETRY_SECONDS = 30.0
#: The first pause between two attempts, doubled up to MAX_PAUSE.
FIRST_PAUSE = 0.1
MAX_PAUSE = 2.0


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
        applied (its answer was lost)."""
        deadline = time.monotonic() + self.retrySeconds
        pause = FIRST_PAUSE
        uncertain = False
        while True:
            try:
                return change(), uncertain
            except pymongo.errors.ConnectionFailure:
                if time.monotonic() + pause > deadline:
                    raise
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

    def _stored(self, oid, update):
        """Whether the outcome ``update`` of ``oid`` was stored."""
        return isRecordOf(
            self.jobs.find_one({'_id': oid}, {'attempts': {'$slice': -1}}),
            update)
