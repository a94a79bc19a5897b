"""Heartbeats and an operator's control over the processes that work for
the queue (``m01.remote.worker.heartbeats``), on every store."""
import datetime
import threading

import pytest
from zope.interface.verify import verifyObject

from m01.remote import operations, testing
from m01.remote.interfaces import IProcessMonitor, IUpkeep
from m01.remote.processor import RemoteProcessor
from m01.remote.worker.heartbeats import ProcessMonitor, processState

UTC = datetime.timezone.utc
SECOND = datetime.timedelta(seconds=1)
#: Seconds a thread may take to beat or stop.
DEADLINE = 30.0


@pytest.fixture
def rp(database):
    processor = RemoteProcessor(database, leaseTime=30,
                                jobWorkerArguments={'waitTime': 0.05})
    processor.ensureIndexes()
    processor.addJobFactory('echo', testing.EchoJob())
    yield processor
    processor.close()


def waitFor(condition, what):
    """Poll ``condition`` until it holds (at most ``DEADLINE`` seconds)."""
    done = threading.Event()
    end = datetime.datetime.now(UTC) + DEADLINE * SECOND
    while datetime.datetime.now(UTC) < end:
        value = condition()
        if value:
            return value
        done.wait(0.05)
    raise AssertionError('%s did not happen within %.0f s' % (what,
                                                              DEADLINE))


def test_the_monitor_provides_its_interfaces(rp):
    verifyObject(IProcessMonitor, rp.monitor)
    verifyObject(IUpkeep, rp.monitor)


def test_a_beat_says_what_the_process_runs(rp):
    rp.monitor.acquire('worker', threads=4)
    try:
        rp.leases.add('6b0000000000000000000001', 'claim')
        rp.monitor.beat()
        worker, = operations.queries(rp).workers()
        assert worker['id'] == rp.monitor.processId
        assert worker['state'] == 'running'
        assert worker['processor'] == 'root'
        assert worker['kinds'] == ['worker']
        assert worker['threads'] == {'worker': 4}
        assert [job['job'] for job in worker['jobs']] == [
            '6b0000000000000000000001']
        assert worker['jobs'][0]['leaseExpires'] > rp.now()
        assert worker['origin'] == 'threads'
    finally:
        rp.leases.discard('6b0000000000000000000001')
        rp.monitor.release('worker')
    worker, = operations.queries(rp).workers()
    assert worker['state'] == 'stopped' and worker['jobs'] == []


def test_a_process_not_seen_is_gone_and_pruned(rp):
    now = rp.now()
    assert processState({'seen': now - 5 * SECOND}, None, now) == 'running'
    assert processState({'seen': now - 31 * SECOND}, None, now) == 'gone'
    assert processState({'seen': now, 'quiet': True}, None, now) == 'quiet'
    assert processState({'seen': now}, {'action': 'stop'}, now) == \
        'stopping'
    monitor = rp.monitor
    monitor.beats.insert_one({'_id': 'old:1:x:y', 'seen': now - 2 * 86400
                              * SECOND})
    monitor.controls.insert_one({'_id': 'old:1:x:y', 'action': 'quiet'})
    monitor.beats.insert_one({'_id': 'new:1:x:y', 'seen': now})
    assert monitor.tidy(now) == 1
    assert [b['_id'] for b in monitor.beats.find()] == ['new:1:x:y']
    assert monitor.controls.count_documents({}) == 0
    assert monitor.tidy(now) == 0        # not again within the hour


def test_a_quiet_process_claims_nothing_until_resumed(rp):
    jobid = rp.addJob('echo', 'x', immediate=True)
    rp.monitor.acquire('worker')
    try:
        rp.monitor.beat()
        actions = operations.actions(rp)
        actions.controlWorker(rp.monitor.processId, 'quiet')
        rp.monitor.beat()
        assert rp.monitor.quiet
        assert operations.queries(rp).workers()[0]['state'] == 'quiet'
        assert rp.pullNextJob() is None
        assert rp.pullNextJobs(10) == []
        assert rp.pullNextJobs(1) == []
        assert rp.scheduleNextJob() is None
        assert rp.getJobStatus(jobid) == 'queued'
        actions.controlWorker(rp.monitor.processId, 'resume')
        rp.monitor.beat()
        assert not rp.monitor.quiet
        assert rp.pullNextJob().__name__ == jobid
    finally:
        rp.monitor.release('worker')


def test_controls_are_checked(rp):
    actions = operations.actions(rp)
    with pytest.raises(KeyError):
        actions.controlWorker('nobody:1:x:y', 'stop')
    rp.monitor.acquire('worker')
    try:
        rp.monitor.beat()
        with pytest.raises(ValueError):
            actions.controlWorker(rp.monitor.processId, 'explode')
    finally:
        rp.monitor.release('worker')


def test_an_operator_stops_the_worker_threads(rp):
    rp.startProcessor()
    waitFor(lambda: operations.queries(rp).workers(), 'the first beat')
    operations.actions(rp).controlWorker(rp.monitor.processId, 'stop')
    rp.monitor.beat()       # as the next beat does, within seconds
    waitFor(lambda: not rp.isProcessing, 'the worker stopping')
    waitFor(lambda: operations.queries(rp).workers()[0]['state'] ==
            'stopped', 'the last heartbeat')


def test_a_stop_calls_the_handler_once(database):
    called = []
    monitor = ProcessMonitor(database['rworkers'], database['rcontrols'],
                             lambda: datetime.datetime.now(UTC), 'x',
                             onStop=lambda: called.append(1))
    monitor.acquire('scheduler')
    try:
        monitor.controls.insert_one({'_id': monitor.processId,
                                     'action': 'stop'})
        monitor.beat()
        monitor.beat()
        waitFor(lambda: called, 'the stop handler')
        assert called == [1]
    finally:
        monitor.release('scheduler')
