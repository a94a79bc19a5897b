"""Job classes for the process worker's tests: jobs that never reach a
checkpoint, ignore SIGTERM, die, or tell which process ran them.

Each run of a job that records itself writes ``{job, pid}`` to the
``runs`` collection at once (not through the transaction), so a test
can find the child process running it.
"""
import ctypes
import os
import signal
import time

from m01.remote.job import Job

#: How long the endless jobs run at most, whatever happens to the test.
LIMIT = 120.0


def recordRun(job, remoteProcessor):
    remoteProcessor.database.runs.insert_one(
        {'job': job.__name__, 'pid': os.getpid()})


class SpinJob(Job):
    """Runs without a checkpoint (``LIMIT`` seconds at most)."""

    def __call__(self, remoteProcessor):
        recordRun(self, remoteProcessor)
        deadline = time.monotonic() + LIMIT
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return 'late'


class StubbornJob(SpinJob):
    """Ignores SIGTERM, then runs without a checkpoint."""

    def __call__(self, remoteProcessor):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return super().__call__(remoteProcessor)


class DyingJob(Job):
    """Ends its process as ``input`` says: ``exit`` (status 3), ``kill``
    (SIGKILL) or ``segfault``."""

    def __call__(self, remoteProcessor):
        recordRun(self, remoteProcessor)
        if self.input == 'exit':
            os._exit(3)
        if self.input == 'kill':
            os.kill(os.getpid(), signal.SIGKILL)
        if self.input == 'segfault':
            ctypes.string_at(0)
        time.sleep(LIMIT)


class PidJob(Job):
    """Returns the id of the process that ran it."""

    def __call__(self, remoteProcessor):
        return os.getpid()


class AddingJob(Job):
    """Adds an ``echo`` job through its transaction, then returns or (for
    input ``'fail'``) raises."""

    def __call__(self, remoteProcessor):
        remoteProcessor.addJob('echo', 'added by %s' % self.__name__)
        if self.input == 'fail':
            raise RuntimeError('failed after adding a job')
        return 'added'


class SetOutputJob(Job):
    """Returns a set, which BSON cannot store."""

    def __call__(self, remoteProcessor):
        return {1, 2}


class CleaningJob(SpinJob):
    """Runs without a checkpoint; when it is stopped, its ``finally``
    block records ``{job, cleanedUp: true}`` in ``runs``."""

    def __call__(self, remoteProcessor):
        try:
            return super().__call__(remoteProcessor)
        finally:
            remoteProcessor.database.runs.insert_one(
                {'job': self.__name__, 'cleanedUp': True})
