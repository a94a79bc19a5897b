"""The contract of the job write strategies (``IJobWrites``), the same
tests for each strategy on every store it may serve.

The embedded strategy serves the embedded store only; the atomic one
runs on every store (its single-client behaviour is the contract; which
one a server gets is ``jobWritesFor``'s business, and the races are
``test_claims``'s). A server whose conditional writes are not atomic
(FerretDB v1) is refused at first use.
"""
import datetime

import bson
import pymongo
import pymongo.errors
import pytest
from zope.interface.verify import verifyObject

from m01.remote import clock
from m01.remote.interfaces import IJobWrites
from m01.remote.job import DuplicateJobError
from m01.remote.processor import RemoteProcessor
from m01.remote.queue import updates
from m01.remote.store import isEmbedded
from m01.remote.store.atomic import AtomicJobWrites
from m01.remote.store.embedded.writes import EmbeddedJobWrites
from m01.remote.store.strategy import (
    ServerJobWrites,
    UnsupportedServer,
    jobWritesFor,
)

SECOND = datetime.timedelta(seconds=1)
STRATEGIES = {'atomic': AtomicJobWrites, 'embedded': EmbeddedJobWrites}


@pytest.fixture(params=sorted(STRATEGIES))
def writes(request, database):
    if request.param == 'embedded' and not isEmbedded(database):
        pytest.skip('the embedded strategy serves the embedded store only')
    strategy = STRATEGIES[request.param](database, 'r')
    strategy.ensureIndexes()
    return strategy


@pytest.fixture
def now():
    return clock.utcnow()


def jobDocument(now, **fields):
    document = {'_id': bson.ObjectId(), 'name': 'echo', 'input': None,
                'status': 'queued', 'active': True, 'created': now,
                'queued': now, 'retryTime': now, 'retryCounter': 0,
                'maxRetries': 3, 'retryDelay': 10, 'errors': [],
                'tracebacks': [], 'output': None, 'version': 0}
    document.update(fields)
    return document


def complete(writes, oid, claim, output, now):
    return writes.finish(oid, claim, updates.completeUpdate(
        stored(writes, oid), output, now))


def stored(writes, oid):
    return writes.jobs.find_one({'_id': oid})


def test_every_strategy_provides_the_interface(writes):
    verifyObject(IJobWrites, writes)


def test_the_server_strategy_is_chosen_at_first_use(database):
    chosen = ServerJobWrites(database, 'r')
    verifyObject(IJobWrites, chosen)
    assert type(chosen.strategy) is type(jobWritesFor(database, 'r'))


def serverAnswering(buildInfo):
    """A database of a client that answers ``buildInfo`` so, and talks to
    no server for anything else."""
    client = pymongo.MongoClient('mongodb://127.0.0.1:1/', connect=False)
    asked = []
    client.server_info = lambda: asked.append(1) or dict(buildInfo)
    return client.app, asked


FERRETDB_1 = {'version': '7.0.42', 'gitVersion': 'e2a5a5b',
              'ferretdbVersion': 'v1.24.2'}
MONGODB = {'version': '7.0.14', 'gitVersion': 'ce59cfc6a3c5e5c0'}
MONGO_JAVA_SERVER = {'version': '7.0.0'}


def test_ferretdb_1_is_refused_at_first_use_saying_what_is_supported():
    database, asked = serverAnswering(FERRETDB_1)
    rp = RemoteProcessor(database)            # made without its server
    assert asked == []
    with pytest.raises(UnsupportedServer) as info:
        rp.ensureIndexes()
    assert str(info.value) == (
        'FerretDB v1.24.2 applies an update as a read followed by a write, '
        'so two workers may both claim one job: m01.remote supports '
        'MongoDB and servers whose single-document conditional updates '
        'and findAndModify are atomic (tested on mongo-java-server).')
    assert asked == [1]


@pytest.mark.parametrize('buildInfo, exact', [
    (MONGODB, False), (MONGO_JAVA_SERVER, True),
    (dict(MONGODB, ferretdbVersion='v2.1.0'), True)])
def test_other_servers_are_asked_once_what_they_are(buildInfo, exact):
    database, asked = serverAnswering(buildInfo)
    writes = ServerJobWrites(database, 'r')
    assert type(writes.strategy) is AtomicJobWrites
    assert writes.strategy.exactKeyIndexes is exact
    assert writes.strategy is writes.strategy
    assert asked == [1]


def test_a_claim_takes_the_oldest_due_job(writes, now):
    later = jobDocument(now, queued=now + SECOND)
    oldest = jobDocument(now)
    notDue = jobDocument(now - SECOND, retryTime=now + 60 * SECOND)
    inactive = jobDocument(now - SECOND, active=False)
    writes.insertJobs([later, oldest, notDue, inactive])
    claimed = writes.claimNext(now, 'w1', 30)
    assert claimed['_id'] == oldest['_id']
    assert claimed['status'] == 'processing' and claimed['worker'] == 'w1'
    assert claimed['leaseExpires'] == now + 30 * SECOND
    assert stored(writes, oldest['_id'])['claim'] == claimed['claim']
    assert writes.claimNext(now, 'w2', 30)['_id'] == later['_id']
    assert writes.claimNext(now, 'w3', 30) is None


def test_a_claim_honours_the_job_query(writes, now):
    echo = jobDocument(now)
    mail = jobDocument(now, name='mail', input={'to': 'ann'})
    writes.insertJobs([echo, mail])
    claimed = writes.claimNext(now, 'w', 30, {'name': {'$in': ['mail']}})
    assert claimed['_id'] == mail['_id']
    assert writes.claimNext(now, 'w', 30, {'$or': [
        {'input.to': 'bob'}, {'name': 'nothing'}]}) is None
    assert writes.claimNext(now, 'w', 30)['_id'] == echo['_id']


def test_a_job_is_claimed_by_id_only_while_queued(writes, now):
    document = jobDocument(now)
    writes.insertJobs([document])
    assert writes.claimJob(document['_id'], now, 'w', 30)['worker'] == 'w'
    assert writes.claimJob(document['_id'], now, 'x', 30) is None
    assert writes.claimJob(bson.ObjectId(), now, 'x', 30) is None


def test_outcomes_need_the_claim(writes, now):
    first, second = jobDocument(now), jobDocument(now)
    writes.insertJobs([first, second])
    claim = writes.claimJob(first['_id'], now, 'w', 30)['claim']
    assert not complete(writes, first['_id'], 'another claim', 'x', now)
    assert complete(writes, first['_id'], claim, {'done': 1}, now)
    job = stored(writes, first['_id'])
    assert (job['status'], job['output']) == ('completed', {'done': 1})
    assert 'claim' not in job and 'leaseExpires' not in job
    assert not complete(writes, first['_id'], claim, 'twice', now)
    claim = writes.claimJob(second['_id'], now, 'w', 30)['claim']
    update = updates.failureUpdate(
        dict(second, retryDelay=5), 'boom', 'tb', now, False)
    assert not writes.finish(second['_id'], 'another claim', update)
    assert writes.finish(second['_id'], claim, update)
    job = stored(writes, second['_id'])
    assert (job['status'], job['retryCounter'], job['errors']) == \
        ('queued', 1, ['boom'])
    assert job['retryTime'] == now + 5 * SECOND
    assert writes.claimNext(now, 'w', 30) is None   # not due yet
    assert writes.claimNext(now + 5 * SECOND, 'w', 30)['_id'] == \
        second['_id']


def test_cancel_and_requeue_restate_the_status(writes, now):
    document = jobDocument(now)
    writes.insertJobs([document])
    oid = document['_id']
    assert not writes.requeue(oid, now)          # queued: not requeued
    assert writes.cancel(oid, now)
    assert stored(writes, oid)['status'] == 'cancelled'
    assert not writes.cancel(oid, now)
    assert writes.claimNext(now, 'w', 30) is None
    assert writes.requeue(oid, now + SECOND)
    job = stored(writes, oid)
    assert (job['status'], job['retryCounter']) == ('queued', 0)
    claim = writes.claimNext(now + SECOND, 'w', 30)['claim']
    assert writes.cancel(oid, now)                # a processing job too
    assert not complete(writes, oid, claim, 'late', now)
    assert stored(writes, oid)['status'] == 'cancelled'


def test_a_batch_names_the_outcomes_refused_in_their_own_millisecond(
        writes, now):
    # A cancel and a sweep end two attempts of a batch in the very
    # millisecond their worker's outcomes were made: each record ends
    # its attempt at the same time, yet only the worker's name a thread.
    if type(writes) is AtomicJobWrites and isEmbedded(writes.jobs.database):
        pytest.skip('the embedded store has no bulk write of its own')
    first, second, third = (jobDocument(now) for _ in range(3))
    writes.insertJobs([first, second, third])
    for document in (first, second, third):
        writes.claimJob(document['_id'], now, 'w', 30)
    outcomes = [(oid, stored(writes, oid)['claim'], updates.completeUpdate(
        stored(writes, oid), 'done', now, 'worker-1'))
        for oid in (first['_id'], second['_id'], third['_id'])]
    assert writes.cancel(second['_id'], now)
    expired = now + 31 * SECOND
    assert writes.extendLeases([outcomes[0][1]], expired + SECOND) == 1
    assert writes.recoverExpired(expired) == [(str(third['_id']), 'queued')]
    assert sorted(writes.finishMany(outcomes)) == sorted(
        [second['_id'], third['_id']])
    assert [stored(writes, oid)['status'] for oid, _, _ in outcomes] == [
        'completed', 'cancelled', 'queued']


def test_leases_are_extended_and_expired_ones_recovered(writes, now):
    kept, lost, spent = (jobDocument(now), jobDocument(now),
                         jobDocument(now, maxRetries=1))
    writes.insertJobs([kept, lost, spent])
    claims = {document['_id']: writes.claimJob(
        document['_id'], now, 'w', 10)['claim']
        for document in (kept, lost, spent)}
    assert writes.extendLeases([claims[kept['_id']]],
                               now + 60 * SECOND) == 1
    assert writes.extendLeases([], now) == 0
    recovered = writes.recoverExpired(now + 20 * SECOND)
    assert sorted(recovered) == sorted([(str(lost['_id']), 'queued'),
                                        (str(spent['_id']), 'error')])
    job = stored(writes, lost['_id'])
    assert job['retryCounter'] == 1
    assert 'stopped answering' in job['errors'][0]
    assert stored(writes, kept['_id'])['status'] == 'processing'
    # A lost worker's late outcome is refused.
    assert not complete(writes, lost['_id'], claims[lost['_id']], 'x', now)
    assert writes.recoverExpired(now + 20 * SECOND) == []


def test_a_hold_renews_each_lease_still_held_and_names_the_lost(writes,
                                                               now):
    held, cancelled, taken, done = [jobDocument(now) for _ in range(4)]
    writes.insertJobs([held, cancelled, taken, done])
    claims = {document['_id']: writes.claimJob(
        document['_id'], now, 'w', 10)['claim']
        for document in (held, cancelled, taken, done)}
    assert writes.cancel(cancelled['_id'], now)
    # Taken over: its lease ran out and another worker claimed it.
    writes.jobs.update_one({'_id': taken['_id']},
                           {'$set': {'claim': 'another worker\'s'}})
    assert complete(writes, done['_id'], claims[done['_id']], 'x', now)
    version = stored(writes, held['_id'])['version']
    until = now + 60 * SECOND
    pairs = [(oid, claims[oid]) for oid in (held['_id'], cancelled['_id'],
                                             taken['_id'], done['_id'])]
    lost = [cancelled['_id'], taken['_id'], done['_id']]
    if type(writes) is AtomicJobWrites and isEmbedded(writes.jobs.database):
        # That strategy never serves the embedded store, whose bulk write
        # takes no pymongo UpdateOne: one claim at a time there.
        assert [oid for pair in pairs
                for oid in writes.holdClaims([pair], until)] == lost
    else:
        assert sorted(writes.holdClaims(pairs, until)) == sorted(lost)
    job = stored(writes, held['_id'])
    assert clock.toBSONTime(job['leaseExpires']) == clock.toBSONTime(until)
    # Not versioned, as a renewal: an edit of the job still applies.
    assert (job['status'], job['version']) == ('processing', version)
    # Held again at once (the same lease: matched, not modified).
    assert writes.holdClaims(pairs[:1], until) == []
    assert writes.holdClaims(pairs[1:2], until) == [cancelled['_id']]
    assert writes.holdClaims([], until) == []
    assert stored(writes, cancelled['_id'])['status'] == 'cancelled'


def test_a_duplicate_id_is_refused_and_nothing_half_stored(writes, now):
    document = jobDocument(now)
    writes.insertJobs([document])
    with pytest.raises(DuplicateJobError):
        writes.insertJobs([dict(document)])
    assert writes.jobs.count_documents({}) == 1


def test_a_delete_restates_the_status(writes, now):
    queued, done, running = (jobDocument(now), jobDocument(now),
                             jobDocument(now))
    writes.insertJobs([queued, done, running])
    claim = writes.claimJob(done['_id'], now, 'w', 30)['claim']
    assert complete(writes, done['_id'], claim, 'x', now)
    writes.claimJob(running['_id'], now, 'w', 30)
    oids = [queued['_id'], done['_id'], running['_id'], bson.ObjectId()]
    assert writes.delete(oids, ['completed']) == 1
    assert stored(writes, done['_id']) is None
    assert writes.delete(oids, updates.DELETABLE) == 1
    # Never a running job, whatever it is asked.
    assert stored(writes, running['_id'])['status'] == 'processing'
    assert writes.claimNext(now, 'w', 30) is None
    assert writes.delete([], ['queued']) == 0
    for stati in (['processing'], [], ['queued', 'nonsense']):
        with pytest.raises(ValueError):
            writes.delete(oids, stati)
    assert stored(writes, running['_id'])['status'] == 'processing'
