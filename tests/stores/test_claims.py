"""No job is run twice: threads and processes claiming from one queue."""
import os
import subprocess
import sys

import pytest
import transaction

from m01.remote import store
from m01.remote.processor import RemoteProcessor
from support.jobs import RecordingJob, startProcessingThreads
from support.testserver import unique_database_name

#: Jobs claimed by two processes and this one.
JOBS = int(os.environ.get('M01_CLAIM_JOBS', 2000))


def _addJobs(rp, count):
    rp.addJobFactory('record', RecordingJob())
    ids = [rp.addJob('record', n) for n in range(count)]
    transaction.commit()
    return ids


def _assertEachRanOnce(rp, ids):
    executions = list(rp.database.executions.find())
    ran = [record['job'] for record in executions]
    assert len(ran) == len(set(ran)), 'a job ran more than once'
    assert sorted(ran) == sorted(ids), 'a job never ran'
    stati = {rp.getJobStatus(jobid) for jobid in ids}
    assert stati == {'completed'}


def test_threads_claim_each_job_once(database):
    rp = RemoteProcessor(database)
    ids = _addJobs(rp, 300)
    workers, counts = startProcessingThreads(rp, 4)
    for thread in workers:
        thread.join()
    assert sum(counts) == 300
    _assertEachRanOnce(rp, ids)


@pytest.mark.slow
@pytest.mark.mongojava
def test_threads_and_processes_claim_each_job_once(mongojava_uri):
    uri = mongojava_uri
    jobs = JOBS
    name = unique_database_name()
    client = store.connect(uri)
    try:
        rp = RemoteProcessor(client[name])
        rp.ensureIndexes()
        ids = _addJobs(rp, jobs)
        processes = [subprocess.Popen(
            [sys.executable, '-m', 'support.claimworker',
             uri, name, '2'], stdout=subprocess.PIPE,
            text=True) for _ in range(2)]
        workers, counts = startProcessingThreads(rp, 4)
        for thread in workers:
            thread.join()
        outputs = [process.communicate(timeout=600)[0]
                   for process in processes]
        assert [process.returncode for process in processes] == [0, 0]
        ranElsewhere = sum(int(output.split()[-1]) for output in outputs)
        assert sum(counts) + ranElsewhere == jobs
        # Both processes and this one did a share of the work.
        assert sum(counts) > 0 and all(int(o.split()[-1]) > 0
                                       for o in outputs)
        _assertEachRanOnce(rp, ids)
    finally:
        client.drop_database(name)
        client.close()
