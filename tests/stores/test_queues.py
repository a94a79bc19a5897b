"""Named queues: a job's queue, claims restricted to queues, paused
queues, threads per queue, and the batches a worker sizes itself."""
import threading
import time

import pytest
import transaction

from m01.remote import store, testing
from m01.remote.job import Job
from m01.remote.processor import RemoteProcessor
from m01.remote.worker import MultiJobWorker, SimpleJobWorker
from m01.remote.worker.batches import (
    MAX_AUTO_BATCH,
    ROUND_SECONDS,
    BatchSizer,
    queueGroups,
)
from support.waiting import until


@pytest.fixture
def rp(database):
    processor = RemoteProcessor(database)
    processor.ensureIndexes()
    processor.addJobFactory('echo', testing.EchoJob())
    processor.addJobFactory('mail', testing.EchoJob({'queue': 'mail'}))
    yield processor
    processor.close()


def test_a_job_is_in_its_factorys_queue_unless_addjob_names_one(rp):
    a = rp.addJob('echo', 1)
    b = rp.addJob('mail', 2)
    c = rp.addJob('echo', 3, queue='reports')
    transaction.commit()
    assert [rp.getJobDocument(jobid)['queue'] for jobid in (a, b, c)] == \
        ['default', 'mail', 'reports']
    assert rp.getJob(c).queue == 'reports'


@pytest.mark.parametrize('name', ['', 'a b', 'x' * 101, 7, 'mail,news'])
def test_a_bad_queue_name_is_refused_before_anything_is_stored(rp, name):
    with pytest.raises(ValueError, match='queue name'):
        rp.addJob('echo', 1, queue=name)
    with pytest.raises(ValueError, match='queue name'):
        testing.EchoJob({'queue': name})
    transaction.commit()
    assert rp.jobsCollection.count_documents({}) == 0


def test_a_claim_takes_only_the_queues_asked_for(rp):
    rp.addJob('echo', 'default')
    rp.addJob('mail', 'mail low')
    rp.addJob('echo', 'reports', queue='reports')
    rp.addJob('mail', 'mail high', priority=5)
    transaction.commit()
    assert rp.pullNextJob(queues=['mail']).input == 'mail high'
    taken = rp.pullNextJobs(10, queues=['mail', 'reports'])
    assert [job.input for job in taken] == ['mail low', 'reports']
    assert rp.pullNextJob(queues=['mail', 'reports']) is None
    assert rp.pullNextJob().input == 'default'


def test_a_paused_queue_is_left_out_until_resumed(rp):
    rp.addJob('mail', 'mail')
    rp.addJob('echo', 'default')
    transaction.commit()
    rp.pauseQueue('mail')
    assert rp.queueSettings.isPaused('mail')
    assert rp.pullNextJob(queues=['mail']) is None
    assert rp.pullNextJobs(5, queues=['mail']) == []
    assert [job.input for job in rp.pullNextJobs(5)] == ['default']
    assert rp.getJobStatus(rp.jobsCollection.find_one(
        {'queue': 'mail'})['_id']) == 'queued'
    rp.resumeQueue('mail')
    assert not rp.queueSettings.isPaused('mail')
    assert rp.pullNextJob().input == 'mail'


def test_another_process_sees_a_pause(database, rp):
    other = RemoteProcessor(database)
    rp.addJob('mail', 'mail')
    transaction.commit()
    rp.pauseQueue('mail')
    other.queueSettings.cacheSeconds = 0
    assert other.pullNextJob() is None
    rp.resumeQueue('mail')
    assert other.pullNextJob().input == 'mail'


def test_the_claim_indexes_are_created(rp):
    names = set(rp.jobsCollection.index_information())
    assert {'m01_remote_claim', 'm01_remote_queue_claim'} <= names


class CountingJob(Job):
    """Counts the jobs of its queue running at once in its processor
    (``most[processor, queue]``)."""

    lock = threading.Lock()
    running = {}
    most = {}

    def __call__(self, remoteProcessor):
        key = (remoteProcessor.name, self.queue)
        with self.lock:
            now = self.running[key] = self.running.get(key, 0) + 1
            self.most[key] = max(self.most.get(key, 0), now)
        time.sleep(0.05)
        with self.lock:
            self.running[key] -= 1
        return self.input


def test_each_queue_runs_with_its_own_threads(rp):
    CountingJob.running.clear()
    CountingJob.most.clear()
    rp.addJobFactory('count', CountingJob())
    ids = [rp.addJob('count', n, queue=queue)
           for n in range(12) for queue in ('mail', 'reports')]
    ids.append(rp.addJob('count', 'left', queue='other'))
    transaction.commit()
    worker = MultiJobWorker(rp, waitTime=0.05, maxThreads=5,
                            queues={'mail': 3, 'reports': 1})
    assert worker.maxThreads == 4
    thread = threading.Thread(target=worker)
    thread.start()
    try:
        until(lambda: all(rp.getJobStatus(jobid) == 'completed'
                          for jobid in ids[:-1]), what='every job ran')
    finally:
        worker.stop()
        thread.join(10)
    assert CountingJob.most == {('root', 'mail'): 3,
                                ('root', 'reports'): 1}
    assert rp.getJobStatus(ids[-1]) == 'queued'     # a queue not served


def test_queue_groups():
    assert queueGroups(None, 4) == [(None, 4)]
    assert queueGroups(['a', 'b'], 4) == [(['a', 'b'], 4)]
    assert queueGroups({'a': 2, 'b': None, 'c': None}, 4) == \
        [(['a'], 2), (['b', 'c'], 4)]
    with pytest.raises(ValueError, match='concurrency of queue'):
        queueGroups({'a': 0}, 4)
    with pytest.raises(ValueError, match='no queue'):
        queueGroups([], 4)


def test_a_simple_worker_serves_its_queues(rp):
    ids = [rp.addJob('mail', n) for n in range(3)]
    other = rp.addJob('echo', 'other')
    transaction.commit()
    worker = SimpleJobWorker(rp, waitTime=0, queues='mail')
    while worker.doProcessNextJob():
        pass
    assert {rp.getJobStatus(jobid) for jobid in ids} == {'completed'}
    assert rp.getJobStatus(other) == 'queued'


# batches sized by the worker

def test_the_batch_size_follows_the_time_jobs_take():
    sizer = BatchSizer()
    assert sizer.size() == 1            # nothing ran yet
    sizer.ran(ROUND_SECONDS * 2)     # slow jobs: one at a time
    assert sizer.size() == 1
    for _ in range(40):
        sizer.ran(ROUND_SECONDS / 500)
    assert sizer.size() == MAX_AUTO_BATCH
    for _ in range(40):
        sizer.ran(ROUND_SECONDS / 8)
    assert sizer.size() == 4


def test_jobs_not_started_within_a_claim_round_are_handed_back(rp):
    ids = [rp.addJob('echo', n) for n in range(5)]
    transaction.commit()
    worker = SimpleJobWorker(rp, waitTime=0)
    jobs = rp.pullNextJobs(5)
    assert len(jobs) == 5
    handedBack = worker.runBatch(jobs, handBackAt=time.monotonic())
    assert handedBack == 5
    for jobid in ids:
        document = rp.getJobDocument(jobid)
        assert document['status'] == 'queued'
        assert document['attempts'] == [] and document['retryCounter'] == 0
        assert 'claim' not in document
    assert rp.leases.running() == []
    # Handed back in their places: claimed again in the same order.
    assert [job.__name__ for job in rp.pullNextJobs(5)] == ids


def test_a_worker_with_no_batch_size_claims_batches(rp):
    ids = [rp.addJob('echo', n) for n in range(60)]
    transaction.commit()
    worker = SimpleJobWorker(rp, waitTime=0)
    assert worker.batchSize is None
    steps = 0
    while worker.doProcessNextJob():
        steps += 1
    assert {rp.getJobStatus(jobid) for jobid in ids} == {'completed'}
    assert worker.sizer.size() > 1
    assert steps < 60                   # batches, after the first job


def test_a_batch_size_of_one_claims_singly(rp):
    ids = [rp.addJob('echo', n) for n in range(5)]
    transaction.commit()
    worker = SimpleJobWorker(rp, waitTime=0, batchSize=1)
    steps = 0
    while worker.doProcessNextJob():
        steps += 1
    assert steps == 5
    assert {rp.getJobStatus(jobid) for jobid in ids} == {'completed'}


def test_the_multi_thread_worker_keeps_the_claim_order_by_priority(rp):
    # Sized batches are dealt out in claim order: the first job each
    # thread starts is among the highest priorities.
    low = [rp.addJob('echo', n, priority=0) for n in range(10)]
    high = [rp.addJob('echo', n, priority=9) for n in range(4)]
    transaction.commit()
    worker = MultiJobWorker(rp, waitTime=0.05, maxThreads=4)
    thread = threading.Thread(target=worker)
    thread.start()
    try:
        until(lambda: all(rp.getJobStatus(jobid) == 'completed'
                          for jobid in low + high), what='every job ran')
    finally:
        worker.stop()
        thread.join(10)
    started = {jobid: rp.getJobDocument(jobid)['attempts'][-1]['started']
               for jobid in low + high}
    assert max(started[jobid] for jobid in high) <= \
        min(started[jobid] for jobid in low)


def test_two_processes_of_four_threads_hold_each_queues_threads(
        database, store_uri):
    # Two processors (each with a client of its own on a server), each
    # with 4 threads: 2 of them for mail, 2 shared by the others.
    CountingJob.running.clear()
    CountingJob.most.clear()
    clients = [] if store_uri == 'mongomock://' else [
        store.connect(store_uri) for _ in range(2)]
    processors = [RemoteProcessor(database, name='p0'),
                  RemoteProcessor(database, name='p1')] if not clients \
        else [RemoteProcessor(client[database.name], name='p%d' % n)
              for n, client in enumerate(clients)]
    first = processors[0]
    first.ensureIndexes()
    first.addJobFactory('count', CountingJob())
    ids = [first.addJob('count', n, queue=queue)
           for n in range(10) for queue in ('mail', 'reports')]
    transaction.commit()
    workers = [MultiJobWorker(p, waitTime=0.05, maxThreads=2,
                              queues={'mail': 2, 'reports': None})
               for p in processors]
    assert {worker.maxThreads for worker in workers} == {4}
    threads = [threading.Thread(target=worker) for worker in workers]
    for thread in threads:
        thread.start()
    jobs = database[first.jobsCollection.name]
    try:
        until(lambda: jobs.count_documents({'status': 'completed'}) ==
              len(ids), what='every job ran')
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(10)
        for p in processors:
            p.close()
        for client in clients:
            client.close()
    # Each process ran at most 2 jobs of each queue at once.
    most = CountingJob.most
    assert set(most) <= {(p, q) for p in ('p0', 'p1')
                         for q in ('mail', 'reports')}
    assert max(most.values()) == 2
    attempts = [len(document['attempts']) for document in jobs.find()]
    assert attempts == [1] * len(ids)       # each ran once
