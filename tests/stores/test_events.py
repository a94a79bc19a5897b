"""Lifecycle events through the processor's registry, on every store:
each fires once per occurrence, after its change was stored; a raising
subscriber changes nothing."""
import datetime
import logging

import pytest
import transaction
from pyramid.config import Configurator
from zope.interface.verify import verifyObject

from m01.remote import interfaces, testing
from m01.remote.interfaces import (
    IJobAdded,
    IJobCompleted,
    IJobEnded,
    IJobEvent,
    IJobFailed,
    IJobStarted,
)
from m01.remote.job import JobInterrupted, JobTimedOut
from m01.remote.processor import RemoteProcessor
from m01.remote.queue import events as queue_events

EVENTS = (IJobAdded, IJobStarted, IJobCompleted, IJobFailed, IJobEnded)


class Recorder:
    """Subscribes to every job event of a Pyramid registry and keeps
    ``(interface name, jobid, the event)`` as they come."""

    def __init__(self, config):
        self.seen = []
        for interface in EVENTS:
            config.add_subscriber(self.record(interface), interface)

    def record(self, interface):
        return lambda event: self.seen.append(
            (interface.__name__, event.jobid, event))

    def names(self, jobid=None):
        return [name for name, seenid, _ in self.seen
                if jobid is None or seenid == jobid]

    def clear(self):
        del self.seen[:]


@pytest.fixture
def config():
    config = Configurator()
    yield config


@pytest.fixture
def recorder(config):
    return Recorder(config)


@pytest.fixture
def rp(database, config, recorder):
    config.commit()
    processor = RemoteProcessor(database, registry=config.registry,
                                jobWorkerArguments={'waitTime': 0.0})
    processor.ensureIndexes()
    processor.addJobFactory('echo', testing.EchoJob())
    processor.addJobFactory('fatal', testing.FatalErrorJob(
        {'maxRetries': 2, 'retryDelay': 0}))
    processor.addJobFactory('error', testing.ErrorJob())
    yield processor
    processor.close()


def test_every_event_provides_its_interface(rp):
    made = [
        queue_events.JobAdded(rp, 'a', None),
        queue_events.JobStarted(rp, 'a', None, attempt=1),
        queue_events.JobCompleted(rp, 'a', None, output=1),
        queue_events.JobFailed(rp, 'a', None, error=ValueError()),
        queue_events.JobEnded(rp, 'a', None, status='error', error=None),
    ]
    for event, interface in zip(made, EVENTS, strict=True):
        verifyObject(interface, event)
        verifyObject(IJobEvent, event)


def test_added_is_sent_after_the_commit_only(rp, recorder):
    jobid = rp.addJob('echo', 1)
    assert recorder.names() == []
    transaction.commit()
    assert recorder.names() == ['IJobAdded']
    event = recorder.seen[0][2]
    assert (event.jobid, event.job.__name__, event.processor) == (
        jobid, jobid, rp)
    assert event.job.input == 1
    rp.addJob('echo', 2)
    transaction.abort()
    assert recorder.names() == ['IJobAdded']
    immediate = rp.addJob('echo', 3, immediate=True)
    assert recorder.seen[-1][:2] == ('IJobAdded', immediate)


def test_a_completed_run(rp, recorder):
    jobid = rp.addJob('echo', 'out', immediate=True)
    recorder.clear()
    assert rp.processNextJob()
    # Started before the run; the outcome's events once it was stored.
    assert recorder.names() == ['IJobStarted']
    started = recorder.seen[0][2]
    assert (started.attempt, started.job.__name__) == (1, jobid)
    transaction.commit()
    assert recorder.names() == ['IJobStarted', 'IJobCompleted', 'IJobEnded']
    completed, ended = recorder.seen[1][2], recorder.seen[2][2]
    assert completed.output == 'out'
    assert (ended.status, ended.error) == ('completed', None)
    assert rp.getJobStatus(jobid) == 'completed'


def test_failed_attempts_and_the_final_error(rp, recorder):
    jobid = rp.addJob('fatal', immediate=True)
    recorder.clear()
    rp.processNextJob()
    transaction.commit()
    assert recorder.names() == ['IJobStarted', 'IJobFailed']
    failed = recorder.seen[1][2]
    assert isinstance(failed.error, RuntimeError)
    assert rp.getJobStatus(jobid) == 'queued'
    recorder.clear()
    rp.processNextJob()
    transaction.commit()
    assert recorder.names() == ['IJobStarted', 'IJobEnded']
    assert recorder.seen[0][2].attempt == 2
    ended = recorder.seen[1][2]
    assert ended.status == 'error'
    assert isinstance(ended.error, RuntimeError)


def test_an_aborted_unit_sends_no_outcome(rp, recorder):
    rp.addJob('echo', 1, immediate=True)
    recorder.clear()
    rp.processNextJob()
    transaction.abort()
    assert recorder.names() == ['IJobStarted']


def test_a_cancel_ends_the_job(rp, recorder):
    first = rp.addJob('echo', 1, immediate=True)
    second = rp.addJob('echo', 2, immediate=True)
    recorder.clear()
    rp.cancelJob(first, immediate=True)
    assert recorder.seen[-1][:2] == ('IJobEnded', first)
    assert recorder.seen[-1][2].status == 'cancelled'
    rp.cancelJob(second)
    assert len(recorder.seen) == 1
    transaction.commit()
    assert recorder.names(second) == ['IJobEnded']
    # A retried, then aborted cancel sends nothing.
    rp.retryJob(second, immediate=True)
    rp.cancelJob(second)
    transaction.abort()
    assert recorder.names(second) == ['IJobEnded']


def test_the_lease_keepers_sweeps(rp, recorder):
    lost = rp.addJob('fatal', immediate=True)
    assert rp.pullNextJob().__name__ == lost
    recorder.clear()
    later = rp.now() + datetime.timedelta(seconds=3600)
    assert rp.recoverExpiredJobs(later) == [(lost, 'queued')]
    assert recorder.names() == ['IJobFailed']
    event = recorder.seen[0][2]
    assert isinstance(event.error, JobInterrupted)
    assert (event.job, event.processor) == (None, rp)
    timed = rp.addJob('echo', timeout=1, immediate=True)
    rp.cancelJob(lost, immediate=True)
    assert rp.pullNextJob().__name__ == timed
    recorder.clear()
    rp.jobsCollection.update_one({'_id': rp.jobs.document(timed)['_id']},
                                 {'$set': {'maxRetries': 1}})
    assert rp.leases.stopTimedOut(later) == [(timed, 'error')]
    assert recorder.names() == ['IJobEnded']
    ended = recorder.seen[0][2]
    assert ended.status == 'error'
    assert isinstance(ended.error, JobTimedOut)


def test_a_raising_subscriber_changes_nothing(database, caplog):
    config = Configurator()
    calls = []

    def broken(event):
        raise RuntimeError('subscriber broke')
    config.add_subscriber(broken, IJobCompleted)
    config.add_subscriber(broken, IJobStarted)
    config.add_subscriber(lambda event: calls.append(event.jobid),
                          IJobCompleted)
    config.commit()
    rp = RemoteProcessor(database, registry=config.registry)
    try:
        rp.addJobFactory('echo', testing.EchoJob())
        jobid = rp.addJob('echo', 5, immediate=True)
        with caplog.at_level(logging.ERROR, logger='m01.remote'):
            assert rp.processNextJob()
            transaction.commit()
        assert rp.getJobStatus(jobid) == 'completed'
        assert rp.getJobResult(jobid) == 5
        assert calls == [jobid]
        logged = [r.getMessage() for r in caplog.records
                  if 'subscriber' in r.getMessage()]
        assert logged == [
            'A subscriber to JobStarted of job %s failed; the job is not '
            'affected' % jobid,
            'A subscriber to JobCompleted of job %s failed; the job is not '
            'affected' % jobid]
    finally:
        rp.close()


def test_the_global_registry_by_default(database, global_registry):
    seen = []
    global_registry.registerHandler(seen.append, (IJobAdded,))
    rp = RemoteProcessor(database)
    try:
        rp.addJobFactory('echo', testing.EchoJob())
        jobid = rp.addJob('echo', immediate=True)
        assert [event.jobid for event in seen] == [jobid]
    finally:
        rp.close()


def test_the_processor_provides_its_interface_still(rp):
    verifyObject(interfaces.IRemoteProcessor, rp)


def test_a_job_this_process_cannot_load_fails_its_attempt(rp, recorder):
    jobid = rp.addJob('echo', immediate=True)
    rp.jobsCollection.update_one({'_id': rp.jobs.document(jobid)['_id']},
                                 {'$set': {'jobClass': 'no.such.Job'}})
    recorder.clear()
    rp.processNextJob()
    transaction.commit()
    assert recorder.names() == ['IJobFailed']
    event = recorder.seen[0][2]
    assert event.job is None
    assert 'no.such.Job' in str(event.error)


def test_a_subscriber_adds_a_job_when_one_ends_in_error(database):
    config = Configurator()

    def followUp(event):
        if event.status == 'error':
            event.processor.addJob('echo', {'failed': event.jobid},
                                   immediate=True)
    config.add_subscriber(followUp, IJobEnded)
    config.commit()
    rp = RemoteProcessor(database, registry=config.registry)
    try:
        rp.addJobFactory('echo', testing.EchoJob())
        rp.addJobFactory('error', testing.ErrorJob())
        jobid = rp.addJob('error', immediate=True)
        rp.processNextJob()
        transaction.commit()
        assert rp.getJobStatus(jobid) == 'error'
        [added] = rp.jobsCollection.find({'name': 'echo'})
        assert added['input'] == {'failed': jobid}
    finally:
        rp.close()


def test_a_dependent_cancelled_by_a_failure_ends(rp, recorder):
    failing = rp.addJob('error')
    dependent = rp.addJob('echo', 1, dependsOn=[failing])
    transaction.commit()
    recorder.clear()
    rp.processNextJob()
    transaction.commit()
    assert recorder.names(dependent) == ['IJobEnded']
    event, = [e for _, jobid, e in recorder.seen if jobid == dependent]
    assert event.status == 'cancelled'
    assert recorder.names(failing) == ['IJobStarted', 'IJobEnded']
