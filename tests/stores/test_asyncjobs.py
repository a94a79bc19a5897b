"""Async jobs (``async def __call__``), on every store: run to their end
by a direct ``processNextJob``, as tasks on the worker's event loop
while a worker runs, capped by ``asyncJobs.limit``; a timeout or a cancel
stops the task at its next ``await`` and its outcome is refused."""
import asyncio
import datetime
import threading

import pytest
import transaction
import zope.component
from zope.interface.verify import verifyObject

from m01.remote import testing
from m01.remote.interfaces import IAsyncJobs
from m01.remote.job import Job
from m01.remote.processor import RemoteProcessor
from m01.remote.worker import MultiJobWorker, SimpleJobWorker
from support.waiting import until

#: What the jobs below note, shared by the tests in one process.
state = {'running': 0, 'most': 0, 'stopped': [], 'threads': set()}
lock = threading.Lock()


def reset():
    with lock:
        state.update(running=0, most=0, stopped=[], threads=set())


class AsyncEchoJob(Job):
    """Awaits, reports its progress and a log line, returns its input."""

    async def __call__(self, remoteProcessor):
        await asyncio.sleep(0)
        self.progress(0.5, 'half')
        self.log('awaited')
        self.checkpoint()
        return {'echo': self.input}


class TogetherJob(Job):
    """Waits (awaiting) until ``input`` jobs of its kind run at once."""

    async def __call__(self, remoteProcessor):
        with lock:
            state['running'] += 1
            state['most'] = max(state['most'], state['running'])
            state['threads'].add(threading.current_thread().name)
        try:
            for _ in range(1000):
                if state['most'] >= self.input:
                    return 'together'
                await asyncio.sleep(0.01)
            raise RuntimeError('never %d at once' % self.input)
        finally:
            with lock:
                state['running'] -= 1


class FailingJob(Job):
    """Fails after an await."""

    async def __call__(self, remoteProcessor):
        await asyncio.sleep(0)
        raise RuntimeError('failed after awaiting')


class StuckJob(Job):
    """Adds a job, then awaits for ever; notes how it was stopped."""

    async def __call__(self, remoteProcessor):
        remoteProcessor.addJob('echo', 'written by a stuck job')
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            state['stopped'].append(self.__name__)
            raise
        return 'never'


@pytest.fixture
def rp(database):
    reset()
    registry = zope.component.globalregistry.BaseGlobalComponents('test')
    processor = RemoteProcessor(database, registry=registry,
                                jobWorkerArguments={'waitTime': 0.0})
    processor.ensureIndexes()
    processor.asyncJobs.watchInterval = 0.1
    processor.addJobFactory('echo', testing.EchoJob())
    processor.addJobFactory('async', AsyncEchoJob())
    processor.addJobFactory('together', TogetherJob())
    processor.addJobFactory('stuck', StuckJob({'maxRetries': 1}))
    processor.addJobFactory('failing', FailingJob({'maxRetries': 2,
                                                   'retryDelay': 0}))
    yield processor
    processor.close()


def ended(rp, jobid):
    return rp.getJobStatus(jobid) not in ('queued', 'processing')


def test_the_event_loop_provides_its_interface(rp):
    verifyObject(IAsyncJobs, rp.asyncJobs)


def test_a_direct_run_awaits_the_job(rp):
    jobid = rp.addJob('async', 3, immediate=True)
    assert rp.processNextJob()
    transaction.commit()
    assert rp.getJobStatus(jobid) == 'completed'
    assert rp.getJobResult(jobid) == {'echo': 3}
    document = rp.getJobDocument(jobid)
    assert document['progress']['fraction'] == 0.5
    assert [line.endswith('awaited') for line in document['log']] == [True]


def test_a_direct_run_times_out_at_its_next_await(rp):
    jobid = rp.addJob('stuck', timeout=0.3, immediate=True)
    assert rp.processNextJob()
    transaction.commit()
    assert state['stopped'] == [jobid]
    assert rp.getJobStatus(jobid) == 'error'
    assert 'timed out' in rp.getJobErrors(jobid)[0]
    # What it wrote through its transaction was rolled back.
    assert rp.jobsCollection.count_documents({'name': 'echo'}) == 0


@pytest.mark.parametrize('kind', [SimpleJobWorker, MultiJobWorker])
def test_a_worker_runs_async_jobs_together_on_one_loop(rp, kind):
    rp.jobWorkerFactory = kind
    jobids = [rp.addJob('together', 20, immediate=True) for _ in range(20)]
    rp.startProcessor()
    try:
        until(lambda: all(ended(rp, jobid) for jobid in jobids), 30,
              'the async jobs to end')
    finally:
        rp.stopProcessor(timeout=10)
    assert {rp.getJobResult(jobid) for jobid in jobids} == {'together'}
    assert state['most'] == 20
    assert state['threads'] == {'m01.remote-loop-root'}
    assert rp.asyncJobs.running == 0


def test_the_limit_caps_the_jobs_at_once(rp):
    rp.asyncJobs.limit = 3
    jobids = [rp.addJob('together', 3, immediate=True) for _ in range(9)]
    rp.startProcessor()
    try:
        until(lambda: all(ended(rp, jobid) for jobid in jobids), 30,
              'the async jobs to end')
    finally:
        rp.stopProcessor(timeout=10)
    assert {rp.getJobStatus(jobid) for jobid in jobids} == {'completed'}
    assert state['most'] == 3


def test_a_timeout_cancels_the_task_and_refuses_its_writes(rp):
    jobid = rp.addJob('stuck', timeout=0.5, immediate=True)
    rp.startProcessor()
    try:
        until(lambda: ended(rp, jobid), 30, 'the job to time out')
        until(lambda: state['stopped'] == [jobid], 10,
              'the task to be cancelled')
    finally:
        rp.stopProcessor(timeout=10)
    assert rp.getJobStatus(jobid) == 'error'
    assert 'timed out' in rp.getJobErrors(jobid)[0]
    assert rp.jobsCollection.count_documents({'name': 'echo'}) == 0


def test_a_cancel_cancels_the_task_and_stores_nothing(rp):
    jobid = rp.addJob('stuck', immediate=True)
    rp.startProcessor()
    try:
        until(lambda: rp.getJobStatus(jobid) == 'processing' and
              rp.asyncJobs.running == 1, 30, 'the job to run')
        rp.cancelJob(jobid, immediate=True)
        until(lambda: state['stopped'] == [jobid], 10,
              'the task to be cancelled')
        until(lambda: rp.asyncJobs.running == 0, 10, 'the task to end')
    finally:
        rp.stopProcessor(timeout=10)
    document = rp.getJobDocument(jobid)
    assert document['status'] == 'cancelled'
    assert 'output' not in document or document['output'] is None
    assert rp.jobsCollection.count_documents({'name': 'echo'}) == 0


def test_a_task_still_running_when_the_worker_stops_is_left_to_recovery(
        rp):
    jobid = rp.addJob('stuck', immediate=True)
    rp.startProcessor()
    try:
        until(lambda: rp.asyncJobs.running == 1, 30, 'the job to run')
    finally:
        rp.stopProcessor(timeout=0.2)
    # Cancelled, no longer renewed by this process, still processing
    # until its lease expires.
    until(lambda: rp.leases.running() == [], 30,
          'the lease to be given up')
    assert state['stopped'] == [jobid]
    assert rp.getJobStatus(jobid) == 'processing'
    later = rp.now() + datetime.timedelta(seconds=3600)
    assert rp.recoverExpiredJobs(later) == [(jobid, 'error')]


def test_an_async_failure_is_retried_with_its_traceback(rp):
    jobid = rp.addJob('failing', immediate=True)
    rp.startProcessor()
    try:
        until(lambda: ended(rp, jobid), 30, 'the job to end')
    finally:
        rp.stopProcessor(timeout=10)
    document = rp.getJobDocument(jobid)
    assert document['status'] == 'error'
    assert document['retryCounter'] == 2
    assert 'failed after awaiting' in document['errors'][-1]
    assert 'FailingJob' not in document['errors'][-1]
    assert 'await asyncio.sleep(0)' not in document['tracebacks'][-1]
    assert "raise RuntimeError('failed after awaiting')" in \
        document['tracebacks'][-1]
