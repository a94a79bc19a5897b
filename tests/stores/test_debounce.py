"""Debounced adds, on every store: a burst of adds with one key leaves
one queued job, due ``debounce`` seconds after the last add, with the
last add's input; also when the adds race from separate clients."""
import datetime
import threading

import bson
import pytest
import transaction

from m01.remote import store, testing
from m01.remote.job import ConflictError, DuplicateJobKeyError
from m01.remote.processor import RemoteProcessor
from m01.remote.queue import debounce

UTC = datetime.timezone.utc
START = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:

    def __init__(self):
        self.now = START

    def __call__(self):
        return self.now

    def move(self, seconds):
        self.now += datetime.timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def rp(database, clock):
    processor = RemoteProcessor(database, clock=clock)
    processor.ensureIndexes()
    processor.addJobFactory('echo', testing.EchoJob())
    yield processor
    processor.close()


def stored(rp, jobid):
    return rp.jobsCollection.find_one({'_id': bson.ObjectId(jobid)})


def seconds(value):
    return datetime.timedelta(seconds=value)


def test_a_burst_runs_once_after_the_last_add_with_its_input(rp, clock):
    first = rp.addJob('echo', 1, key='sync', debounce=30, immediate=True)
    assert stored(rp, first)['retryTime'] == START + seconds(30)
    assert stored(rp, first)['debounce'] == 30
    clock.move(20)
    assert rp.addJob('echo', 2, key='sync', debounce=30,
                     immediate=True) == first
    document = stored(rp, first)
    assert document['input'] == 2
    assert document['retryTime'] == START + seconds(50)
    assert '2' in document['terms'] and '1' not in document['terms']
    assert rp.jobsCollection.count_documents({}) == 1
    assert rp.pullNextJob(callTime=START + seconds(49)) is None
    job = rp.pullNextJob(callTime=START + seconds(50))
    assert job.__name__ == first and job.input == 2


def test_adds_in_one_transaction_change_the_pending_job(rp):
    first = rp.addJob('echo', 1, key='k', debounce=10)
    assert rp.addJob('echo', 2, key='k', debounce=10) == first
    assert rp.jobsCollection.count_documents({}) == 0
    transaction.commit()
    assert stored(rp, first)['input'] == 2
    assert rp.jobsCollection.count_documents({}) == 1


def test_an_add_in_a_transaction_moves_the_job_at_its_commit(rp, clock):
    first = rp.addJob('echo', 1, key='k', debounce=10, immediate=True)
    clock.move(5)
    assert rp.addJob('echo', 2, key='k', debounce=10) == first
    # Seen by this transaction, written by its commit.
    assert rp.getJobDocument(first)['input'] == 2
    assert stored(rp, first)['input'] == 1
    transaction.commit()
    assert stored(rp, first)['input'] == 2
    assert stored(rp, first)['retryTime'] == START + seconds(15)


def test_adds_in_one_transaction_move_a_stored_job_once(rp, clock):
    first = rp.addJob('echo', 1, key='k', debounce=10, immediate=True)
    clock.move(5)
    for number in (2, 3, 4):
        assert rp.addJob('echo', number, key='k', debounce=10) == first
    transaction.commit()
    document = stored(rp, first)
    assert document['input'] == 4 and document['version'] == 1
    assert document['retryTime'] == START + seconds(15)


def test_an_aborted_add_leaves_the_job_as_it_was(rp, clock):
    first = rp.addJob('echo', 1, key='k', debounce=10, immediate=True)
    clock.move(5)
    rp.addJob('echo', 2, key='k', debounce=10)
    transaction.abort()
    assert stored(rp, first)['input'] == 1
    assert stored(rp, first)['retryTime'] == START + seconds(10)


def test_a_job_claimed_before_the_commit_fails_it_with_a_conflict(rp, clock):
    first = rp.addJob('echo', 1, key='k', debounce=10, immediate=True)
    rp.addJob('echo', 2, key='k', debounce=10)
    other = RemoteProcessor(rp.database, clock=clock)
    assert other.pullNextJob(callTime=START + seconds(10)).__name__ == first
    with pytest.raises(ConflictError):
        transaction.commit()
    transaction.abort()
    assert stored(rp, first)['input'] == 1
    other.close()


def test_a_running_job_keeps_its_input_and_holds_its_key(rp, clock):
    first = rp.addJob('echo', 1, key='k', debounce=10, immediate=True)
    assert rp.pullNextJob(callTime=START + seconds(10)).__name__ == first
    assert rp.addJob('echo', 2, key='k', debounce=10,
                     immediate=True) == first
    with pytest.raises(DuplicateJobKeyError) as info:
        rp.addJob('echo', 3, key='k', debounce=10, immediate=True,
                  onDuplicateKey='raise')
    assert info.value.jobid == first
    assert stored(rp, first)['input'] == 1


def test_an_ended_job_leaves_the_key_to_a_new_debounced_job(rp, clock):
    first = rp.addJob('echo', 1, key='k', debounce=10, immediate=True)
    rp.cancelJob(first, immediate=True)
    second = rp.addJob('echo', 2, key='k', debounce=10, immediate=True)
    assert second != first
    assert stored(rp, second)['retryTime'] == START + seconds(10)


def test_an_unstored_holder_is_waited_for_then_a_conflict(rp, monkeypatch):
    # A lock whose job another process has not stored yet.
    rp.keys.collection.insert_one({'_id': 'key:k', 'job': bson.ObjectId(),
                                   'key': 'k', 'at': rp.now(),
                                   'token': 'other'})
    monkeypatch.setattr(debounce, 'FIRST_PAUSE', 0.0)
    with pytest.raises(ConflictError, match="'k'"):
        rp.addJob('echo', 2, key='k', debounce=10, immediate=True)
    assert rp.jobsCollection.count_documents({}) == 0


def clientFor(database, store_uri):
    """A database on a client of its own (on the embedded store, which
    one process sees, the same)."""
    if store_uri.startswith('mongomock'):
        return database, None
    client = store.connect(store_uri)
    return client[database.name], client


def test_racing_adds_from_separate_clients_leave_one_job_with_the_last_input(  # noqa: E501
        database, store_uri):
    threads, adds = 4, 25
    setups = [clientFor(database, store_uri) for _ in range(threads)]
    processors = [RemoteProcessor(db) for db, _ in setups]
    processors[0].ensureIndexes()
    processors[0].addJobFactory('echo', testing.EchoJob())
    answers = []
    errors = []
    start = threading.Barrier(threads)

    def add(number, rp):
        start.wait()
        try:
            for count in range(adds):
                answers.append(rp.addJob(
                    'echo', {'thread': number, 'add': count}, key='burst',
                    debounce=60, immediate=True))
        except Exception as error:       # reported below
            errors.append(error)
    running = [threading.Thread(target=add, args=(number, rp))
               for number, rp in enumerate(processors)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    assert errors == []
    assert len(answers) == threads * adds
    assert len(set(answers)) == 1
    # The burst's last add, after every other: its input is the job's.
    last = processors[1].addJob('echo', 'last', key='burst', debounce=60,
                                immediate=True)
    assert last == answers[0]
    jobs = list(processors[0].jobsCollection.find())
    assert len(jobs) == 1
    assert jobs[0]['input'] == 'last'
    assert jobs[0]['status'] == 'queued'
    for rp in processors:
        rp.close()
    for _, client in setups:
        if client is not None:
            client.close()


def test_racing_adds_each_leave_their_input_once(database, store_uri):
    """Of two racing adds, each input is written once, never lost to a
    write over a version it did not read: the job's version counts
    every add but its first."""
    threads, adds = 3, 10
    setups = [clientFor(database, store_uri) for _ in range(threads)]
    processors = [RemoteProcessor(db) for db, _ in setups]
    processors[0].addJobFactory('echo', testing.EchoJob())
    start = threading.Barrier(threads)
    errors = []

    def add(number, rp):
        start.wait()
        try:
            for count in range(adds):
                rp.addJob('echo', [number, count], key='v', debounce=60,
                          immediate=True)
        except Exception as error:       # reported below
            errors.append(error)
    running = [threading.Thread(target=add, args=(number, rp))
               for number, rp in enumerate(processors)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    assert errors == []
    job = processors[0].jobsCollection.find_one()
    assert job['version'] == threads * adds - 1
    for rp in processors:
        rp.close()
    for _, client in setups:
        if client is not None:
            client.close()
