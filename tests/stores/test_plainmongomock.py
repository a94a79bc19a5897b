"""A plain mongomock database handed to the processor, as a site's own
tests make one (``mongomock.MongoClient().db``), works as the embedded
store does."""
import datetime

import mongomock
import transaction

from m01.remote import store
from m01.remote.processor import RemoteProcessor
from m01.remote.testing import EchoJob
from support.waiting import until


def processorOn(database, **kw):
    rp = RemoteProcessor(database, jobWorkerArguments={'waitTime': 0.02},
                         **kw)
    rp.addJobFactory('echo', EchoJob())
    return rp


def test_a_plain_mongomock_database_runs_jobs_in_worker_threads():
    database = mongomock.MongoClient().db
    rp = processorOn(database)
    try:
        assert store.isEmbedded(rp.database)
        jobids = [rp.addJob('echo', number) for number in range(20)]
        transaction.commit()
        rp.startProcessor()
        until(lambda: all(rp.getJobStatus(jobid) == 'completed'
                          for jobid in jobids), what='the jobs run')
    finally:
        rp.close()
    assert [rp.getJobResult(jobid) for jobid in jobids] == list(range(20))
    # The site's own handle sees what the queue stored, as it stored it.
    assert database.rjobs.count_documents({'status': 'completed'}) == 20


def test_its_datetimes_read_back_aware_in_utc():
    database = mongomock.MongoClient().db
    rp = processorOn(database)
    jobid = rp.addJob('echo', 'x', delay=30)
    transaction.commit()
    due = rp.getJobDocument(jobid)['retryTime']
    assert due.tzinfo is not None and due.utcoffset() == datetime.timedelta()
    assert due > rp.now()
    # Not due yet: the claim compares aware datetimes with the stored ones.
    assert rp.pullNextJob() is None
    rp.close()


def test_processors_on_one_client_share_its_lock():
    client = mongomock.MongoClient()
    first = processorOn(client.db)
    second = processorOn(client.other, name='second')
    try:
        assert first.database._lock is second.database._lock
        assert vars(client)[store.LOCK_ATTRIBUTE] is first.database._lock
    finally:
        first.close()
        second.close()


def test_a_tz_aware_mongomock_database_is_kept_as_it_is():
    database = mongomock.MongoClient(tz_aware=True).db
    rp = processorOn(database)
    assert rp.database._wrapped is database
    rp.close()
