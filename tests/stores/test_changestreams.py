"""Waking idle loops of other processors and processes by change streams
(``m01.remote.wakeup``), and polling where the store has none.

The workers woken here wait 60 s between polls, and every wait of a test
is bounded well below that: a job that runs in time was announced by
the stream. The watcher's counts say so too.
"""
import contextlib
import datetime
import json
import logging
import os
import subprocess
import sys
import threading

import pymongo.errors
import pytest
import transaction
from zope.interface.verify import verifyObject

from m01.remote import interfaces, store, testing
from m01.remote.clock import utcnow
from m01.remote.processor import RemoteProcessor
from m01.remote.scheduler import Delay
from support import javaserver, testserver
from support.waiting import BOUND, until

#: Longer than any bound below: only a wake-up runs a job in time.
LONG_WAIT = 60.0
SUPPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       os.pardir, 'support')




def offersStreams(database):
    return not store.isEmbedded(database)


@pytest.fixture
def elsewhere(store_uri, database):
    """The test's database through a client of its own, as another
    process sees it (the embedded store: the same store)."""
    if store.isEmbedded(database):
        yield database
        return
    client = store.connect(store_uri)
    try:
        yield client[database.name]
    finally:
        client.close()


STREAM_STORES = [pytest.param('mongojava', marks=pytest.mark.mongojava)] + (
    [pytest.param('mongodb', marks=pytest.mark.mongodb)]
    if os.environ.get('M01_REMOTE_TEST_MONGODB_URI') else [])


@pytest.fixture(params=STREAM_STORES)
def stream_uri(request):
    """A server with change streams."""
    return request.getfixturevalue('%s_uri' % request.param)


@pytest.fixture
def streamdb(stream_uri):
    with testserver.scratch_database(stream_uri) as database:
        yield database


@pytest.fixture
def streamdb_elsewhere(stream_uri, streamdb):
    client = store.connect(stream_uri)
    try:
        yield client[streamdb.name]
    finally:
        client.close()


@pytest.fixture
def processors():
    """Processors made by a test, closed at its end."""
    made = []
    yield made
    for processor in made:
        processor.close()
        processor.jobChanges.stop()
        processor.schedulerChanges.stop()


def producerOf(database, processors):
    producer = RemoteProcessor(database, name='producer')
    producer.addJobFactory('echo', testing.EchoJob())
    processors.append(producer)
    return producer


def idleWorker(database, processors, waitTime=LONG_WAIT, **kw):
    """A processor elsewhere whose worker is started, its stream open
    and the claim round after the opening done."""
    worker = RemoteProcessor(database, name='far', jobWorkerArguments={
        'waitTime': waitTime}, **kw)
    processors.append(worker)
    worker.startProcessor()
    until(lambda: worker.jobChanges.opened >= 1 and worker.jobWakeup.idle,
          what='the stream open and the worker idle')
    return worker


def commitJob(producer, *args, **kw):
    jobid = producer.addJob('echo', *args, **kw)
    transaction.commit()
    return jobid


def completed(processor, jobid):
    return lambda: processor.getJobStatus(jobid) == 'completed'


def test_the_watchers_provide_their_interface(mongomock_database):
    processor = RemoteProcessor(mongomock_database)
    verifyObject(interfaces.IChangeWatcher, processor.jobChanges)
    verifyObject(interfaces.IChangeWatcher, processor.schedulerChanges)
    verifyObject(interfaces.IWakeup, processor.jobWakeup)
    verifyObject(interfaces.IRemoteProcessor, processor)


def test_a_worker_elsewhere_is_woken_by_a_commit_or_polls(
        database, elsewhere, processors, caplog):
    caplog.set_level(logging.DEBUG, 'm01.remote.changes')
    producer = producerOf(database, processors)
    if offersStreams(database):
        worker = idleWorker(elsewhere, processors)
        jobid = commitJob(producer, 'x')
        until(completed(producer, jobid), what='the job run')
        assert worker.jobChanges.refused is None
        assert worker.jobChanges.wakes >= 1
        return
    # No change streams: the fallback, said once, and polling works.
    worker = RemoteProcessor(elsewhere, name='far', jobWorkerArguments={
        'waitTime': 0.05})
    processors.append(worker)
    for _ in range(2):
        worker.startProcessor()
        until(lambda: worker.jobChanges.refused is not None,
              what='the refusal')
        jobid = commitJob(producer, 'x')
        until(completed(producer, jobid), what='the job run by polling')
        worker.stopProcessor()
    assert worker.jobChanges.opened == worker.jobChanges.wakes == 0
    said = [record for record in caplog.records
            if 'no change streams' in record.getMessage()]
    assert len(said) == 1, said
    # Polling is the fallback auto chose, not a fault: below INFO, so a
    # processor's start logs what the specification shows.
    assert said[0].levelno == logging.DEBUG


def test_wakeup_poll_opens_no_stream(database, elsewhere, processors,
                                     caplog):
    caplog.set_level(logging.DEBUG, 'm01.remote.changes')
    producer = producerOf(database, processors)
    worker = RemoteProcessor(elsewhere, name='far', wakeup='poll',
                             jobWorkerArguments={'waitTime': 0.05})
    processors.append(worker)
    worker.startProcessor()
    jobid = commitJob(producer, 'x')
    until(completed(producer, jobid), what='the job run by polling')
    assert worker.jobChanges.refused == 'm01.remote.wakeup = poll'
    assert worker.jobChanges.opened == 0
    assert not any('no change streams' in record.getMessage()
                   for record in caplog.records)


def test_only_waking_changes_reach_the_process(streamdb,
                                               streamdb_elsewhere,
                                               processors):
    producer = producerOf(streamdb, processors)
    worker = idleWorker(streamdb_elsewhere, processors)
    first = commitJob(producer, 1)
    until(completed(producer, first), what='the first job run')
    # Its claim, its lease and its outcome were filtered by the server:
    # the next change the worker's process sees is the next insert.
    second = commitJob(producer, 2)
    until(completed(producer, second), what='the second job run')
    until(lambda: worker.jobChanges.changes >= 2)
    assert worker.jobChanges.changes == 2


def test_a_delayed_job_wakes_the_worker_when_it_comes_due(
        streamdb, streamdb_elsewhere, processors):
    producer = producerOf(streamdb, processors)
    worker = idleWorker(streamdb_elsewhere, processors)
    jobid = commitJob(producer, 'later', delay=1.0)
    until(lambda: worker.jobChanges.changes >= 1)
    assert worker.jobChanges.wakes == 0          # not at its insert
    until(completed(producer, jobid), what='the delayed job run')
    document = producer.getJobDocument(jobid)
    assert document['picked'] >= document['retryTime']


def test_a_worker_in_another_process_is_woken_by_a_commit(
        stream_uri, streamdb, processors):
    producer = producerOf(streamdb, processors)
    with wakeWorkerProcess(stream_uri, streamdb.name) as process:
        jobid = commitJob(producer, 'x')
        until(completed(producer, jobid), what='the job run')
        counts = process.finish()
    assert counts['refused'] is None
    assert counts['wakes'] >= 1
    assert counts['opened'] == 1


@contextlib.contextmanager
def wakeWorkerProcess(uri, name):
    process = WakeWorkerProcess(uri, name)
    try:
        process.ready()
        yield process
    finally:
        process.close()


class WakeWorkerProcess:
    """``support/wakeworker.py``: a worker that says when it is idle and
    reports its watcher's counts when its standard input closes."""

    def __init__(self, uri, name):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(SUPPORT, 'wakeworker.py'), uri,
             name, str(LONG_WAIT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def ready(self):
        until(lambda: self.lines or self.proc.poll() is not None,
              bound=60, what='the worker process ready')
        assert self.lines and self.lines[0] == {'ready': True}, self.lines

    def finish(self):
        self.proc.stdin.close()
        self.proc.wait(BOUND)
        self._reader.join(BOUND)
        return self.lines[-1]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(BOUND)


# the scheduler

def dueItem():
    return Delay({'jobName': 'echo', 'delay': 3600,
                  'nextCallTime': utcnow()})


def test_adding_an_item_wakes_the_local_scheduler(database, processors):
    processor = producerOf(database, processors)
    processor.schedulerWorkerArguments = {'waitTime': LONG_WAIT}
    processor.startScheduler()
    until(lambda: processor.schedulerWakeup.idle,
          what='the scheduler idle')
    processor.addScheduler(dueItem())
    until(lambda: processor.jobsCollection.count_documents({}) == 1,
          what='the job of the item')


def test_an_item_added_elsewhere_wakes_the_scheduler(
        streamdb, streamdb_elsewhere, processors):
    producer = producerOf(streamdb, processors)
    scheduler = RemoteProcessor(streamdb_elsewhere, name='far',
                                schedulerWorkerArguments={
                                    'waitTime': LONG_WAIT})
    processors.append(scheduler)
    scheduler.startScheduler()
    until(lambda: scheduler.schedulerChanges.opened >= 1 and
          scheduler.schedulerWakeup.idle, what='the scheduler idle')
    producer.addScheduler(dueItem())
    until(lambda: producer.jobsCollection.count_documents({}) == 1,
          what='the job of the item')
    assert scheduler.schedulerChanges.wakes >= 1
    # It was advanced: the schedulers now wait for its next call.
    until(lambda: scheduler.schedulerWakeup.dueTimes)


def test_an_item_made_due_sooner_elsewhere_wakes_the_scheduler(
        streamdb, streamdb_elsewhere, processors):
    producer = producerOf(streamdb, processors)
    item = Delay({'jobName': 'echo', 'delay': 3600,
                  'nextCallTime': utcnow() + datetime.timedelta(hours=1)})
    itemid = producer.addScheduler(item)
    scheduler = RemoteProcessor(streamdb_elsewhere, name='far',
                                schedulerWorkerArguments={
                                    'waitTime': LONG_WAIT})
    processors.append(scheduler)
    scheduler.startScheduler()
    until(lambda: scheduler.schedulerChanges.opened >= 1 and
          scheduler.schedulerWakeup.idle, what='the scheduler idle')
    producer.scheduler.update(itemid, nextCallTime=utcnow())
    until(lambda: producer.jobsCollection.count_documents({}) == 1,
          what='the job of the item')
    assert scheduler.schedulerChanges.wakes >= 1


# broken streams

class BreakingCollection:
    """A collection whose change streams break when told to, and which
    forgets resume tokens when told to (a server whose oplog moved on).
    """

    def __init__(self, collection, forgets=False):
        self.wrapped = collection
        self.forgets = forgets
        self.breakNow = False
        self.opens = []

    def __getattr__(self, name):
        return getattr(self.wrapped, name)

    def watch(self, pipeline, **options):
        self.opens.append(sorted(options))
        if self.forgets and 'start_after' in options:
            raise pymongo.errors.OperationFailure(
                'resume point no longer in the oplog', 286)
        return BreakingStream(self.wrapped.watch(pipeline, **options), self)


class BreakingStream:

    def __init__(self, stream, owner):
        self.stream = stream
        self.owner = owner

    def try_next(self):
        if self.owner.breakNow:
            self.owner.breakNow = False
            raise pymongo.errors.AutoReconnect('connection closed')
        return self.stream.try_next()

    @property
    def resume_token(self):
        return self.stream.resume_token

    def close(self):
        self.stream.close()


@pytest.mark.parametrize('forgets', [False, True],
                         ids=['resumed', 'restarted'])
def test_a_broken_stream_is_reopened(streamdb, streamdb_elsewhere,
                                     processors, caplog, forgets):
    caplog.set_level(logging.INFO, 'm01.remote')
    producer = producerOf(streamdb, processors)
    worker = RemoteProcessor(streamdb_elsewhere, name='far',
                             jobWorkerArguments={'waitTime': LONG_WAIT})
    processors.append(worker)
    breaking = BreakingCollection(worker.jobChanges.collection, forgets)
    worker.jobChanges.collection = breaking
    worker.startProcessor()
    until(lambda: worker.jobChanges.opened == 1 and worker.jobWakeup.idle)
    first = commitJob(producer, 1)
    until(completed(producer, first), what='the first job run')
    breaking.breakNow = True
    if forgets:
        until(lambda: worker.jobChanges.opened == 2)
    else:
        until(lambda: worker.jobChanges.resumed == 1)
    until(lambda: worker.jobWakeup.idle, what='the worker idle again')
    second = commitJob(producer, 2)
    until(completed(producer, second), what='the job after the break')
    assert worker.jobChanges.wakes >= 2
    assert breaking.opens[1] == ['max_await_time_ms', 'start_after']
    if forgets:
        assert breaking.opens[2] == ['max_await_time_ms',
                                     'start_at_operation_time']
    messages = [record.getMessage() for record in caplog.records]
    assert sum('the change stream broke' in m for m in messages) == 1
    assert sum('is open again' in m for m in messages) == 1


@pytest.mark.mongojava
@pytest.mark.slow
def test_a_stream_survives_a_server_restart(mongojava_uri, processors):
    # mongojava_uri: the server can be had. This one is stopped, started.
    server = javaserver.JavaServer(oplog=True)
    try:
        uri = server.start()
        worker = RemoteProcessor(store.connect(uri)['m01restart'],
                                 name='far',
                                 jobWorkerArguments={'waitTime': LONG_WAIT})
        processors.append(worker)
        worker.startProcessor()
        until(lambda: worker.jobChanges.opened == 1 and
              worker.jobWakeup.idle)
        server.stop()
        until(lambda: not worker.jobChanges.watching,
              what='the stream broken')
        server.start()
        until(lambda: worker.jobChanges.watching and worker.jobWakeup.idle,
              bound=60, what='the stream reopened')
        producer = producerOf(store.connect(uri)['m01restart'], processors)
        jobid = commitJob(producer, 'after')
        until(completed(producer, jobid), what='the job after the restart')
        assert worker.jobChanges.wakes >= 1
    finally:
        # Close the processors while their server still answers: closed
        # after it, each would wait for a server to select.
        while processors:
            processor = processors.pop()
            processor.close()
            processor.jobChanges.stop()
            processor.schedulerChanges.stop()
        server.close()


def test_the_interval_before_a_due_time_is_bounded_by_the_poll(
        mongomock_database, processors):
    # A due time far ahead never delays the poll.
    worker = RemoteProcessor(mongomock_database, name='far',
                             jobWorkerArguments={'waitTime': 0.05})
    processors.append(worker)
    worker.jobWakeup.setAt(utcnow() + datetime.timedelta(hours=1))
    producer = producerOf(mongomock_database, processors)
    worker.startProcessor()
    jobid = producer.addJob('echo', 'x', immediate=True)
    until(completed(producer, jobid), what='the job run by polling')


def test_closing_the_processor_ends_its_watchers_quietly(stream_uri,
                                                         streamdb, caplog):
    caplog.set_level(logging.INFO, 'm01.remote')
    client = store.connect(stream_uri)
    worker = RemoteProcessor(client[streamdb.name], name='closing',
                             jobWorkerArguments={'waitTime': LONG_WAIT})
    worker.startProcessor()
    until(lambda: worker.jobChanges.watching)
    worker.close()
    client.close()
    assert not [thread for thread in threading.enumerate()
                if thread.name.startswith('m01.remote-changes-closing')]
    assert not any('broke' in record.getMessage()
                   for record in caplog.records)


class CountedStreams:
    """A collection whose change streams count their ``try_next`` calls."""

    def __init__(self, collection):
        self.collection = collection
        self.asked = 0

    def watch(self, *args, **kw):
        stream = self.collection.watch(*args, **kw)
        counted = self

        class Counted:
            def try_next(self):
                counted.asked += 1
                return stream.try_next()

            def __getattr__(self, name):
                return getattr(stream, name)
        return Counted()

    def __getattr__(self, name):
        return getattr(self.collection, name)


@pytest.mark.mongojava
def test_a_server_answering_at_once_is_asked_only_while_a_loop_waits(
        mongojava_uri):
    # mongo-java-server answers a getMore at once, reading its whole
    # oplog: while every loop is busy the watcher asks it nothing, and
    # what was committed meanwhile comes with its next answer.
    from m01.remote.worker.changestreams import ChangeWatcher
    client = store.connect(mongojava_uri)
    collection = client.m01pause.events
    waiting = threading.Event()
    waiting.set()
    pausedRounds = []

    def needed():
        if not waiting.is_set():
            pausedRounds.append(streams.asked)
        return waiting.is_set()
    streams = CountedStreams(collection)
    woken = threading.Event()
    watcher = ChangeWatcher(streams, [], lambda change: True, woken.set,
                            'pause test', needed=needed)
    try:
        watcher.acquire()
        until(lambda: watcher.watching, what='the stream open')
        waiting.clear()
        until(lambda: len(pausedRounds) >= 5, what='five paused rounds')
        collection.insert_one({'during': 'the pause'})
        until(lambda: len(pausedRounds) >= 10, what='ten paused rounds')
        # Not one getMore from the first paused round to the tenth.
        assert len(set(pausedRounds)) == 1
        assert watcher.changes == 0
        waiting.set()
        until(lambda: watcher.changes == 1, what='the change delivered')
    finally:
        watcher.stop()
        client.drop_database('m01pause')
        client.close()
