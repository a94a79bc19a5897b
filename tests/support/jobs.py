"""Job classes and job-processing threads for the claim tests and the
benchmarks.

Importing this module registers its job classes, so their stored jobs
can be loaded back in any process that imports it.
"""
import contextlib
import threading

import transaction

from m01.remote import testing
from m01.remote.job import Job
from m01.remote.processor import RemoteProcessor


class RecordingJob(Job):
    """Records each run in the ``executions`` collection, so that a job
    run twice shows up as two records."""

    def __call__(self, remoteProcessor):
        remoteProcessor.database.executions.insert_one(
            {'job': self.__name__, 'worker': remoteProcessor.workerId})
        return self.input


def startProcessingThreads(remoteProcessor, threads, idleRounds=20,
                           wait=0.05, batchSize=1):
    """Start ``threads`` threads that process and commit jobs one by one
    (or ``batchSize`` at once, as a batching worker) until they found none
    ``idleRounds`` times running; the threads and a list each appends its
    number of jobs to when it ends."""
    counts = []

    def step():
        if batchSize == 1:
            ran = remoteProcessor.processNextJob()
            transaction.commit()
            return int(ran)
        jobs = remoteProcessor.pullNextJobs(batchSize)
        for job in jobs:
            remoteProcessor.processJob(job.__name__, job)
        transaction.commit()
        return len(jobs)

    def run():
        done = idle = 0
        while idle < idleRounds:
            ran = step()
            if ran:
                done += ran
                idle = 0
            else:
                idle += 1
                remoteProcessor.waitForWork(wait)
        counts.append(done)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for thread in workers:
        thread.start()
    return workers, counts


class OverlapJob(Job):
    """Sleeps ``input`` seconds and records when it started and ended in
    the ``runs`` collection, so a test can count how many ran at once."""

    def __call__(self, remoteProcessor):
        import time
        started = time.time()
        time.sleep(self.input or 0)
        remoteProcessor.database.runs.insert_one(
            {'job': self.__name__, 'started': started, 'ended': time.time(),
             'worker': remoteProcessor.workerId})
        return 'ran'


def mostAtOnce(runs):
    """The most runs (``started``, ``ended``) that overlapped in time."""
    events = sorted([(run['started'], 1) for run in runs] +
                    [(run['ended'], -1) for run in runs],
                    key=lambda event: (event[0], event[1]))
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


class CheckpointJob(Job):
    """Reports its progress and a log line, then passes checkpoints until
    it is stopped (cancelled, timed out) or ``input`` seconds passed."""

    def __call__(self, remoteProcessor):
        import time
        self.progress(0.5, 'half way')
        self.log('started')
        deadline = time.monotonic() + (self.input or 10)
        while time.monotonic() < deadline:
            self.checkpoint()
            time.sleep(0.01)
        return 'not stopped'


def drainUntilDone(rp, timeout=120):
    """Process jobs in this thread, each in a unit of work of its own,
    until none is queued or running (``timeout`` seconds at most)."""
    import time
    manager = transaction.TransactionManager()
    bound = rp.bind(manager)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with manager:
            ran = bound.processNextJob()
        if not ran:
            if not rp.jobsCollection.count_documents(
                    {'status': {'$in': ['queued', 'processing']}}):
                return
            time.sleep(0.02)


@contextlib.contextmanager
def echoAndFailProcessor(database, leaseTime, failSettings):
    """A processor of ``database`` with its indexes, an ``echo`` factory
    and a ``fail`` one (``failSettings``), closed at the end."""
    processor = RemoteProcessor(database, leaseTime=leaseTime)
    processor.ensureIndexes()
    processor.addJobFactory('echo', testing.EchoJob())
    processor.addJobFactory('fail', testing.FatalErrorJob(failSettings))
    try:
        yield processor
    finally:
        processor.close()
