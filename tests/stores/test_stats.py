"""The charts' figures (``IQueueQueries.stats``) on every store: from the
outcome counters, the jobs and the heartbeats."""
import datetime

import pytest
import transaction

from m01.remote import operations, testing
from m01.remote.processor import RemoteProcessor

UTC = datetime.timezone.utc
NOW = datetime.datetime(2030, 1, 1, 12, 30, 20, tzinfo=UTC)
MINUTE = datetime.timedelta(minutes=1)


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
