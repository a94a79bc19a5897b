"""Running a claimed job, and storing its outcome with the transaction.

A job runs in the transaction of the unit of work that claimed it (a
worker step's): what it writes through that transaction and its outcome
are stored by the same commit. A job that fails has its own writes
rolled back to the savepoint taken before it ran; the failure is then
recorded. Each outcome is conditional on the job's claim token
(``IJobWrites``), and the job's lease is renewed until the transaction
that stores the outcome has ended; then its concurrency slot and (once
it ended for good) its key are released.

While it runs, the job reaches its worker through a ``JobControl``: its
``checkpoint``, ``progress`` and ``log`` calls raise ``JobCancelled``
once the job was cancelled, ``JobTimedOut`` past its timeout.
"""
import datetime
import logging
import threading
import time
import traceback

import transaction
import transaction.interfaces
import zope.interface

from m01.remote.clock import stamp, toBSONTime
from m01.remote.interfaces import CANCELLED, PROCESSING, QUEUED
from m01.remote.job import (
    JobCancelled,
    JobError,
    JobInterrupted,
    JobTimedOut,
    checkOutput,
)
from m01.remote.queue.containers import toObjectId
from m01.remote.queue.errormessage import getJobErrorMessage
from m01.remote.queue.updates import (
    TIMED_OUT_MESSAGE,
    TIMED_OUT_OUTCOME,
    completeUpdate,
    failureUpdate,
    logUpdate,
    progressUpdate,
)

logger = logging.getLogger('m01.remote')

#: A checkpoint asks the database whether the job was cancelled at most
#: this often (seconds); in between it only checks the timeout.
CHECK_INTERVAL = 1.0


def deadlineOf(job):
    """When the claimed ``job`` times out, or None."""
    if not job.timeout or job.picked is None:
        return None
    return job.picked + datetime.timedelta(seconds=job.timeout)


class JobControl:
    """What a running job calls through its ``checkpoint``, ``progress``
    and ``log``: the job ``oid`` running under ``claim`` until
    ``deadline`` (or for ever), its state read and written through
    ``jobWrites``."""

    def __init__(self, jobWrites, oid, claim, deadline, timeout, now,
                 checkInterval=None):
        self.jobWrites = jobWrites
        self.oid = oid
        self.claim = claim
        self.deadline = deadline
        self.timeout = timeout
        self.now = now
        self.checkInterval = CHECK_INTERVAL if checkInterval is None \
            else checkInterval
        self._checked = time.monotonic()

    def _checkDeadline(self):
        if self.deadline is not None and self.now() >= self.deadline:
            raise JobTimedOut(TIMED_OUT_MESSAGE % ('%g' % self.timeout))

    def _stopUnlessOwned(self, state):
        self._checked = time.monotonic()
        if state == (PROCESSING, self.claim):
            return
        if state is not None and state[0] == CANCELLED:
            raise JobCancelled('Job %s was cancelled.' % self.oid)
        raise JobInterrupted(
            'Job %s is no longer this worker\'s (it is %s).'
            % (self.oid, state[0] if state else 'removed'))

    def checkpoint(self):
        self._checkDeadline()
        if time.monotonic() - self._checked >= self.checkInterval:
            self._stopUnlessOwned(self.jobWrites.state(self.oid))

    def _report(self, update):
        self._checkDeadline()
        if not self.jobWrites.report(self.oid, self.claim, update):
            self._stopUnlessOwned(self.jobWrites.state(self.oid))
        self._checked = time.monotonic()

    def progress(self, fraction, message):
        self._report(progressUpdate(fraction, message, self.now()))

    def log(self, line):
        self._report(logUpdate(line, self.now()))


class JobRunner:
    """Runs claimed jobs: ``jobWrites`` stores their outcomes, ``leases``
    (a ``LeaseKeeper``) renews their leases meanwhile, ``registry`` adapts
    their error messages, ``now`` tells the time; ``slots``
    (``ConcurrencySlots``) and ``keys`` (``JobKeys``) are released when a
    job is done with them; ``counters`` (``IOutcomeCounters``) count each
    outcome stored."""

    def __init__(self, jobWrites, leases, registry, now, slots=None,
                 keys=None, counters=None):
        self.jobWrites = jobWrites
        self.leases = leases
        self.registry = registry
        self.now = now
        self.slots = slots
        self.keys = keys
        self.counters = counters

    def _finish(self, name, oid, claim, update):
        """Store an outcome under ``claim``, counted when it was."""
        stored = self.jobWrites.finish(oid, claim, update)
        if stored and self.counters is not None:
            self.counters.countUpdate(name, update)
        return stored

    def run(self, job, remoteProcessor, queueTransaction, callTime=None,
            call=None):
        """Run the claimed ``job`` with ``remoteProcessor`` (what its
        ``__call__`` gets) and add its outcome to the current transaction
        of ``queueTransaction`` (a ``QueueTransaction``).

        ``call(job, remoteProcessor)``, when given, runs the job instead
        of this thread (the ``process`` worker's child does): it returns
        the output or raises what the job raised."""
        # Join before the savepoint: a rollback then empties our buffer
        # instead of removing us from the transaction.
        queueTransaction.dataManager()
        manager = queueTransaction.transactionManager
        savepoint = manager.get().savepoint(optimistic=True)
        oid = toObjectId(job.__name__)
        deadline = deadlineOf(job)
        self.leases.add(job.__name__, job.claim, deadline)
        job._control = JobControl(self.jobWrites, oid, job.claim, deadline,
                                  job.timeout, self.now)
        recorded = False
        stray = _ThreadTransaction(manager)
        try:
            try:
                output = job(remoteProcessor) if call is None \
                    else call(job, remoteProcessor)
                checkOutput(output)
            except JobTimedOut as error:
                self._rollback(savepoint, manager)
                self._recordFailure(job, error, queueTransaction, callTime,
                                    outcome=TIMED_OUT_OUTCOME)
            except JobInterrupted as error:
                self._rollback(savepoint, manager)
                logger.info('Job %s stopped: %s', job.__name__, error)
                self._endRun(job, final=False)
            except (Exception, SystemExit) as error:
                # A job calling sys.exit() fails; its worker goes on.
                self._rollback(savepoint, manager)
                self._recordFailure(job, error, queueTransaction, callTime)
            else:
                update = completeUpdate(job, output, self.now(),
                                        threading.current_thread().name)
                self._recordOutcome(job, queueTransaction, update)
            recorded = True
        finally:
            job._control = None
            stray.warnIfJoined(job)
            if not recorded:
                self._endRun(job, final=False)

    def failUnloadable(self, document, error, now):
        """Count a claimed job whose class this process lacks as a failed
        attempt, at once: a deployment mistake, not the job's (another
        worker may have the class)."""
        logger.error('Job %s cannot run here: %s', document['_id'], error)
        self._finish(document['name'], document['_id'], document['claim'],
                     failureUpdate(document, stamp(error, now), '', now,
                                   final=False))

    @staticmethod
    def _rollback(savepoint, manager):
        try:
            savepoint.rollback()
        except Exception:
            # The job ended its transaction itself, or a participant
            # cannot roll back to a savepoint: drop all of it.
            manager.abort()

    def _recordFailure(self, job, error, queueTransaction, callTime,
                       outcome=None):
        now = toBSONTime(callTime) if callTime else self.now()
        # The adapter stamps the message with the time of the failure.
        job.errorTime = now
        message = getJobErrorMessage(self.registry, job, error)
        # An error raised elsewhere (in a child process) brings its own.
        text = getattr(error, 'formattedTraceback', None)
        if text is None:
            text = traceback.format_exc()
        update = failureUpdate(
            job, message, text, now,
            isinstance(error, JobError),
            thread=threading.current_thread().name,
            **({'outcome': outcome} if outcome else {}))
        self._recordOutcome(job, queueTransaction, update)

    def _recordOutcome(self, job, queueTransaction, update):
        oid = toObjectId(job.__name__)
        final = update['$set']['status'] != QUEUED

        def refused():
            logger.warning(
                'The outcome of job %s was not stored: the job was '
                'cancelled, timed out or taken over after its lease '
                'expired.', job.__name__)

        def stored():
            if self.counters is not None:
                self.counters.countUpdate(job.name, update)
        queueTransaction.dataManager().addOutcome(oid, job.claim, update,
                                                  refused, stored)
        txn = queueTransaction.transactionManager.get()
        # Keep renewing the job's lease until the transaction that stores
        # its outcome ends: a lease that expired while the outcome waits
        # for the commit would let another worker run the job again.
        # Committed, the job is no longer processing; aborted, it runs
        # again once the lease expires.
        txn.addAfterCommitHook(
            lambda committed: self._endRun(job, final and committed))
        txn.addAfterAbortHook(lambda *ignored: self._endRun(job, False))

    def _endRun(self, job, final):
        """The run of ``job`` is over (``final``: the job ended for good,
        its outcome stored): stop renewing its lease, release its slot,
        and its key."""
        self.leases.discard(job.__name__, job.claim)
        slot = getattr(job, 'slot', None)
        try:
            if slot and self.slots is not None:
                self.slots.release(slot, job.claim)
            if final and job.key and self.keys is not None:
                self.keys.release(job.key, toObjectId(job.__name__))
        except Exception:
            # The lease keeper frees what a missed release left behind.
            logger.exception('Releasing the slot or key of job %s failed',
                             job.__name__)


@zope.interface.implementer(transaction.interfaces.ISynchronizer)
class _ThreadTransaction:
    """Notices a job that used the thread's default transaction
    (``transaction.get()``) while the worker ran it in a transaction of
    its own: that work would never be committed by the worker.

    It watches through the manager's public synchronizer hook
    (``registerSynch``), which tells a synchronizer of the current
    transaction when it registers and of each one begun after: another
    transaction current after the job than before, or commit or abort
    hooks added to the one open before, give the job away. (A resource
    joining a transaction the thread had open before shows in nothing
    public.)"""

    def __init__(self, manager):
        self.watched = manager is not transaction.manager
        self.began = []
        if self.watched:
            transaction.manager.registerSynch(self)
            self.before = self.began.pop() if self.began else None
            self.hooks = self._hooks(self.before)

    @staticmethod
    def _hooks(txn):
        if txn is None:
            return None
        return tuple(len(list(hooks())) for hooks in (
            txn.getBeforeCommitHooks, txn.getAfterCommitHooks,
            txn.getBeforeAbortHooks, txn.getAfterAbortHooks))

    def _current(self):
        """The thread's current transaction, None when there is none: told
        to a synchronizer registering (``get()`` would begin one)."""
        told = []
        probe = _Told(told)
        transaction.manager.registerSynch(probe)
        transaction.manager.unregisterSynch(probe)
        return told[-1] if told else None

    # ISynchronizer

    def newTransaction(self, txn):
        self.began.append(txn)

    def beforeCompletion(self, txn):
        pass

    def afterCompletion(self, txn):
        pass

    def warnIfJoined(self, job):
        if not self.watched:
            return
        transaction.manager.unregisterSynch(self)
        current = self._current()
        if self.began or current is not self.before or \
                self._hooks(current) != self.hooks:
            logger.warning(
                'Job %s joined the thread\'s default transaction '
                '(transaction.get()); its worker commits another one: join '
                'remoteProcessor.transactionManager.get() instead, or that '
                'work is not stored with the job.', job.__name__)


@zope.interface.implementer(transaction.interfaces.ISynchronizer)
class _Told:
    """A synchronizer noting the transactions it is told of."""

    def __init__(self, told):
        self.newTransaction = told.append

    def beforeCompletion(self, txn):
        pass

    def afterCompletion(self, txn):
        pass

