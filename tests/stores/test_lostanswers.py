"""A lost acknowledgement never reruns a job, on every store.

Each write of a job's commit (the fence of its unit of work, its
outcome, the jobs it added, the fields it set on a loaded job) is made
by the server and its answer lost (a reset, a silent connection); the
worker retries it, finds it applied or applies it, and the job is
stored once with everything it wrote, unbatched and batched.
"""
import pymongo.errors
import pytest
import transaction

from m01.remote import testing
from m01.remote.job import Job
from m01.remote.processor import RemoteProcessor
from m01.remote.queue import control
from m01.remote.store import retried
from m01.remote.worker import SimpleJobWorker


class EditingParentJob(Job):
    """Records its run (outside the transaction), and through the
    transaction adds a child job and sets a field on a loaded job (its
    input names that job)."""

    def __call__(self, remoteProcessor):
        remoteProcessor.database.executions.insert_one(
            {'job': self.__name__})
        remoteProcessor.jobs[self.input].priority = 7
        return remoteProcessor.addJob('echo', {'parent': self.__name__})


@pytest.fixture
def rp(database):
    processor = RemoteProcessor(database, leaseTime=30.0)
    processor.ensureIndexes()
    processor.addJobFactory('parent', EditingParentJob())
    processor.addJobFactory('echo', testing.EchoJob())
    yield processor
    processor.close()


def losingAnswers(monkeypatch, writes, name, times=1):
    """Make ``writes.name`` apply its change and then lose the answer,
    the first ``times`` calls; the calls, as made."""
    original = getattr(writes, name)
    calls = []

    def write(*args):
        result = original(*args)
        calls.append(args)
        if len(calls) <= times:
            raise pymongo.errors.AutoReconnect('connection reset by peer')
        return result
    monkeypatch.setattr(writes, name, write)
    return calls


@pytest.mark.parametrize('batch', [1, 3], ids=['unbatched', 'batched'])
@pytest.mark.parametrize('name', [
    'holdClaims', 'finishMany', 'insertJobs', 'edit'])
def test_a_lost_answer_reruns_no_job(rp, monkeypatch, name, batch):
    # (A unit's outcomes, one or many, are stored by finishMany; an
    # unbatched job is fenced by the check after it ran.)
    edited = [rp.addJob('echo', 'edited %d' % n, immediate=True)
              for n in range(batch)]
    parents = [rp.addJob('parent', jobid, immediate=True)
               for jobid in edited]
    monkeypatch.setattr(rp.jobWrites, 'sleep', lambda seconds: None)
    # Each job's claim checked when it has run.
    monkeypatch.setattr(control, 'CHECK_INTERVAL', 0)
    calls = losingAnswers(monkeypatch, rp.jobWrites.writes, name)
    worker = SimpleJobWorker(rp, waitTime=0, batchSize=batch,
                             jobQuery={'name': 'parent'})
    assert worker.doProcessNextJob()
    # Made, its answer lost, then retried (jobs found stored by id are
    # not inserted again).
    assert len(calls) >= (1 if name == 'insertJobs' else 2)
    for parent, jobid in zip(parents, edited, strict=True):
        document = rp.getJobDocument(parent)
        assert document['status'] == 'completed'
        assert [a['outcome'] for a in document['attempts']] == \
            ['completed']
        # Its writes stored once: one child, the field set.
        children = list(rp.jobsCollection.find({'input.parent': parent}))
        assert [str(child['_id']) for child in children] == \
            [document['output']]
        assert rp.getJobDocument(jobid)['priority'] == 7
    assert rp.database.executions.count_documents({}) == batch
    assert rp.leases.claims == []


def test_a_write_never_answered_is_given_up(rp, monkeypatch):
    rp.addJob('echo', 'x', immediate=True)
    monkeypatch.setattr(rp.jobWrites, 'retrySeconds', 0.3)
    calls = losingAnswers(monkeypatch, rp.jobWrites.writes, 'finishMany',
                          10 ** 6)
    manager = transaction.TransactionManager()
    with pytest.raises(pymongo.errors.AutoReconnect):
        with manager:
            rp.bind(manager).processNextJob()
    assert len(calls) >= 2
    # Its outcome was applied all along: the job is not run again.
    assert rp.processNextJob() is False


def test_a_processor_retries_for_some_leases(database):
    rp = RemoteProcessor(database, leaseTime=12.5)
    assert rp.jobWrites.retrySeconds == retried.RETRY_LEASES * 12.5


@pytest.mark.parametrize('name', ['insertJobs', 'edit'])
def test_a_requests_writes_are_tried_once(rp, monkeypatch, name):
    # A transaction that ran no claimed job (a web request's) holds no
    # lease to wait on: its error is the request's at once.
    edited = rp.addJob('echo', 'edited', immediate=True)
    monkeypatch.setattr(rp.jobWrites, 'sleep', lambda seconds: None)
    calls = losingAnswers(monkeypatch, rp.jobWrites.writes, name, times=5)
    rp.addJob('echo', 'from a request')
    rp.jobs[edited].priority = 3
    with pytest.raises(pymongo.errors.AutoReconnect):
        transaction.commit()
    transaction.abort()
    assert len(calls) == 1
