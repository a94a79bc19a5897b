"""The scheduler container, its locks and scheduleNextJob, on both stores.
"""
import datetime
import logging
import threading

import bson
import pymongo.errors
import pytest
from zope.interface.verify import verifyObject

from m01.remote import interfaces
from m01.remote.job import DuplicateJobError
from m01.remote.scheduler import (
    Cron,
    Delay,
    Scheduler,
    jobIdFor,
    scheduleNextJob,
)

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def at(seconds=0, **kw):
    return T0 + datetime.timedelta(seconds=seconds, **kw)


class Clock:
    """A settable clock for the scheduler's default call time."""

    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now


class FakeProcessor:
    """Just what the scheduler and scheduleNextJob use of a processor."""

    def __init__(self, scheduler, jobs=None):
        self.scheduler = scheduler
        self.jobs = jobs

    def __repr__(self):
        return '<TestProcessor None>'

    def addJob(self, name, input=None, immediate=False, jobid=None):
        assert immediate
        self.jobs.insert_one({'_id': bson.ObjectId(jobid), 'name': name,
                              'input': input})
        return jobid


class Crash(Exception):
    """A scheduler process dying between creating the job and advancing."""


class CrashingProcessor(FakeProcessor):

    def addJob(self, name, input=None, immediate=False, jobid=None):
        super().addJob(name, input, immediate, jobid)
        raise Crash()


class DuplicateProcessor(FakeProcessor):
    """Raises the processor's own error for an existing job id."""

    def addJob(self, name, input=None, immediate=False, jobid=None):
        try:
            return super().addJob(name, input, immediate, jobid)
        except pymongo.errors.DuplicateKeyError:
            raise DuplicateJobError('A job with id %s exists' % jobid)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def scheduler(database, clock):
    return Scheduler(database['scheduler'], clock=clock)


def other(scheduler):
    """A scheduler of another process on the same collection."""
    return Scheduler(scheduler.collection, clock=scheduler.clock)


def processor(scheduler, factory=FakeProcessor):
    return factory(scheduler, scheduler.collection.database['jobs'])


def delay(**data):
    data.setdefault('jobName', 'echo')
    data.setdefault('delay', 60)
    data.setdefault('retryDelay', 30)
    data.setdefault('nextCallTime', T0)
    return Delay(data)


def stored(scheduler, item):
    return scheduler.collection.find_one({'_id': bson.ObjectId(item)})


def test_interfaces(scheduler):
    assert verifyObject(interfaces.IScheduler, scheduler)
    assert verifyObject(interfaces.IDelay, delay())
    cron = Cron({'jobName': 'a', 'minute': [1]})
    assert verifyObject(interfaces.ICron, cron)


# container


def test_add_stores_and_keeps_the_object(scheduler):
    item = delay(input={'a': 1}, title='Echo')
    itemid = scheduler.add(item)
    assert isinstance(itemid, str) and item.__name__ == itemid
    assert scheduler[itemid] is item
    assert scheduler.get(itemid) is item
    assert len(scheduler) == 1
    doc = stored(scheduler, itemid)
    assert doc['_type'] == 'Delay' and doc['input'] == {'a': 1}
    assert doc['retryTime'] is None and doc['nextCallTime'] == T0
    # another process loads an equal item
    loaded = other(scheduler)[itemid]
    assert loaded is not item and loaded.dump() == item.dump()


def test_add_schedules_an_item_without_nextCallTime(scheduler):
    item = Cron({'jobName': 'a', 'minute': [30]})
    scheduler.add(item)
    assert item.nextCallTime == at(minutes=30)
    doc = stored(scheduler, item.__name__)
    assert doc['nextCallTime'] == item.nextCallTime


def test_add_refuses(scheduler):
    item = delay()
    scheduler.add(item)
    with pytest.raises(ValueError, match='already added'):
        scheduler.add(item)
    with pytest.raises(ValueError, match='not a scheduler item'):
        scheduler.add({'jobName': 'echo'})


def test_remove_and_missing_items(scheduler):
    item = delay()
    itemid = scheduler.add(item)
    scheduler.remove(itemid)
    assert scheduler.values() == [] and len(scheduler) == 0
    with pytest.raises(KeyError):
        scheduler.remove(item)
    with pytest.raises(KeyError):
        scheduler[itemid]
    with pytest.raises(KeyError):
        scheduler['not an id']
    assert scheduler.get('not an id', 42) == 42
    assert scheduler.pullNextSchedulerItem(at(3600)) is None


def test_values_loads_every_type(scheduler):
    scheduler.add(delay())
    scheduler.add(Cron.fromExpression('0 9 * * MON-FRI', jobName='cron',
                                      timezone='Europe/Zurich'))
    fresh = other(scheduler).values()
    assert [type(i).__name__ for i in fresh] == ['Delay', 'Cron']
    assert fresh[1].expression == '0 9 * * MON-FRI'
    assert fresh[1].timezone == 'Europe/Zurich'


def test_unknown_stored_type_is_refused(scheduler):
    scheduler.collection.insert_one({'_type': 'Sundial', 'jobName': 'x'})
    with pytest.raises(ValueError, match="unknown scheduler item type"):
        scheduler.values()


def test_ensure_indexes_is_idempotent(scheduler):
    scheduler.ensureIndexes()
    scheduler.ensureIndexes()
    info = scheduler.collection.index_information()
    assert 'm01_remote_scheduler_due' in info


# the lock


def test_lock_keeps_other_schedulers_out(scheduler):
    item = delay()
    scheduler.add(item)
    second = other(scheduler)
    assert scheduler.pullNextSchedulerItem(T0) is item
    assert item.retryTime == at(30)
    # the same call time, from another process: locked
    assert second.pullNextSchedulerItem(T0) is None
    assert second.pullNextSchedulerItem(at(29.999)) is None
    pulled = second.pullNextSchedulerItem(at(30))
    assert pulled.__name__ == item.__name__ and pulled.retryTime == at(60)
    assert stored(scheduler, item.__name__)['retryTime'] == at(60)


def test_update_retry_time_restates_the_values_seen(scheduler):
    item = delay()
    scheduler.add(item)
    data = item.dump()
    assert scheduler.updateRetryTime(dict(data, active=False), T0) is False
    assert scheduler.updateRetryTime(dict(data, nextCallTime=at(1)),
                                     T0) is False
    del data['_id']
    assert scheduler.updateRetryTime(data, T0) is False
    assert stored(scheduler, item.__name__)['retryTime'] is None


def test_stale_cached_copy_is_read_again(scheduler, clock):
    item = delay()
    scheduler.add(item)
    # another process moves the item: the cached copy is out of date
    other(scheduler).update(item.__name__, nextCallTime=at(100))
    assert scheduler.pullNextSchedulerItem(T0) is None
    assert item.nextCallTime == at(100)
    assert scheduler.pullNextSchedulerItem(at(100)) is item


def test_removed_elsewhere_is_forgotten(scheduler):
    item = delay()
    scheduler.add(item)
    other(scheduler).remove(item.__name__)
    assert scheduler.getNextCachedItem(T0) is None
    assert scheduler._added == {}


def test_inactive_items_are_not_pulled(scheduler):
    item = delay(active=False)
    scheduler.add(item)
    assert scheduler.pullNextSchedulerItem(at(3600)) is None


def test_millisecond_precision(scheduler):
    start = datetime.datetime(2026, 1, 5, 12, 0, 0, 123456, tzinfo=UTC)
    item = delay(nextCallTime=start)
    assert item.nextCallTime.microsecond == 123000
    scheduler.add(item)
    callTime = start + datetime.timedelta(microseconds=500)
    assert scheduler.pullNextSchedulerItem(callTime) is item
    assert item.retryTime.microsecond == 123000
    assert stored(scheduler, item.__name__)['retryTime'] == item.retryTime


def test_pull_takes_the_earliest_and_skips_broken_items(scheduler, caplog):
    late, early = delay(nextCallTime=at(10)), delay(nextCallTime=at(5))
    scheduler.add(late)
    scheduler.add(early)
    scheduler.collection.insert_one({
        '_type': 'Delay', 'jobName': 'echo', 'delay': 'soon',
        'active': True, 'nextCallTime': T0, 'retryTime': None})
    second = other(scheduler)
    with caplog.at_level(logging.ERROR, 'm01.remote'):
        assert second.pullNextSchedulerItem(at(20)).__name__ == (
            early.__name__)
    assert 'cannot be loaded' in caplog.text
    assert second.pullNextSchedulerItem(at(20)).__name__ == late.__name__
    assert second.pullNextSchedulerItem(at(20)) is None


class CountingCollection:
    """A collection counting the queries sent through it."""

    def __init__(self, collection):
        self.collection = collection
        self.finds = 0

    def find(self, *args, **kw):
        self.finds += 1
        return self.collection.find(*args, **kw)

    def __getattr__(self, name):
        return getattr(self.collection, name)


def test_pull_uses_the_rest_of_its_batch_and_loads_what_it_locked(
        scheduler):
    items = [delay(nextCallTime=at(n), input={'n': n}) for n in range(4)]
    for item in items:
        scheduler.add(item)
    collection = CountingCollection(scheduler.collection)
    second = Scheduler(collection, clock=scheduler.clock)
    assert second.pullNextSchedulerItem(at(10)).__name__ == items[0].__name__
    assert collection.finds == 1
    # The rest of that read is tried first, as the items are now.
    scheduler.update(items[1], input={'n': 'changed'})
    scheduler.remove(items[2])
    pulled = second.pullNextSchedulerItem(at(10))
    assert pulled.__name__ == items[1].__name__
    assert pulled.input == {'n': 'changed'}
    assert second.pullNextSchedulerItem(at(10)).__name__ == items[3].__name__
    assert collection.finds == 1
    assert second.pullNextSchedulerItem(at(10)) is None
    assert collection.finds == 2


def test_pull_queries_again_when_its_batch_is_spent(scheduler):
    items = [delay(nextCallTime=at(n)) for n in range(3)]
    for item in items:
        scheduler.add(item)
    second, third = other(scheduler), other(scheduler)
    second.pullBatchSize = 2
    assert second.pullNextSchedulerItem(at(10)).__name__ == items[0].__name__
    # Another scheduler takes the rest of the batch before it is used.
    assert third.pullNextSchedulerItem(at(10)).__name__ == items[1].__name__
    assert second.pullNextSchedulerItem(at(10)).__name__ == items[2].__name__
    assert second.pullNextSchedulerItem(at(10)) is None


# changing items


def test_update_reschedules(scheduler, clock):
    item = Cron({'jobName': 'a', 'minute': [0], 'nextCallTime': T0})
    scheduler.add(item)
    clock.now = at(60)
    assert scheduler.update(item, minute=[15]) is item
    assert item.minute == [15] and item.nextCallTime == at(minutes=15)
    doc = stored(scheduler, item.__name__)
    assert doc['minute'] == [15] and doc['nextCallTime'] == at(minutes=15)
    scheduler.update(item, active=False)
    assert item.nextCallTime is None
    assert scheduler.pullNextSchedulerItem(at(days=9)) is None
    clock.now = at(hours=2)
    scheduler.update(item.__name__, active=True)
    assert item.nextCallTime == at(hours=2, minutes=15)


def test_update_without_schedule_change_keeps_the_times(scheduler, clock):
    item = delay()
    scheduler.add(item)
    scheduler.pullNextSchedulerItem(T0)
    clock.now = at(10)
    scheduler.update(item, title='Echo', input=[1])
    assert (item.title, item.input) == ('Echo', [1])
    assert item.nextCallTime == T0 and item.retryTime == at(30)


def test_update_expression_and_fields(scheduler, clock):
    item = Cron.fromExpression('0 0 1 * *', jobName='a')
    scheduler.add(item)
    scheduler.update(item, expression='*/15 * * * *')
    assert item.minute == [0, 15, 30, 45] and item.dayOfMonth == []
    assert item.nextCallTime == at(minutes=15)
    scheduler.update(item, hour=[18])
    assert item.expression is None and item.minute == [0, 15, 30, 45]
    assert item.nextCallTime == at(hours=6)
    scheduler.update(item, expression='0 7 * * *')
    scheduler.update(item, expression=None)
    assert (item.expression, item.minute, item.hour) == (None, [0], [7])


def test_update_refuses_invalid_values(scheduler):
    item = delay()
    scheduler.add(item)
    before = stored(scheduler, item.__name__)
    with pytest.raises(ValueError, match='delay must be a positive'):
        scheduler.update(item, delay=0)
    with pytest.raises(ValueError, match="unknown field.*'minute'"):
        scheduler.update(item, minute=[1])
    with pytest.raises(ValueError, match='cannot update retryTime'):
        scheduler.update(item, retryTime=T0)
    with pytest.raises(KeyError):
        scheduler.update(bson.ObjectId(), title='x')
    assert stored(scheduler, item.__name__) == before


def test_reschedule_items(scheduler):
    first, second = delay(), Cron({'jobName': 'a', 'hour': [3]})
    scheduler.add(first)
    scheduler.add(second)
    scheduler.pullNextSchedulerItem(T0)
    scheduler.reScheduleItems(at(hours=1))
    assert first.nextCallTime == at(hours=1, seconds=60)
    assert first.retryTime is None
    assert second.nextCallTime == at(hours=15)
    assert stored(scheduler, first.__name__)['retryTime'] is None
    with pytest.raises(KeyError):
        scheduler.reScheduleItem(bson.ObjectId())


# scheduleNextJob


def jobs(scheduler):
    return list(scheduler.collection.database['jobs'].find())


def test_schedule_next_job(scheduler):
    item = delay(input={'n': 1})
    scheduler.add(item)
    jobid = scheduleNextJob(processor(scheduler), at(2))
    assert jobid == jobIdFor(item.__name__, T0)
    assert [(j['_id'], j['name'], j['input']) for j in jobs(scheduler)] == [
        (bson.ObjectId(jobid), 'echo', {'n': 1})]
    assert item.nextCallTime == at(62) and item.retryTime is None
    doc = stored(scheduler, item.__name__)
    assert doc['nextCallTime'] == at(62) and doc['retryTime'] is None
    assert scheduleNextJob(processor(scheduler), at(2)) is None
    assert scheduleNextJob(processor(scheduler), at(62)) != jobid
    assert len(jobs(scheduler)) == 2


def test_job_ids_are_deterministic():
    jobid = jobIdFor('5f0000000000000000000001', T0)
    assert jobid == jobIdFor('5f0000000000000000000001', T0)
    assert bson.ObjectId.is_valid(jobid)
    assert jobid != jobIdFor('5f0000000000000000000001', at(1))
    assert jobid != jobIdFor('5f0000000000000000000002', T0)


def test_crash_before_advancing_is_repaired_once(scheduler):
    item = delay()
    scheduler.add(item)
    with pytest.raises(Crash):
        scheduleNextJob(processor(scheduler, CrashingProcessor), at(1))
    assert len(jobs(scheduler)) == 1
    survivor = other(scheduler)
    # locked until the dead scheduler's retryTime
    assert scheduleNextJob(processor(survivor), at(30)) is None
    jobid = scheduleNextJob(processor(survivor), at(31))
    assert jobid == jobIdFor(item.__name__, T0)
    assert len(jobs(scheduler)) == 1
    assert stored(scheduler, item.__name__)['nextCallTime'] == at(91)


@pytest.mark.parametrize('factory', [FakeProcessor, DuplicateProcessor])
def test_existing_job_is_not_duplicated(scheduler, factory):
    item = delay()
    scheduler.add(item)
    jobid = jobIdFor(item.__name__, T0)
    scheduler.collection.database['jobs'].insert_one(
        {'_id': bson.ObjectId(jobid)})
    assert scheduleNextJob(processor(scheduler, factory), at(1)) == jobid
    assert len(jobs(scheduler)) == 1
    assert item.nextCallTime == at(61)


def test_advance_after_someone_else_did(scheduler):
    item = delay()
    scheduler.add(item)
    scheduler.pullNextSchedulerItem(T0)
    assert other(scheduler).advanceItem(other(scheduler)[item.__name__],
                                        T0, at(5))
    assert scheduler.advanceItem(item, T0, at(9)) is False
    assert item.nextCallTime == at(65)


def test_catch_up_after_downtime_fires_once(scheduler):
    hourly = Cron({'jobName': 'hourly', 'minute': [0], 'nextCallTime': T0})
    every = delay(nextCallTime=T0)
    scheduler.add(hourly)
    scheduler.add(every)
    back = at(days=2, minutes=7)
    made = {scheduleNextJob(processor(scheduler), back) for _i in range(5)}
    assert len(made - {None}) == 2 and len(jobs(scheduler)) == 2
    assert hourly.nextCallTime == at(days=2, hours=1)
    assert every.nextCallTime == back + datetime.timedelta(seconds=60)


class CountingProcessor(FakeProcessor):
    """Counts the attempts to create a job that exists already."""

    duplicates = None

    def addJob(self, name, input=None, immediate=False, jobid=None):
        try:
            return super().addJob(name, input, immediate, jobid)
        except pymongo.errors.DuplicateKeyError:
            self.duplicates.append(jobid)
            raise


def test_concurrent_schedulers_create_each_job_once(database, scheduler):
    scheduler.add(Cron({'jobName': 'minutely', 'nextCallTime': T0}))
    scheduler.add(delay(delay=90, nextCallTime=T0))
    schedulers = [other(scheduler) for _i in range(4)]
    # every scheduler polls at the same call times, in step
    barrier = threading.Barrier(len(schedulers))
    errors, duplicates = [], []

    def run(one):
        worker = processor(one, CountingProcessor)
        worker.duplicates = duplicates
        try:
            for minute in range(30):
                barrier.wait()
                while scheduleNextJob(worker, at(minutes=minute)):
                    pass
        except Exception as e:  # reported by the assertion below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # The lock is one conditional write: no two schedulers pass it, so
    # none meets another's job at its unique id.
    assert duplicates == []
    names = sorted(j['name'] for j in jobs(scheduler))
    # minutely fires at every call time; the delay counts its 90 s from
    # the call that ran it: minutes 0, 2, 4, ...
    assert names.count('minutely') == 30
    assert names.count('echo') == 15
