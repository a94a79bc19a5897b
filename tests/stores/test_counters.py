"""Outcome counters (``m01.remote.queue.counters``): tallied in memory, written
as a few upserts for any number of jobs, on every store."""
import datetime

import bson
import pymongo.errors
import pytest
import transaction
from zope.interface.verify import verifyObject

from m01.remote.interfaces import IOutcomeCounters, IUpkeep
from m01.remote.job import AttemptRefused
from m01.remote.processor import RemoteProcessor
from m01.remote.queue.counters import FIELDS, OutcomeCounters
from support.jobs import echoAndFailProcessor

UTC = datetime.timezone.utc
T0 = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
MINUTE = datetime.timedelta(minutes=1)


class CountingCollection:
    """A collection whose writes are counted."""

    def __init__(self, collection):
        self.collection = collection
        self.writes = 0

    def update_one(self, *args, **kw):
        self.writes += 1
        return self.collection.update_one(*args, **kw)

    def __getattr__(self, name):
        return getattr(self.collection, name)


@pytest.fixture
def counters(database):
    # A flush interval no test waits for: the tests write explicitly.
    counters = OutcomeCounters(CountingCollection(database['rcounters']),
                               lambda: T0, flushSeconds=3600)
    counters.ensureIndexes()
    yield counters
    counters.close()


def minutes(counters, name=None):
    return {document['at']: {field: document.get(field, 0)
                             for field in FIELDS}
            for document in counters.read('minute', T0 - 60 * MINUTE)
            if name is None or document['factory'] == name}


def test_counters_provide_their_interfaces(counters):
    verifyObject(IOutcomeCounters, counters)
    verifyObject(IUpkeep, counters)


def test_many_outcomes_are_a_few_writes(counters):
    for number in range(300):
        counters.count('echo', 'completed', T0 + number % 2 * MINUTE,
                       seconds=0.5)
    counters.count('echo', 'failed', T0, seconds=1.0, final=True)
    counters.count('mail', 'cancelled', T0)
    assert counters.collection.writes == 0     # nothing written yet
    # Two minutes of echo, one of mail; their hour each; two totals.
    assert counters.flush() == 7
    assert counters.collection.writes == 7
    assert counters.flush() == 0
    echo = minutes(counters, 'echo')
    assert echo[T0]['completed'] == 150
    assert (echo[T0]['failed'], echo[T0]['error']) == (1, 1)
    assert echo[T0]['runs'] == 151
    assert echo[T0]['seconds'] == pytest.approx(76.0)
    assert echo[T0 + MINUTE]['completed'] == 150
    hour, = [d for d in counters.read('hour', T0 - 60 * MINUTE)
             if d['factory'] == 'echo']
    assert (hour['at'], hour['completed']) == (T0, 300)
    totals = counters.totals()
    assert totals['echo']['completed'] == 300
    assert totals['mail']['cancelled'] == 1
    assert totals['mail']['runs'] == 0
    # Counted again later: added to the same documents.
    counters.count('echo', 'completed', T0 + 30 * datetime.timedelta(
        seconds=1))
    counters.flush()
    assert minutes(counters, 'echo')[T0]['completed'] == 151
    assert counters.totals()['echo']['completed'] == 301


def test_updates_are_counted_by_their_attempt(counters):
    counters.countUpdate('echo', {
        '$set': {'status': 'completed'},
        '$push': {'attempts': {'$each': [{'outcome': 'completed',
                                          'ended': T0, 'seconds': 2.0}]}}})
    counters.countUpdate('echo', {
        '$set': {'status': 'error'},
        '$push': {'attempts': {'$each': [{'outcome': 'timed out',
                                          'ended': T0, 'seconds': 3.0}]}}})
    counters.countUpdate('echo', {'$set': {'status': 'cancelled'}})
    counters.countUpdate('echo', {'$set': {'progress': 1}})  # no outcome
    counters.flush()
    echo = minutes(counters)[T0]
    assert (echo['completed'], echo['timedOut'], echo['error'],
            echo['cancelled'], echo['runs']) == (1, 1, 1, 1, 2)
    assert echo['seconds'] == 5.0


def test_a_failed_write_keeps_the_tally(counters, monkeypatch):
    counters.count('echo', 'completed', T0)

    def down(*args, **kw):
        raise ConnectionError('the database is down')
    monkeypatch.setattr(counters.collection, 'update_one', down)
    with pytest.raises(ConnectionError):
        counters.flush()
    monkeypatch.undo()
    counters.count('echo', 'completed', T0)
    counters.flush()
    assert minutes(counters)[T0]['completed'] == 2


def test_old_counts_are_pruned_by_the_upkeep(counters):
    counters.retentionDays = 2
    counters.count('echo', 'completed', T0 - datetime.timedelta(days=3))
    counters.count('echo', 'completed', T0)
    assert counters.tidy(T0) == 2        # the old minute and its hour
    assert [d['at'] for d in counters.read('minute', T0 - 5 * 1440 * MINUTE)
            ] == [T0]
    assert counters.totals()['echo']['completed'] == 2    # totals stay
    assert counters.tidy(T0) == 0        # not again within the hour


def test_a_bad_outcome_is_refused(counters):
    with pytest.raises(ValueError):
        counters.count('echo', 'exploded')
    with pytest.raises(ValueError):
        counters.read('second', T0)


# the processor counts what it stores

@pytest.fixture
def rp(database):
    with echoAndFailProcessor(
            database, 10, {'maxRetries': 2, 'retryDelay': 0}) as processor:
        yield processor


def totals(rp):
    rp.counters.flush()
    return rp.counters.totals()


def test_outcomes_are_counted_with_their_transaction(rp):
    rp.addJob('echo', 1)
    rp.addJob('fail', None)
    transaction.commit()
    assert rp.processNextJob()
    transaction.abort()              # the outcome was never stored
    assert totals(rp) == {}
    # The job runs again once its lease expired; the others meanwhile.
    while rp.processNextJob():
        transaction.commit()
    counted = totals(rp)
    assert (counted['fail']['failed'], counted['fail']['error'],
            counted['fail']['runs']) == (2, 1, 2)
    later = rp.now() + datetime.timedelta(seconds=11)
    rp.recoverExpiredJobs(later)
    # Its retry delay later (10 s): it runs again.
    assert rp.processNextJob(callTime=later + datetime.timedelta(seconds=10))
    transaction.commit()
    counted = totals(rp)['echo']
    assert (counted['lost'], counted['completed'], counted['runs']) == \
        (1, 1, 2)


def test_a_refused_outcome_is_not_counted(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    assert rp.processNextJob()
    rp.cancelJob(jobid, immediate=True)   # before the outcome is stored
    with pytest.raises(AttemptRefused):
        transaction.commit()
    transaction.abort()
    counted = totals(rp)['echo']
    assert (counted['cancelled'], counted['completed']) == (1, 0)


def test_a_lost_worker_is_counted_where_it_is_recovered(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    rp.jobWrites.claimJob(bson.ObjectId(jobid), rp.now(), 'gone:1:x', 10)
    rp.recoverExpiredJobs(rp.now() + datetime.timedelta(seconds=11))
    assert rp.getJobStatus(jobid) == 'queued'
    counted = totals(rp)['echo']
    assert (counted['lost'], counted['runs']) == (1, 1)


class Unreachable:
    """A collection on a server that cannot be reached."""

    def __getattr__(self, name):
        def fail(*args, **kw):
            raise pymongo.errors.ServerSelectionTimeoutError('no server')
        return fail


def test_stopping_with_the_server_gone_logs_and_keeps_the_counts(
        mongomock_database, caplog):
    rp = RemoteProcessor(mongomock_database, name='gone')
    rp.counters.count('echo', 'completed', at=T0, seconds=1.0)
    rp.counters.collection = Unreachable()
    rp.stopProcessor()
    rp.close()
    warnings = [r.getMessage() for r in caplog.records
                if 'could not be written' in r.getMessage()]
    # close() stops the worker again, then closes.
    assert len(warnings) == 3
    assert all('its job worker stopped' in w for w in warnings[:2])
    assert 'it closed' in warnings[2]
    # Still counted, for a flush once the server is back.
    rp.counters.collection = mongomock_database['rcounters']
    assert rp.counters.flush() > 0
    assert rp.counters.totals()['echo']['completed'] == 1
