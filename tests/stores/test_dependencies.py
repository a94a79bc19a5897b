"""Dependencies, chains and groups, on every store."""
import datetime

import pytest
import transaction
import zope.component
from zope.interface.verify import verifyObject

from m01.remote import testing
from m01.remote.interfaces import (
    CANCELLED,
    COMPLETED,
    ERROR,
    QUEUED,
    WAITING,
    IJobDependencies,
)
from m01.remote.processor import RemoteProcessor
from support.workflowjobs import GatherJob, StepJob


@pytest.fixture
def rp(database):
    registry = zope.component.globalregistry.BaseGlobalComponents('test')
    processor = RemoteProcessor(database, registry=registry,
                                jobWorkerArguments={'waitTime': 0.0})
    processor.ensureIndexes()
    processor.addJobFactory('step', StepJob())
    processor.addJobFactory('gather', GatherJob())
    processor.addJobFactory('error', testing.ErrorJob())
    yield processor
    transaction.abort()
    processor.close()


def test_the_dependencies_provide_their_interface(rp):
    verifyObject(IJobDependencies, rp.dependencies)


def runAll(rp):
    """Process and commit jobs until none is due; the ids run, in
    order."""
    ran = []
    while True:
        job = rp.pullNextJob()
        if job is None:
            transaction.commit()
            return ran
        rp.processJob(job.__name__, job)
        transaction.commit()
        ran.append(job.__name__)


def calls(rp):
    return [call['job'] for call in rp.database.calls.find().sort('_id')]


def test_a_dependent_waits_until_its_dependency_completed(rp):
    first = rp.addJob('step', 1)
    second = rp.addJob('step', 2, dependsOn=[first])
    transaction.commit()
    assert rp.getJobStatus(second) == WAITING
    # A claim skips a waiting job.
    job = rp.pullNextJob()
    assert job.__name__ == first
    assert rp.pullNextJob() is None
    rp.processJob(job.__name__, job)
    transaction.commit()
    assert rp.getJobStatus(second) == QUEUED
    assert 'waitingFor' not in rp.getJobDocument(second)
    assert runAll(rp) == [second]
    assert calls(rp) == [first, second]


def test_unknown_dependencies_are_refused_before_anything_is_added(rp):
    with pytest.raises(ValueError, match='Unknown job 0{24}'):
        rp.addJob('step', 1, dependsOn=['0' * 24])
    for bad in ('0' * 24, ['nope'], [], [1]):
        with pytest.raises(ValueError):
            rp.addJob('step', 1, dependsOn=bad)
    with pytest.raises(ValueError, match='onFailure'):
        rp.addJob('step', 1, dependsOn=[rp.addJob('step', 0)],
                  onFailure='maybe')
    transaction.commit()
    assert rp.jobsCollection.count_documents({}) == 1


def test_a_completed_dependency_counts_at_once(rp):
    first = rp.addJob('step', 1, immediate=True)
    assert runAll(rp) == [first]
    second = rp.addJob('step', 2, dependsOn=[first], immediate=True)
    assert rp.getJobStatus(second) == QUEUED


def test_a_dependency_ending_before_its_dependent_is_stored(rp):
    first = rp.addJob('step', 1, immediate=True)
    second = rp.addJob('step', 2, dependsOn=[first])
    # The dependency ends in another transaction before this one commits.
    manager = transaction.TransactionManager()
    bound = rp.bind(manager)
    job = bound.pullNextJob()
    bound.processJob(job.__name__, job)
    manager.commit()
    transaction.commit()
    assert rp.getJobStatus(second) == QUEUED


def test_chain_runs_in_order(rp):
    chain = rp.addChain([('step', n) for n in range(4)])
    transaction.commit()
    assert [rp.getJobStatus(j) for j in chain['jobs']] == \
        [QUEUED, WAITING, WAITING, WAITING]
    assert chain['callback'] is None
    assert runAll(rp) == chain['jobs']
    assert [rp.getJobResult(j) for j in chain['jobs']] == [0, 1, 2, 3]
    document = rp.getJobDocument(chain['jobs'][2])
    assert str(document['workflow']) == chain['workflow']
    assert [str(oid) for oid in document['dependsOn']] == \
        [chain['jobs'][1]]


def test_a_failure_cancels_the_rest_of_a_chain_with_a_message(rp):
    chain = rp.addChain([('step', 1), ('error', None), ('step', 3),
                         ('step', 4)])
    transaction.commit()
    runAll(rp)
    first, failed, third, fourth = chain['jobs']
    assert [rp.getJobStatus(j) for j in chain['jobs']] == \
        [COMPLETED, ERROR, CANCELLED, CANCELLED]
    assert failed in rp.getJobErrors(third)[-1]
    assert 'ended in error' in rp.getJobErrors(third)[-1]
    assert third in rp.getJobErrors(fourth)[-1]
    assert 'was cancelled' in rp.getJobErrors(fourth)[-1]
    assert calls(rp) == [first]


def test_run_anyway_runs_after_a_failure(rp):
    failing = rp.addJob('error')
    after = rp.addJob('step', 2, dependsOn=[failing], onFailure='run')
    transaction.commit()
    assert runAll(rp) == [failing, after]
    assert rp.getJobStatus(after) == COMPLETED


def test_an_already_failed_dependency_cancels_at_once(rp):
    failing = rp.addJob('error', immediate=True)
    runAll(rp)
    dependent = rp.addJob('step', 2, dependsOn=[failing], immediate=True)
    assert rp.getJobStatus(dependent) == CANCELLED
    assert failing in rp.getJobErrors(dependent)[0]


def test_cancelling_a_dependency_cancels_its_dependents(rp):
    first = rp.addJob('step', 1, immediate=True)
    second = rp.addJob('step', 2, dependsOn=[first], immediate=True)
    third = rp.addJob('step', 3, dependsOn=[second], immediate=True)
    rp.cancelJob(first, immediate=True)
    assert rp.getJobStatus(second) == CANCELLED
    assert rp.getJobStatus(third) == CANCELLED
    # A waiting job can be cancelled itself.
    other = rp.addJob('step', 4, immediate=True)
    waiting = rp.addJob('step', 5, dependsOn=[other], immediate=True)
    rp.cancelJob(waiting, immediate=True)
    assert rp.getJobStatus(waiting) == CANCELLED
    assert runAll(rp) == [other]


def test_group_callback_runs_once_after_every_member(rp):
    group = rp.addGroup([('step', n) for n in range(1, 6)],
                        callback=('gather', 'album'))
    transaction.commit()
    assert rp.getJobStatus(group['callback']) == WAITING
    ran = runAll(rp)
    assert ran[-1] == group['callback']
    assert sorted(ran[:-1]) == sorted(group['jobs'])
    assert rp.getJobResult(group['callback']) == 15
    gathered = list(rp.database.calls.find({'gather': True}))
    assert len(gathered) == 1
    assert gathered[0]['statuses'] == [COMPLETED] * 5


def test_group_callback_runs_after_a_failed_member_by_default(rp):
    group = rp.addGroup([('step', 1), ('error', None)],
                        callback={'name': 'gather', 'input': None})
    transaction.commit()
    runAll(rp)
    assert rp.getJobStatus(group['callback']) == COMPLETED
    assert rp.getDependencyResults(group['callback'])[1]['status'] == ERROR


def test_a_workflow_is_added_whole_or_not_at_all(rp):
    with pytest.raises(ValueError, match='nope'):
        rp.addGroup([('step', 1), ('nope', 2)], callback=('gather', None))
    with pytest.raises(ValueError):
        rp.addChain([])
    with pytest.raises(ValueError, match='field'):
        rp.addChain([{'name': 'step', 'key': 'k'}])
    transaction.commit()
    assert rp.jobsCollection.count_documents({}) == 0


def test_concurrent_releases_queue_the_callback_exactly_once(rp):
    # Two members ended; their releases interleave in every order.
    group = rp.addGroup([('step', 1), ('step', 2)], callback=('gather', 0))
    transaction.commit()
    first, second = [rp.jobsCollection.find_one({'_id': oid})['_id']
                     for oid in map(__import__('bson').ObjectId,
                                    group['jobs'])]
    callback = rp.getJobDocument(group['callback'])['_id']
    dependencies = rp.dependencies
    outcomes = [dependencies.release(callback, first, COMPLETED),
                dependencies.release(callback, first, COMPLETED),
                dependencies.release(callback, second, COMPLETED),
                dependencies.release(callback, second, COMPLETED)]
    assert outcomes == [WAITING, None, QUEUED, None]


def test_upkeep_repairs_a_release_missed_by_a_crash(rp):
    group = rp.addGroup([('step', 1), ('step', 2)], callback=('gather', 0))
    transaction.commit()
    # A process stored the members' outcomes and died before releasing.
    ended = rp.dependencies.endedSafely
    rp.dependencies.endedSafely = lambda oid, status: 0
    try:
        assert sorted(runAll(rp)) == sorted(group['jobs'])
    finally:
        rp.dependencies.endedSafely = ended
    assert rp.getJobStatus(group['callback']) == WAITING
    # Two releases: one pulls a member, the other queues the callback.
    assert rp.dependencies.tidy(rp.now()) == 2
    assert rp.getJobStatus(group['callback']) == QUEUED
    assert rp.dependencies.tidy(rp.now()) == 0
    assert runAll(rp) == [group['callback']]


def test_upkeep_goes_round_the_waiting_jobs_in_bounded_steps(rp):
    rp.dependencies.sweepLimit = 2
    first = rp.addJob('step', 1, immediate=True)
    waiting = [rp.addJob('step', n, dependsOn=[first], immediate=True)
               for n in range(5)]
    rp.dependencies.endedSafely = lambda oid, status: 0
    runAll(rp)
    released = [rp.dependencies.tidy(rp.now()) for _ in range(3)]
    assert released == [2, 2, 1]
    assert {rp.getJobStatus(j) for j in waiting} == {QUEUED}


def test_a_removed_dependency_cancels_its_dependent_at_upkeep(rp):
    first = rp.addJob('step', 1, immediate=True)
    second = rp.addJob('step', 2, dependsOn=[first], immediate=True)
    rp.removeJob(first)
    rp.dependencies.tidy(rp.now())
    assert rp.getJobStatus(second) == CANCELLED
    assert 'was removed' in rp.getJobErrors(second)[0]


def test_dependents_are_found_by_their_dependsOn_field(rp):
    first = rp.addJob('step', 1, immediate=True)
    second = rp.addJob('step', 2, dependsOn=[first], immediate=True)
    assert rp.dependencies.dependents(first) == [(second, 'step', WAITING)]
    assert rp.dependencies.dependencies(rp.getJobDocument(second)) == (
        [(first, 'step', QUEUED)], 1)


def test_an_immediate_job_cannot_depend_on_one_not_stored_yet(rp):
    first = rp.addJob('step', 1)
    with pytest.raises(ValueError, match='not immediate'):
        rp.addJob('step', 2, dependsOn=[first], immediate=True)


def test_a_dependency_already_running_is_released_by_upkeep(rp):
    # Claimed before its dependent was added, the job's run does not know
    # of it: the lease keeper's upkeep releases the dependent.
    first = rp.addJob('step', 1, immediate=True)
    job = rp.pullNextJob()
    second = rp.addJob('step', 2, dependsOn=[first], immediate=True)
    assert rp.getJobDocument(first)['hasDependents'] is True
    rp.processJob(job.__name__, job)
    transaction.commit()
    assert rp.getJobStatus(second) == WAITING
    assert rp.dependencies.tidy(rp.now()) == 1
    assert rp.getJobStatus(second) == QUEUED


def test_a_job_lost_for_the_last_time_cancels_its_dependents(rp):
    first = rp.addJob('step', 1, immediate=True)
    second = rp.addJob('step', 2, dependsOn=[first], immediate=True)
    job = rp.pullNextJob()
    assert job.__name__ == first
    # Its worker died on its last attempt: the lease keeper ends it.
    rp.jobsCollection.update_one(
        {'_id': rp.getJobDocument(first)['_id']},
        {'$set': {'leaseExpires': rp.now() - datetime.timedelta(hours=1),
                  'retryCounter': 2, 'maxRetries': 3}})
    rp.leases.discard(first)
    assert rp.recoverExpiredJobs() == [(first, ERROR)]
    assert rp.getJobStatus(second) == CANCELLED
    assert first in rp.getJobErrors(second)[0]
