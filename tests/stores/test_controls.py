"""The job controls, on every store: delayed, prioritised, unique,
timed-out, cancellable, observable jobs, retry back-off, attempt
history, pauses and concurrency limits, and changed jobs written at
commit."""
import datetime
import threading
import time

import bson
import pytest
import transaction
import transaction.interfaces

from m01.remote import clock, limits, testing
from m01.remote.job import (
    AttemptRefused,
    ConflictError,
    DuplicateJobKeyError,
    Job,
    JobCancelled,
)
from m01.remote.processor import RemoteProcessor
from m01.remote.queue import control, updates
from m01.remote.queue.keys import JobKeys
from m01.remote.queue.slots import ConcurrencySlots
from support.jobs import (
    CheckpointJob,
    OverlapJob,
    drainUntilDone,
    mostAtOnce,
)

UTC = datetime.timezone.utc
SECOND = datetime.timedelta(seconds=1)


@pytest.fixture
def rp(database):
    processor = RemoteProcessor(database, leaseTime=30)
    processor.ensureIndexes()
    processor.addJobFactory('echo', testing.EchoJob())
    yield processor
    processor.close()


def stored(rp, jobid):
    return rp.jobsCollection.find_one({'_id': bson.ObjectId(jobid)})


def later(rp, seconds):
    return rp.now() + datetime.timedelta(seconds=seconds)


# delayed jobs

def test_a_delayed_job_is_not_claimed_before_its_time(rp):
    jobid = rp.addJob('echo', 'later', immediate=True, delay=60)
    now = rp.now()
    assert rp.pullNextJob() is None
    job = rp.pullNextJob(callTime=now + 61 * SECOND)
    assert job.__name__ == jobid


def test_a_job_at_a_time(rp):
    at = datetime.datetime.now(UTC) + datetime.timedelta(hours=2)
    jobid = rp.addJob('echo', 'at', immediate=True, at=at)
    assert abs(stored(rp, jobid)['retryTime'] - at) < SECOND
    assert rp.pullNextJob(callTime=at - SECOND) is None
    assert rp.pullNextJob(callTime=at + SECOND).__name__ == jobid


@pytest.mark.parametrize('arguments, message', [
    ({'delay': -1}, 'delay must be'),
    ({'delay': 'soon'}, 'delay must be'),
    ({'at': datetime.datetime(2030, 1, 1)}, 'timezone-aware'),
    ({'at': datetime.datetime(2030, 1, 1, tzinfo=UTC), 'delay': 5},
     'not both'),
    ({'priority': 1.5}, 'priority must be'),
    ({'priority': 10 ** 7}, 'priority must be'),
    ({'timeout': 0}, 'timeout must be'),
    ({'key': ''}, 'job key'),
    ({'key': 'k', 'onDuplicateKey': 'ignore'}, 'onDuplicateKey'),
])
def test_bad_controls_are_refused_and_nothing_stored(rp, arguments,
                                                     message):
    with pytest.raises(ValueError, match=message):
        rp.addJob('echo', 1, immediate=True, **arguments)
    assert rp.jobsCollection.count_documents({}) == 0


# priorities

def test_the_highest_priority_is_claimed_first_then_the_oldest(rp):
    rp.addJobFactory('urgent', testing.EchoJob({'priority': 5}))
    low = rp.addJob('echo', 'low', immediate=True, priority=-1)
    first = rp.addJob('echo', 'first', immediate=True)
    urgent = rp.addJob('urgent', 'urgent', immediate=True)
    second = rp.addJob('echo', 'second', immediate=True)
    top = rp.addJob('echo', 'top', immediate=True, priority=9)
    order = [rp.pullNextJob().__name__ for _ in range(5)]
    assert order == [top, urgent, first, second, low]
    assert rp.pullNextJob() is None


def test_an_index_serves_the_claim_order(rp, store_uri):
    if store_uri.startswith('mongomock'):
        pytest.skip('the embedded store keeps an index of its own')
    indexes = rp.jobsCollection.index_information()
    keys = [field for field, _ in indexes['m01_remote_claim']['key']]
    assert keys == ['status', 'active', 'priority', 'queued', '_id',
                    'retryTime']


# retry back-off

def test_exponential_backoff_with_a_cap_is_visible_on_the_job(rp):
    rp.addJobFactory('flaky', testing.FatalErrorJob({
        'maxRetries': 5, 'retryDelay': 2, 'retryBackoff': 'exponential',
        'retryDelayMax': 5}))
    jobid = rp.addJob('flaky', immediate=True)
    delays, callTime = [], rp.now()
    for _ in range(4):
        job = rp.pullNextJob(callTime=callTime)
        rp.processJob(job.__name__, job)
        transaction.commit()
        document = stored(rp, jobid)
        callTime = document['retryTime']
        delays.append((document['retryTime'] - document['queued'])
                      .total_seconds())
    assert delays == [2, 4, 5, 5]


def test_jitter_moves_the_delay_within_its_bounds():
    document = {'retryDelay': 100, 'retryJitter': 0.25}
    low = updates.retryDelayFor(document, 1, lambda: 0.0)
    high = updates.retryDelayFor(document, 1, lambda: 1.0)
    assert (low, high) == (75, 125)
    delays = {updates.retryDelayFor(document, 1) for _ in range(50)}
    assert len(delays) > 1 and all(75 <= d <= 125 for d in delays)


def test_a_bad_backoff_is_refused():
    for data in ({'retryBackoff': 'linear'}, {'retryJitter': 2},
                 {'retryDelayMax': -1}):
        with pytest.raises(ValueError):
            testing.EchoJob(data)


# unique jobs

def test_a_live_key_returns_its_job_or_refuses_a_second(rp):
    first = rp.addJob('echo', 1, key='invoice-42')
    # Pending in this transaction, and found by a second add.
    assert rp.addJob('echo', 2, key='invoice-42') == first
    transaction.commit()
    assert rp.addJob('echo', 3, key='invoice-42', immediate=True) == first
    with pytest.raises(DuplicateJobKeyError) as info:
        rp.addJob('echo', 4, key='invoice-42', onDuplicateKey='raise')
    assert info.value.jobid == first
    assert rp.jobsCollection.count_documents({}) == 1


def test_a_key_is_free_again_once_its_job_ended(rp):
    first = rp.addJob('echo', 1, key='k', immediate=True)
    assert rp.processNextJob()
    transaction.commit()
    assert rp.getJobStatus(first) == 'completed'
    second = rp.addJob('echo', 2, key='k', immediate=True)
    assert second != first
    rp.cancelJob(second, immediate=True)
    third = rp.addJob('echo', 3, key='k', immediate=True)
    assert third not in (first, second)
    # A cancelled job keeps its key while another holds it.
    with pytest.raises(DuplicateJobKeyError):
        rp.retryJob(second, immediate=True)


def test_a_retried_job_releases_its_key_again(rp):
    first = rp.addJob('echo', 1, key='k', immediate=True)
    rp.cancelJob(first, immediate=True)
    rp.retryJob(first, immediate=True)       # holds the key once more
    rp.cancelJob(first, immediate=True)
    assert rp.keys.collection.count_documents({'_id': 'key:k'}) == 0
    rp.removeJob(first)
    # Free at once, though its job is gone (not held for PENDING_AGE).
    assert rp.addJob('echo', 2, key='k', immediate=True) != first


def test_an_aborted_add_frees_its_key(rp):
    rp.addJob('echo', 1, key='k')
    transaction.abort()
    jobid = rp.addJob('echo', 2, key='k', immediate=True)
    assert stored(rp, jobid)['input'] == 2


def test_a_missed_release_is_taken_over(rp):
    first = rp.addJob('echo', 1, key='k', immediate=True)
    # The job ends without its key released (a process died between).
    rp.jobsCollection.update_one({'_id': bson.ObjectId(first)},
                                 {'$set': {'status': 'completed'}})
    second = rp.addJob('echo', 2, key='k', immediate=True)
    assert second != first
    assert rp.addJob('echo', 3, key='k', immediate=True) == second


def test_racing_processors_add_one_job_per_key(database):
    processors = [RemoteProcessor(database) for _ in range(4)]
    processors[0].addJobFactory('echo', testing.EchoJob())
    answers = []
    start = threading.Barrier(len(processors))

    def add(rp):
        start.wait()
        answers.append(rp.addJob('echo', 'x', key='race', immediate=True))
    threads = [threading.Thread(target=add, args=(rp,))
               for rp in processors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(answers)) == 1
    assert processors[0].jobsCollection.count_documents({}) == 1


# timeouts

def test_a_job_past_its_timeout_is_a_failed_attempt_and_its_late_outcome_refused(rp):  # noqa: E501
    rp.addJobFactory('slow', testing.EchoJob({'timeout': 5,
                                              'retryDelay': 1}))
    jobid = rp.addJob('slow', 'late', immediate=True)
    job = rp.pullNextJob()
    assert rp.leases.stopTimedOut(later(rp, 4)) == []
    assert rp.leases.stopTimedOut(later(rp, 6)) == [(jobid, 'queued')]
    document = stored(rp, jobid)
    assert 'timed out after 5 s' in document['errors'][0]
    assert document['attempts'][-1]['outcome'] == 'timed out'
    # The thread that ran it ends later: its outcome is refused, and its
    # transaction aborted.
    rp.processJob(jobid, job)
    with pytest.raises(AttemptRefused, match=jobid):
        transaction.commit()
    transaction.abort()
    assert stored(rp, jobid)['status'] == 'queued'
    assert stored(rp, jobid)['output'] is None


def test_a_checkpoint_past_the_timeout_stops_the_job(rp):
    rp.addJobFactory('checkpoint', CheckpointJob({'timeout': 0.3,
                                                  'maxRetries': 1}))
    jobid = rp.addJob('checkpoint', 10, immediate=True)
    started = time.monotonic()
    assert rp.processNextJob()
    transaction.commit()
    assert time.monotonic() - started < 5
    document = stored(rp, jobid)
    assert document['status'] == 'error'
    assert 'timed out after 0.3 s' in document['errors'][0]
    assert document['attempts'][-1]['outcome'] == 'timed out'


RELEASE = threading.Event()


class BlockedJob(Job):
    """Runs, without a checkpoint, until the test releases it."""

    def __call__(self, remoteProcessor):
        assert RELEASE.wait(30), 'never released'
        return 'late'


def test_the_lease_keeper_stops_a_thread_job_at_its_deadline(rp):
    from m01.remote.worker import MultiJobWorker
    RELEASE.clear()
    rp.addJobFactory('blocked', BlockedJob({'timeout': 0.3,
                                            'maxRetries': 1}))
    rp.jobWorkerFactory = MultiJobWorker
    rp.jobWorkerArguments = {'waitTime': 0.05, 'maxThreads': 1}
    jobid = rp.addJob('blocked', immediate=True)
    rp.startProcessor()
    try:
        # Ended while its thread still runs: the keeper woke at the
        # deadline, not at its next renewal (lease 30 s, every 10 s).
        testing.waitForJobs(rp, [jobid], stati=('error',), timeout=8)
        assert stored(rp, jobid)['attempts'][-1]['outcome'] == 'timed out'
    finally:
        RELEASE.set()
        rp.stopProcessor(10)
    document = stored(rp, jobid)
    assert (document['status'], document['output']) == ('error', None)


# cancel, progress and log

def test_a_running_job_stops_at_its_checkpoint_when_cancelled(
        rp, monkeypatch):
    monkeypatch.setattr(control, 'CHECK_INTERVAL', 0.05)
    rp.addJobFactory('checkpoint', CheckpointJob())
    jobid = rp.addJob('checkpoint', 30, immediate=True)
    ended = []

    def work():
        manager = transaction.TransactionManager()
        with manager:
            ended.append(rp.bind(manager).processNextJob())
    thread = threading.Thread(target=work)
    thread.start()
    testing.waitForJobs(rp, [jobid], stati=('processing',), timeout=10)
    deadline = time.monotonic() + 10
    # The job stores its progress, then its log line.
    while not stored(rp, jobid).get('log'):
        assert time.monotonic() < deadline, 'no progress and log stored'
        time.sleep(0.01)
    document = stored(rp, jobid)
    assert document['progress']['fraction'] == 0.5
    assert document['progress']['message'] == 'half way'
    assert document['log'][0].endswith('started')
    rp.cancelJob(jobid, immediate=True)
    thread.join(10)
    assert not thread.is_alive() and ended == [True]
    document = stored(rp, jobid)
    assert document['status'] == 'cancelled'
    assert document['output'] is None
    assert document['attempts'][-1]['outcome'] == 'cancelled'


def test_progress_and_log_are_bounded(rp):
    class Chatty(Job):
        def __call__(self, remoteProcessor):
            for number in range(updates.MAX_LOG_LINES + 20):
                self.log('line %d %s' % (number, 'x' * 2000))
            self.progress(1, 'm' * 5000)
            return 'done'
    rp.addJobFactory('chatty', Chatty())
    jobid = rp.addJob('chatty', immediate=True)
    assert rp.processNextJob()
    transaction.commit()
    document = stored(rp, jobid)
    assert len(document['log']) == updates.MAX_LOG_LINES
    assert 'line %d ' % (updates.MAX_LOG_LINES + 19) in document['log'][-1]
    assert max(len(line) for line in document['log']) < \
        updates.MAX_LOG_LINE_CHARS + 40
    assert len(document['progress']['message']) == \
        updates.MAX_PROGRESS_MESSAGE_CHARS


def test_outside_a_worker_the_controls_do_nothing():
    job = CheckpointJob()
    job.checkpoint()
    job.progress(0.1)
    job.log('nobody listens')
    with pytest.raises(ValueError):
        job.progress(2)


def test_cancelled_is_a_job_interruption():
    assert issubclass(JobCancelled, Exception)


# attempt history

def test_each_attempt_is_recorded(rp):
    rp.addJobFactory('fatal', testing.FatalErrorJob({'maxRetries': 2,
                                                     'retryDelay': 0}))
    jobid = rp.addJob('fatal', immediate=True)
    for _ in range(2):
        assert rp.processNextJob(callTime=later(rp, 1))
        transaction.commit()
    echo = rp.addJob('echo', 'ok', immediate=True)
    assert rp.processNextJob()
    transaction.commit()
    attempts = stored(rp, jobid)['attempts']
    assert [a['outcome'] for a in attempts] == ['failed', 'failed']
    for attempt in attempts:
        assert attempt['worker'] == rp.workerId
        assert attempt['thread'] == threading.current_thread().name
        assert attempt['started'] <= attempt['ended']
        assert 'An error occurred.' in attempt['error']
        assert 'RuntimeError' in attempt['traceback']
    completed, = stored(rp, echo)['attempts']
    assert completed['outcome'] == 'completed' and 'error' not in completed


def test_a_lost_worker_is_an_attempt_too(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    rp.pullNextJob()
    assert rp.recoverExpiredJobs(callTime=later(rp, 60)) == [
        (jobid, 'queued')]
    assert stored(rp, jobid)['attempts'][-1]['outcome'] == 'lost'


# pauses and concurrency limits

def test_a_paused_factorys_jobs_stay_queued_while_others_run(rp):
    rp.addJobFactory('mail', testing.EchoJob())
    mail = rp.addJob('mail', 'm', immediate=True)
    echo = rp.addJob('echo', 'e', immediate=True)
    rp.pauseJobFactory('mail')
    assert rp.jobFactories.isPaused('mail')
    assert rp.processJobs() == 1
    transaction.commit()
    assert rp.getJobStatus(echo) == 'completed'
    assert rp.getJobStatus(mail) == 'queued'
    # Seen by another processor on the same database, too.
    other = RemoteProcessor(rp.database)
    assert other.processJobs() == 0
    rp.resumeJobFactory('mail')
    assert rp.processJobs() == 1
    transaction.commit()
    assert rp.getJobStatus(mail) == 'completed'
    with pytest.raises(KeyError):
        rp.pauseJobFactory('nothing')


def test_a_full_factory_is_skipped_and_its_job_keeps_its_place(rp):
    rp.addJobFactory('api', testing.EchoJob({'concurrency': 1}))
    first = rp.addJob('api', 1, immediate=True)
    second = rp.addJob('api', 2, immediate=True)
    echo = rp.addJob('echo', 3, immediate=True)
    running = rp.pullNextJob()
    assert running.__name__ == first and running.slot
    # The second api job waits; the echo job behind it runs.
    assert rp.pullNextJob().__name__ == echo
    assert stored(rp, second)['status'] == 'queued'
    rp.processJob(first, running)
    transaction.commit()
    assert rp.slots.running('api') == 0
    assert rp.pullNextJob().__name__ == second


def test_a_capped_factory_never_runs_more_than_its_cap(database):
    processors = [RemoteProcessor(database) for _ in range(2)]
    processors[0].addJobFactory('api', OverlapJob({'concurrency': 2}))
    ids = [processors[0].addJob('api', 0.05, immediate=True)
           for _ in range(16)]
    threads = []
    for rp in processors:
        for _ in range(4):
            threads.append(threading.Thread(target=drainUntilDone, args=(rp,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    runs = list(database.runs.find())
    assert sorted(run['job'] for run in runs) == sorted(ids)
    assert mostAtOnce(runs) == 2


def test_the_slot_of_a_lost_job_is_freed(rp):
    rp.addJobFactory('api', testing.EchoJob({'concurrency': 1}))
    first = rp.addJob('api', 1, immediate=True)
    rp.addJob('api', 2, immediate=True)
    assert rp.pullNextJob().__name__ == first
    assert rp.recoverExpiredJobs(callTime=later(rp, 60))
    assert rp.slots.tidy(rp.now()) == 1
    assert rp.pullNextJob(callTime=later(rp, 61)) is not None


# changed jobs are written at commit (the specification's README)

class Recorded:
    """A collection whose method calls are recorded by name."""

    def __init__(self, collection):
        self.collection = collection
        self.calls = []

    def __getattr__(self, name):
        method = getattr(self.collection, name)

        def call(*args, **kw):
            self.calls.append(name)
            return method(*args, **kw)
        return call


class NoJobs:
    """``IJobWrites.state`` of a store without jobs."""

    def state(self, oid):
        return None


def documentOf(status):
    """A job's document as a caller sees it: ``status`` or none."""
    return lambda oid: {'status': status} if status else None


def test_a_key_is_released_by_one_conditional_delete(database):
    keys = JobKeys(Recorded(database.keys), clock.utcnow, NoJobs())
    first, second = bson.ObjectId(), bson.ObjectId()
    assert keys.reserve('k', first, documentOf('queued')) is None
    keys.collection.calls.clear()
    keys.release('k', second)                # not its job: kept
    assert database.keys.count_documents({'_id': 'key:k'}) == 1
    keys.release('k', first)
    assert keys.collection.calls == ['delete_one', 'delete_one']
    assert database.keys.count_documents({}) == 0


def test_a_takeover_removes_only_the_reservation_it_read(database):
    keys = JobKeys(database.keys, clock.utcnow, NoJobs())
    ended, newer = bson.ObjectId(), bson.ObjectId()
    assert keys.reserve('k', ended, documentOf('queued')) is None
    stale = database.keys.find_one({'_id': 'key:k'})
    # Meanwhile another process took the lock over and reserved it anew
    # for the same job (a retry).
    database.keys.update_one({'_id': 'key:k'}, {'$set': {'token': 'new'}})
    assert not keys._end(stale)
    assert database.keys.find_one({'_id': 'key:k'})['token'] == 'new'
    # A lock of a job that ended is taken over.
    assert keys.reserve('k', newer, lambda oid: (
        {'status': 'completed'} if oid == ended else None)) is None
    assert database.keys.find_one({'_id': 'key:k'})['job'] == newer


def test_a_slot_is_released_by_one_conditional_delete(database):
    slots = ConcurrencySlots(Recorded(database.slots), clock.utcnow,
                             NoJobs())
    oid = bson.ObjectId()
    slot = slots.acquire('api', 1, oid, 'claim-1')
    assert slots.acquire('api', 1, bson.ObjectId(), 'claim-2') is None
    slots.collection.calls.clear()
    assert not slots.release(slot, 'claim-0')  # an older claim: kept
    assert slots.running('api') == 1
    assert slots.release(slot, 'claim-1')
    assert slots.collection.calls == ['delete_one', 'count_documents',
                                      'delete_one']
    assert database.slots.count_documents({}) == 0


def test_a_loaded_job_writes_its_changes_at_commit(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    job = rp.jobs[jobid]
    job.retryTime = datetime.datetime(2000, 1, 1, tzinfo=UTC)
    job.priority = 3
    assert stored(rp, jobid)['priority'] == 0      # not before the commit
    assert rp.getJobDocument(jobid)['priority'] == 3   # but shown
    transaction.commit()
    document = stored(rp, jobid)
    assert document['retryTime'] == datetime.datetime(2000, 1, 1,
                                                      tzinfo=UTC)
    assert document['priority'] == 3
    job.title = 'again'         # the same object, another transaction
    transaction.commit()
    assert stored(rp, jobid)['title'] == 'again'


def test_an_aborted_change_is_not_written(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    rp.jobs[jobid].priority = 7
    transaction.abort()
    transaction.commit()
    assert stored(rp, jobid)['priority'] == 0


def test_a_change_that_lost_a_race_is_a_transient_conflict(rp):
    jobid = rp.addJob('echo', 1, immediate=True)
    job = rp.jobs[jobid]
    rp.pullNextJob()             # the job moves on meanwhile
    job.priority = 5
    with pytest.raises(ConflictError) as info:
        transaction.commit()
    assert isinstance(info.value, transaction.interfaces.TransientError)
    assert stored(rp, jobid)['priority'] == 0
    assert stored(rp, jobid)['status'] == 'processing'


def test_a_loaded_jobs_input_is_stored_at_commit_and_run(rp):
    rp.addJobFactory('fail', testing.FatalErrorJob({'maxRetries': 2}))
    jobid = rp.addJob('fail', {'invoice': 'old-7'}, immediate=True)
    rp.processNextJob()                  # an error adds its words
    transaction.commit()
    assert 'occurred' in stored(rp, jobid)['terms']
    job = rp.jobs[jobid]
    job.input = {'invoice': 'new-8'}
    assert stored(rp, jobid)['input'] == {'invoice': 'old-7'}
    assert rp.getJobDocument(jobid)['input'] == {'invoice': 'new-8'}
    transaction.commit()
    document = stored(rp, jobid)
    assert document['input'] == {'invoice': 'new-8'}
    # Found by its new input's words, no longer by the old ones'; the
    # words its error added are kept.
    assert {'new', '8', 'occurred'} <= set(document['terms'])
    assert not {'old', '7'} & set(document['terms'])
    # The same object, another transaction; then it runs with it.
    echo = rp.jobs[rp.addJob('echo', 1, immediate=True)]
    echo.input = [2, 3]
    transaction.commit()
    echo.input = 'four'
    transaction.commit()
    rp.processJob(echo.__name__)
    transaction.commit()
    assert rp.getJobResult(echo.__name__) == 'four'


def test_an_input_that_cannot_be_stored_is_refused_when_set(rp):
    job = rp.jobs[rp.addJob('echo', 1, immediate=True)]
    with pytest.raises(ValueError, match='input cannot be stored'):
        job.input = object()
    with pytest.raises(ValueError, match='nested'):
        job.input = _nested(100)
    with pytest.raises(ValueError, match='The job input is .*8 MB'):
        job.input = 'x' * limits.MAX_JOB_DOCUMENT
    # An input within its limit, which the document could not hold.
    with pytest.raises(ValueError, match='The job document is .*8 MB'):
        job.input = 'x' * (limits.MAX_JOB_DOCUMENT - 100)
    transaction.commit()
    assert stored(rp, job.__name__)['input'] == 1
    assert job.input == 1


def _nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def test_bad_changes_are_refused_when_set(rp):
    job = rp.jobs[rp.addJob('echo', 1, immediate=True)]
    for name, value in [('retryTime', 'tomorrow'), ('priority', 'high'),
                        ('maxRetries', 0), ('timeout', -1)]:
        with pytest.raises(ValueError):
            setattr(job, name, value)
    transaction.commit()


# the same across processes, on the servers

SERVERS = [pytest.param('mongojava', marks=pytest.mark.mongojava)]


@pytest.fixture(params=SERVERS)
def server(request):
    """A server's URI and a database name for processes to share."""
    from support.testserver import unique_database_name
    uri = request.getfixturevalue('%s_uri' % request.param)
    name = unique_database_name()
    from m01.remote import store
    client = store.connect(uri)
    yield uri, client[name]
    client.drop_database(name)
    client.close()


def _processes(*commands):
    import subprocess
    import sys
    return [subprocess.Popen([sys.executable, '-m', 'support.controlworker',
                              *command], stdout=subprocess.PIPE, text=True)
            for command in commands]


@pytest.mark.slow
def test_two_processes_adding_one_key_create_one_job(server):
    uri, database = server
    rp = RemoteProcessor(database)
    rp.addJobFactory('echo', testing.EchoJob())
    start = str(time.time() + 2)
    processes = _processes(*[('add', uri, database.name, 'once', '20',
                              start)] * 2)
    outputs = [process.communicate(timeout=120)[0]
               for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    answers = {line for output in outputs for line in output.split()}
    assert len(answers) == 1
    assert database.rjobs.count_documents({}) == 1


@pytest.mark.slow
def test_a_capped_factory_across_two_processes_never_runs_over_its_cap(
        server):
    uri, database = server
    rp = RemoteProcessor(database)
    rp.addJobFactory('api', OverlapJob({'concurrency': 2}))
    ids = [rp.addJob('api', 0.1, immediate=True) for _ in range(24)]
    start = str(time.time() + 2)
    processes = _processes(*[('drain', uri, database.name, '4', start)] * 2)
    for process in processes:
        process.communicate(timeout=300)
    assert [process.returncode for process in processes] == [0, 0]
    runs = list(database.runs.find())
    assert sorted(run['job'] for run in runs) == sorted(ids)
    # Both processes' threads claim all along; a limit kept per process
    # would let each run two at once. (Which process wins a freed slot is
    # a race: the one releasing it often claims again first.)
    assert mostAtOnce(runs) == 2
