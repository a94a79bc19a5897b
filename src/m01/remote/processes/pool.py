"""The pool of the ``process`` worker: its places (``ChildSlot``), each a
thread of the worker and the child process it runs jobs in, and the
watch over a job while its child runs it (``JobWatcher``).
"""
import dataclasses
import logging
import queue
import threading
import time

import pymongo.errors

from m01.remote.interfaces import CANCELLED, PROCESSING
from m01.remote.job import JobCancelled, JobInterrupted, JobTimedOut
from m01.remote.processes.children import (
    ChildProcessDied,
    ChildStartError,
    JobChild,
    runDocument,
)
from m01.remote.queue.containers import toObjectId
from m01.remote.queue.control import deadlineOf
from m01.remote.queue.updates import TIMED_OUT_MESSAGE

logger = logging.getLogger('m01.remote')

#: The longest back-off between two failed starts of a child.
MAX_START_BACKOFF = 30.0

#: Given to a slot instead of a job: end once the child is idle.
STOP = object()


class JobAbandoned(JobInterrupted):
    """The worker stopped before the job ended: its child was terminated
    and the job is left to lease recovery."""


@dataclasses.dataclass(frozen=True)
class ChildOptions:
    """How a pool's children are made and handled: ``setup``
    (``IChildSetup``) and ``context`` (multiprocessing's) make them;
    ``killGrace`` seconds lie between SIGTERM and SIGKILL, a running
    job's state is read every ``watchInterval`` seconds, a child may take
    ``startTimeout`` seconds to be ready and runs ``maxJobsPerChild`` jobs
    (None: any number)."""

    setup: object
    context: object
    killGrace: float = 5.0
    watchInterval: float = 1.0
    startTimeout: float = 60.0
    maxJobsPerChild: int = None


class ChildSlot:
    """One place of the pool, named ``label``: a thread that runs the jobs
    it is given in its child process, each by ``runJob(job, call)`` (the
    worker's unit of work, which stores the outcome; ``call`` runs the job
    in the child). The slot puts itself in the queue ``ready`` whenever
    its child waits for a job. ``stopped`` (an event) ends it between two
    jobs; ``abandon`` makes it terminate the child of a running job."""

    def __init__(self, label, options, ready, runJob, stopped, abandon):
        self.label = label
        self.options = options
        self.ready = ready
        self.runJob = runJob
        self.stopped = stopped
        self.abandon = abandon
        self.child = None
        self.failures = 0
        self._jobs = queue.Queue()
        self.thread = threading.Thread(target=self.serve, daemon=True,
                                       name=label)

    @property
    def pid(self):
        child = self.child
        return child.pid if child is not None else None

    def give(self, job):
        """Run ``job`` (claimed, taken from ``ready``), or ``STOP``."""
        self._jobs.put(job)

    def serve(self):
        try:
            while not self.stopped.is_set():
                if not self._ensureChild():
                    continue
                self.ready.put(self)
                job = self._jobs.get()
                if job is STOP:
                    return
                self.runJob(job, self._call)
                child, limit = self.child, self.options.maxJobsPerChild
                if child is not None and limit and child.jobsRun >= limit:
                    self._retire()
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
            self.stopped.wait(wait)
            return False
        self.failures = 0
        return True

    def _startChild(self):
        started = time.monotonic()
        child = JobChild(self.options.setup, self.label,
                         self.options.context)
        child.start(self.options.startTimeout)
        self.child = child
        # Attempts record the thread: say which child it runs jobs in.
        self.thread.name = '%s:%d' % (self.label, child.pid)
        logger.info('ProcessJobWorker: job process %d started in %.2f s',
                    child.pid, time.monotonic() - started)

    def _retire(self):
        child, self.child = self.child, None
        if child is not None:
            child.close(self.options.killGrace)

    def _kill(self):
        child, self.child = self.child, None
        if child is not None:
            child.terminate(self.options.killGrace)

    # a job

    def _call(self, job, processor):
        """Run ``job`` in the child and return its output or raise its
        error, watching its deadline and its state meanwhile."""
        if self.child is None or not self.child.alive:
            # It died while idle, or was retired: the job needs another.
            self._retire()
            self._startChild()
        watcher = JobWatcher(job, processor, self.options.watchInterval,
                             self.abandon, self._kill, self.child.pid)
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
            if self.abandon.is_set():
                raise JobAbandoned('its worker stopped')
            raise


class JobWatcher:
    """Watches ``job`` while process ``pid`` runs it: its deadline, its
    state (read through ``processor`` every ``interval`` seconds), and
    ``abandon`` (an event: the worker stopping). ``check`` calls ``kill``
    (terminating the process) and raises what ends the run."""

    def __init__(self, job, processor, interval, abandon, kill, pid):
        self.job = job
        self.oid = toObjectId(job.__name__)
        self.deadline = deadlineOf(job)
        self.processor = processor
        self.interval = interval
        self.abandon = abandon
        self.kill = kill
        self.pid = pid
        self.nextRead = time.monotonic() + interval
        self.failing = False

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
        error.formattedTraceback = ''   # the job's own is the child's
        return error

    def refuseIfLate(self):
        left = self.secondsLeft()
        if left is not None and left <= 0:
            raise self.timedOut()

    def check(self):
        if self.abandon.is_set():
            self.kill()
            raise JobAbandoned('its worker stopped; its process was '
                               'terminated and lease recovery requeues it')
        left = self.secondsLeft()
        if left is not None and left <= 0:
            logger.warning('Job %s timed out; terminating its process %s',
                           self.job.__name__, self.pid)
            self.kill()
            raise self.timedOut()
        if time.monotonic() >= self.nextRead:
            self.nextRead = time.monotonic() + self.interval
            state = self._state()
            if state is not None and state != (PROCESSING, self.job.claim):
                logger.info('Job %s is %s; terminating its process %s',
                            self.job.__name__, state[0], self.pid)
                self.kill()
                if state[0] == CANCELLED:
                    raise JobCancelled('Job %s was cancelled.'
                                       % self.job.__name__)
                raise JobInterrupted('Job %s is no longer this worker\'s '
                                     '(it is %s).' % (self.job.__name__,
                                                      state[0]))

    def _state(self):
        """The job's ``(status, claim)``, ``('removed', None)`` once it is
        gone, None when the database cannot say (the job runs on, its
        deadline kept)."""
        try:
            state = self.processor.jobWrites.state(self.oid)
        except pymongo.errors.PyMongoError as error:
            if not self.failing:
                logger.warning('The state of job %s cannot be read (%s); '
                               'it runs on', self.job.__name__, error)
            self.failing = True
            return None
        self.failing = False
        return state if state is not None else ('removed', None)
