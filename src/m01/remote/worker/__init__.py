"""Job workers: the main loops that process jobs and schedule items.

Each loop runs until ``stop()``, never dies of an exception (logged, it
goes on) and backs off while the database cannot be reached, saying so
once per outage. Each step (a job claimed, run and its outcome stored;
a scheduler item turned into a job) is a unit of work with a transaction
manager of its own, which the step commits or aborts; a worker never
touches the thread's default manager (``transaction.manager``).
"""
import logging
import os
import queue
import threading
import time

import pymongo.errors
import zope.interface

from m01.remote import interfaces
from m01.remote.worker.base import MIN_IDLE_WAIT, WAITED, BaseWorker
from m01.remote.worker.batches import (
    BatchSizer,
    checkBatchSize,
    queueGroups,
    queueNames,
    runParts,
    runRound,
)
from m01.remote.worker.outage import (  # noqa: F401
    MAX_OUTAGE_WAIT,
    OutageTracker,
)

logger = logging.getLogger('m01.remote')


class SimpleJobWorker(BaseWorker):
    """Processes one job at a time, in the worker's own thread; with a
    ``batchSize`` above 1 it claims up to that many at once and stores
    their outcomes together (``runBatch``)."""

    def __init__(self, remoteProcessor, waitTime=1.0, jobQuery=None,
                 batchSize=None, queues=None):
        super().__init__(remoteProcessor, waitTime)
        self.jobQuery = jobQuery
        self.batchSize = checkBatchSize(batchSize)
        self.queues = queueNames(queues)
        self.sizer = BatchSizer()

    def doProcessNextJob(self):
        """Process the next job (batch) and commit; True when one was
        processed. With no ``batchSize``, the batch is sized by the
        time the jobs take (``BatchSizer``): one job at first."""
        if self.batchSize == 1:
            return self.inUnitOfWork(
                lambda processor: processor.processNextJob(
                    self.jobQuery, queues=self.queues))
        jobs = self.remoteProcessor.pullNextJobs(
            self.batchSize or self.sizer.size(), self.jobQuery,
            queues=self.queues)
        claimed = time.monotonic()
        if self.batchSize:
            self.runBatch(jobs)
        elif jobs:
            runRound(self.runBatch, jobs, claimed, self.sizer)
        return bool(jobs)

    step = doProcessNextJob

    def loop(self):
        leases = self.remoteProcessor.leases
        leases.acquire()
        asyncJobs = self.remoteProcessor.asyncJobs
        asyncJobs.acquire()
        try:
            super().loop()
        finally:
            asyncJobs.release(self._stopTimeout)
            leases.release()


_STOP = object()


class MultiJobWorker(BaseWorker):
    """Runs up to ``maxThreads`` jobs at once, each in a pool thread.

    With a ``batchSize`` above 1, the loop claims up to ``batchSize`` jobs
    for each idle thread at once (``pullNextJobs``: a constant number of
    commands) and shares them out; each thread runs its share in one
    unit of work, whose commit stores their outcomes together. With no
    ``batchSize`` (the default) the loop sizes the shares itself: as many
    jobs as a thread runs in half a claim round (``BatchSizer``), one while
    the jobs are slow; a thread hands back what it has not started when
    the round is over. With ``batchSize = 1`` each thread claims singly.

    ``queues`` names the queues it serves (default every queue); a
    ``{name: threads}`` dictionary gives a queue threads of its own
    (``queueGroups``), each group a loop of its own.
    """

    operation = 'claiming jobs'

    def __init__(self, remoteProcessor, waitTime=1.0, maxThreads=None,
                 jobQuery=None, batchSize=None, queues=None):
        super().__init__(remoteProcessor, waitTime)
        self.batchSize = checkBatchSize(batchSize)
        if maxThreads is None:
            maxThreads = os.cpu_count() or 1
        if isinstance(maxThreads, bool) or not isinstance(maxThreads, int) \
                or maxThreads < 1:
            raise ValueError('maxThreads must be a whole number >= 1, not %r'
                             % (maxThreads,))
        groups = queueGroups(queues, maxThreads)
        #: One worker per group of queues when there are several.
        self.parts = []
        if len(groups) > 1:
            self.parts = [type(self)(remoteProcessor, waitTime, threads,
                                     jobQuery, batchSize, names)
                          for names, threads in groups]
            maxThreads = sum(threads for _, threads in groups)
        self.queues = groups[0][0]
        self.sizer = BatchSizer()
        self.maxThreads = maxThreads
        self.jobQuery = jobQuery
        self.threads = []
        self._pulled = {}
        self._slots = threading.Semaphore(maxThreads)
        self._queue = queue.Queue()
        self._stopTimeout = None

    def doPullNextJob(self):
        """Claim the next job for a pool thread; None when none is due."""
        job = self.remoteProcessor.pullNextJob(self.jobQuery,
                                               queues=self.queues)
        if job is not None:
            self._pulled[job.__name__] = job
        return job

    def doProcessJob(self, jobid):
        """Run a job pulled by this worker (or a queued one) and commit."""
        job = self._pulled.pop(jobid, None)
        try:
            self.inUnitOfWork(
                lambda processor: processor.processJob(jobid, job))
            self.outage.succeeded()
        except pymongo.errors.ConnectionFailure as error:
            # The outage is logged once, with the loop's; the job keeps
            # its claim and runs again once its lease expires.
            self.outage.failed(error, 'finishing job %s' % jobid)
            logger.warning('MultiJobWorker: the outcome of job %s was not '
                           'stored (the database cannot be reached); it '
                           'runs again once its lease expires', jobid)
        except Exception:
            logger.exception('MultiJobWorker: job %s failed to finish',
                             jobid)

    def doProcessJobs(self, jobids, claimed=None):
        """Run a batch of jobs pulled by this worker, their outcomes
        committed together (``runBatch``); one claimed at ``claimed``
        (``time.monotonic``) by a worker sizing its batches itself runs
        one claim round (``runRound``)."""
        jobs = [self._pulled.pop(jobid) for jobid in jobids]
        try:
            if claimed is None:
                self.runBatch(jobs)
            else:       # sized by this worker: a claim round
                runRound(self.runBatch, jobs, claimed, self.sizer)
            self.outage.succeeded()
        except pymongo.errors.ConnectionFailure as error:
            self.outage.failed(error, 'finishing %d jobs' % len(jobs))
            logger.warning('MultiJobWorker: a batch of %d jobs was cut '
                           'short (the database cannot be reached); each '
                           'job whose outcome was not stored went back to '
                           'the queue, or runs again once its lease '
                           'expires, as logged for it', len(jobs))
        except Exception:
            logger.exception('MultiJobWorker: a batch of %d jobs failed to '
                             'finish', len(jobs))

    def _poolThread(self):
        while True:
            work = self._queue.get()
            if work is _STOP:
                return
            try:
                if isinstance(work, tuple):
                    self.doProcessJobs(*work)
                elif isinstance(work, list):
                    self.doProcessJobs(work)
                else:
                    self.doProcessJob(work)
            finally:
                self._slots.release()

    def step(self):
        if not self._slots.acquire(timeout=max(self.waitTime,
                                               MIN_IDLE_WAIT)):
            return WAITED  # every thread busy: wait for one, do not poll
        if self.batchSize is None:
            return self._batchStep(self.sizer.size(), auto=True)
        if self.batchSize > 1:
            return self._batchStep(self.batchSize)
        job = None
        try:
            job = self.doPullNextJob()
        finally:
            if job is None:
                self._slots.release()
        if job is None:
            return False
        logger.info('MultiJobWorker: processing job %s', job.__name__)
        self._queue.put(job.__name__)
        return True

    def _batchStep(self, batchSize, auto=False):
        # One thread is ours; take every other idle one too, and claim
        # for all of them at once.
        idle = 1
        while idle < self.maxThreads and self._slots.acquire(blocking=False):
            idle += 1
        jobs = []
        try:
            jobs = self.remoteProcessor.pullNextJobs(
                idle * batchSize, self.jobQuery, queues=self.queues)
        finally:
            claimed = time.monotonic()
            # Dealt out in claim order: each thread's first job is among
            # the first claimed.
            shares = [jobs[number::idle] for number in range(idle)]
            shares = [share for share in shares if share]
            for _ in range(idle - len(shares)):
                self._slots.release()
        for share in shares:
            for job in share:
                self._pulled[job.__name__] = job
                if auto:
                    logger.info('MultiJobWorker: processing job %s',
                                job.__name__)
            logger.debug('MultiJobWorker: processing %d jobs', len(share))
            jobids = [job.__name__ for job in share]
            self._queue.put((jobids, claimed) if auto else jobids)
        return bool(jobs)

    def __call__(self):
        if not self.parts:
            return super().__call__()
        self.running = True
        try:
            runParts(self.parts, self._stopped, self.remoteProcessor.name,
                     lambda: self._stopTimeout)
        finally:
            self.running = False

    def loop(self):
        self.threads = [
            threading.Thread(target=self._poolThread, daemon=True,
                             name='%s-job-%d' % (
                                 self.remoteProcessor.name, number))
            for number in range(self.maxThreads)]
        for thread in self.threads:
            thread.start()
        leases = self.remoteProcessor.leases
        leases.acquire()
        asyncJobs = self.remoteProcessor.asyncJobs
        asyncJobs.acquire()
        try:
            super().loop()
        finally:
            # Pulled jobs still queued for a thread are run before the
            # stop markers: every claimed job finishes or is handed back.
            for _ in self.threads:
                self._queue.put(_STOP)
            for thread in self.threads:
                thread.join(self._stopTimeout)
            self.threads = []
            asyncJobs.release(self._stopTimeout)
            leases.release()

    def stop(self, timeout=None):
        self._stopTimeout = timeout
        for part in self.parts:
            part.stop(timeout)
        super().stop(timeout)


@zope.interface.implementer(interfaces.ISchedulerWorker)
class SchedulerWorker(BaseWorker):
    """Turns due scheduler items into jobs."""

    operation = 'scheduling jobs'

    def mayClaim(self):
        return True     # it claims no job

    def step(self):
        return self.inUnitOfWork(
            lambda processor: processor.scheduleNextJob()) is not None

    def changes(self):
        return self.remoteProcessor.schedulerChanges

    def idle(self, seconds=None):
        # Woken by items added or changed, or coming due; else it polls.
        seconds = self.waitTime if seconds is None else seconds
        if not self.stopped:
            self.remoteProcessor.waitForSchedule(
                max(seconds, MIN_IDLE_WAIT))

    def stop(self, timeout=None):
        self._stopped.set()
        self.remoteProcessor.wakeScheduler()
