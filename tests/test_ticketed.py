"""The ticketed job writes (FerretDB v1) when a client stops between its
writes: the job is never left blocked, nor without its queue entry.

Each test has two clients on one database: ``stopping`` loses the server
at a chosen write, ``other`` carries on. Time is passed in, never slept.
"""
import datetime

import bson
import pymongo.errors
import pytest

from m01.remote import testing, ticketed
from m01.remote.jobstate import completeUpdate, failureUpdate
from m01.remote.processor import RemoteProcessor
from m01.remote.ticketed import STALE_TICKET, TicketedJobWrites

LEASE = 10
SECOND = datetime.timedelta(seconds=1)


class ServerLost(pymongo.errors.ConnectionFailure):
    pass


def stopAt(writes, method):
    """Make ``writes`` lose the server when it calls ``method``."""
    def lost(*args, **kw):
        raise ServerLost('the server went away before %s' % method)
    setattr(writes, method, lost)


@pytest.fixture
def rp(database):
    processor = RemoteProcessor(database, ticketed=True)
    processor.addJobFactory('echo', testing.EchoJob())
    yield processor
    processor.close()


@pytest.fixture
def other(rp):
    return rp.jobWrites


@pytest.fixture
def stopping(rp):
    return TicketedJobWrites(rp.database, rp.prefix)


def addJob(rp):
    return bson.ObjectId(rp.addJob('echo', 'x', immediate=True))


def job(rp, oid):
    return rp.database[rp.prefix + 'jobs'].find_one({'_id': oid})


def entry(rp, oid):
    return rp.database[rp.prefix + 'queue'].find_one({'_id': oid})


def test_a_change_written_twice_writes_the_same_job():
    document = {'_id': 1, 'status': 'processing', 'version': 4,
                'retryCounter': 1, 'errors': ['first'], 'claim': 'c',
                'leaseExpires': 'soon'}
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    update = failureUpdate({'retryCounter': 1, 'maxRetries': 5,
                            'retryDelay': 10}, 'second', 'tb', now,
                           final=False)
    fields, unset = ticketed.absoluteChange(document, update)
    once = ticketed.changed(document, fields, unset)
    assert ticketed.changed(once, fields, unset) == once
    assert (once['retryCounter'], once['errors'], once['version']) == (
        2, ['first', 'second'], 5)
    assert 'claim' not in once and 'leaseExpires' not in once


def test_outcome_ticket_won_then_server_lost(rp, other, stopping):
    oid = addJob(rp)
    now = rp.now()
    claimed = stopping.claimNext(now, 'stopping', LEASE)
    assert claimed['_id'] == oid
    stopAt(stopping, '_write')
    with pytest.raises(ServerLost):
        stopping.finish(oid, claimed['claim'],
                        completeUpdate(claimed, 'done', now + SECOND))
    # The lease expired, the ticket is fresh: its client may still write.
    expired = claimed['leaseExpires'] + SECOND
    assert expired - (now + SECOND) < STALE_TICKET
    assert other.recoverExpired(expired) == []
    assert job(rp, oid)['status'] == 'processing'
    # Stale: the outcome the stopped client won is written, once.
    later = now + SECOND + STALE_TICKET + SECOND
    assert other.recoverExpired(later) == []
    stored = job(rp, oid)
    assert (stored['status'], stored['output'], stored['version']) == (
        'completed', 'done', claimed['version'] + 1)
    assert 'claim' not in stored
    assert entry(rp, oid) is None


def test_claim_ticket_won_then_server_lost(rp, other, stopping):
    oid = addJob(rp)
    now = rp.now()
    stopAt(stopping, '_write')
    with pytest.raises(ServerLost):
        stopping.claimNext(now, 'stopping', LEASE)
    assert other.claimNext(now + SECOND, 'other', LEASE) is None
    assert job(rp, oid)['status'] == 'queued'
    # Stale: the stopped client's claim is written; it never runs the
    # job, so its lease expires and the job goes back to the queue.
    later = now + STALE_TICKET + SECOND
    assert other.claimNext(later, 'other', LEASE) is None
    stored = job(rp, oid)
    assert (stored['status'], stored['worker']) == ('processing', 'stopping')
    assert entry(rp, oid)['state'] == 'processing'
    recovered = other.recoverExpired(stored['leaseExpires'] + SECOND)
    assert recovered == [(str(oid), 'queued')]
    due = job(rp, oid)['retryTime']
    claimed = other.claimNext(due, 'other', LEASE)
    assert (claimed['_id'], claimed['retryCounter']) == (oid, 1)
    assert other.finish(oid, claimed['claim'],
                        completeUpdate(claimed, 'done', due))
    assert job(rp, oid)['status'] == 'completed'
    assert entry(rp, oid) is None


def test_job_written_then_server_lost_before_the_entry(rp, other, stopping):
    oid = addJob(rp)
    now = rp.now()
    stopAt(stopping, '_writeEntry')
    with pytest.raises(ServerLost):
        stopping.claimNext(now, 'stopping', LEASE)
    # The job is running, its entry still says queued: a claim meeting
    # it leaves it while its client may still be writing it...
    assert entry(rp, oid)['state'] == 'queued'
    assert other.claimNext(now, 'other', LEASE) is None
    assert entry(rp, oid)['state'] == 'queued'
    # ... and corrects it once the claim is older, so lease recovery
    # finds the job.
    settled = now + ticketed.ENTRY_GRACE + SECOND
    assert other.claimNext(settled, 'other', LEASE) is None
    assert entry(rp, oid)['state'] == 'processing'
    lease = job(rp, oid)['leaseExpires']
    assert other.recoverExpired(lease + SECOND) == [(str(oid), 'queued')]


def test_outcome_written_then_server_lost_before_the_entry(rp, other,
                                                           stopping):
    oid = addJob(rp)
    now = rp.now()
    claimed = stopping.claimNext(now, 'stopping', LEASE)
    stopAt(stopping, '_writeEntry')
    with pytest.raises(ServerLost):
        stopping.finish(oid, claimed['claim'],
                        completeUpdate(claimed, 'done', now))
    assert job(rp, oid)['status'] == 'completed'
    assert entry(rp, oid)['state'] == 'processing'
    # The left-over entry goes once its lease has expired.
    assert other.recoverExpired(claimed['leaseExpires'] + SECOND) == []
    assert entry(rp, oid) is None
    assert job(rp, oid)['status'] == 'completed'


def test_requeue_entry_written_then_server_lost(rp, other, stopping):
    oid = addJob(rp)
    now = rp.now()
    assert other.cancel(oid, now)
    assert entry(rp, oid) is None
    # Queued again: the entry goes first, then the job write is lost.
    real = stopping.jobs
    stopping.jobs = LosesUpdates(real)
    with pytest.raises(ServerLost):
        stopping.requeue(oid, now)
    assert job(rp, oid)['status'] == 'cancelled'
    assert entry(rp, oid)['state'] == 'queued'
    # A claim leaves the entry of a change still being written alone...
    assert other.claimNext(now + SECOND, 'other', LEASE) is None
    assert entry(rp, oid) is not None
    assert job(rp, oid)['status'] == 'cancelled'
    # ... and writes it once it is stale, then claims the job.
    later = now + STALE_TICKET + SECOND
    claimed = other.claimNext(later, 'other', LEASE)
    assert (claimed['_id'], claimed['version']) == (oid, 3)
    assert job(rp, oid)['status'] == 'processing'


def test_left_over_entry_of_an_ended_job_is_dropped(rp, other):
    oid = addJob(rp)
    now = rp.now()
    assert other.cancel(oid, now)
    rp.database[rp.prefix + 'queue'].insert_one(
        ticketed.queueEntry(dict(job(rp, oid), status='queued',
                                 version=0)))
    settled = now + ticketed.ENTRY_GRACE + SECOND
    assert other.claimNext(settled, 'other', LEASE) is None
    assert entry(rp, oid) is None
    assert job(rp, oid)['status'] == 'cancelled'


class LosesUpdates:
    """A jobs collection whose updates never reach the server."""

    def __init__(self, collection):
        self.collection = collection

    def update_one(self, *args, **kw):
        raise ServerLost('the server went away before the job write')

    def __getattr__(self, name):
        return getattr(self.collection, name)


def test_claims_whose_outcome_never_comes_are_forgotten(mongomock_database):
    # A job cancelled or taken over while it ran sends no outcome: its
    # remembered claim goes once its lease has expired, not at the cap.
    writes = TicketedJobWrites(mongomock_database, 'r')
    now = datetime.datetime.now(datetime.timezone.utc)

    def remember(number, lease):
        writes._remember({'_id': number, 'claim': 'c%d' % number,
                          'leaseExpires': now + lease * SECOND})
    for number in range(ticketed.PRUNE_AT):
        remember(number, -1)            # expired
    running = [ticketed.PRUNE_AT + n for n in range(5)]
    for number in running:
        remember(number, LEASE)
    assert sorted(document['_id'] for document
                  in writes._claimed.values()) == running
