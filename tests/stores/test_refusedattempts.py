"""A refused attempt leaves nothing behind, on every store.

A thread job that outlives its timeout or its cancel, or whose lease
was taken over, has its outcome refused; what it added (a child job) or
changed (a persistent job field, a write to another transactional
resource joined to its transaction) is discarded with it, and the next
attempt stores it once. Each case runs twice: with the job's claim
checked right after it ran (a refused job is rolled back to its own
savepoint) and with only its unit's check at commit (the unit aborts).
"""
import datetime
import logging
import threading

import bson
import pytest
import transaction
import transaction.interfaces
import zope.interface

from m01.remote import testing
from m01.remote.job import AttemptRefused, Job
from m01.remote.processor import RemoteProcessor
from m01.remote.queue import control
from m01.remote.queue import transaction as transactionmodule
from m01.remote.queue.transaction import QueueDataManager
from m01.remote.worker import SimpleJobWorker
from m01.remote.worker import base as workerbase
from support.waiting import until

#: Gates a job waits at before it writes, by job id; a job takes its
#: gate when it reaches it, so only its first attempt waits.
GATES = {}
#: Set by a job when it reached its gate: it runs.
STARTED = {}


@zope.interface.implementer(transaction.interfaces.IDataManager)
class LedgerWrite:
    """One entry written to ``Ledger`` by one transaction: a two-phase
    resource that prepares in ``tpc_vote`` and stores in
    ``tpc_finish``."""

    def __init__(self, ledger, entry, manager):
        self.ledger = ledger
        self.entry = entry
        self.transaction_manager = manager

    def _note(self, call):
        self.ledger.calls.append((self.entry, call))

    def abort(self, txn):
        self._note('abort')

    def tpc_begin(self, txn):
        self._note('tpc_begin')

    def commit(self, txn):
        self._note('commit')

    def tpc_vote(self, txn):
        self._note('tpc_vote')
        if self.ledger.onVote is not None:
            self.ledger.onVote()

    def tpc_finish(self, txn):
        self._note('tpc_finish')
        self.ledger.committed.append(self.entry)

    def tpc_abort(self, txn):
        self._note('tpc_abort')

    def sortKey(self):
        # Before the queue's data manager whatever its key: it votes
        # first, as a site's SQL session or ZODB connection does.
        return '!ledger:%d' % id(self)


class LedgerWriteWithSavepoints(LedgerWrite):
    """An entry of a ledger that takes savepoints (as zope.sqlalchemy's
    sessions and ZODB do)."""

    def savepoint(self):
        return LedgerSavepoint(self)


@zope.interface.implementer(transaction.interfaces.IDataManagerSavepoint)
class LedgerSavepoint:
    """Nothing to roll back: an entry is written whole or not at all (an
    entry joined after a savepoint is aborted by its rollback)."""

    def __init__(self, write):
        self.write = write

    def rollback(self):
        self.write._note('rollback')


class Ledger:
    """Another store of the site, joined to the worker's transaction:
    what its transactions committed, and every call each entry saw;
    with or without ``savepoints``."""

    def __init__(self, savepoints=True):
        self.committed = []
        self.calls = []
        self.onVote = None
        self.savepoints = savepoints

    def write(self, manager, entry):
        kind = LedgerWriteWithSavepoints if self.savepoints else LedgerWrite
        manager.get().join(kind(self, entry, manager))

    def callsOf(self, entry):
        return [call for written, call in self.calls if written == entry]


LEDGER = Ledger()


class ParentJob(Job):
    """Adds a child job, sets the title of the job ``input['target']``
    and writes an entry to the ledger, each through the worker's
    transaction; waits at its gate first, if it has one."""

    def __call__(self, remoteProcessor):
        gate = GATES.pop(self.__name__, None)
        if gate is not None:
            STARTED[self.__name__].set()
            assert gate.wait(30), 'never released'
        remoteProcessor.addJob('child', self.__name__)
        remoteProcessor.jobs[self.input['target']].title = \
            'set by %s' % self.claim
        LEDGER.write(remoteProcessor.transactionManager, self.claim)
        return 'done'


@pytest.fixture
def rp(database):
    processor = RemoteProcessor(database, leaseTime=30)
    processor.ensureIndexes()
    processor.addJobFactory('parent', ParentJob({'retryDelay': 0}))
    # Children and targets stay queued: only parents run here.
    processor.addJobFactory('child', testing.EchoJob())
    processor.addJobFactory('note', testing.EchoJob())
    processor.pauseJobFactory('child')
    processor.pauseJobFactory('note')
    LEDGER.__init__()
    GATES.clear()
    STARTED.clear()
    yield processor
    for gate in GATES.values():
        gate.set()
    processor.close()


@pytest.fixture
def oneUnit(monkeypatch):
    """A batch run here is one unit of work, however slow the machine
    (a worker commits a batch's unit after ``BATCH_SECONDS`` of work)."""
    monkeypatch.setattr(workerbase, 'BATCH_SECONDS', 3600.0)


@pytest.fixture(params=['after the run', 'at commit'])
def checks(request, monkeypatch):
    """Where a refused attempt is found: right after it ran (its claim
    checked then, every time), or at its unit's commit."""
    monkeypatch.setattr(control, 'CHECK_INTERVAL',
                        0 if request.param == 'after the run' else 3600)
    return request.param


def addParent(rp, **controls):
    target = rp.addJob('note', None, immediate=True)
    jobid = rp.addJob('parent', {'target': target}, immediate=True,
                      **controls)
    return jobid, target


def children(rp, jobid):
    return rp.jobsCollection.count_documents({'name': 'child',
                                              'input': jobid})


def title(rp, target):
    """The title the job ``target`` has, or None while it has its own."""
    title = rp.jobsCollection.find_one(
        {'_id': bson.ObjectId(target)}).get('title')
    return title if title and title.startswith('set by') else None


def status(rp, jobid):
    return rp.jobsCollection.find_one({'_id': bson.ObjectId(jobid)})[
        'status']


def unitOfWork(rp, work):
    """Run ``work(processor)`` in a worker's unit of work, committed."""
    return SimpleJobWorker(rp, waitTime=0).inUnitOfWork(work)


def startGatedAttempt(rp, jobid):
    """Run the job ``jobid`` in a worker's unit of work, in a thread, up
    to its gate; the thread, the attempt's claim and the gate."""
    gate = GATES[jobid] = threading.Event()
    STARTED[jobid] = threading.Event()

    def work():
        try:
            unitOfWork(rp, lambda p: p.processNextJob())
        except BaseException as error:
            thread.error = error
            raise
    thread = threading.Thread(target=work)
    thread.error = None
    thread.start()
    assert STARTED[jobid].wait(20), 'the job never started'
    claim = rp.jobsCollection.find_one({'_id': bson.ObjectId(jobid)})[
        'claim']
    return thread, claim, gate


def finishAttempt(thread, gate):
    gate.set()
    thread.join(20)
    assert not thread.is_alive()
    # A refused commit is no error of the worker's unit of work.
    assert thread.error is None


def interrupt(rp, jobid, how):
    """End the running attempt of ``jobid`` as ``how`` says; the next
    attempt's job, claimed, when ``how`` claims it again."""
    if how == 'cancelled':
        rp.cancelJob(jobid, immediate=True)
        assert status(rp, jobid) == 'cancelled'
        return None
    if how == 'timed out':
        until(lambda: rp.leases.stopTimedOut(), what='the timeout')
        document = rp.jobsCollection.find_one({'_id': bson.ObjectId(jobid)})
        assert document['attempts'][-1]['outcome'] == 'timed out'
        return None
    # Taken over: its lease ran out (its worker seemed gone) and another
    # worker claimed it.
    document = rp.jobsCollection.find_one({'_id': bson.ObjectId(jobid)})
    later = document['leaseExpires'] + datetime.timedelta(seconds=1)
    assert rp.recoverExpiredJobs(callTime=later) == [(jobid, 'queued')]
    second = rp.pullNextJob(callTime=later)
    assert second.__name__ == jobid
    return second


@pytest.mark.parametrize('how', ['timed out', 'cancelled', 'taken over'])
def test_a_refused_attempt_stores_nothing_it_added_or_changed(
        rp, checks, how, caplog):
    controls = {'timeout': 0.5} if how == 'timed out' else {}
    jobid, target = addParent(rp, **controls)
    thread, claim, gate = startGatedAttempt(rp, jobid)
    second = interrupt(rp, jobid, how)
    with caplog.at_level(logging.WARNING, logger='m01.remote'):
        finishAttempt(thread, gate)
    # Nothing the refused attempt added or changed is stored.
    assert children(rp, jobid) == 0
    assert title(rp, target) is None
    assert LEDGER.committed == []
    assert 'tpc_finish' not in LEDGER.callsOf(claim)
    assert {'abort', 'tpc_abort'} & set(LEDGER.callsOf(claim))
    document = rp.jobsCollection.find_one({'_id': bson.ObjectId(jobid)})
    assert document.get('output') is None
    if how == 'taken over':
        assert (document['status'], document['claim']) == (
            'processing', second.claim)
    messages = [record.getMessage() for record in caplog.records
                if jobid in record.getMessage()]
    assert any('was not stored' in message and 'discarded' in message
               for message in messages), messages
    # The next attempt stores what it adds and changes, once.
    if how == 'cancelled':
        rp.retryJob(jobid, immediate=True)
    if second is None:
        assert unitOfWork(rp, lambda p: p.processNextJob())
    else:
        assert unitOfWork(rp, lambda p: p.processJob(jobid, second))
    assert status(rp, jobid) == 'completed'
    assert children(rp, jobid) == 1
    entry, = LEDGER.committed
    assert entry != claim
    assert title(rp, target) == 'set by %s' % entry


def test_two_refused_attempts_store_no_child_and_the_third_one(rp):
    jobid, _ = addParent(rp)
    for attempt in range(2):
        if attempt:
            rp.retryJob(jobid, immediate=True)
        thread, _, gate = startGatedAttempt(rp, jobid)
        rp.cancelJob(jobid, immediate=True)
        finishAttempt(thread, gate)
    assert children(rp, jobid) == 0
    rp.retryJob(jobid, immediate=True)
    assert unitOfWork(rp, lambda p: p.processNextJob())
    assert children(rp, jobid) == 1
    assert len(LEDGER.committed) == 1


@pytest.mark.parametrize('savepoints', [True, False],
                         ids=['savepoints', 'no savepoints'])
def test_one_refused_job_of_a_batch_leaves_the_others_stored_once(
        rp, checks, savepoints, caplog, oneUnit):
    LEDGER.savepoints = savepoints
    parents = [addParent(rp) for _ in range(3)]
    ids = [jobid for jobid, _ in parents]
    jobs = rp.pullNextJobs(3)
    assert [job.__name__ for job in jobs] == ids
    refused = ids[1]
    # Cancelled while it waits for its turn in the batch.
    rp.cancelJob(refused, immediate=True)
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        SimpleJobWorker(rp, waitTime=0).runBatch(jobs)
    # None is left processing: each job was stored, or given back to
    # the queue in its place to run again.
    assert rp.jobsCollection.count_documents({'status': 'processing'}) == 0
    assert rp.leases.claims == []
    given = [jobid for jobid in ids if status(rp, jobid) == 'queued']
    if checks == 'at commit':
        # The unit aborted before writing anything.
        assert given == [ids[0], ids[2]]
        assert [children(rp, jobid) for jobid in ids] == [0, 0, 0]
        assert LEDGER.committed == []
    elif savepoints:
        # Rolled back to its savepoint: the others committed with it.
        assert given == []
    else:
        # The ledger cannot roll back to the refused job's savepoint: the
        # unit so far (the first job) was aborted; the last one ran on.
        assert given == [ids[0]]
    assert unitOfWork(rp, lambda p: p.processJobs()) == len(given)
    assert [status(rp, jobid) for jobid in ids] == [
        'completed', 'cancelled', 'completed']
    assert [children(rp, jobid) for jobid in ids] == [1, 0, 1]
    assert [title(rp, target) is not None for _, target in parents] == [
        True, False, True]
    assert len(LEDGER.committed) == 2
    messages = [record.getMessage() for record in caplog.records]
    assert sum(refused in message and 'was not stored' in message
               for message in messages) == 1
    assert sum('went back to the queue' in message
               for message in messages) == len(given)


class LateJob(ParentJob):
    """Writes as a parent does once its deadline has passed."""

    def __call__(self, remoteProcessor):
        deadline = self.picked + datetime.timedelta(seconds=self.timeout)
        until(lambda: remoteProcessor.now() > deadline, what='the deadline')
        return super().__call__(remoteProcessor)


def test_a_job_of_a_batch_returning_past_its_deadline_times_out_alone(
        rp, caplog):
    rp.addJobFactory('late', LateJob({'timeout': 0.2, 'retryDelay': 60}))
    first = addParent(rp)
    target = rp.addJob('note', None, immediate=True)
    late = rp.addJob('late', {'target': target}, immediate=True)
    last = addParent(rp)
    jobs = rp.pullNextJobs(3)
    assert [job.__name__ for job in jobs] == [first[0], late, last[0]]
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        SimpleJobWorker(rp, waitTime=0).runBatch(jobs)
    document = rp.jobsCollection.find_one({'_id': bson.ObjectId(late)})
    assert document['status'] == 'queued'
    assert document['attempts'][-1]['outcome'] == 'timed out'
    assert children(rp, late) == 0 and title(rp, target) is None
    # The others were stored by the same commit, not given back.
    assert [status(rp, jobid) for jobid in (first[0], last[0])] == [
        'completed', 'completed']
    assert [children(rp, jobid) for jobid in (first[0], last[0])] == [1, 1]
    assert len(LEDGER.committed) == 2
    messages = [record.getMessage() for record in caplog.records]
    assert not any('went back to the queue' in message
                   for message in messages)
    assert 'Job %s timed out; it is now queued.' % late in messages


def test_an_outcome_refused_while_the_others_vote_aborts_them(rp):
    jobid, target = addParent(rp)
    # Cancelled after the claims were checked, while the other
    # resources of the transaction vote: the outcome, written first,
    # is refused and the transaction aborted.
    LEDGER.onVote = lambda: rp.cancelJob(jobid, immediate=True)
    manager = transaction.TransactionManager()
    processor = rp.bind(manager)
    assert processor.processNextJob()
    with pytest.raises(AttemptRefused, match=jobid):
        manager.commit()
    manager.abort()
    assert status(rp, jobid) == 'cancelled'
    assert children(rp, jobid) == 0
    assert title(rp, target) is None
    assert LEDGER.committed == []
    calls = [call for _, call in LEDGER.calls]
    # It had voted (prepared) when the outcome was refused: aborted.
    assert calls.index('tpc_vote') < calls.index('tpc_abort')
    assert 'tpc_finish' not in calls
    assert rp.leases.claims == []


def test_an_outcome_refused_while_its_batch_votes_drops_its_own_writes(
        rp, caplog):
    parents = [addParent(rp) for _ in range(2)]
    ids = [jobid for jobid, _ in parents]
    jobs = rp.pullNextJobs(2)
    LEDGER.onVote = lambda: (LEDGER.__setattr__('onVote', None),
                             rp.cancelJob(ids[1], immediate=True))
    manager = transaction.TransactionManager()
    with caplog.at_level(logging.WARNING, logger='m01.remote'):
        with manager:
            processor = rp.bind(manager)
            for job in jobs:
                processor.processJob(job.__name__, job)
    assert [status(rp, jobid) for jobid in ids] == ['completed',
                                                     'cancelled']
    # The queue's writes of the refused job are dropped; the others'
    # are stored with their outcome.
    assert [children(rp, jobid) for jobid in ids] == [1, 0]
    assert [title(rp, target) is not None for _, target in parents] == [
        True, False]
    message, = [record.getMessage() for record in caplog.records
                if ids[1] in record.getMessage()]
    assert 'was not stored' in message
    assert 'other resources' in message


# The data manager's order, and savepoints of job changes

@pytest.mark.parametrize('alone', [True, False],
                         ids=['alone', 'beside another resource'])
def test_the_claims_are_fenced_then_the_outcomes_stored_first(alone):
    calls = []
    manager = transaction.TransactionManager()
    dm = QueueDataManager(
        manager, lambda documents: calls.append(('insert', documents)),
        lambda: calls.append('wake'),
        lambda outcomes: calls.append(('finish', outcomes)) or [],
        lambda claims: calls.append(('hold', claims)) or [])
    manager.get().join(dm)
    if not alone:
        Ledger().write(manager, 'an entry')
    start = dm.mark()
    dm.inserts.append({'_id': 'child'})
    dm.addWrite(lambda: calls.append('write'))
    dm.addOutcome('job', 'claim', {'$set': {}}, start,
                  lambda consequence: calls.append('refused'),
                  lambda: calls.append('stored'))
    manager.commit()
    # Alone, the outcome written first is the fence: no command more.
    assert calls == ([] if alone else [('hold', [('job', 'claim')])]) + [
        ('finish', [('job', 'claim', {'$set': {}})]), 'stored',
        ('insert', [{'_id': 'child'}]), 'write', 'wake']


def test_a_batch_alone_is_fenced_by_its_outcomes():
    calls = []
    manager = transaction.TransactionManager()
    dm = QueueDataManager(
        manager, lambda documents: None, lambda: None,
        lambda outcomes: calls.append('finish') or ['second'],
        lambda claims: calls.append(('hold', claims)) or ['second'])
    manager.get().join(dm)
    for oid in ('first', 'second'):
        dm.addOutcome(oid, 'claim', {'$set': {}}, dm.mark(),
                      lambda consequence: calls.append(consequence),
                      lambda: calls.append('stored'),
                      withdrawn=lambda: calls.append('withdrawn'))
    manager.commit()
    # No command more: the refused one is dropped, the other stored.
    assert calls == ['finish', 'stored', transactionmodule.DROPPED_ALONE]


def test_a_batch_beside_another_resource_is_fenced_whole():
    calls = []
    manager = transaction.TransactionManager()
    dm = QueueDataManager(
        manager, lambda documents: None, lambda: None,
        lambda outcomes: calls.append('finish') or [],
        lambda claims: calls.append(('hold', claims)) or ['second'])
    manager.get().join(dm)
    Ledger().write(manager, 'an entry')
    for oid in ('first', 'second'):
        dm.addOutcome(oid, 'claim', {'$set': {}}, dm.mark(),
                      lambda consequence: calls.append(consequence),
                      withdrawn=lambda: calls.append('withdrawn'))
    with pytest.raises(AttemptRefused, match='second'):
        manager.commit()
    manager.abort()
    assert calls == [('hold', [('first', 'claim'), ('second', 'claim')]),
                     'withdrawn', transactionmodule.ABORTED_AT_FENCE]


def test_a_savepoint_rolls_back_the_fields_set_on_a_loaded_job(
        mongomock_database):
    rp = RemoteProcessor(mongomock_database)
    rp.addJobFactory('note', testing.EchoJob())
    try:
        jobid = rp.addJob('note', None, immediate=True)
        job = rp.jobs[jobid]
        job.priority = 5
        savepoint = transaction.savepoint()
        job.title = 'discarded'
        job.priority = 7
        savepoint.rollback()
        job.maxRetries = 9
        transaction.commit()
        stored = rp.jobsCollection.find_one({'_id': bson.ObjectId(jobid)})
        assert (stored['priority'], stored.get('title'),
                stored['maxRetries']) == (5, '', 9)
        assert stored['version'] == 1       # one write for all of them
    finally:
        rp.close()


def test_a_refused_attempt_keeps_the_key_of_its_requeued_job(rp):
    rp.addJobFactory('keyed', testing.EchoJob({'timeout': 5,
                                               'retryDelay': 0}))
    jobid = rp.addJob('keyed', 'once', key='invoice-42', immediate=True)
    job = rp.pullNextJob()
    later = rp.now() + datetime.timedelta(seconds=6)
    assert rp.leases.stopTimedOut(later) == [(jobid, 'queued')]
    # Its thread returns late: refused, the job stays queued with its key.
    manager = transaction.TransactionManager()
    rp.bind(manager).processJob(jobid, job)
    with pytest.raises(AttemptRefused):
        manager.commit()
    manager.abort()
    assert status(rp, jobid) == 'queued'
    assert rp.addJob('keyed', 'twice', key='invoice-42',
                     immediate=True) == jobid
