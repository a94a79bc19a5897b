"""The charts' figures (``IQueueQueries.stats``) on every store: from the
outcome counters, the jobs and the heartbeats."""
import datetime

import bson
import pytest
import transaction

from m01.remote import operations, testing
from m01.remote.processor import RemoteProcessor

UTC = datetime.timezone.utc
NOW = datetime.datetime(2030, 1, 1, 12, 30, 20, tzinfo=UTC)
MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)


class Clock:

    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def rp(database, clock):
    processor = RemoteProcessor(database, leaseTime=30, clock=clock)
    processor.ensureIndexes()
    processor.addJobFactory('echo', testing.EchoJob())
    processor.addJobFactory('mail', testing.EchoJob())
    yield processor
    processor.close()


def test_throughput_and_failures_per_minute_of_the_hour(rp):
    counters = rp.counters
    counters.count('echo', 'completed', NOW, seconds=2.0)
    counters.count('echo', 'completed', NOW - 5 * MINUTE, seconds=4.0)
    counters.count('mail', 'failed', NOW - 5 * MINUTE, seconds=1.0)
    counters.count('mail', 'lost', NOW - 5 * MINUTE)
    counters.count('mail', 'completed', NOW - 61 * MINUTE)   # before
    counters.flush()
    stats = operations.queries(rp).stats('hour')
    buckets = stats['buckets']
    assert len(buckets) == 60 and stats['bucketSeconds'] == 60
    assert buckets[-1]['at'] == NOW.replace(second=0)
    assert buckets[-1]['completed'] == 1
    assert buckets[-6]['completed'] == 1 and buckets[-6]['failures'] == 2
    assert sum(b['completed'] for b in buckets) == 2
    assert stats['totals']['completed'] == 2
    factories = {row['name']: row for row in stats['factories']}
    assert factories['echo']['meanRunSeconds'] == 3.0
    assert factories['echo']['window']['completed'] == 2
    assert factories['mail']['window']['lost'] == 1
    assert factories['mail']['window']['completed'] == 0


def test_the_day_per_quarter_hour_and_the_week_per_hour(rp):
    rp.counters.count('echo', 'completed', NOW - 20 * MINUTE)
    rp.counters.count('echo', 'completed', NOW - 3 * 1440 * MINUTE)
    rp.counters.flush()
    day = operations.queries(rp).stats('day')
    assert len(day['buckets']) == 96 and day['bucketSeconds'] == 900
    assert day['totals']['completed'] == 1
    week = operations.queries(rp).stats('week')
    assert len(week['buckets']) == 168 and week['bucketSeconds'] == 3600
    assert week['totals']['completed'] == 2
    assert week['buckets'][-1]['at'] == NOW.replace(minute=0, second=0)
    with pytest.raises(ValueError):
        operations.queries(rp).stats('year')


def test_backlog_latency_and_counts_per_factory(rp, clock):
    rp.addJob('echo', 1)
    clock.now = NOW + MINUTE
    rp.addJob('echo', 2)
    rp.addJob('echo', 3, delay=3600)          # not due
    rp.addJob('mail', 4)
    transaction.commit()
    clock.now = NOW + 3 * MINUTE
    stats = operations.queries(rp).stats()
    factories = {row['name']: row for row in stats['factories']}
    assert factories['echo']['counts']['queued'] == 3
    assert factories['echo']['due'] == 2
    assert factories['echo']['latency'] == 180.0
    assert factories['mail']['latency'] == 120.0
    assert stats['workers'] == {'alive': 0, 'gone': 0, 'listed': 0}
    assert stats['latestFailures'] == []


def test_the_counts_follow_every_change(rp, clock):
    # Kept by the embedded store, computed by the server elsewhere: the
    # same figures after each kind of change.
    queries = operations.queries(rp)
    ids = [rp.addJob('echo', n) for n in range(6)]
    ids.append(rp.addJob('echo', 6, delay=120))
    ids.append(rp.addJob('mail', 7))
    transaction.commit()
    assert queries.countsByFactory()['echo']['queued'] == 7
    assert queries.backlog() == {'echo': (6, NOW), 'mail': (1, NOW)}
    rp.cancelJob(ids[0], immediate=True)
    job = rp.jobs[ids[1]]
    job.active = False
    transaction.commit()
    clock.now = NOW + MINUTE
    assert rp.processNextJob()
    transaction.commit()
    rp.removeJob(ids[3])
    transaction.commit()
    counts = queries.countsByFactory()
    assert counts['echo']['queued'] == 4
    assert counts['echo']['cancelled'] == 1
    assert counts['echo']['completed'] + counts['mail']['completed'] == 1
    due = queries.backlog()
    assert sum(n for n, _ in due.values()) == 3   # 2 inactive or later
    clock.now = NOW + 3 * MINUTE
    assert sum(n for n, _ in queries.backlog().values()) == 4


def test_the_latest_failures_follow_every_change(rp, clock):
    queries = operations.queries(rp)
    ids = [rp.addJob('echo', n, immediate=True) for n in range(4)]
    rp.addJob('echo', 'never failed', immediate=True)
    for number, jobid in enumerate(ids):
        clock.now = NOW + number * MINUTE
        rp.jobsCollection.update_one(
            {'_id': bson.ObjectId(jobid)},
            {'$set': {'queued': clock.now},
             '$push': {'errors': {'message': 'failed %d' % number}}})
    assert [job.__name__ for job in queries.latestFailures(3)] == \
        ids[::-1][:3]
    rp.removeJob(ids[3])
    transaction.commit()
    rp.jobsCollection.update_one({'_id': bson.ObjectId(ids[0])},
                                 {'$set': {'queued': NOW + HOUR}})
    assert [job.__name__ for job in queries.latestFailures(10)] == \
        [ids[0], ids[2], ids[1]]


def test_the_pages_read_only_the_jobs_changed(mongomock_database, clock,
                                              monkeypatch):
    # The overview and the statistics read the counts of every job, the
    # backlog and the latest failures: at each request the embedded
    # store reads only the jobs changed since the last, whatever the
    # number of jobs stored.
    rp = RemoteProcessor(mongomock_database, clock=clock)
    rp.addJobFactory('echo', testing.EchoJob())
    queries = operations.queries(rp)
    collection = rp.jobsCollection._wrapped
    scan = collection._iter_documents
    reads = []

    def counted(*args, **kw):
        for document in scan(*args, **kw):
            reads.append(document['_id'])
            yield document
    monkeypatch.setattr(collection, '_iter_documents', counted)

    template = rp.getJobDocument(rp.addJob('echo', 0, immediate=True))
    del template['_id']

    def readsOfARequest(stored):
        rp.jobsCollection.insert_many([dict(
            template, errors=[{'message': 'once'}] if number % 2 else [])
            for number in range(stored)])
        queries.overview()
        queries.stats()
        rp.addJob('echo', 'one more', immediate=True)
        del reads[:]
        overview, stats = queries.overview(), queries.stats()
        assert overview['counts']['queued'] == sum(
            row['counts']['queued'] for row in stats['factories'])
        assert len(overview['latestFailures']) == 10
        return len(reads)
    few = readsOfARequest(20)
    many = readsOfARequest(3000)
    assert few == many
