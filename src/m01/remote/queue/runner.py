"""Running a claimed job, and storing its outcome with the transaction.

A job runs in the transaction of the unit of work that claimed it (one
job, or a batch): what it writes through that transaction (jobs, fields,
conditional writes, another joined resource's writes) and its outcome
are stored by the same commit. A job that fails has its
own writes rolled back to the savepoint taken before it ran; the failure
is then recorded. The job's lease is renewed until the transaction that
stores the outcome has ended; then its concurrency slot and (once its
outcome was stored and ended it for good) its key are released.

An outcome is stored only while the job is still processing under the
claim its worker took (its claim token): a job cancelled, timed out or
taken over (its lease expired and another worker claimed it) has its
outcome refused, and then nothing the attempt wrote through the
transaction may be stored either. Python cannot stop a thread, so such
a job may run on and return; three fences keep its writes out:

1. When the job has returned (or failed), its runner checks the claim,
   unless the database confirmed it less than ``CHECK_INTERVAL`` ago
   (when the job started, at a checkpoint, a progress or log call): one
   conditional write renewing the job's lease while it is processing
   under its claim (``IJobWrites.holdClaims``). If the claim no longer
   holds, the transaction is rolled back to the job's savepoint, in
   every participant (ours drops the jobs it added and the changes it
   made; a resource that joined during the run is aborted), before the
   next job of a batch runs: the others are not touched. A job that
   returned past its deadline has timed out, whatever the lease keeper
   has done yet: rolled back the same way, its timed-out attempt is
   stored at once, conditional on its claim (the keeper may have stored
   it first), and adds nothing to the unit.
2. At commit, before any participant votes, the data manager fences
   every attempt of the unit at once (one command; not when nothing
   else takes part in the transaction, which the third fence covers
   alone, storing the others of a batch). A claim lost since its job's
   own check (a short job is checked only here; a job of a batch may be
   cancelled while the later ones run) aborts the whole unit, nothing
   written anywhere; its other jobs, whose claims still hold, go back to
   the queue in their place (one conditional write each,
   ``unclaim``), not counted as attempts, and run again.
3. At the vote, the outcomes are stored first, each conditional on its
   claim, and only then the jobs added and the other writes
   (``m01.remote.queue.transaction``): an outcome refused in the moment
   between the fence and its write aborts the transaction, or, in a
   batch whose other outcomes were stored, drops the refused attempt's
   own writes to the queue.

A refusal is logged with what became of the attempt's writes. A commit
that aborts at a fence raises ``AttemptRefused``; a worker's unit of
work logs it and goes on.

While it runs, the job reaches its worker through a ``JobControl``: its
``checkpoint``, ``progress`` and ``log`` calls raise ``JobCancelled``
once the job was cancelled, ``JobTimedOut`` past its timeout.
"""
import datetime
import logging
import threading
import traceback

import pymongo.errors

from m01.remote.clock import stamp, toBSONTime
from m01.remote.interfaces import QUEUED
from m01.remote.job import (
    JobError,
    JobInterrupted,
    JobTimedOut,
    checkOutput,
)
from m01.remote.queue.containers import toObjectId
from m01.remote.queue.control import JobControl, deadlineOf
from m01.remote.queue.errormessage import getJobErrorMessage
from m01.remote.queue.events import AttemptEvents
from m01.remote.queue.stray import ThreadTransaction
from m01.remote.queue.updates import (
    TIMED_OUT_OUTCOME,
    completeUpdate,
    failureUpdate,
)
from m01.remote.queue.wrappers import runHandler

logger = logging.getLogger('m01.remote')

#: The log line of a refused attempt: the job, what became of its writes.
REFUSED = ('Job %s was cancelled, timed out or taken over: its outcome was '
           'not stored and %s.')


class JobRunner:
    """Runs claimed jobs: ``jobWrites`` stores their outcomes, ``leases``
    (a ``LeaseKeeper``) renews their leases meanwhile, ``registry`` adapts
    their error messages, ``now`` tells the time; ``slots``
    (``ConcurrencySlots``) and ``keys`` (``JobKeys``) are released when a
    job is done with them; ``counters`` (``IOutcomeCounters``) count each
    outcome stored; ``dependencies`` (``queue.dependencies``) releases
    the jobs waiting for a job that ended for good, once its outcome is
    stored."""

    #: Where the attempts of async jobs run while a worker loop runs
    #: (``IAsyncJobs``), or None.
    asyncJobs = None
    #: Sends the events of an attempt failed without a job object
    #: (``SweepEvents``), or None.
    sweepEvents = None

    def __init__(self, jobWrites, leases, registry, now, slots=None,
                 keys=None, counters=None, dependencies=None):
        self.jobWrites = jobWrites
        self.leases = leases
        self.registry = registry
        self.now = now
        self.slots = slots
        self.keys = keys
        self.counters = counters
        self.dependencies = dependencies

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
        if call is None and self.asyncJobs is not None and \
                self.asyncJobs.accepts(job):
            # On the process's event loop, in a transaction of its own.
            self.asyncJobs.submit(self, job, remoteProcessor, callTime)
            return
        attempt = self.begin(job, remoteProcessor, queueTransaction)
        stray = ThreadTransaction(attempt.manager)
        try:
            self.settle(attempt, lambda: runHandler(self.registry)(
                job, remoteProcessor) if call is None
                else call(job, remoteProcessor), callTime)
        finally:
            stray.warnIfJoined(job)

    def begin(self, job, remoteProcessor, queueTransaction):
        """Set up the attempt of the claimed ``job`` (its savepoint, its
        lease, its ``JobControl``) and send ``IJobStarted``; the attempt,
        for ``settle``."""
        # Join before the savepoint: a rollback then empties our buffer
        # instead of removing us from the transaction.
        dataManager = queueTransaction.dataManager()
        manager = queueTransaction.transactionManager
        savepoint = manager.get().savepoint(optimistic=True)
        start = (dataManager, dataManager.mark())
        oid = toObjectId(job.__name__)
        deadline = deadlineOf(job)
        self.leases.add(job.__name__, job.claim, deadline)
        control = job._control = JobControl(
            self.jobWrites, oid, job.claim, deadline, job.timeout, self.now)
        events = AttemptEvents(self.registry, remoteProcessor, job)
        events.started()
        return _Attempt(job, queueTransaction, manager, dataManager,
                        savepoint, start, control, events)

    def settle(self, attempt, outcome, callTime=None):
        """Add what became of ``attempt`` (``begin``) to its transaction:
        ``outcome()`` returns the job's output or raises what it raised.
        """
        job, queueTransaction = attempt.job, attempt.queueTransaction
        manager, dataManager = attempt.manager, attempt.dataManager
        savepoint, start = attempt.savepoint, attempt.start
        control, events = attempt.control, attempt.events
        recorded = False
        try:
            try:
                output = outcome()
                # Returned after its deadline: it timed out all the same.
                control.checkDeadline()
                checkOutput(output)
            except JobTimedOut as error:
                self._rollback(savepoint, manager, dataManager)
                self._recordTimeout(job, error, callTime, events)
            except JobInterrupted as error:
                self._rollback(savepoint, manager, dataManager)
                logger.info('Job %s stopped: %s', job.__name__, error)
                self._endRun(job, final=False)
            except (Exception, SystemExit) as error:
                # A job calling sys.exit() fails; its worker goes on.
                self._rollback(savepoint, manager, dataManager)
                if self._holds(job, control):
                    self._recordFailure(job, error, queueTransaction,
                                        start, callTime, events)
            else:
                if self._holds(job, control):
                    update = completeUpdate(job, output, self.now(),
                                            threading.current_thread().name)
                    self._recordOutcome(job, queueTransaction, start,
                                        update, events)
                else:
                    self._rollback(savepoint, manager, dataManager)
            recorded = True
        finally:
            job._control = None
            if not recorded:
                self._endRun(job, final=False)

    def _holds(self, job, control):
        """Whether the claim of ``job``, which has just run, still holds:
        asked of the database (renewing the job's lease) unless it
        confirmed the claim within the check interval. If not, the run is
        over and the caller discards what it wrote."""
        if control.confirmedRecently():
            return True
        until = self.now() + datetime.timedelta(
            seconds=self.leases.leaseTime)
        if not self.jobWrites.holdClaims(
                [(toObjectId(job.__name__), job.claim)], until):
            return True
        logger.warning(REFUSED, job.__name__, 'its writes were discarded')
        self._endRun(job, final=False)
        return False

    def failUnloadable(self, document, error, now):
        """Count a claimed job whose class this process lacks as a failed
        attempt, at once: a deployment mistake, not the job's (another
        worker may have the class)."""
        logger.error('Job %s cannot run here: %s', document['_id'], error)
        update = failureUpdate(document, stamp(error, now), '', now,
                               final=False)
        if self._finish(document['name'], document['_id'],
                        document['claim'], update) and \
                self.sweepEvents is not None:
            self.sweepEvents([(str(document['_id']),
                               update['$set']['status'])], error)

    @staticmethod
    def _rollback(savepoint, manager, dataManager):
        try:
            savepoint.rollback()
        except Exception:
            # The job ended its transaction itself, or a participant
            # cannot roll back to a savepoint: drop all of it. The jobs
            # run before in the same unit go back to the queue.
            logger.warning('A savepoint could not be rolled back: the whole '
                           'transaction is aborted', exc_info=True)
            dataManager.withdraw()
            manager.abort()

    def _recordTimeout(self, job, error, callTime, events=None):
        """Store at once that ``job`` timed out, if it is still under its
        claim: its attempt, rolled back, adds nothing to the transaction,
        and the lease keeper may be storing the same (the first wins)."""
        update = self._failureUpdate(job, error, callTime,
                                     outcome=TIMED_OUT_OUTCOME)
        stored = self._finish(job.name, toObjectId(job.__name__), job.claim,
                              update)
        if stored:
            logger.warning('Job %s timed out; it is now %s.', job.__name__,
                           update['$set']['status'])
        else:
            logger.warning(REFUSED, job.__name__, 'its writes were discarded')
        self._endRun(job, stored and update['$set']['status'] != QUEUED)
        if stored:
            self._released(job, update)
        if stored and events is not None:
            events.stored(update, error)

    def _recordFailure(self, job, error, queueTransaction, start,
                       callTime, events=None):
        update = self._failureUpdate(job, error, callTime)
        self._recordOutcome(job, queueTransaction, start, update, events,
                            error)

    def _failureUpdate(self, job, error, callTime, outcome=None):
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
        return update

    def _recordOutcome(self, job, queueTransaction, start, update,
                       events=None, error=None):
        oid = toObjectId(job.__name__)
        attempt = _AttemptState()
        if events is not None:
            attempt.notify = lambda: events.stored(update, error)

        def refused(consequence):
            logger.warning(REFUSED, job.__name__, consequence)

        def stored():
            attempt.stored = True
            if self.counters is not None:
                self.counters.countUpdate(job.name, update)

        def withdrawn():
            attempt.withdrawn = True
        dataManager = queueTransaction.dataManager()
        # Rolled back to nothing by an abort (a participant without
        # savepoints), the attempt's writes begin in a new transaction.
        began = start[1] if start[0] is dataManager else dataManager.mark()
        dataManager.addOutcome(oid, job.claim, update, began, refused,
                               stored, withdrawn)
        txn = queueTransaction.transactionManager.get()
        # Keep renewing the job's lease until the transaction that stores
        # its outcome ends: a lease that expired while the outcome waits
        # for the commit would let another worker run the job again.
        # Stored, the job is no longer processing; not stored, it runs
        # again: at once if its unit was withdrawn at the fence (given
        # back), else once its lease expires.
        txn.addAfterCommitHook(
            lambda committed: self._afterTransaction(job, update, attempt,
                                                     committed))
        txn.addAfterAbortHook(
            lambda *ignored: self._afterTransaction(job, update, attempt))

    def _afterTransaction(self, job, update, attempt, committed=False):
        final = update['$set']['status'] != QUEUED
        self._endRun(job, final and attempt.stored)
        if attempt.stored:
            self._released(job, update)
        if committed and attempt.stored and attempt.notify is not None:
            attempt.notify()
        if attempt.withdrawn and not attempt.givenBack:
            attempt.givenBack = True
            self._giveBack(job)

    def _released(self, job, update):
        """The outcome ``update`` of ``job`` was stored: if it ended the
        job for good, release the jobs waiting for it."""
        status = update['$set']['status']
        if status != QUEUED and self.dependencies is not None and \
                getattr(job, 'hasDependents', True):
            self.dependencies.endedSafely(toObjectId(job.__name__), status)

    def _unclaim(self, job):
        """Whether ``job`` went back in its place (under its claim)."""
        return self.jobWrites.unclaim(toObjectId(job.__name__), job.claim)

    def handBack(self, job):
        """Put the claimed ``job``, not started, back (lease, slot freed)."""
        try:
            self._unclaim(job)
        finally:
            self._endRun(job, False)

    def _giveBack(self, job):
        """Put ``job``, whose claim held but whose unit of work aborted,
        back to the queue in its place (not counted as an attempt)."""
        try:
            if self._unclaim(job):
                logger.info(
                    'Job %s went back to the queue: its unit of work was '
                    'aborted for another job, its writes discarded; it runs '
                    'again.', job.__name__)
        except Exception:
            # Not given back, it runs again once its lease expires.
            logger.exception('Giving job %s back to the queue failed',
                             job.__name__)

    def giveBack(self, jobs):
        """Give claimed ``jobs`` whose unit of work ended without storing
        their outcomes back to the queue: their leases no longer renewed,
        their slots released, each put back in its place under its claim
        (not an attempt). One whose claim no longer holds was stored,
        cancelled or taken over; one that cannot be put back runs again
        once its lease expires. The log says which."""
        unreachable = None
        for job in jobs:
            self._endRun(job, final=False)
            try:
                if unreachable is not None:
                    # Each try waits for some leases: not once per job.
                    raise unreachable
                back = self._unclaim(job)
            except Exception as error:
                if isinstance(error, pymongo.errors.ConnectionFailure):
                    unreachable = error
                logger.warning(
                    'Job %s was not stored and could not be given back to '
                    'the queue (%s: %s): its lease is no longer renewed, it '
                    'runs again once the lease expires (within %.1f s).',
                    job.__name__, type(error).__name__, error,
                    self.leases.leaseTime)
                continue
            if back:
                logger.info('Job %s went back to the queue: its unit of '
                            'work ended before its outcome was stored; it '
                            'runs again.', job.__name__)
            else:
                logger.info('Job %s was not given back to the queue: its '
                            'claim no longer holds (its outcome was stored, '
                            'or it was cancelled or taken over).',
                            job.__name__)

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
                self.keys.release(job.key, toObjectId(job.__name__),
                                  self.now(),
                                  job.keyPeriod)
        except Exception:
            # The lease keeper frees what a missed release left behind.
            logger.exception('Releasing the slot or key of job %s failed',
                             job.__name__)


class _Attempt:
    """One attempt of a job, from ``begin`` to ``settle``."""

    def __init__(self, job, queueTransaction, manager, dataManager,
                 savepoint, start, control, events):
        self.job = job
        self.queueTransaction = queueTransaction
        self.manager = manager
        self.dataManager = dataManager
        self.savepoint = savepoint
        self.start = start
        self.control = control
        self.events = events


class _AttemptState:
    """What became of one attempt's outcome at commit."""

    def __init__(self):
        self.stored = False
        self.withdrawn = False
        self.givenBack = False
        #: Sends the events of the outcome, once stored and committed.
        self.notify = None
