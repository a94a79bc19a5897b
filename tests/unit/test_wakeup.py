"""The wake-up idle loops wait on, and which changes wake whom: no store.
"""
import datetime
import threading

import pytest
from zope.interface.verify import verifyObject

from m01.remote import interfaces
from m01.remote.worker import wakeup as waking
from m01.remote.worker.wakeup import (
    NOBODY,
    NOW,
    Wakeup,
    itemDueTime,
    jobDueTime,
)

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
#: Bounds for waits that must end: never reached when the code is right.
BOUND = 10.0


class Clock:

    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now


def later(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def wakeup(clock):
    return Wakeup(clock)


def test_it_provides_its_interface(wakeup):
    verifyObject(interfaces.IWakeup, wakeup)


def test_a_wake_up_before_the_wait_is_not_lost(wakeup):
    wakeup.set()
    assert wakeup.wait(BOUND) is True
    assert wakeup.wait(0.01) is False    # consumed


def test_a_wait_without_a_wake_up_times_out(wakeup):
    assert wakeup.wait(0.01) is False
    assert not wakeup.idle


def test_one_wake_up_wakes_every_waiting_loop(wakeup):
    results = []
    waiters = [threading.Thread(target=lambda: results.append(
        wakeup.wait(BOUND))) for _ in range(3)]
    for thread in waiters:
        thread.start()
    _until(lambda: wakeup.waiting == 3)
    assert wakeup.idle
    wakeup.set()
    for thread in waiters:
        thread.join(BOUND)
    assert results == [True, True, True]


def test_a_due_time_wakes_the_loop_when_it_comes(wakeup, clock):
    wakeup.setAt(later(30))
    assert wakeup.dueTimes == [later(30)]
    assert wakeup.wait(0.01) is False        # not yet
    clock.now = later(30)
    assert wakeup.wait(BOUND) is True
    assert wakeup.dueTimes == []


def test_a_due_time_that_has_come_wakes_at_once(wakeup):
    wakeup.setAt(later(-1))
    assert wakeup.dueTimes == []
    assert wakeup.wait(BOUND) is True


def test_a_waiting_loop_wakes_for_a_due_time_set_while_it_waits(
        wakeup, clock):
    results = []
    waiter = threading.Thread(target=lambda: results.append(
        wakeup.wait(BOUND)))
    waiter.start()
    _until(lambda: wakeup.waiting == 1)
    clock.now = later(5)
    wakeup.setAt(later(5))     # due now by the clock: at once
    waiter.join(BOUND)
    assert results == [True]


def test_only_the_earliest_due_times_are_kept(clock):
    wakeup = Wakeup(clock, maxDueTimes=3)
    for seconds in (50, 10, 40, 20, 30, 60):
        wakeup.setAt(later(seconds))
    assert wakeup.dueTimes == [later(10), later(20), later(30)]


def _until(condition):
    event = threading.Event()
    for _ in range(int(BOUND / 0.005)):
        if condition():
            return
        event.wait(0.005)
    raise AssertionError('condition not met within %s s' % BOUND)


# which changes wake a job worker: MongoDB's events and mongo-java-server's

JOB = {'_id': 1, 'name': 'echo', 'status': 'queued', 'active': True,
       'retryTime': T0}


def insert(document):
    return {'operationType': 'insert', 'fullDocument': document}


def mongodbUpdate(fields):
    return {'operationType': 'update',
            'updateDescription': {'updatedFields': fields,
                                  'removedFields': []}}


def javaUpdate(fields):
    # mongo-java-server: the $set (and $unset) values as fullDocument.
    return {'operationType': 'update', 'fullDocument': fields,
            'documentKey': {'$set': fields}}


UPDATES = [pytest.param(mongodbUpdate, id='mongodb'),
           pytest.param(javaUpdate, id='mongojava')]


def test_an_inserted_queued_job_is_due_at_its_retry_time():
    assert jobDueTime(insert(JOB)) == T0
    assert jobDueTime(insert(dict(JOB, retryTime=later(60)))) == later(60)


def test_an_inserted_job_that_is_not_claimable_wakes_nobody():
    assert jobDueTime(insert(dict(JOB, status='cancelled'))) is NOBODY
    assert jobDueTime(insert(dict(JOB, active=False))) is NOBODY


@pytest.mark.parametrize('update', UPDATES)
def test_a_job_queued_again_wakes_at_its_retry_time(update):
    # retryJob, a failed attempt with retries left, a lost worker
    assert jobDueTime(update({'status': 'queued', 'queued': T0,
                              'retryTime': later(10)})) == later(10)


@pytest.mark.parametrize('update', UPDATES)
def test_a_job_given_back_unstarted_wakes_at_once(update):
    assert jobDueTime(update({'status': 'queued', 'claim': ''})) is NOW


@pytest.mark.parametrize('update', UPDATES)
def test_a_job_made_due_sooner_wakes_at_its_new_time(update):
    assert jobDueTime(update({'retryTime': later(2), 'version': 3})) \
        == later(2)


@pytest.mark.parametrize('update', UPDATES)
@pytest.mark.parametrize('status', ['processing', 'completed', 'error',
                                    'cancelled'])
def test_claims_and_endings_wake_nobody(update, status):
    assert jobDueTime(update({'status': status})) is NOBODY


# which changes wake a scheduler

ITEM = {'_id': 1, '_type': 'Delay', 'active': True, 'nextCallTime': T0,
        'retryTime': None}


def test_an_added_item_wakes_at_its_next_call_time():
    assert itemDueTime(insert(ITEM)) == T0
    assert itemDueTime(insert(dict(ITEM, active=False))) is NOBODY


@pytest.mark.parametrize('update', UPDATES)
def test_a_changed_or_advanced_item_wakes_at_its_next_call_time(update):
    assert itemDueTime(update({'nextCallTime': later(60),
                               'retryTime': None,
                               'lockedBy': None})) == later(60)


@pytest.mark.parametrize('update', UPDATES)
def test_a_locked_item_wakes_when_its_lock_ends(update):
    assert itemDueTime(update({'nextCallTime': T0,
                               'retryTime': later(30)})) == later(30)


@pytest.mark.parametrize('update', UPDATES)
def test_an_activated_item_without_a_time_wakes_at_once(update):
    assert itemDueTime(update({'active': True})) is NOW
    assert itemDueTime(update({'active': False})) is NOBODY


def test_the_waker_wakes_now_or_at_the_due_time(wakeup, clock):
    waker = waking.Waker(wakeup, jobDueTime)
    assert waker(insert(dict(JOB, retryTime=later(60)))) is False
    assert wakeup.dueTimes == [later(60)]
    assert waker(insert(dict(JOB, status='error'))) is False
    assert wakeup.wait(0.01) is False
    assert waker(insert(JOB)) is True
    assert wakeup.wait(BOUND) is True


def test_the_pipelines_name_only_waking_writes():
    (stage,) = waking.jobPipeline()
    conditions = stage['$match']['$or']
    assert {'fullDocument.status': 'queued'} in conditions
    assert {'updateDescription.updatedFields.status': 'queued'} in \
        conditions
    (stage,) = waking.schedulerPipeline()
    assert {'updateDescription.updatedFields.nextCallTime':
            {'$exists': True}} in stage['$match']['$or']


def test_times_read_naive_are_taken_as_utc():
    naive = T0.replace(tzinfo=None)
    assert jobDueTime(insert(dict(JOB, retryTime=naive))) == T0
    assert itemDueTime(insert(dict(ITEM, nextCallTime=naive))) == T0
