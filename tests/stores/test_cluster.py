"""What a replica set needs: the write concern of the queue's writes, the
pages' read preference, retryable writes, and a primary stepping down
mid-claim and mid-outcome (``m01.remote.store.cluster``, ``store.retried``)."""
import logging

import pymongo
import pymongo.errors
import pymongo.monitoring
import pytest
import transaction
import transaction.interfaces
import zope.interface
from pymongo import read_preferences
from zope.interface.verify import verifyObject

from m01.remote import interfaces, store, testing
from m01.remote.job import Job
from m01.remote.processor import RemoteProcessor
from m01.remote.store import cluster
from m01.remote.store.retried import RetriedOutcomes
from m01.remote.worker import SimpleJobWorker
from support import testserver, waiting
from support.jobs import RecordingJob

BOUND = 60.0


def until(condition, bound=BOUND, what='the condition'):
    return waiting.until(condition, bound, what)


# write concern and read preference

def test_the_queue_writes_with_majority_keeping_the_uris_options():
    client = pymongo.MongoClient(
        'mongodb://127.0.0.1:1/?wtimeoutMS=500&journal=true', connect=False)
    database = client.app
    queue = cluster.queueDatabase(database)
    assert queue.write_concern.document == {'w': 'majority',
                                            'wtimeout': 500, 'j': True}
    assert cluster.queueDatabase(database, 2).write_concern.document[
        'w'] == 2
    rp = RemoteProcessor(database, writeConcern=1)
    assert rp.jobsCollection.write_concern.document['w'] == 1
    assert rp.database is database           # a job's own writes: as is
    client.close()


@pytest.mark.parametrize('bad', [0, 'all', True, 1.5])
def test_a_bad_write_concern_is_refused(bad):
    with pytest.raises(ValueError):
        cluster.writeConcern(bad)


def test_the_embedded_store_ignores_both(mongomock_database):
    assert cluster.queueDatabase(mongomock_database) is mongomock_database
    rp = RemoteProcessor(mongomock_database,
                         readPreference='secondaryPreferred')
    assert rp.pageJobsCollection is rp.jobsCollection


def test_only_the_pages_read_with_the_read_preference():
    client = pymongo.MongoClient('mongodb://127.0.0.1:1/', connect=False)
    rp = RemoteProcessor(client.app, readPreference='secondaryPreferred')
    assert isinstance(rp.pageJobsCollection.read_preference,
                      read_preferences.SecondaryPreferred)
    assert rp.jobs.pages is rp.pageJobsCollection
    assert rp.jobs.collection is rp.jobsCollection
    assert isinstance(rp.jobsCollection.read_preference,
                      read_preferences.Primary)
    with pytest.raises(ValueError):
        cluster.readPreference('secondaryFirst')
    client.close()


class WriteConcerns(pymongo.monitoring.CommandListener):
    """The write concern each write command named, by collection."""

    WRITES = ('insert', 'update', 'delete', 'findAndModify')

    def __init__(self):
        self.seen = []

    def started(self, event):
        if event.command_name in self.WRITES:
            self.seen.append((event.command[event.command_name],
                              event.command.get('writeConcern')))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


@pytest.mark.mongojava
def test_every_queue_write_carries_the_write_concern(mongojava_uri):
    uri = mongojava_uri
    listener = WriteConcerns()
    client = store.connect(uri, event_listeners=[listener])
    name = testserver.unique_database_name()
    try:
        rp = RemoteProcessor(client[name], leaseTime=5)
        rp.addJobFactory('record', RecordingJob())
        rp.addJobFactory('capped', RecordingJob({'concurrency': 1}))
        rp.addJob('record', 1, key='one')
        rp.addJob('capped', 2)
        transaction.commit()
        assert rp.processJobs() == 2
        transaction.commit()
        rp.leases.tick()
    finally:
        client.drop_database(name)
        client.close()
    queue = [(collection, concern) for collection, concern in listener.seen
             if collection != 'executions']
    assert {collection for collection, _ in queue} >= {
        'rfactories', 'rjobs', 'rkeys', 'rslots'}
    assert all(concern == {'w': 'majority'} for _, concern in queue), queue
    # The jobs' own writes (RecordingJob's) keep the client's.
    assert [concern for collection, concern in listener.seen
            if collection == 'executions'] == [None, None]


def test_retryable_writes_stay_on_unless_the_uri_turns_them_off(caplog):
    caplog.set_level(logging.WARNING, 'm01.remote')
    client = store.connect('mongodb://127.0.0.1:1/', connect=False)
    assert client.options.retry_writes is True
    client.close()
    assert not caplog.records
    client = store.connect('mongodb://u:secret@127.0.0.1:1/?retryWrites=false',
                           connect=False)
    assert client.options.retry_writes is False
    client.close()
    (record,) = caplog.records
    assert 'turns retryable writes off' in record.getMessage()
    assert 'secret' not in record.getMessage()


# a primary stepping down

class SteppingDown:
    """The jobs collection of a primary that steps down before it answers
    the first write ``isTarget`` picks: applied (``applied``) or not."""

    WRITES = {'find_one_and_update': 1, 'update_one': 1, 'claimFirst': 2}
    #: Writes of many documents: how to find their updates.
    BATCHES = {'updateEach': lambda changes: [u for _f, u in changes],
               'bulk_write': lambda requests: [r._doc for r in requests]}

    def __init__(self, collection, isTarget, applied=True):
        self.wrapped = collection
        self.isTarget = isTarget
        self.applied = applied
        self.struck = 0

    def __getattr__(self, name):
        value = getattr(self.wrapped, name)
        if name not in self.WRITES and name not in self.BATCHES:
            return value

        def targeted(args):
            if name in self.BATCHES:
                return any(map(self.isTarget, self.BATCHES[name](args[0])))
            return self.isTarget(args[self.WRITES[name]])

        def write(*args, **kw):
            target = not self.struck and targeted(args)
            if target and not self.applied:
                self.struck += 1
                raise pymongo.errors.NotPrimaryError('not primary')
            result = value(*args, **kw)
            if target:
                self.struck += 1
                raise pymongo.errors.NotPrimaryError(
                    'not primary (stepped down before answering)')
            return result
        return write


def setting(status):
    return lambda update: (update.get('$set') or {}).get('status') == status


def stepDown(rp, isTarget, applied=True):
    writes = rp.jobWrites.strategy
    stepping = SteppingDown(writes.jobs, isTarget, applied)
    writes.jobs = stepping
    return stepping


def test_a_claim_applied_whose_answer_was_lost_is_recovered_by_its_lease(
        database, caplog):
    caplog.set_level(logging.INFO, 'm01.remote')
    rp = RemoteProcessor(database, name='stepdown', leaseTime=1.0,
                         jobWorkerArguments={'waitTime': 0.05})
    rp.addJobFactory('record', RecordingJob({'retryDelay': 0}))
    jobids = [rp.addJob('record', number) for number in range(3)]
    transaction.commit()
    stepping = stepDown(rp, setting('processing'))
    rp.startProcessor()
    try:
        until(lambda: all(rp.getJobStatus(jobid) == 'completed'
                          for jobid in jobids), what='every job completed')
    finally:
        rp.stopProcessor()
    assert stepping.struck == 1
    runs = sorted(run['job'] for run in database.executions.find())
    assert runs == sorted(jobids)               # none lost, none twice
    histories = [[attempt['outcome'] for attempt in
                  rp.getJobDocument(jobid)['attempts']] for jobid in jobids]
    assert sorted(histories) == [['completed'], ['completed'],
                                 ['lost', 'completed']]
    assert sum('cannot be reached' in record.getMessage()
               for record in caplog.records) == 1


class ParentJob(Job):
    """Runs once (counted outside the transaction), adds a child job and
    writes a record elsewhere, both through the transaction."""

    def __call__(self, remoteProcessor):
        remoteProcessor.database.executions.insert_one(
            {'job': self.__name__})
        Elsewhere.join(remoteProcessor.transactionManager)
        return remoteProcessor.addJob('echo', 'child')


@zope.interface.implementer(transaction.interfaces.IDataManager)
class Elsewhere:
    """Another participant of the transaction (a SQL session, say):
    ``committed`` counts its commits."""

    committed = 0

    def __init__(self, manager):
        self.transaction_manager = manager

    @classmethod
    def join(cls, manager):
        manager.get().join(cls(manager))

    def abort(self, txn):
        pass

    def tpc_begin(self, txn):
        pass

    def commit(self, txn):
        pass

    def tpc_vote(self, txn):
        pass

    def tpc_finish(self, txn):
        type(self).committed += 1

    def tpc_abort(self, txn):
        pass

    def sortKey(self):
        return 'a-elsewhere'


@pytest.mark.parametrize('applied', [True, False],
                         ids=['answer-lost', 'not-applied'])
def test_an_outcome_cut_off_by_a_step_down_is_stored_once(database,
                                                          applied):
    Elsewhere.committed = 0
    rp = RemoteProcessor(database, name='stepdown')
    rp.addJobFactory('parent', ParentJob())
    rp.addJobFactory('echo', testing.EchoJob())
    parent = rp.addJob('parent', immediate=True)
    stepping = stepDown(rp, setting('completed'), applied)
    assert SimpleJobWorker(rp, waitTime=0).doProcessNextJob()
    assert stepping.struck == 1
    document = rp.getJobDocument(parent)
    assert document['status'] == 'completed'
    assert [a['outcome'] for a in document['attempts']] == ['completed']
    assert database.executions.count_documents({}) == 1
    # What the job wrote through the transaction was committed.
    assert rp.getJobStatus(document['output']) == 'queued'
    assert Elsewhere.committed == 1


def test_the_job_writes_provide_their_interface(mongomock_database):
    rp = RemoteProcessor(mongomock_database)
    assert isinstance(rp.jobWrites, RetriedOutcomes)
    verifyObject(interfaces.IJobWrites, rp.jobWrites)


class Flaky:
    """An ``IJobWrites`` whose outcomes fail ``failures`` times."""

    def __init__(self, failures, result=True):
        self.failures = failures
        self.result = result
        self.calls = 0

    def finish(self, oid, claim, update):
        self.calls += 1
        if self.calls <= self.failures:
            raise pymongo.errors.AutoReconnect('connection closed')
        return self.result

    unclaim = finish


class NoJobs:

    def find_one(self, *args, **kw):
        return None


def test_an_outcome_is_retried_until_the_server_answers():
    flaky = Flaky(failures=3)
    pauses = []
    writes = RetriedOutcomes(flaky, NoJobs(), sleep=pauses.append)
    assert writes.finish(1, 'claim', {}) is True
    assert flaky.calls == 4
    assert pauses == [0.1, 0.2, 0.4]


def test_an_outcome_the_server_never_answers_is_given_up():
    writes = RetriedOutcomes(Flaky(failures=10 ** 6), NoJobs(),
                             retrySeconds=0.0, sleep=lambda seconds: None)
    with pytest.raises(pymongo.errors.AutoReconnect):
        writes.finish(1, 'claim', {})


def test_an_outcome_matching_nothing_after_a_lost_answer_is_checked():
    # Not ours: another worker took the job over (its lease had expired).
    writes = RetriedOutcomes(Flaky(failures=1, result=False), NoJobs(),
                             sleep=lambda seconds: None)
    assert writes.finish(1, 'claim', {'$push': {'attempts': {
        '$each': [{'worker': 'w', 'ended': 1}]}}}) is False
