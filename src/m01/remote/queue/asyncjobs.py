"""Async jobs: the attempts of jobs whose ``__call__`` is ``async def``,
run as tasks on one event loop per process while a worker loop runs.

A worker thread that claims an async job sets its attempt up (``begin``:
its lease, its control, ``IJobStarted``) in a transaction of its own and
hands it to the loop; it goes on claiming at once. The loop calls the
run wrappers' chain and awaits what it returns; the outcome is then
stored (``settle`` and the commit) by a thread of a small pool, so that
the loop never waits for the database. One loop per process holds
thousands of waiting attempts in one thread; a loop per worker thread
would run one attempt per thread at a time, as a plain job does.

``limit`` attempts run at once at most: a worker thread claiming one
more waits for a place. At the job's deadline its task is cancelled (at
its next ``await``) and the attempt recorded as timed out; every
``watchInterval`` seconds the claims of the running attempts are held
(one command, renewing their leases), and the task of an attempt whose
claim was lost (cancelled, taken over) is cancelled: its outcome is
refused, and nothing it wrote through its transaction is stored.

``checkpoint``, ``progress`` and ``log`` work from a task as from a
thread: each is a short blocking call on the loop.
"""
import asyncio
import concurrent.futures
import inspect
import logging
import threading

import transaction
import zope.interface

from m01.remote.interfaces import IAsyncJobs
from m01.remote.job import AttemptRefused, JobInterrupted, JobTimedOut
from m01.remote.queue.containers import toObjectId
from m01.remote.queue.updates import TIMED_OUT_MESSAGE
from m01.remote.queue.wrappers import isAsyncJob, runHandler

logger = logging.getLogger('m01.remote')

#: Threads storing outcomes (and holding claims) for the loop.
POOL_SIZE = 4
#: Seconds the tasks still running when the last worker stops have to
#: end, once cancelled.
STOP_WAIT = 5.0


def _raising(error):
    def outcome():
        raise error
    return outcome


def _returning(output):
    return lambda: output


class _Running:
    """An attempt handed to the loop: its task once it started, why it
    was stopped, if it was, and ``finish``, which stores its outcome."""

    def __init__(self, job, finish):
        self.job = job
        self.finish = finish
        self.task = None
        self.reason = None

    def stop(self, reason):
        """Cancel the task, unless it was stopped or has ended."""
        if self.reason is None:
            self.reason = reason
            if self.task is not None:
                self.task.cancel()

    def outcome(self):
        """What a stopped attempt raises, for ``settle``."""
        job = self.job
        if self.reason == 'timed out':
            return _raising(JobTimedOut(TIMED_OUT_MESSAGE % (
                '%g' % job.timeout)))

        def lost():
            control = job._control
            if control is not None:
                control.confirm()   # raises JobCancelled when it was
            raise JobInterrupted('Job %s is no longer this worker\'s: its '
                                 'task was cancelled.' % job.__name__)
        return lost


@zope.interface.implementer(IAsyncJobs)
class AsyncJobs:
    """The event loop of a processor's async attempts: ``holdClaims``
    (``LeaseKeeper.holdClaims``) fences the running attempts' claims,
    ``now`` tells the time."""

    def __init__(self, name, holdClaims, now, limit=100,
                 watchInterval=1.0):
        self.name = name
        self.holdClaims = holdClaims
        self.now = now
        self.limit = limit
        self.watchInterval = watchInterval
        self._lock = threading.Lock()
        self._users = 0
        self._loop = None
        self._thread = None
        self._pool = None
        self._places = None
        self._running = {}
        self._watcher = None
        self._idle = threading.Condition(self._lock)

    @property
    def running(self):
        with self._lock:
            return len(self._running)

    def accepts(self, job):
        return self.limit > 0 and self._loop is not None and \
            isAsyncJob(job)

    def acquire(self):
        with self._lock:
            self._users += 1
            if self._loop is not None:
                return
            self._places = threading.BoundedSemaphore(self.limit or 1)
            self._pool = concurrent.futures.ThreadPoolExecutor(
                POOL_SIZE, thread_name_prefix='m01.remote-async-%s'
                % self.name)
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._serve, args=(self._loop,), daemon=True,
                name='m01.remote-loop-%s' % self.name)
            self._thread.start()
            self._watcher = asyncio.run_coroutine_threadsafe(
                self._watch(), self._loop)

    def release(self, timeout=None):
        """The last user waits up to ``timeout`` for the running
        attempts, then stops the loop; an attempt still running is left
        to lease recovery, as a thread worker leaves a job still running
        when its process exits."""
        with self._lock:
            self._users = max(self._users - 1, 0)
            if self._users or self._loop is None:
                return
            self._idle.wait_for(lambda: not self._running, timeout)
            loop, thread, pool = self._loop, self._thread, self._pool
            self._loop = self._thread = self._pool = None
            self._watcher.cancel()
            left = [entry for entry in self._running.values()
                    if entry.reason != 'ended']
        if left:
            # Their tasks end at their next await, their finally blocks
            # run; nothing of them is stored.
            try:
                asyncio.run_coroutine_threadsafe(
                    self._abandon(left), loop).result(STOP_WAIT)
            except Exception:
                logger.warning('%d async jobs did not stop within %.1f s',
                               len(left), STOP_WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        pool.shutdown(wait=False)
        for entry in left:
            # Its lease is no longer renewed: it runs again once expired.
            entry.finish(_raising(JobInterrupted(
                'Job %s was still running when its worker stopped.'
                % entry.job.__name__)))

    @staticmethod
    def _serve(loop):
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # What the stop cancelled (the claims' watcher) ends its
            # cancellation before the loop closes.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(
                    asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def submit(self, runner, job, remoteProcessor, callTime=None):
        """Set up the attempt of ``job`` with ``runner`` (``JobRunner``)
        in a transaction of its own, wait for a place, and start its task;
        the runner stores its outcome."""
        manager = transaction.TransactionManager()
        processor = remoteProcessor.bind(manager)
        manager.begin()
        attempt = runner.begin(job, processor, processor.pending)
        handler = runHandler(runner.registry)

        def finish(outcome):
            try:
                runner.settle(attempt, outcome, callTime)
                manager.commit()
            except AttemptRefused:
                manager.abort()
            except Exception:
                manager.abort()
                logger.exception('The outcome of job %s was not stored; it '
                                 'runs again once its lease expires',
                                 job.__name__)
        entry = _Running(job, finish)
        self._places.acquire()
        with self._lock:
            self._running[job.__name__] = entry
            loop = self._loop
        try:
            asyncio.run_coroutine_threadsafe(
                self._attempt(entry, lambda: handler(job, processor)), loop)
        except Exception as error:
            # The loop stopped meanwhile: a failed attempt.
            self._done(entry)
            finish(_raising(error))

    @staticmethod
    async def _abandon(entries):
        tasks = [entry.task for entry in entries if entry.task is not None]
        for entry in entries:
            entry.reason = 'abandoned'
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _done(self, entry):
        with self._lock:
            if self._running.get(entry.job.__name__) is entry:
                del self._running[entry.job.__name__]
            self._idle.notify_all()
        self._places.release()

    async def _attempt(self, entry, call):
        loop = asyncio.get_running_loop()
        entry.task = asyncio.current_task()
        control = entry.job._control
        timer = None
        if control is not None and control.deadline is not None:
            seconds = (control.deadline - self.now()).total_seconds()
            timer = loop.call_later(max(seconds, 0), entry.stop,
                                    'timed out')
        try:
            try:
                if entry.reason is not None:
                    raise asyncio.CancelledError()  # stopped before it ran
                output = call()
                if inspect.isawaitable(output):
                    output = await output
            except asyncio.CancelledError:
                if entry.reason in (None, 'abandoned'):
                    raise       # its worker stopped
                outcome = entry.outcome()
            except (Exception, SystemExit) as error:
                outcome = _raising(error)
            else:
                outcome = _returning(output)
            # Ended: neither the deadline nor a lost claim cancels it now.
            entry.reason = entry.reason or 'ended'
            await loop.run_in_executor(self._pool, entry.finish, outcome)
        finally:
            if timer is not None:
                timer.cancel()
            self._done(entry)

    async def _watch(self):
        """Every ``watchInterval``: hold the running attempts' claims,
        stopping those whose claim was lost."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.watchInterval)
            with self._lock:
                running = [entry for entry in self._running.values()
                           if entry.reason is None]
            if not running:
                continue
            claims = [(toObjectId(r.job.__name__), r.job.claim)
                      for r in running]
            try:
                lost = await loop.run_in_executor(
                    self._pool, self.holdClaims, claims)
            except Exception:
                logger.exception('Holding the claims of %d async jobs '
                                 'failed', len(claims))
                continue
            lost = {str(oid) for oid in lost}
            for entry in running:
                if entry.job.__name__ in lost:
                    entry.stop('lost')

