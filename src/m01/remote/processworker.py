"""The ``process`` worker: each job in a child process, which the worker
can stop.

Python cannot stop a thread, so the ``simple`` and ``multi`` workers can
only ask a running job to stop (its checkpoints raise). This worker runs
up to ``maxProcesses`` jobs at once, each in a child process of its pool
(``m01.remote.children``), and a thread here watches each running job:

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
import atexit
import logging
import multiprocessing
import multiprocessing.util  # noqa: F401  (its exit hook runs after ours)
import os
import queue
import threading
import time
import weakref

import pymongo.errors

from m01.remote import store
from m01.remote.children import (
    ChildProcessDied,
    ChildStartError,
    JobChild,
    runDocument,
)
from m01.remote.childsetup import AppChildSetup, StoreChildSetup
from m01.remote.containers import toObjectId
from m01.remote.execution import deadlineOf
from m01.remote.interfaces import CANCELLED, PROCESSING
from m01.remote.job import JobCancelled, JobInterrupted, JobTimedOut
from m01.remote.jobstate import TIMED_OUT_MESSAGE
from m01.remote.threads import DEFAULT_STOP_TIMEOUT
from m01.remote.worker import MIN_IDLE_WAIT, WAITED, BaseWorker

logger = logging.getLogger('m01.remote')

EMBEDDED_REFUSED = (
    'The process worker runs each job in a child process with a '
    'connection of its own, and the embedded store (mongomock://) lives '
    'in this process only: use a MongoDB server, or the simple or multi '
    'worker.')

#: The longest back-off between two failed starts of a child.
MAX_START_BACKOFF = 30.0

_STOP = object()


class JobAbandoned(JobInterrupted):
    """The worker stopped before the job ended: its child was terminated
    and the job is left to lease recovery."""


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

    def __init__(self, remoteProcessor, waitTime=1.0, maxProcesses=None,
                 jobQuery=None, maxJobsPerChild=None, killGrace=5.0,
                 configUri=None, childSetup=None, watchInterval=1.0,
                 startTimeout=60.0):
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
        if childSetup is None:
            childSetup = AppChildSetup(configUri, remoteProcessor.name) \
                if configUri else StoreChildSetup.forProcessor(
                    remoteProcessor)
        self.childSetup = childSetup
        self.context = multiprocessing.get_context('spawn')
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
            job = self.remoteProcessor.pullNextJob(self.jobQuery)
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
        _running.add(self)
        self._ended.clear()
        self._abandon.clear()
        self.slots = [ChildSlot(self, number)
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
                _running.discard(self)
                self._ended.set()

    def _finishSlots(self):
        """Let the running jobs finish for the stop timeout, then
        terminate their children."""
        for slot in self.slots:
            slot.give(_STOP)
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


class ChildSlot:
    """One place of the worker's pool: a thread here, and the child
    process it runs its jobs in."""

    def __init__(self, worker, number):
        self.worker = worker
        self.number = number
        self.child = None
        self.failures = 0
        self._jobs = queue.Queue()
        self.label = '%s-process-%d' % (worker.remoteProcessor.name, number)
        self.thread = threading.Thread(target=self.serve, daemon=True,
                                       name=self.label)

    @property
    def pid(self):
        child = self.child
        return child.pid if child is not None else None

    def give(self, job):
        self._jobs.put(job)

    def serve(self):
        try:
            while not self.worker.stopped:
                if not self._ensureChild():
                    continue
                self.worker._ready.put(self)
                job = self._jobs.get()
                if job is _STOP:
                    return
                self._process(job)
        finally:
            self._retire()

    # children

    def _ensureChild(self):
        """Whether a live child is ready; after a failed start, wait (a
        back-off) and say no."""
        if self.child is not None and self.child.alive:
            return True
        self._retire()
        try:
            self._startChild()
        except ChildStartError as error:
            self.failures += 1
            wait = min(2.0 ** self.failures, MAX_START_BACKOFF)
            logger.error('%s; trying again in %g s', error, wait)
            self.worker._stopped.wait(wait)
            return False
        self.failures = 0
        return True

    def _startChild(self):
        started = time.monotonic()
        child = JobChild(self.worker.childSetup, self.label,
                         self.worker.context)
        child.start(self.worker.startTimeout)
        self.child = child
        # Attempts record the thread: say which child it runs jobs in.
        self.thread.name = '%s:%d' % (self.label, child.pid)
        logger.info('ProcessJobWorker: job process %d started in %.2f s',
                    child.pid, time.monotonic() - started)

    def _retire(self, grace=None):
        child, self.child = self.child, None
        if child is not None:
            child.close(self.worker.killGrace if grace is None else grace)

    def _kill(self):
        child, self.child = self.child, None
        if child is not None:
            child.terminate(self.worker.killGrace)

    # jobs

    def _process(self, job):
        worker = self.worker
        try:
            worker.inUnitOfWork(lambda processor: processor.runner.run(
                job, processor, processor.pending, call=self._call))
            worker.outage.succeeded()
        except pymongo.errors.ConnectionFailure as error:
            worker.outage.failed(error)
            logger.warning('ProcessJobWorker: the outcome of job %s was not '
                           'stored (the database cannot be reached); it '
                           'runs again once its lease expires', job.__name__)
        except Exception:
            logger.exception('ProcessJobWorker: job %s failed to finish',
                             job.__name__)
        child = self.child
        if child is not None and worker.maxJobsPerChild and \
                child.jobsRun >= worker.maxJobsPerChild:
            self._retire()

    def _call(self, job, processor):
        """Run ``job`` in the child and return its output or raise its
        error, watching its deadline and its state meanwhile."""
        if self.child is None or not self.child.alive:
            # It died while idle, or was retired: the job needs another.
            self._retire()
            self._startChild()
        watcher = JobWatcher(self, job, processor)
        try:
            self.child.send(runDocument(job))
            while True:
                result = self.child.wait(watcher.nextWait())
                if result is not None:
                    watcher.refuseIfLate()
                    return result.value()
                watcher.check()
        except ChildProcessDied:
            self.child = None
            if self.worker._abandon.is_set():
                raise JobAbandoned('its worker stopped')
            raise


class JobWatcher:
    """Watches the job a slot's child runs: its deadline, its state, the
    worker stopping; terminates the child and raises what ends the run.
    """

    def __init__(self, slot, job, processor):
        self.slot = slot
        self.job = job
        self.oid = toObjectId(job.__name__)
        self.deadline = deadlineOf(job)
        self.processor = processor
        self.interval = slot.worker.watchInterval
        self.nextRead = time.monotonic() + self.interval

    def secondsLeft(self):
        if self.deadline is None:
            return None
        return (self.deadline - self.processor.now()).total_seconds()

    def nextWait(self):
        wait = self.nextRead - time.monotonic()
        left = self.secondsLeft()
        if left is not None:
            wait = min(wait, left)
        return max(wait, 0.0)

    def timedOut(self):
        error = JobTimedOut(TIMED_OUT_MESSAGE % ('%g' % self.job.timeout))
        error.formattedTraceback = ''
        return error

    def refuseIfLate(self):
        left = self.secondsLeft()
        if left is not None and left <= 0:
            raise self.timedOut()

    def check(self):
        if self.slot.worker._abandon.is_set():
            self.slot._kill()
            raise JobAbandoned('its worker stopped; its process was '
                               'terminated and lease recovery requeues it')
        left = self.secondsLeft()
        if left is not None and left <= 0:
            logger.warning('Job %s timed out; terminating its process %s',
                           self.job.__name__, self.slot.pid)
            self.slot._kill()
            raise self.timedOut()
        if time.monotonic() >= self.nextRead:
            self.nextRead = time.monotonic() + self.interval
            state = self._state()
            if state is not None and state != (PROCESSING, self.job.claim):
                logger.info('Job %s is %s; terminating its process %s',
                            self.job.__name__, state[0], self.slot.pid)
                self.slot._kill()
                if state[0] == CANCELLED:
                    raise JobCancelled('Job %s was cancelled.'
                                       % self.job.__name__)
                raise JobInterrupted('Job %s is no longer this worker\'s '
                                     '(it is %s).' % (self.job.__name__,
                                                      state[0]))

    def _state(self):
        """The job's ``(status, claim)``, ``('removed', None)`` once it is
        gone, None when the database cannot say (the job runs on)."""
        try:
            state = self.processor.jobWrites.state(self.oid)
        except pymongo.errors.PyMongoError as error:
            self.slot.worker.outage.failed(error)
            return None
        return state if state is not None else ('removed', None)


# Stopped at exit before multiprocessing joins its children (atexit runs
# the hooks registered last first; multiprocessing.util registered its
# own when imported above).
_running = weakref.WeakSet()


@atexit.register
def _stopAtExit():
    for worker in list(_running):
        worker.stop(DEFAULT_STOP_TIMEOUT)
