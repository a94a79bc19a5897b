"""Batched claims: up to N jobs claimed in a constant number of commands,
their outcomes stored together, each job still claimed once, on every
store."""
import logging
import subprocess
import sys

import bson
import pymongo.errors
import pymongo.monitoring
import pytest
import transaction
import transaction.interfaces
import zope.interface

from m01.remote import testing
from m01.remote.job import AttemptRefused
from m01.remote.processor import RemoteProcessor
from m01.remote.store import isEmbedded
from m01.remote.worker import MultiJobWorker, SimpleJobWorker
from m01.remote.worker import base as workerbase
from support.jobs import RecordingJob, startProcessingThreads
from support.testserver import unique_database_name


@pytest.fixture
def rp(database):
    processor = RemoteProcessor(database)
    processor.ensureIndexes()
    processor.addJobFactory('echo', testing.EchoJob())
    processor.addJobFactory('record', RecordingJob())
    yield processor
    processor.close()


def test_a_batch_takes_due_jobs_in_claim_order_once(rp):
    ids = [rp.addJob('echo', n, immediate=True) for n in range(7)]
    urgent = rp.addJob('echo', 'urgent', immediate=True, priority=3)
    later = rp.addJob('echo', 'later', immediate=True, delay=60)
    first = rp.pullNextJobs(5)
    assert [job.__name__ for job in first] == [urgent] + ids[:4]
    assert len({job.claim for job in first}) == 1
    rest = rp.pullNextJobs(5)
    assert [job.__name__ for job in rest] == ids[4:]
    assert rp.pullNextJobs(5) == []
    assert rp.getJobStatus(later) == 'queued'
    # Renewed from the claim on, while they wait for their turn.
    assert first[0].claim in rp.leases.claims
    assert rest[0].claim in rp.leases.claims


def test_a_batch_honours_the_job_query_and_pauses(rp):
    rp.addJobFactory('mail', testing.EchoJob())
    rp.addJobFactory('paused', testing.EchoJob())
    mail = [rp.addJob('mail', n, immediate=True) for n in range(3)]
    rp.addJob('echo', 'not asked', immediate=True)
    rp.addJob('paused', 'paused', immediate=True)
    rp.pauseJobFactory('paused')
    claimed = rp.pullNextJobs(10, {'name': {'$in': ['mail', 'paused']}})
    got = [job.__name__ for job in claimed]
    assert got == mail


def test_a_capped_factory_is_claimed_singly_beside_a_batch(rp):
    rp.addJobFactory('api', testing.EchoJob({'concurrency': 1}))
    api = [rp.addJob('api', n, immediate=True) for n in range(3)]
    echo = [rp.addJob('echo', n, immediate=True) for n in range(3)]
    claimed = [job.__name__ for job in rp.pullNextJobs(10)]
    assert claimed == echo + api[:1]
    assert rp.slots.running('api') == 1
    assert api[1] not in claimed and api[2] not in claimed


def test_a_batch_costs_a_constant_number_of_commands(rp, store_uri):
    if isEmbedded(rp.database):
        pytest.skip('counts the commands a server is sent')
    for n in range(40):
        rp.addJob('echo', n)
    transaction.commit()
    listener = CommandCounter()
    client = pymongo.MongoClient(store_uri, event_listeners=[listener],
                                 tz_aware=True)
    try:
        counted = RemoteProcessor(client[rp.database.name])
        counted.addJobFactory('echo', testing.EchoJob())
        # What claims read now and then (pauses, limits, the queues'
        # settings, the server's kind) is cached.
        assert counted.jobWrites.strategy is not None
        counted.jobFactories.pausedNames()
        counted.jobFactories.cappedNames()
        counted.queueSettings.documents()
        listener.reset()
        jobs = counted.pullNextJobs(40)
        claims = listener.commands()
        manager = transaction.TransactionManager()
        with manager:
            bound = counted.bind(manager)
            for job in jobs:
                bound.processJob(job.__name__, job)
        outcomes = listener.commands()
    finally:
        client.close()
    assert len(jobs) == 40
    # The candidates, the bulk claim, the claimed jobs read back.
    assert claims == ['find', 'update', 'find']
    # One bulk write storing their outcomes, each conditional on its
    # claim: with nothing else in the transaction, that is the fence.
    assert outcomes == ['update']
    assert {rp.getJobStatus(job.__name__) for job in jobs} == {'completed'}


class Interfering:
    """A jobs collection where another writer changes ``oid`` between the
    claim's read of the candidates and its bulk write."""

    def __init__(self, collection, oid):
        self.collection = collection
        self.oid = oid

    def bulk_write(self, requests, **kw):
        self.collection.update_one({'_id': self.oid},
                                   {'$inc': {'version': 1}})
        return self.collection.bulk_write(requests, **kw)

    def __getattr__(self, name):
        return getattr(self.collection, name)


@pytest.mark.parametrize('interfered', [False, True],
                         ids=['all-won', 'one-lost'])
def test_a_batch_returns_the_jobs_as_stored(rp, interfered):
    if isEmbedded(rp.database):
        pytest.skip('the server strategy')
    ids = [bson.ObjectId(rp.addJob('echo', n, immediate=True))
           for n in range(4)]
    writes = rp.jobWrites.strategy
    real = writes.jobs
    if interfered:
        writes.jobs = Interfering(real, ids[1])
    try:
        documents = writes.claimMany(rp.now(), 'here', 60, 10)
    finally:
        writes.jobs = real
    won = ids[:1] + ids[2:] if interfered else ids
    assert [document['_id'] for document in documents] == won
    for document in documents:
        assert document == real.find_one({'_id': document['_id']})
    assert len({document['claim'] for document in documents}) == 1
    if interfered:
        assert rp.getJobStatus(str(ids[1])) == 'queued'


class CommandCounter(pymongo.monitoring.CommandListener):
    def __init__(self):
        self.names = []

    def reset(self):
        self.names = []

    def commands(self):
        names, self.names = self.names, []
        return [name for name in names
                if name not in ('ping', 'hello', 'isMaster', 'endSessions')]

    def started(self, event):
        self.names.append(event.command_name)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


@zope.interface.implementer(transaction.interfaces.IDataManager)
class Elsewhere:
    """Another participant of a transaction (a SQL session, say)."""

    def __init__(self, manager):
        self.transaction_manager = manager

    def abort(self, txn):
        pass

    tpc_begin = commit = tpc_vote = tpc_finish = tpc_abort = abort

    def sortKey(self):
        return 'elsewhere'


def test_a_refused_outcome_in_a_batch_gives_the_others_back(rp, caplog):
    ids = [rp.addJob('echo', n, immediate=True) for n in range(4)]
    jobs = rp.pullNextJobs(4)
    cancelled = jobs[1].__name__
    rp.cancelJob(cancelled, immediate=True)
    manager = transaction.TransactionManager()
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        # Short jobs: their claims are checked at the commit, which
        # finds the cancelled one and writes nothing: another resource
        # takes part, which cannot keep the others' writes without it.
        with pytest.raises(AttemptRefused, match=cancelled):
            with manager:
                manager.get().join(Elsewhere(manager))
                bound = rp.bind(manager)
                for job in jobs:
                    bound.processJob(job.__name__, job)
    stati = {job.__name__: rp.getJobStatus(job.__name__) for job in jobs}
    assert stati[cancelled] == 'cancelled'
    # The others went back to the queue, their attempt not counted.
    others = [job.__name__ for job in jobs if job.__name__ != cancelled]
    assert [stati[jobid] for jobid in others] == ['queued'] * len(others)
    assert {rp.jobs[jobid].retryCounter for jobid in others} == {0}
    assert rp.leases.claims == []
    refused = [record.getMessage() for record in caplog.records
               if 'was not stored' in record.getMessage()]
    assert len(refused) == 1 and cancelled in refused[0]
    assert rp.processJobs() == len(others)
    transaction.commit()
    assert {rp.getJobStatus(jobid) for jobid in others} == {'completed'}
    assert set(stati) <= set(ids)


def test_a_refused_outcome_in_a_batch_alone_leaves_the_others_stored(
        rp, caplog):
    ids = [rp.addJob('echo', n, immediate=True) for n in range(4)]
    jobs = rp.pullNextJobs(4)
    cancelled = jobs[1].__name__
    rp.cancelJob(cancelled, immediate=True)
    manager = transaction.TransactionManager()
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        # Nothing but the queue in the transaction: the outcomes are the
        # fence, the refused one is dropped, the others stored (not run
        # again).
        with manager:
            bound = rp.bind(manager)
            for job in jobs:
                bound.processJob(job.__name__, job)
    assert [rp.getJobStatus(jobid) for jobid in ids] == [
        'cancelled' if jobid == cancelled else 'completed' for jobid in ids]
    assert rp.leases.claims == []
    refused = [record.getMessage() for record in caplog.records
               if 'was not stored' in record.getMessage()]
    assert len(refused) == 1 and cancelled in refused[0]
    assert 'the other jobs of its batch were stored' in refused[0]


@pytest.mark.parametrize('kind', ['simple', 'multi'])
def test_batching_workers_run_every_job_once(rp, kind):
    ids = [rp.addJob('record', n, immediate=True) for n in range(60)]
    worker = SimpleJobWorker(rp, waitTime=0, batchSize=7) \
        if kind == 'simple' else MultiJobWorker(rp, waitTime=0,
                                                maxThreads=3, batchSize=7)
    rp.jobWorkerFactory = type(worker)
    rp.jobWorkerArguments = dict(
        {'waitTime': 0.01, 'batchSize': 7},
        **({'maxThreads': 3} if kind == 'multi' else {}))
    rp.startProcessor()
    try:
        testing.waitForJobs(rp, ids, timeout=60)
    finally:
        rp.stopProcessor(10)
    ran = [record['job'] for record in rp.database.executions.find()]
    assert sorted(ran) == sorted(ids)
    assert {rp.getJobStatus(jobid) for jobid in ids} == {'completed'}


@pytest.mark.parametrize('error', [
    RuntimeError('a bug'), pymongo.errors.AutoReconnect('connection closed')],
    ids=['bug', 'network'])
def test_a_failed_batch_commit_strands_no_job(rp, monkeypatch, caplog,
                                              error):
    ids = [rp.addJob('echo', n, immediate=True) for n in range(4)]
    # One job a unit of work; the second unit's commit fails, whatever
    # the error (a network one once its retries are over).
    monkeypatch.setattr(workerbase, 'BATCH_SECONDS', 0)
    monkeypatch.setattr(rp.jobWrites, 'retrySeconds', 0)
    finishMany = rp.jobWrites.writes.finishMany
    calls = []

    def failing(outcomes):
        calls.append(outcomes)
        if len(calls) > 1:
            raise error
        return finishMany(outcomes)
    monkeypatch.setattr(rp.jobWrites.writes, 'finishMany', failing)
    worker = SimpleJobWorker(rp, waitTime=0, batchSize=4)
    jobs = rp.pullNextJobs(4)
    assert [job.__name__ for job in jobs] == ids
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        with pytest.raises(type(error)):
            worker.runBatch(jobs)
    assert rp.getJobStatus(ids[0]) == 'completed'
    # The job whose commit failed and those not run yet are back in the
    # queue, their attempts not counted, their leases no longer renewed.
    assert [rp.getJobStatus(jobid) for jobid in ids[1:]] == ['queued'] * 3
    assert {rp.jobs[jobid].retryCounter for jobid in ids[1:]} == {0}
    assert rp.leases.claims == []
    back = [record.getMessage() for record in caplog.records
            if 'went back to the queue' in record.getMessage()]
    assert sorted(jobid for jobid in ids for message in back
                  if jobid in message) == sorted(ids[1:])
    monkeypatch.undo()
    assert rp.processJobs() == 3
    transaction.commit()
    assert {rp.getJobStatus(jobid) for jobid in ids} == {'completed'}


def test_a_batch_that_cannot_be_given_back_is_no_longer_renewed(
        rp, monkeypatch, caplog):
    ids = [rp.addJob('echo', n, immediate=True) for n in range(3)]
    monkeypatch.setattr(rp.jobWrites, 'retrySeconds', 0)

    def unreachable(*args):
        raise pymongo.errors.AutoReconnect('connection closed')
    monkeypatch.setattr(rp.jobWrites.writes, 'finishMany', unreachable)
    monkeypatch.setattr(rp.jobWrites.writes, 'unclaim', unreachable)
    jobs = rp.pullNextJobs(3)
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        with pytest.raises(pymongo.errors.AutoReconnect):
            SimpleJobWorker(rp, waitTime=0, batchSize=3).runBatch(jobs)
    assert rp.leases.claims == []
    said = [record.getMessage() for record in caplog.records
            if 'runs again once the lease expires' in record.getMessage()]
    assert sorted(jobid for jobid in ids for message in said
                  if jobid in message) == sorted(ids)
    monkeypatch.undo()
    # Nobody renews them: they return to the queue by their leases.
    later = jobs[0].leaseExpires + (jobs[0].leaseExpires - jobs[0].picked)
    recovered = rp.recoverExpiredJobs(callTime=later)
    assert sorted(jobid for jobid, _ in recovered) == sorted(ids)


def test_a_batch_left_unrun_returns_to_the_queue_by_its_leases(rp):
    ids = [rp.addJob('echo', n, immediate=True) for n in range(3)]
    jobs = rp.pullNextJobs(3)
    # The worker dies with its batch claimed: its leases expire.
    later = jobs[0].leaseExpires + (jobs[0].leaseExpires - jobs[0].picked)
    recovered = rp.recoverExpiredJobs(callTime=later)
    assert sorted(jobid for jobid, _ in recovered) == sorted(
        job.__name__ for job in jobs)
    assert {rp.getJobStatus(jobid) for jobid in ids} == {'queued'}


@pytest.mark.slow
@pytest.mark.mongojava
def test_batches_in_threads_and_processes_run_each_job_once(mongojava_uri):
    from m01.remote import store
    name = unique_database_name()
    client = store.connect(mongojava_uri)
    try:
        rp = RemoteProcessor(client[name])
        rp.ensureIndexes()
        rp.addJobFactory('record', RecordingJob())
        ids = [rp.addJob('record', n) for n in range(2000)]
        transaction.commit()
        processes = [subprocess.Popen(
            [sys.executable, '-m', 'support.claimworker', mongojava_uri,
             name, '2', '10'], stdout=subprocess.PIPE, text=True)
            for _ in range(2)]
        workers, counts = startProcessingThreads(rp, 2, batchSize=10)
        for thread in workers:
            thread.join()
        outputs = [process.communicate(timeout=600)[0]
                   for process in processes]
        assert [process.returncode for process in processes] == [0, 0]
        elsewhere = [int(output.split()[-1]) for output in outputs]
        assert sum(counts) + sum(elsewhere) == 2000
        ran = [record['job'] for record in
               rp.database.executions.find()]
        assert len(ran) == len(set(ran)) == 2000
        assert sorted(ran) == sorted(ids)
        stati = {document['status'] for document in rp.jobsCollection.find(
            {'_id': {'$in': [bson.ObjectId(jobid) for jobid in ids]}},
            {'status': 1})}
        assert stati == {'completed'}
    finally:
        client.drop_database(name)
        client.close()
