"""The ``process`` worker: each job in a child process, which the worker
can stop.

Python cannot stop a thread, so the ``simple`` and ``multi`` workers can
only ask a running job to stop (its checkpoints raise). This worker runs
up to ``maxProcesses`` jobs at once, each in a child process of its pool
(``m01.remote.processes.pool``, ``m01.remote.processes.children``), and
a thread here watches each running job:

- at the job's deadline (its ``timeout``) the child is terminated
  (SIGTERM, then SIGKILL ``killGrace`` seconds later) and the attempt
  recorded as timed out, retried by the job's rules; an output arriving
  after the deadline is refused;
- every ``watchInterval`` seconds it reads the job's state (one read per
  running job): the child of a job cancelled, or no longer this
  worker's, is terminated at once;
- a child that dies (a signal, ``os._exit``, the OOM killer) is a failed
  attempt whose error says how it died.

The worker stores every outcome as the thread workers do (``JobRunner``:
the claim, the lease, the attempt, the counters); a child only runs the
job. Children are reused across jobs: a new one replaces a child killed
or dead, and one that ran ``maxJobsPerChild`` jobs when that is set.

Stopping, the worker claims no more jobs and lets the running ones
finish for the stop timeout; then their children are terminated and the
jobs left to lease recovery, as a thread worker leaves a job still
running when its process exits.
"""
import logging
import multiprocessing
import multiprocessing.util  # noqa: F401  (exit hook: see worker.threads)
import os
import queue
import threading
import time

import pymongo.errors

from m01.remote import store
from m01.remote.processes.childsetup import AppChildSetup, StoreChildSetup
from m01.remote.processes.pool import STOP, ChildOptions, ChildSlot
from m01.remote.worker.base import MIN_IDLE_WAIT, WAITED, BaseWorker
from m01.remote.worker.batches import queueNames

logger = logging.getLogger('m01.remote')

EMBEDDED_REFUSED = (
    'The process worker runs each job in a child process with a '
    'connection of its own, and the embedded store (mongomock://) lives '
    'in this process only: use a MongoDB server, or the simple or multi '
    'worker.')


def _count(value, what, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError('%s must be a whole number >= 1%s, not %r' % (
            what, ' or None' if optional else '', value))
    return value


def _seconds(value, what, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0 <= value < float('inf') or (positive and value == 0):
        raise ValueError('%s must be a number of seconds %s 0, not %r'
                         % (what, '>' if positive else '>=', value))
    return float(value)


class ProcessJobWorker(BaseWorker):
    """Runs up to ``maxProcesses`` jobs at once (the CPU count by
    default), each in a child process.

    ``childSetup`` (``IChildSetup``) is how a child gets its processor;
    by default the child loads the application of ``configUri`` (which
    ``m01remote worker`` gives), else it connects to the database the
    processor's client was made for with ``store.connect``.
    ``maxJobsPerChild`` retires a child after that many jobs (default:
    never); ``killGrace`` is the time between SIGTERM and SIGKILL;
    ``watchInterval`` how often a running job's state is read;
    ``startTimeout`` how long a child may take to be ready.
    """

    operation = 'claiming jobs'

    def __init__(self, remoteProcessor, waitTime=1.0, maxProcesses=None,
                 jobQuery=None, maxJobsPerChild=None, killGrace=5.0,
                 configUri=None, childSetup=None, watchInterval=1.0,
                 startTimeout=60.0, queues=None):
        super().__init__(remoteProcessor, waitTime)
        if store.isEmbedded(remoteProcessor.database):
            raise ValueError(EMBEDDED_REFUSED)
        if maxProcesses is None:
            maxProcesses = os.cpu_count() or 1
        self.maxProcesses = _count(maxProcesses, 'maxProcesses')
        self.maxJobsPerChild = _count(maxJobsPerChild, 'maxJobsPerChild',
                                      optional=True)
        self.killGrace = _seconds(killGrace, 'killGrace')
        self.watchInterval = _seconds(watchInterval, 'watchInterval',
                                      positive=True)
        self.startTimeout = _seconds(startTimeout, 'startTimeout',
                                     positive=True)
        self.jobQuery = jobQuery
        # The queues it claims from (their threads' counts do not apply:
        # it runs maxProcesses children).
        self.queues = queueNames(queues)
        if childSetup is None:
            childSetup = AppChildSetup(configUri, remoteProcessor.name) \
                if configUri else StoreChildSetup.forProcessor(
                    remoteProcessor)
        self.childSetup = childSetup
        self.context = multiprocessing.get_context('spawn')
        self.options = ChildOptions(
            childSetup, self.context, killGrace=self.killGrace,
            watchInterval=self.watchInterval,
            startTimeout=self.startTimeout,
            maxJobsPerChild=self.maxJobsPerChild)
        self.slots = []
        self._ready = queue.Queue()
        self._abandon = threading.Event()
        self._ended = threading.Event()
        self._stopTimeout = None

    def step(self):
        try:
            slot = self._ready.get(timeout=max(self.waitTime,
                                               MIN_IDLE_WAIT))
        except queue.Empty:
            return WAITED   # every child busy: wait for one, do not poll
        job = None
        try:
            job = self.remoteProcessor.pullNextJob(self.jobQuery,
                                                   queues=self.queues)
        finally:
            if job is None:
                self._ready.put(slot)
        if job is None:
            return False
        logger.info('ProcessJobWorker: processing job %s in pid %s',
                    job.__name__, slot.pid)
        slot.give(job)
        return True

    def loop(self):
        self._ended.clear()
        self._abandon.clear()
        self.slots = [
            ChildSlot('%s-process-%d' % (self.remoteProcessor.name, number),
                      self.options, self._ready, self.runJob, self._stopped,
                      self._abandon)
            for number in range(self.maxProcesses)]
        for slot in self.slots:
            slot.thread.start()
        leases = self.remoteProcessor.leases
        leases.acquire()
        try:
            super().loop()
        finally:
            try:
                self._finishSlots()
            finally:
                self.slots = []
                leases.release()
                self._ended.set()

    def _finishSlots(self):
        """Let the running jobs finish for the stop timeout, then
        terminate their children."""
        for slot in self.slots:
            slot.give(STOP)
        deadline = None if self._stopTimeout is None else \
            time.monotonic() + self._stopTimeout
        for slot in self.slots:
            slot.thread.join(None if deadline is None
                             else max(deadline - time.monotonic(), 0))
        self._abandon.set()
        for slot in self.slots:
            slot.thread.join(self.watchInterval + self.killGrace + 5)
            if slot.thread.is_alive():
                logger.error('ProcessJobWorker: %s did not end',
                             slot.thread.name)

    def stop(self, timeout=None):
        """Claim no more jobs, let the running ones finish for ``timeout``
        seconds (for ever with None), terminate the children still
        running one, and return once the worker ended."""
        self._stopTimeout = timeout
        super().stop(timeout)
        if self.running and not self._ended.is_set() and \
                threading.current_thread() not in self._threads():
            self._ended.wait(None if timeout is None else
                             timeout + self.watchInterval + 2 *
                             self.killGrace + 10)

    def _threads(self):
        return [slot.thread for slot in self.slots]

    def runJob(self, job, call):
        """Run the claimed ``job`` by ``call`` (in a child) in a unit of
        work of its own, which stores its outcome."""
        try:
            self.inUnitOfWork(lambda processor: processor.runner.run(
                job, processor, processor.pending, call=call))
            self.outage.succeeded()
        except pymongo.errors.ConnectionFailure as error:
            # The outage is logged once, with the loop's; the job keeps
            # its claim and runs again once its lease expires.
            self.outage.failed(error, 'finishing job %s' % job.__name__)
            logger.warning('ProcessJobWorker: the outcome of job %s was not '
                           'stored (the database cannot be reached); it '
                           'runs again once its lease expires', job.__name__)
        except Exception:
            logger.exception('ProcessJobWorker: job %s failed to finish',
                             job.__name__)

