"""The loop every worker runs (``BaseWorker``): its steps, each a unit of
work with a transaction manager of its own, its idling, its outages, and
the batches of claimed jobs it runs (``runBatch``)."""
import logging
import threading
import time

import pymongo.errors
import transaction
import zope.interface

from m01.remote import interfaces
from m01.remote.job import AttemptRefused
from m01.remote.worker.outage import OutageTracker

logger = logging.getLogger('m01.remote')

#: An idle loop never polls more often than this, even with waitTime 0.
MIN_IDLE_WAIT = 0.02
#: What a step returns when it only waited, without asking the database:
#: true (do not idle after it) but no sign that the database is back.
WAITED = 'waited'
#: A batch commits the outcomes of the jobs it ran once it has run for
#: this long, and goes on with the rest in a new transaction: a batch of
#: slow jobs does not keep every outcome waiting for the last.
BATCH_SECONDS = 1.0


@zope.interface.implementer(interfaces.IJobWorker)
class BaseWorker:

    #: What a step does, for the log when the database fails it.
    operation = 'claiming and running jobs'
    #: How long stopping waits for the running jobs (None: for ever).
    _stopTimeout = None

    def __init__(self, remoteProcessor, waitTime=1.0):
        if waitTime < 0:
            raise ValueError('waitTime must be >= 0, not %r' % (waitTime,))
        self.remoteProcessor = remoteProcessor
        self.waitTime = waitTime
        self._stopped = threading.Event()
        self.running = False
        self.outage = OutageTracker(type(self).__name__)

    def stop(self, timeout=None):
        self._stopTimeout = timeout
        self._stopped.set()
        self.remoteProcessor.wakeWorkers()

    def runBatch(self, jobs, handBackAt=None, sizer=None):
        """Run claimed ``jobs`` one after another, their outcomes stored
        by one commit (one command where the server allows) per
        ``BATCH_SECONDS`` of work; those not started by ``handBackAt``
        (``time.monotonic``) go back to the queue in their place: how
        many did. ``sizer`` learns how long each job ran."""
        remaining = list(jobs)
        handedBack = []
        unit = []

        def work(processor):
            until = time.monotonic() + BATCH_SECONDS
            while remaining:
                if handBackAt is not None and \
                        time.monotonic() >= handBackAt:
                    handedBack.append(len(remaining))
                    for job in remaining:
                        processor.runner.handBack(job)
                    remaining.clear()
                    return
                job = remaining.pop(0)
                unit.append(job)
                started = time.monotonic()
                processor.processJob(job.__name__, job)
                if sizer is not None:
                    sizer.ran(time.monotonic() - started)
                if time.monotonic() >= until:
                    return
        try:
            while remaining:
                del unit[:]
                self.inUnitOfWork(work)
        except BaseException:
            # Whatever the unit raised, the jobs whose outcomes it did not
            # store (its own, and those not run yet) are no longer
            # renewed and go back to the queue: none is left claimed.
            self.remoteProcessor.runner.giveBack(unit + remaining)
            raise
        return sum(handedBack)

    def inUnitOfWork(self, work):
        """Call ``work(processor)`` with the processor bound to a new
        transaction manager, and commit that manager's transaction; abort
        it if ``work`` or the commit raises. A commit refused because a
        job's claim no longer held (``AttemptRefused``) is not an error
        of the loop: each job of the unit logged what became of it."""
        manager = transaction.TransactionManager()
        try:
            result = work(self.remoteProcessor.bind(manager))
        except BaseException:
            manager.abort()
            raise
        try:
            manager.commit()
        except AttemptRefused:
            manager.abort()
        except BaseException:
            manager.abort()
            raise
        return result

    @property
    def stopped(self):
        return self._stopped.is_set()

    def idle(self, seconds=None):
        seconds = self.waitTime if seconds is None else seconds
        if not self.stopped:
            self.remoteProcessor.waitForWork(max(seconds, MIN_IDLE_WAIT))

    def step(self):
        """One pass of the loop; True when there was work (``WAITED``
        when it only waited for something else)."""
        raise NotImplementedError

    def mayClaim(self):
        """Whether this loop may claim: not while the lease keeper cannot
        renew the leases of what it claimed (``LeaseKeeper.claimable``).
        """
        return self.remoteProcessor.leases.claimable()

    def guardedStep(self):
        if not self.mayClaim():
            return False
        try:
            worked = self.step()
        except pymongo.errors.ConnectionFailure as error:
            self.idle(self.outage.failed(error, self.operation))
            return False
        except Exception:
            logger.exception('%s: an unexpected error; the loop goes on',
                             type(self).__name__)
            self.idle()
            return False
        if worked is not WAITED:
            self.outage.succeeded()
        return bool(worked)

    def changes(self):
        """What wakes this loop for other processes' commits
        (``IChangeWatcher``); it runs while a loop uses it."""
        return self.remoteProcessor.jobChanges

    def __call__(self):
        self.running = True
        changes = self.changes()
        changes.acquire()
        try:
            self.loop()
        finally:
            changes.release()
            self.running = False

    def loop(self):
        while not self.stopped:
            if not self.guardedStep():
                self.idle()
