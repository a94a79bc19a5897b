"""Rate limits: at most N starts per period for a factory or a queue,
across every process; jobs over the limit wait in their place."""
import datetime
import threading

import pytest
import transaction

from m01.remote import store, testing
from m01.remote.processor import RemoteProcessor
from m01.remote.queue.rates import factoryScope, queueScope
from m01.remote.worker import MultiJobWorker
from support.waiting import until

START = datetime.datetime(2026, 1, 5, 12, 0, tzinfo=datetime.timezone.utc)


class Clock:
    def __init__(self):
        self.now = START

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += datetime.timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def rp(database, clock):
    processor = RemoteProcessor(database, clock=clock)
    processor.ensureIndexes()
    yield processor
    processor.close()


def _process(rp):
    count = rp.processJobs()
    transaction.commit()
    return count


def _stati(rp, ids):
    return [rp.getJobStatus(jobid) for jobid in ids]


def test_a_factory_rate_limit_leaves_the_rest_queued_in_place(rp, clock):
    rp.addJobFactory('api', testing.EchoJob({'rateLimit': '3/60'}))
    rp.addJobFactory('echo', testing.EchoJob())
    ids = [rp.addJob('api', n) for n in range(8)]
    free = rp.addJob('echo', 'free')
    transaction.commit()
    assert rp.getJobFactory('api').rateLimit == [3, 60]
    assert _process(rp) == 4
    assert _stati(rp, ids) == ['completed'] * 3 + ['queued'] * 5
    assert rp.getJobStatus(free) == 'completed'
    for jobid in ids[3:]:
        document = rp.getJobDocument(jobid)   # neither failed nor retried
        assert document['attempts'] == [] and document['retryCounter'] == 0
        assert 'claim' not in document
    scope = factoryScope('api')
    assert rp.rates.used(scope, [3, 60], clock()) == 3
    clock.advance(59)
    assert _process(rp) == 0
    clock.advance(1)
    # The window allows three more, taken in claim order, in a batch too.
    assert [job.input for job in rp.pullNextJobs(10)] == [3, 4, 5]
    assert rp.pullNextJobs(10) == []
    assert rp.rates.used(scope, [3, 60], clock()) == 3


def test_a_queue_rate_limit(rp, clock):
    rp.addJobFactory('mail', testing.EchoJob({'queue': 'mail'}))
    rp.addJobFactory('echo', testing.EchoJob())
    rp.setQueueRateLimit('mail', [2, 10])
    assert rp.queueSettings.rateLimit('mail', fresh=True) == [2, 10]
    mail = [rp.addJob('mail', n) for n in range(4)]
    moved = rp.addJob('echo', 'moved', queue='mail')
    other = rp.addJob('echo', 'other')
    transaction.commit()
    assert _process(rp) == 3
    assert _stati(rp, mail) == ['completed'] * 2 + ['queued'] * 2
    assert rp.getJobStatus(moved) == 'queued'
    assert rp.getJobStatus(other) == 'completed'
    assert rp.rates.used(queueScope('mail'), [2, 10], clock()) == 2
    rp.setQueueRateLimit('mail', None)
    assert _process(rp) == 3


def test_both_limits_hold_and_a_refused_start_gives_its_slot_back(
        rp, clock):
    rp.addJobFactory('api', testing.EchoJob({'rateLimit': [5, 60],
                                             'queue': 'mail'}))
    rp.setQueueRateLimit('mail', [1, 60])
    ids = [rp.addJob('api', n) for n in range(3)]
    transaction.commit()
    assert _process(rp) == 1
    assert _stati(rp, ids) == ['completed', 'queued', 'queued']
    # The factory's slot taken for the refused start was given back.
    assert rp.rates.used(factoryScope('api'), [5, 60], clock()) == 1


@pytest.mark.parametrize('limit', [[0, 60], [1, 0], [1, 86401], 'often',
                                   [1.5, 60], [True, 1], [1, 2, 3]])
def test_a_bad_rate_limit_is_refused(rp, limit):
    with pytest.raises(ValueError, match='rate limit'):
        testing.EchoJob({'rateLimit': limit})
    with pytest.raises(ValueError, match='rate limit'):
        rp.setQueueRateLimit('mail', limit)
    assert rp.queueSettings.rateLimit('mail', fresh=True) is None


def _processors(database, store_uri, count):
    """``count`` processors of ``database``, each with a client of its
    own on a server (as separate processes have)."""
    if store_uri == 'mongomock://':
        return [RemoteProcessor(database, name='p%d' % n)
                for n in range(count)], []
    clients = [store.connect(store_uri) for _ in range(count)]
    return [RemoteProcessor(client[database.name], name='p%d' % n)
            for n, client in enumerate(clients)], clients


def test_two_processes_under_one_rate_limit_never_exceed_it(
        database, store_uri):
    starts, period = 4, 0.4
    processors, clients = _processors(database, store_uri, 2)
    first = processors[0]
    first.ensureIndexes()
    first.addJobFactory('api', testing.EchoJob(
        {'rateLimit': [starts, period]}))
    ids = [first.addJob('api', n) for n in range(24)]
    transaction.commit()
    workers = [MultiJobWorker(p, waitTime=0.02, maxThreads=3)
               for p in processors]
    threads = [threading.Thread(target=worker) for worker in workers]
    for thread in threads:
        thread.start()
    try:
        until(lambda: first.jobsCollection.count_documents(
            {'status': 'completed'}) == len(ids), bound=60,
            what='every job ran')
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(10)
        for p in processors:
            p.close()
        for client in clients:
            client.close()
    # Every start, from the jobs' attempt records.
    jobs = database[first.jobsCollection.name]
    records = [attempt for document in jobs.find()
               for attempt in document['attempts']]
    assert len(records) == len(ids)
    times = sorted(record['started'] for record in records)
    window = datetime.timedelta(seconds=period)
    for number, start in enumerate(times):
        within = [t for t in times[number:] if t < start + window]
        assert len(within) <= starts, (start, within)
    # The limit held the pace: no faster than it allows.
    assert times[-1] - times[0] >= window * (len(ids) // starts - 1)
