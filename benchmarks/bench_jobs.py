"""Job classes of the queue benchmark (see ``bench_queue.py``).

A stored job names its class by ``module.qualname``, so the benchmark
driver and its worker processes must import this module under the same
name: both put this directory on ``sys.path`` and ``import bench_jobs``.

``NoopJob``
    The throughput job: no work at all. ``progress`` records, in this
    process, when the first job started and how many ran.

``StampJob``
    The latency job: it records ``time.time()`` at its start, returns it
    (so another process reads it from the job's ``output``) and hands it
    to ``STARTS`` (so the same process reads it without the database).
"""
import queue
import threading
import time

from m01.remote.job import Job


class Progress:
    """Jobs started in this process, and when the first one started."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self.started = 0
            self.first = None

    def jobStarted(self):
        now = time.time()
        with self._lock:
            self.started += 1
            if self.first is None:
                self.first = now


progress = Progress()

#: (job id, start time) of every StampJob run in this process.
STARTS = queue.Queue()


class NoopJob(Job):
    """Does nothing."""

    def __call__(self, remoteProcessor):
        progress.jobStarted()


class StampJob(Job):
    """Returns the time it started."""

    def __call__(self, remoteProcessor):
        started = time.time()
        STARTS.put((self.__name__, started))
        return started
