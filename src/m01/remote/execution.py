"""Running a claimed job, and storing its outcome with the transaction.

A job runs in the transaction of the unit of work that claimed it (a
worker loop's): what it writes through that transaction and its outcome
are stored by the same commit. A job that fails has its own writes
rolled back to the savepoint taken before it ran; the failure is then
recorded. Each outcome is conditional on the job's claim token
(``IJobWrites``), and the job's lease is renewed until the transaction
that stores the outcome has ended.
"""
import logging
import traceback

from m01.remote.clock import stamp, toBSONTime
from m01.remote.containers import toObjectId
from m01.remote.errormessage import getJobErrorMessage
from m01.remote.job import JobError, checkStorable
from m01.remote.jobstate import failureUpdate

logger = logging.getLogger('m01.remote')


class JobRunner:
    """Runs claimed jobs: ``jobWrites`` stores their outcomes, ``leases``
    (a ``LeaseKeeper``) renews their leases meanwhile, ``registry`` adapts
    their error messages, ``now`` tells the time."""

    def __init__(self, jobWrites, leases, registry, now):
        self.jobWrites = jobWrites
        self.leases = leases
        self.registry = registry
        self.now = now

    def run(self, job, remoteProcessor, queueTransaction, callTime=None):
        """Run the claimed ``job`` with ``remoteProcessor`` (what its
        ``__call__`` gets) and add its outcome to the current transaction
        of ``queueTransaction`` (a ``QueueTransaction``)."""
        # Join before the savepoint: a rollback then empties our buffer
        # instead of removing us from the transaction.
        queueTransaction.dataManager()
        manager = queueTransaction.transactionManager
        savepoint = manager.get().savepoint(optimistic=True)
        self.leases.add(job.__name__, job.claim)
        recorded = False
        try:
            try:
                output = job(remoteProcessor)
                checkStorable(output, 'output')
            except Exception as error:
                self._rollback(savepoint, manager)
                self._recordFailure(job, error, queueTransaction, callTime)
            else:
                oid = toObjectId(job.__name__)
                self._recordOutcome(job, queueTransaction, lambda: (
                    self.jobWrites.complete(oid, job.claim, output,
                                            self.now())))
            recorded = True
        finally:
            if not recorded:
                self.leases.discard(job.__name__, job.claim)

    def failUnloadable(self, document, error, now):
        """Count a claimed job whose class this process lacks as a failed
        attempt, at once: a deployment mistake, not the job's (another
        worker may have the class)."""
        logger.error('Job %s cannot run here: %s', document['_id'], error)
        self.jobWrites.fail(document['_id'], document['claim'], failureUpdate(
            document.get('retryCounter'), document.get('maxRetries', 3),
            document.get('retryDelay', 10), stamp(error, now), '', now,
            final=False))

    @staticmethod
    def _rollback(savepoint, manager):
        try:
            savepoint.rollback()
        except Exception:
            # The job ended its transaction itself, or a participant
            # cannot roll back to a savepoint: drop all of it.
            manager.abort()

    def _recordFailure(self, job, error, queueTransaction, callTime):
        now = toBSONTime(callTime) if callTime else self.now()
        # The adapter stamps the message with the time of the failure.
        job.errorTime = now
        message = getJobErrorMessage(self.registry, job, error)
        update = failureUpdate(
            job.retryCounter, job.maxRetries, job.retryDelay, message,
            traceback.format_exc(), now, isinstance(error, JobError))
        oid = toObjectId(job.__name__)
        self._recordOutcome(job, queueTransaction, lambda: (
            self.jobWrites.fail(oid, job.claim, update)))

    def _recordOutcome(self, job, queueTransaction, write):
        def conditionalWrite():
            if not write():
                logger.warning(
                    'The outcome of job %s was not stored: the job was '
                    'cancelled or taken over after its lease expired.',
                    job.__name__)
            return True
        queueTransaction.dataManager().addWrite(conditionalWrite, wake=True)
        self._releaseLeaseAtEnd(job, queueTransaction.transactionManager)

    def _releaseLeaseAtEnd(self, job, manager):
        """Keep renewing the job's lease until the transaction that stores
        its outcome ends: a lease that expired while the outcome waits for
        the commit would let another worker run the job again. Committed,
        the job is no longer processing; aborted, it runs again once the
        lease expires."""
        def release(*ignored):
            self.leases.discard(job.__name__, job.claim)
        txn = manager.get()
        txn.addAfterCommitHook(release)
        txn.addAfterAbortHook(release)
