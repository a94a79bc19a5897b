"""The processor's contract, on both stores."""
import datetime
import inspect

import bson
import pytest
import transaction
import zope.component
import zope.interface
from zope.interface.verify import verifyObject

from m01.remote import interfaces, testing
from m01.remote.job import AttemptRefused, DuplicateJobError, Job
from m01.remote.processor import RemoteProcessor
from m01.remote.queue import updates
from m01.remote.worker import MultiJobWorker, SimpleJobWorker

UTC = datetime.timezone.utc


@pytest.fixture
def registry():
    return zope.component.globalregistry.BaseGlobalComponents('test')


@pytest.fixture
def rp(database, registry):
    processor = RemoteProcessor(database, registry=registry,
                                jobWorkerArguments={'waitTime': 0.0})
    processor.ensureIndexes()
    processor.addJobFactory('echo', testing.EchoJob())
    processor.addJobFactory('fatal', testing.FatalErrorJob(
        {'maxRetries': 2, 'retryDelay': 5}))
    yield processor
    processor.close()


class RecordingJob(Job):
    """Stores how often it ran in a collection of its own."""

    def __call__(self, remoteProcessor):
        remoteProcessor.database.runs.insert_one({'job': self.__name__})
        return 'ran'


def test_interfaces_are_provided(rp):
    verifyObject(interfaces.IRemoteProcessor, rp)
    verifyObject(interfaces.IJobContainer, rp.jobs)
    verifyObject(interfaces.IJobFactoryContainer, rp.jobFactories)
    verifyObject(interfaces.IScheduler, rp.scheduler)
    jobid = rp.addJob('echo', 1, immediate=True)
    verifyObject(interfaces.IJob, rp.jobs[jobid])
    verifyObject(interfaces.IJob, rp.getJobFactory('echo'))


def test_every_public_member_of_the_processor_is_in_its_interface(rp):
    documented = set(interfaces.IRemoteProcessor.names(all=True))
    public = {name for name in dir(rp) if not name.startswith('_')}
    assert public - documented == set()
    # addJob's parameters are all in its contract.
    signature = interfaces.IRemoteProcessor['addJob'].getSignatureInfo()
    assert signature['positional'] + tuple(signature['kwargs'] or ()) == \
        tuple(inspect.signature(rp.addJob).parameters)
    for parameter in inspect.signature(rp.addJob).parameters:
        if parameter not in ('name', 'input'):
            assert '``%s``' % parameter in \
                interfaces.IRemoteProcessor['addJob'].__doc__


def test_unknown_factory_names_the_known_ones(rp):
    with pytest.raises(ValueError) as info:
        rp.addJob('nope')
    assert "'nope'" in str(info.value)
    assert "'echo'" in str(info.value) and "'fatal'" in str(info.value)


@pytest.mark.parametrize('bad', [{1, 2}, object(), {'k': {3}},
                                 'x' * (16 * 1024 * 1024 + 1)])
def test_unstorable_input_is_refused_at_addJob(rp, bad):
    with pytest.raises(ValueError, match='cannot be stored|16 MB'):
        rp.addJob('echo', bad)
    transaction.commit()
    assert rp.jobsCollection.count_documents({}) == 0


def test_commit_stores_and_abort_discards(rp):
    kept = rp.addJob('echo', 'kept')
    assert rp.getJobStatus(kept) == 'queued'   # visible before commit
    assert rp.jobsCollection.count_documents({}) == 0
    transaction.commit()
    dropped = rp.addJob('echo', 'dropped')
    transaction.abort()
    assert rp.jobs.keys() == [kept]
    with pytest.raises(KeyError):
        rp.getJobStatus(dropped)


def test_jobs_of_one_transaction_are_inserted_together(rp, monkeypatch):
    calls = []
    original = rp.jobWrites.strategy.insertJobs
    monkeypatch.setattr(rp.jobWrites.strategy, 'insertJobs',
                        lambda docs: calls.append(len(docs)) or
                        original(docs))
    for n in range(100):
        rp.addJob('echo', n)
    transaction.commit()
    assert calls == [100]
    assert rp.jobsCollection.count_documents({'status': 'queued'}) == 100


def test_immediate_path_needs_no_commit(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    transaction.abort()
    assert rp.getJobStatus(jobid) == 'queued'
    rp.cancelJob(jobid, immediate=True)
    transaction.abort()
    assert rp.getJobStatus(jobid) == 'cancelled'


def test_duplicate_job_id_is_refused(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    with pytest.raises(DuplicateJobError):
        rp.addJob('echo', 2, immediate=True, jobid=jobid)
    rp.addJob('echo', 3, jobid=jobid)
    with pytest.raises(DuplicateJobError):
        transaction.commit()
    transaction.abort()
    assert rp.getJobResult(jobid) is None
    assert rp.jobs[jobid].input == 1


def test_cancel_of_a_stored_job_joins_the_transaction(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    rp.cancelJob(jobid)
    assert rp.getJobStatus(jobid) == 'cancelled'   # this transaction
    transaction.abort()
    assert rp.getJobStatus(jobid) == 'queued'
    rp.cancelJob(jobid)
    transaction.commit()
    assert rp.getJobStatus(jobid) == 'cancelled'
    with pytest.raises(ValueError,
                       match='only waiting, queued or processing'):
        rp.cancelJob(jobid)


def test_a_job_cancelled_while_running_stays_cancelled(rp):
    class CancelsItself(Job):
        def __call__(self, remoteProcessor):
            remoteProcessor.cancelJob(self.__name__, immediate=True)
            return 'late'

    rp.addJobFactory('self-cancel', CancelsItself())
    jobid = rp.addJob('self-cancel', immediate=True)
    assert rp.processNextJob() is True
    with pytest.raises(AttemptRefused):
        transaction.commit()
    transaction.abort()
    assert rp.getJobStatus(jobid) == 'cancelled'
    assert rp.getJobResult(jobid) is None


def test_retry_counting_and_retry_time(rp):
    jobid = rp.addJob('fatal', immediate=True)
    assert rp.processNextJob() is True
    transaction.commit()
    job = rp.jobs[jobid]
    assert (job.status, job.retryCounter, len(job.errors)) == (
        'queued', 1, 1)
    assert job.retryTime - job.queued == datetime.timedelta(seconds=5)
    assert rp.processNextJob() is False   # not before retryTime
    assert rp.processNextJob(callTime=job.retryTime) is True
    transaction.commit()
    job = rp.jobs[jobid]
    assert (job.status, job.retryCounter) == ('error', 2)
    assert len(job.errors) == len(job.tracebacks) == 2
    assert 'RuntimeError: An error occurred.' in job.tracebacks[-1]


def test_job_error_ends_at_once(rp):
    rp.addJobFactory('error', testing.ErrorJob())
    jobid = rp.addJob('error', immediate=True)
    rp.processNextJob()
    transaction.commit()
    assert rp.getJobStatus(jobid) == 'error'
    assert len(rp.getJobErrors(jobid)) == 1


def test_failed_job_work_is_rolled_back_but_error_kept(rp):
    class AddsThenFails(Job):
        def __call__(self, remoteProcessor):
            remoteProcessor.addJob('echo', 'side effect')
            raise RuntimeError('boom')

    rp.addJobFactory('adds-then-fails', AddsThenFails())
    jobid = rp.addJob('adds-then-fails', immediate=True)
    rp.processNextJob()
    transaction.commit()
    assert rp.jobsCollection.count_documents({'name': 'echo'}) == 0
    assert rp.getJobErrors(jobid)[0].endswith('] boom')


def test_unstorable_output_is_an_error(rp):
    class BadOutput(Job):
        def __call__(self, remoteProcessor):
            return {1, 2}

    rp.addJobFactory('bad-output', BadOutput({'maxRetries': 1}))
    jobid = rp.addJob('bad-output', immediate=True)
    rp.processNextJob()
    transaction.commit()
    assert rp.getJobStatus(jobid) == 'error'
    assert 'output cannot be stored' in rp.getJobErrors(jobid)[0]


def test_a_job_run_elsewhere_has_its_outcome_stored_here(rp):
    # How the process worker runs a job: a call instead of the job.
    done = rp.addJob('echo', 'here', immediate=True)
    rp.runner.run(rp.pullNextJob(), rp, rp.pending,
                  call=lambda job, processor: 'there: %s' % job.input)
    transaction.commit()
    assert rp.getJobResult(done) == 'there: here'
    failed = rp.addJob('fatal', immediate=True)
    error = RuntimeError('far away')
    error.formattedTraceback = 'the traceback from there'

    def fail(job, processor):
        raise error
    rp.runner.run(rp.pullNextJob(), rp, rp.pending, call=fail)
    transaction.commit()
    document = rp.jobsCollection.find_one({'_id': bson.ObjectId(failed)})
    assert document['status'] == 'queued'
    assert document['errors'][0].endswith('] far away')
    assert document['tracebacks'] == ['the traceback from there']
    assert document['attempts'][0]['traceback'] == \
        'the traceback from there'


def test_error_message_adapter_can_be_replaced(rp, registry):
    @zope.interface.implementer(interfaces.IJobErrorMessage)
    class ShortMessage:
        def __init__(self, job, error):
            self.message = '%s failed: %s' % (job.name, error)

    registry.registerAdapter(ShortMessage,
                             (interfaces.IJob, zope.interface.Interface),
                             interfaces.IJobErrorMessage)
    jobid = rp.addJob('fatal', immediate=True)
    rp.processNextJob()
    transaction.commit()
    assert rp.getJobErrors(jobid) == ['fatal failed: An error occurred.']


def test_default_message_format(rp):
    testing.setUpJobErrorMessageAdapter(rp.registry)
    jobid = rp.addJob('fatal', immediate=True)
    rp.processNextJob()
    transaction.commit()
    message = rp.getJobErrors(jobid)[0]
    stamp, text = message[1:].split('] ', 1)
    parsed = datetime.datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == datetime.timedelta(0)
    assert text == 'An error occurred.'


def test_remove_jobs_counts_per_status(rp):
    done = rp.addJob('echo', 1, immediate=True)
    rp.processJob(done)
    transaction.commit()
    cancelled = rp.addJob('echo', 2, immediate=True)
    rp.cancelJob(cancelled, immediate=True)
    queued = rp.addJob('echo', 3, immediate=True)
    assert rp.removeJobs() == {'cancelled': 1, 'completed': 1, 'error': 0}
    assert rp.jobs.keys() == [queued]
    with pytest.raises(ValueError, match='Unknown job status'):
        rp.removeJobs(['bogus'])
    assert rp.jobs.keys() == [queued]


def test_retry_job_requeues_with_history(rp):
    jobid = rp.addJob('fatal', immediate=True)
    rp.processNextJob()
    transaction.commit()
    rp.processNextJob(callTime=rp.jobs[jobid].retryTime)
    transaction.commit()
    assert rp.getJobStatus(jobid) == 'error'
    rp.retryJob(jobid, immediate=True)
    job = rp.jobs[jobid]
    assert (job.status, job.retryCounter, len(job.errors)) == (
        'queued', 0, 2)
    with pytest.raises(ValueError, match='only jobs in error or cancelled'):
        rp.retryJob(jobid)


def test_datetimes_are_utc_milliseconds(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    job = rp.jobs[jobid]
    for value in (job.created, job.queued, job.retryTime):
        assert value.tzinfo is not None
        assert value.utcoffset() == datetime.timedelta(0)
        assert value.microsecond % 1000 == 0


def test_job_query_selects_jobs(rp):
    rp.addJob('echo', 'a', immediate=True)
    wanted = rp.addJob('fatal', immediate=True)
    job = rp.pullNextJob(jobQuery={'name': 'fatal'})
    assert job.__name__ == wanted
    assert rp.pullNextJob(jobQuery={'name': 'fatal'}) is None


def test_bad_ids_are_not_found(rp):
    for bad in ('nope', '', '0' * 24, None):
        assert rp.jobs.get(bad) is None
        with pytest.raises(KeyError):
            rp.getJobStatus(bad)


def test_claim_is_exclusive_and_stale_outcome_refused(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    first = rp.pullNextJob()
    assert first.status == 'processing' and first.claim
    assert rp.pullNextJob() is None
    # The lease runs out: the job goes back to the queue as a failure.
    later = first.leaseExpires + datetime.timedelta(seconds=1)
    assert rp.recoverExpiredJobs(callTime=later) == [(jobid, 'queued')]
    job = rp.jobs[jobid]
    assert job.retryCounter == 1
    assert 'stopped answering' in job.errors[0]
    second = rp.pullNextJob(callTime=job.retryTime)
    assert second.claim != first.claim
    # The first worker wakes up and tries to store its outcome.
    assert not rp.jobWrites.finish(
        bson.ObjectId(jobid), first.claim,
        updates.completeUpdate(first, 'stale', rp.now()))
    rp.processJob(jobid, second)
    transaction.commit()
    assert rp.getJobStatus(jobid) == 'completed'
    assert rp.getJobResult(jobid) == 1


def test_lease_recovery_ends_in_error_when_retries_are_spent(rp):
    jobid = rp.addJob('fatal', immediate=True)   # maxRetries 2
    now = rp.now()
    for attempt in range(2):
        job = rp.pullNextJob(callTime=now)
        assert job is not None, attempt
        now = job.leaseExpires + datetime.timedelta(seconds=1)
        rp.recoverExpiredJobs(callTime=now)
        now += datetime.timedelta(seconds=5)   # the job's retryDelay
    job = rp.jobs[jobid]
    assert (job.status, job.retryCounter, len(job.errors)) == (
        'error', 2, 2)


def test_renewed_lease_is_not_recovered(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    job = rp.pullNextJob()
    rp.leases.add(jobid, job.claim)
    renewedUntil = job.leaseExpires + datetime.timedelta(seconds=600)
    assert rp.jobWrites.extendLeases(rp.leases.claims, renewedUntil) == 1
    check = job.leaseExpires + datetime.timedelta(seconds=1)
    assert rp.recoverExpiredJobs(callTime=check) == []
    assert rp.getJobStatus(jobid) == 'processing'


@pytest.mark.parametrize('end', ['commit', 'abort'])
def test_lease_is_renewed_until_the_outcome_is_committed(rp, end):
    jobid = rp.addJob('echo', 1, immediate=True)
    other = rp.addJob('echo', 2, immediate=True)
    job = rp.pullNextJob()
    otherJob = rp.pullNextJob()
    assert {job.__name__, otherJob.__name__} == {jobid, other}
    rp.leases.add(otherJob.__name__, otherJob.claim)
    rp.processJob(job.__name__, job)
    # Run, not stored yet: the lease keeper must still renew it.
    assert job.claim in rp.leases.claims
    getattr(transaction, end)()
    assert rp.leases.claims == [otherJob.claim]
    expected = 'completed' if end == 'commit' else 'processing'
    assert rp.getJobStatus(job.__name__) == expected


def test_a_late_release_keeps_a_newer_claim(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    rp.leases.add(jobid, 'new-claim')
    rp.leases.discard(jobid, 'old-claim')
    assert rp.leases.claims == ['new-claim']
    rp.leases.discard(jobid)
    assert rp.leases.claims == []


def test_committed_job_wakes_an_idle_local_worker(rp):
    # waitTime is an hour: only the wake-up can make this job run.
    rp.jobWorkerArguments = {'waitTime': 3600}
    rp.startProcessor()
    try:
        for _ in range(3):   # the worker must also go back to waiting
            jobid = rp.addJob('echo', 'wake')
            transaction.commit()
            testing.waitForJobs(rp, [jobid], timeout=10)
    finally:
        rp.stopProcessor()
    assert rp.getJobStatus(jobid) == 'completed'


def test_stop_processor_lets_running_jobs_finish(rp):
    rp.addJobFactory('sleep', testing.SleepJob())
    rp.jobWorkerFactory = MultiJobWorker
    rp.jobWorkerArguments = {'waitTime': 0.0, 'maxThreads': 2}
    ids = [rp.addJob('sleep', (0.5, n)) for n in range(2)]
    transaction.commit()
    rp.startProcessor()
    deadline = testing.waitForJobs(rp, ids, stati=('processing',),
                                   timeout=10)
    assert set(deadline.values()) == {'processing'}
    rp.stopProcessor(timeout=10)
    assert [rp.getJobStatus(jobid) for jobid in ids] == ['completed'] * 2
    assert not rp.isProcessing


def test_workers_provide_their_interfaces(rp):
    from m01.remote.worker import SchedulerWorker, SimpleJobWorker
    verifyObject(interfaces.IJobWorker, SimpleJobWorker(rp))
    verifyObject(interfaces.IJobWorker, MultiJobWorker(rp, maxThreads=2))
    verifyObject(interfaces.ISchedulerWorker, SchedulerWorker(rp))


@pytest.mark.parametrize('arguments', [{'maxThreads': 0},
                                       {'maxThreads': 'two'},
                                       {'waitTime': -1}])
def test_bad_worker_arguments_are_refused(rp, arguments):
    with pytest.raises(ValueError):
        MultiJobWorker(rp, **arguments)


def test_the_modules_of_the_known_job_classes():
    from m01.remote.job import jobClassModules
    modules = jobClassModules()
    assert modules == sorted(set(modules))
    assert {'m01.remote.testing', __name__} <= set(modules)


def test_jobs_of_unknown_classes_can_be_listed_not_run(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    rp.jobsCollection.update_one({'_id': bson.ObjectId(jobid)},
                                 {'$set': {'jobClass': 'gone.Module.Job'}})
    assert rp.jobs[jobid].input == 1          # the pages can show it
    assert rp.jobs.countByStatus()['queued'] == 1
    assert rp.pullNextJob() is None
    job = rp.jobs[jobid]
    assert (job.status, job.retryCounter) == ('queued', 1)
    assert 'gone.Module.Job' in job.errors[0]


class ManagerJob(Job):
    """Returns whether it ran in the thread's default transaction manager,
    and adds a follow-up job through the processor it was given."""

    def __call__(self, remoteProcessor):
        remoteProcessor.addJob('echo', 'follow-up')
        return remoteProcessor.transactionManager is transaction.manager


@pytest.mark.parametrize('kind', ['simple', 'multi'])
def test_worker_steps_leave_the_threads_transaction_alone(rp, kind):
    rp.addJobFactory('manager', ManagerJob())
    jobid = rp.addJob('manager', immediate=True)
    # The caller's own work, not committed, in the thread's transaction.
    mine = rp.addJob('echo', 'mine')
    if kind == 'simple':
        assert SimpleJobWorker(rp, waitTime=0).doProcessNextJob()
    else:
        worker = MultiJobWorker(rp, maxThreads=1)
        job = worker.doPullNextJob()
        worker.doProcessJob(job.__name__)
    # The step committed its own transaction: the job's outcome and the
    # job it added are stored, and it did not run in the thread's manager.
    assert rp.jobsCollection.find_one({'_id': bson.ObjectId(jobid)})[
        'output'] is False
    assert rp.jobsCollection.count_documents({'input': 'follow-up'}) == 1
    # The caller's transaction was neither committed nor aborted by it.
    assert [d['input'] for d in rp.pendingJobDocuments()] == ['mine']
    assert rp.jobsCollection.count_documents(
        {'_id': bson.ObjectId(mine)}) == 0
    transaction.abort()
    assert rp.jobsCollection.count_documents({'input': 'mine'}) == 0


class StrayJob(Job):
    """Uses the thread's default transaction, not its worker's: begins
    one (``input`` 'begin') or adds a hook to the one open ('hook')."""

    def __call__(self, remoteProcessor):
        if self.input == 'hook':
            transaction.get().addAfterCommitHook(lambda committed: None)
        elif self.input == 'begin':
            transaction.get()


@pytest.mark.parametrize('use, opened, warned', [
    ('begin', False, True), ('hook', True, True), ('none', False, False),
    ('none', True, False)])
def test_a_job_using_the_threads_transaction_is_warned_of(
        rp, caplog, use, opened, warned):
    rp.addJobFactory('stray', StrayJob())
    rp.addJob('stray', use, immediate=True)
    transaction.abort()
    if opened:
        transaction.get()            # the caller's, open before the job
    with caplog.at_level('WARNING', logger='m01.remote'):
        assert SimpleJobWorker(rp, waitTime=0).doProcessNextJob()
    stray = [record for record in caplog.records
             if "joined the thread's default transaction" in
             record.getMessage()]
    assert len(stray) == (1 if warned else 0)
    transaction.abort()


def test_a_bound_processor_shares_everything_but_its_transactions(rp):
    manager = transaction.TransactionManager(explicit=True)
    bound = rp.bind(manager)
    verifyObject(interfaces.IRemoteProcessor, bound)
    assert (bound.leases, bound.jobWrites, bound.scheduler) == \
        (rp.leases, rp.jobWrites, rp.scheduler)
    with manager:
        jobid = bound.addJob('echo', 'bound')
        assert bound.getJobStatus(jobid) == 'queued'
        with pytest.raises(KeyError):
            rp.getJobStatus(jobid)   # not in the thread's transaction
    transaction.abort()
    assert rp.getJobStatus(jobid) == 'queued'   # committed by its manager
