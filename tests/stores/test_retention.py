"""Retention of finished jobs and keys held for a period, on every
store: what is due is removed, in bounded batches, each once; nothing a
key held for a period or a waiting dependent needs."""
import datetime
import threading

import bson
import pytest
import transaction
from zope.interface.verify import verifyObject

from m01.remote import interfaces, testing
from m01.remote.job import DuplicateJobKeyError
from m01.remote.processor import RemoteProcessor
from m01.remote.queue.retention import DEFAULT_PERIODS, JobRetention

UTC = datetime.timezone.utc
START = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

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
    processor.addJobFactory('fatal', testing.FatalErrorJob(
        {'maxRetries': 1}))
    yield processor
    processor.close()


def finish(rp, name='echo', **options):
    """Add a job of ``name`` and run it to its end; its id."""
    jobid = rp.addJob(name, 'x', immediate=True, **options)
    job = rp.pullNextJob()
    assert job.__name__ == jobid
    rp.processJob(jobid, job)
    transaction.commit()
    return jobid


def cancelled(rp, **options):
    jobid = rp.addJob('echo', 'x', immediate=True, **options)
    rp.cancelJob(jobid, immediate=True)
    return jobid


def left(rp):
    return {str(document['_id']) for document in rp.jobsCollection.find()}


def test_the_retention_is_a_job_retention_wired_as_upkeep(rp):
    verifyObject(interfaces.IJobRetention, rp.retention)
    assert rp.retention in rp.leases.upkeep
    assert rp.retention.periods == DEFAULT_PERIODS
    assert DEFAULT_PERIODS == {'completed': 86400.0, 'error': 604800.0,
                               'cancelled': 604800.0}


def test_each_final_status_is_kept_its_own_period(rp, clock):
    rp.retention.periods = {'completed': 60, 'error': 120,
                            'cancelled': None}
    done, failed, dropped = finish(rp), finish(rp, 'fatal'), cancelled(rp)
    running = rp.addJob('echo', 'r', immediate=True)
    assert rp.pullNextJob().__name__ == running
    queued = rp.addJob('echo', 'q', immediate=True)
    assert rp.getJobStatus(failed) == 'error'
    clock.move(60)              # ended exactly 60 s ago: not yet due
    assert rp.retention.removeDue(rp.now()) == 0
    clock.move(1)
    assert rp.retention.removeDue(rp.now()) == 1
    assert left(rp) == {failed, dropped, queued, running}
    clock.move(60)
    assert rp.retention.removeDue(rp.now()) == 1
    clock.move(10 ** 8)         # cancelled: kept for ever; live jobs too
    assert rp.retention.removeDue(rp.now()) == 0
    assert left(rp) == {dropped, queued, running}
    assert done and failed


def test_a_factory_keeps_its_jobs_by_its_own_periods(rp, clock):
    rp.addJobFactory('audit', testing.EchoJob(
        {'retention': {'completed': None}}))
    rp.addJobFactory('ping', testing.EchoJob(
        {'retention': {'completed': 5}}))
    assert rp.getJobFactory('ping').retention == {'completed': 5}
    assert rp.retention.periodsOf(rp.getJobFactory('ping')) == dict(
        DEFAULT_PERIODS, completed=5)
    audit, ping, echo = finish(rp, 'audit'), finish(rp, 'ping'), finish(rp)
    clock.move(6)
    assert rp.retention.removeDue(rp.now()) == 1
    assert left(rp) == {audit, echo}
    clock.move(86400)
    assert rp.retention.removeDue(rp.now()) == 1
    assert left(rp) == {audit}
    assert ping


@pytest.mark.parametrize('bad', [{'done': 1}, {'completed': -1},
                                 {'error': 'a day'}, 'forever'])
def test_a_bad_factory_retention_is_refused(bad):
    with pytest.raises(ValueError, match='retention'):
        testing.EchoJob({'retention': bad})


def test_a_key_held_for_a_period_keeps_its_job(rp, clock):
    rp.retention.periods = dict(DEFAULT_PERIODS, completed=60)
    holder = finish(rp, key='sync-7', keyPeriod=600)
    other = finish(rp)
    clock.move(120)
    assert rp.retention.removeDue(rp.now()) == 1
    assert left(rp) == {holder}
    # The job a refused add names is there to be read.
    with pytest.raises(DuplicateJobKeyError) as info:
        rp.addJob('echo', 'y', key='sync-7', onDuplicateKey='raise')
    assert info.value.jobid == holder
    assert 'holds its key for 600' in str(info.value)
    assert rp.getJobStatus(holder) == 'completed'
    clock.move(600 - 120)       # the period ends exactly now
    assert rp.retention.removeDue(rp.now()) == 1
    assert left(rp) == set()
    assert other


def test_a_waiting_dependent_keeps_what_it_names(rp, clock):
    rp.retention.periods = dict(DEFAULT_PERIODS, completed=60)
    first, second, third = finish(rp), finish(rp), finish(rp)
    # Jobs waiting for others (as ``dependsOn`` names them, by ObjectId
    # or by text).
    waiting = rp.jobsCollection.insert_many([
        {'name': 'echo', 'status': 'waiting',
         'dependsOn': [bson.ObjectId(first)]},
        {'name': 'echo', 'status': 'waiting', 'dependsOn': [second]},
    ]).inserted_ids
    clock.move(61)
    assert rp.retention.removeDue(rp.now()) == 1
    assert left(rp) >= {first, second} and third not in left(rp)
    # Once its dependent no longer waits, a job is removed.
    rp.jobsCollection.update_one({'_id': waiting[0]},
                                 {'$set': {'status': 'queued'}})
    assert rp.retention.removeDue(rp.now()) == 1
    assert first not in left(rp) and second in left(rp)


def test_a_round_removes_bounded_batches_and_the_next_catches_up(rp, clock):
    rp.retention.periods = dict(DEFAULT_PERIODS, completed=1)
    rp.retention.batchSize = 3
    rp.retention.maxBatches = 2
    for _ in range(8):
        finish(rp)
    clock.move(2)
    assert rp.retention.tidy(rp.now()) == 6
    assert rp.jobsCollection.count_documents({}) == 2
    # Behind: the next round does not wait for the interval.
    assert rp.retention.tidy(rp.now()) == 2
    assert rp.retention.tidy(rp.now()) == 0
    finish(rp)
    clock.move(2)
    assert rp.retention.tidy(rp.now()) == 0    # within the interval


def test_a_round_past_its_time_leaves_the_rest_to_the_next(rp, clock):
    rp.retention.periods = dict(DEFAULT_PERIODS, completed=1)
    rp.retention.batchSize = 2
    rp.retention.maxSeconds = 0.0
    for _ in range(5):
        finish(rp)
    clock.move(2)
    assert [rp.retention.tidy(rp.now()) for _ in range(4)] == [2, 2, 1, 0]


def test_a_removal_by_ids_takes_each_listed_job_once(rp):
    """A batch by ``_id`` (the embedded store looks each up)."""
    done, queued = finish(rp), rp.addJob('echo', 'q', immediate=True)
    ids = [bson.ObjectId(done), bson.ObjectId(done), bson.ObjectId(queued),
           bson.ObjectId()]
    assert rp.jobsCollection.count_documents(
        {'_id': {'$in': ids}, 'status': 'completed'}) == 1
    assert rp.jobsCollection.delete_many(
        {'_id': {'$in': ids}, 'status': 'completed'}).deleted_count == 1
    assert left(rp) == {queued}


def test_jobs_kept_fill_no_batch_for_ever(rp, clock):
    """Jobs a key keeps do not hide the due ones behind them."""
    rp.retention.periods = dict(DEFAULT_PERIODS, completed=1)
    rp.retention.batchSize = 2
    held = [finish(rp, key='k%d' % number, keyPeriod=3600)
            for number in range(4)]
    clock.move(1)
    due = [finish(rp) for number in range(3)]
    clock.move(2)
    assert rp.retention.removeDue(rp.now()) == 3
    assert left(rp) == set(held)
    assert due


def test_the_removal_restates_the_status(rp, clock):
    rp.retention.periods = dict(DEFAULT_PERIODS, cancelled=1)
    requeued, dropped = cancelled(rp), cancelled(rp)
    clock.move(2)
    needed = rp.retention._needed

    def retriedMeanwhile(due, now):
        # Between the read of a batch and its removal, one job of it is
        # queued again: it is not removed.
        rp.retryJob(requeued, immediate=True)
        return needed(due, now)
    rp.retention._needed = retriedMeanwhile
    assert rp.retention.removeDue(rp.now()) == 1
    assert left(rp) == {requeued}
    assert rp.getJobStatus(requeued) == 'queued'
    assert dropped


def test_processes_removing_at_once_remove_each_job_once(database, clock):
    processors = [RemoteProcessor(database, clock=clock) for _ in range(3)]
    rp = processors[0]
    rp.ensureIndexes()
    rp.addJobFactory('echo', testing.EchoJob())
    for number in range(120):
        rp.addJob('echo', number, immediate=True)
    rp.jobsCollection.update_many(
        {'input': {'$lt': 60}},
        {'$set': {'status': 'completed', 'completed': START}})
    clock.move(86401)
    for processor in processors:
        processor.retention.batchSize = 7
    counts = []
    start = threading.Barrier(len(processors))

    def remove(processor):
        start.wait()
        counts.append(processor.retention.removeDue(processor.now()))
    threads = [threading.Thread(target=remove, args=(processor,))
               for processor in processors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 60
    assert rp.jobsCollection.count_documents({'status': 'queued'}) == 60
    assert rp.jobsCollection.count_documents({}) == 60
    for processor in processors:
        processor.close()


def test_the_lease_keeper_removes_due_jobs_and_the_counts_stay(rp, clock):
    rp.retention.periods = dict(DEFAULT_PERIODS, completed=60)
    jobids = [finish(rp) for number in range(3)]
    rp.counters.flush()
    before = rp.counters.totals()['echo']
    clock.move(61)
    rp.leases.tick()
    assert left(rp) == set()
    assert rp.counters.totals()['echo'] == before
    assert before['completed'] == len(jobids)


def test_a_retention_without_periods_in_force_removes_nothing(database,
                                                              clock):
    retention = JobRetention(database.jobs, database.factories, clock,
                             periods={'completed': None, 'error': None,
                                      'cancelled': None})
    database.jobs.insert_one({'status': 'completed', 'name': 'echo',
                              'completed': START})
    assert retention.removeDue(clock.move(10 ** 9)) == 0
    assert database.jobs.count_documents({}) == 1


# keys held for a period

def test_a_key_is_held_for_its_period_after_its_job_ended(rp, clock):
    first = finish(rp, key='sync', keyPeriod=600)
    lock = rp.keys.collection.find_one({'_id': 'key:sync'})
    assert lock['period'] == 600
    assert lock['until'] == rp.now() + datetime.timedelta(seconds=600)
    assert rp.addJob('echo', 'y', key='sync', immediate=True) == first
    clock.move(599)
    assert rp.addJob('echo', 'y', key='sync', immediate=True) == first
    assert rp.keys.tidy(rp.now()) == 0
    clock.move(1)
    second = rp.addJob('echo', 'z', key='sync', immediate=True)
    assert second != first
    rp.cancelJob(second, immediate=True)
    # A key without a period is free as its job ends.
    third = finish(rp, key='plain')
    assert rp.addJob('echo', 'w', key='plain', immediate=True) != third


def test_a_cancelled_job_holds_its_key_for_its_period(rp, clock):
    first = cancelled(rp, key='c', keyPeriod=30)
    clock.move(29)
    with pytest.raises(DuplicateJobKeyError):
        rp.addJob('echo', 'y', key='c', immediate=True,
                  onDuplicateKey='raise')
    clock.move(1)
    assert rp.addJob('echo', 'y', key='c', immediate=True) != first


def test_a_missed_release_still_holds_the_key_for_its_period(rp, clock):
    first = rp.addJob('echo', 1, key='k', keyPeriod=60, immediate=True)
    # The job ended without its release (a process died between).
    rp.jobsCollection.update_one(
        {'_id': bson.ObjectId(first)},
        {'$set': {'status': 'completed', 'completed': rp.now()}})
    clock.move(59)
    assert rp.addJob('echo', 2, key='k', immediate=True) == first
    assert rp.keys.tidy(rp.now()) == 0
    clock.move(61)
    assert rp.keys.tidy(rp.now()) == 1
    assert rp.addJob('echo', 3, key='k', immediate=True) != first


def test_a_job_queued_again_holds_its_key_past_its_old_period(rp, clock):
    first = cancelled(rp, key='r', keyPeriod=60)
    rp.retryJob(first, immediate=True)
    clock.move(120)                 # past the period of its first end
    assert rp.addJob('echo', 'y', key='r', immediate=True) == first
    assert rp.keys.tidy(rp.now()) == 0
    rp.cancelJob(first, immediate=True)
    clock.move(59)
    assert rp.addJob('echo', 'y', key='r', immediate=True) == first
    clock.move(1)
    assert rp.addJob('echo', 'y', key='r', immediate=True) != first


@pytest.mark.parametrize('options', [
    {'keyPeriod': 60}, {'debounce': 5}, {'key': 'k', 'keyPeriod': -1},
    {'key': 'k', 'keyPeriod': 'a minute'}, {'key': 'k', 'debounce': -1},
    {'key': 'k', 'debounce': 5, 'delay': 3}])
def test_bad_key_options_are_refused_before_anything_is_stored(rp, options):
    with pytest.raises(ValueError):
        rp.addJob('echo', 'x', immediate=True, **options)
    assert rp.jobsCollection.count_documents({}) == 0
    assert rp.keys.collection.count_documents({}) == 0


def test_the_lease_keeper_comes_back_soon_while_retention_is_behind(rp):
    assert rp.leases._nextWait() == rp.leases.interval > 1.0
    rp.retention.behind = True
    assert rp.leases._nextWait() == 1.0
