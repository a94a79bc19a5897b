"""The remote processor: job factories, the job queue and its threads."""
import datetime
import logging
import os
import socket
import threading
import time
import traceback

import bson
import pymongo.errors
import transaction
import zope.component
import zope.interface

from m01.remote import interfaces, jobstate
from m01.remote.containers import JobContainer, JobFactoryContainer, toObjectId
from m01.remote.datamanager import QueueDataManager
from m01.remote.errormessage import getJobErrorMessage
from m01.remote.interfaces import (
    CANCELLED,
    ERROR,
    PROCESSING,
    QUEUED,
    REMOVABLE_STATI,
)
from m01.remote.job import (
    DuplicateJobError,
    Job,
    JobError,
    UnknownJobClassError,
    checkStorable,
    dumpFactory,
    loadFactory,
    loadJob,
)
from m01.remote.leases import LeaseKeeper
from m01.remote.threads import WorkerThread

logger = logging.getLogger('m01.remote')

UTC = datetime.timezone.utc


def utcnow():
    """Now, in UTC, cut to the millisecond precision BSON stores."""
    now = datetime.datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def toBSONTime(value):
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


@zope.interface.implementer(interfaces.IRemoteProcessor)
class RemoteProcessor:
    """A job queue and scheduler stored in a MongoDB database.

    ``database`` is a pymongo ``Database`` (or the embedded store's).
    ``registry`` is the component registry used to adapt error messages
    and to find worker kinds; it defaults to the global one. Worker
    threads get it from here, never from thread-locals.
    """

    __name__ = None
    __parent__ = None

    #: How long a job factory read from the database is trusted.
    factoryCacheSeconds = 10.0

    def __init__(self, database, name='root', registry=None, prefix='r',
                 leaseTime=60.0, transactionManager=None, clock=None,
                 ticketed=None,
                 jobWorkerFactory=None, jobWorkerArguments=None,
                 schedulerWorkerFactory=None, schedulerWorkerArguments=None):
        from m01.remote import worker
        if not name or not isinstance(name, str):
            raise ValueError('A processor needs a name, not %r' % (name,))
        if leaseTime <= 0:
            raise ValueError('leaseTime must be positive, not %r'
                             % (leaseTime,))
        self.database = database
        self.name = name
        self.registry = registry or zope.component.getGlobalSiteManager()
        self.leaseTime = float(leaseTime)
        self.transactionManager = transactionManager or transaction.manager
        self.clock = clock or utcnow
        self.factoriesCollection = database[prefix + 'factories']
        self.jobsCollection = database[prefix + 'jobs']
        self.schedulerCollection = database[prefix + 'scheduler']
        self.prefix = prefix
        self._ticketed = ticketed
        self._jobWrites = None
        self.jobs = JobContainer(self)
        self.jobFactories = JobFactoryContainer(self)
        self.scheduler = self._makeScheduler()
        self.jobWorkerFactory = jobWorkerFactory or worker.SimpleJobWorker
        self.jobWorkerArguments = dict(
            {'waitTime': 1.0} if jobWorkerArguments is None
            else jobWorkerArguments)
        self.schedulerWorkerFactory = (schedulerWorkerFactory or
                                       worker.SchedulerWorker)
        self.schedulerWorkerArguments = dict(
            {'waitTime': 1.0} if schedulerWorkerArguments is None
            else schedulerWorkerArguments)
        self._factoryCache = {}
        self._wakeup = threading.Event()
        self._lock = threading.RLock()
        self.leases = LeaseKeeper(self)
        self._jobWorker = WorkerThread(self, 'worker')
        self._schedulerWorker = WorkerThread(self, 'scheduler')

    def _makeScheduler(self):
        from m01.remote.scheduler import Scheduler
        scheduler = Scheduler(self.schedulerCollection, clock=self.clock)
        scheduler.__parent__ = self
        scheduler.__name__ = 'scheduler'
        return scheduler

    def __repr__(self):
        return '<%s %r>' % (type(self).__name__, self.name)

    def __getitem__(self, name):
        # Traversal: /jobs/<id>, /factories/<name>, /scheduler/<id>
        children = {'jobs': self.jobs, 'factories': self.jobFactories,
                    'scheduler': self.scheduler}
        return children[name]

    def now(self):
        return toBSONTime(self.clock())

    @property
    def workerId(self):
        # Read at each claim: a forked process has another pid.
        return '%s:%d:%s' % (socket.gethostname(), os.getpid(), self.name)

    @property
    def jobWrites(self):
        """How job changes are made safe on this server (see jobstate).

        Decided at first use, not in the constructor, so that creating a
        processor does not need the database to be up.
        """
        if self._jobWrites is None:
            self._jobWrites = jobstate.jobWritesFor(
                self.database, self.prefix, self._ticketed)
        return self._jobWrites

    def ensureIndexes(self):
        """Create the indexes the queue needs; safe to call repeatedly."""
        self.jobWrites.ensureIndexes()
        self.jobsCollection.create_index([('created', -1), ('_id', -1)],
                                         name='m01_remote_created')
        self.scheduler.ensureIndexes()

    def close(self):
        self.stopProcessor()
        self.stopScheduler()

    # transaction

    def _dataManager(self, join=True):
        txn = self.transactionManager.get()
        try:
            return txn.data(self)
        except KeyError:
            if not join:
                return None
        dm = QueueDataManager(self, self.transactionManager)
        txn.join(dm)
        txn.set_data(self, dm)
        return dm

    def pendingJobDocuments(self):
        dm = self._dataManager(join=False)
        return list(dm.inserts) if dm is not None else []

    def withPendingUpdates(self, document):
        dm = self._dataManager(join=False)
        if dm is not None and str(document['_id']) in dm.updates:
            document = dict(document, **dm.updates[str(document['_id'])])
        return document

    def insertJobDocuments(self, documents):
        try:
            self.jobWrites.insertJobs(documents)
        except pymongo.errors.BulkWriteError as e:
            codes = {error.get('code') for error in
                     e.details.get('writeErrors', ())}
            if codes == {11000}:
                raise DuplicateJobError(
                    'A job with one of these ids exists already: %s'
                    % ', '.join(str(d['_id']) for d in documents))
            raise

    def wakeWorkers(self):
        self._wakeup.set()

    def waitForWork(self, timeout):
        """Block until jobs were committed here, or timeout seconds."""
        if self._wakeup.wait(timeout):
            self._wakeup.clear()
            return True
        return False

    # job factories

    def addJobFactory(self, name, job):
        if not isinstance(name, str) or not name.strip():
            raise ValueError('A job factory name must be a non-empty '
                             'string, not %r' % (name,))
        if not isinstance(job, Job):
            raise ValueError('A job factory must be a m01.remote.job.Job, '
                             'not %r' % (job,))
        job.name = job.__name__ = name
        document = dumpFactory(name, job)
        checkStorable(document['data'], 'factory settings')
        self.factoriesCollection.replace_one({'_id': name}, document,
                                             upsert=True)
        self._factoryCache[name] = (time.monotonic(), job)

    def getJobFactory(self, name):
        cached = self._factoryCache.get(name)
        if cached and time.monotonic() - cached[0] < self.factoryCacheSeconds:
            return cached[1]
        document = self.factoriesCollection.find_one({'_id': name})
        if document is None:
            self._factoryCache.pop(name, None)
            raise KeyError(name)
        factory = loadFactory(document)
        self._factoryCache[name] = (time.monotonic(), factory)
        return factory

    def removeJobFactory(self, name):
        self._factoryCache.pop(name, None)
        return self.factoriesCollection.delete_one({'_id': name}).deleted_count

    # jobs

    def addJob(self, name, input=None, immediate=False, jobid=None):
        try:
            factory = self.getJobFactory(name)
        except KeyError:
            known = ', '.join(repr(n) for n in self.jobFactories.keys())
            raise ValueError('Unknown job factory %r; known factories: %s'
                             % (name, known or 'none'))
        checkStorable(input)
        job = factory.getJob(input)
        now = self.now()
        document = job.dump()
        document.update({
            '_id': toObjectId(jobid) if jobid is not None
            else bson.ObjectId(),
            'status': QUEUED, 'created': now, 'queued': now,
            'retryTime': now, 'retryCounter': 0, 'errors': [],
            'tracebacks': [], 'output': None, 'version': 0})
        checkStorable(document, 'document')
        if immediate:
            self.insertJobDocuments([document])
            self.wakeWorkers()
        else:
            self._dataManager().inserts.append(document)
        return str(document['_id'])

    def getJobDocument(self, jobid):
        """The job's document as this transaction sees it, or None."""
        try:
            oid = toObjectId(jobid)
        except KeyError:
            return None
        dm = self._dataManager(join=False)
        if dm is not None:
            pending = dm.pendingDocument(str(oid))
            if pending is not None:
                return pending
        document = self.jobsCollection.find_one({'_id': oid})
        return self.withPendingUpdates(document) if document else None

    def _document(self, jobid):
        document = self.getJobDocument(jobid)
        if document is None:
            raise KeyError(jobid)
        return document

    def getJob(self, jobid):
        return self.jobs[jobid]

    def getJobStatus(self, jobid):
        return self._document(jobid)['status']

    def getJobResult(self, jobid):
        return self._document(jobid).get('output')

    def getJobErrors(self, jobid):
        return list(self._document(jobid).get('errors') or [])

    def _change(self, jobid, write, fields, immediate, action):
        """Run a conditional write now, or at commit."""
        if immediate:
            if not write():
                raise ValueError('Job %s cannot be %s: its status is %s'
                                 % (jobid, action, self.getJobStatus(jobid)))
            self.wakeWorkers()
            return
        self._dataManager().addWrite(write, jobid, fields, wake=True)

    def cancelJob(self, jobid, immediate=False):
        document = self._document(jobid)
        if document['status'] not in (QUEUED, PROCESSING):
            raise ValueError('Job %s is %s; only queued or processing jobs '
                             'can be cancelled' % (jobid, document['status']))
        dm = self._dataManager(join=False)
        pending = dm.pendingDocument(jobid) if dm is not None else None
        if pending is not None:
            pending['status'] = CANCELLED
            return
        oid = document['_id']
        self._change(
            jobid, lambda: self.jobWrites.cancel(oid, self.now()),
            {'status': CANCELLED}, immediate, 'cancelled')

    def retryJob(self, jobid, immediate=False):
        """Queue a job that ended in error or was cancelled again."""
        document = self._document(jobid)
        if document['status'] not in (ERROR, CANCELLED):
            raise ValueError('Job %s is %s; only jobs in error or cancelled '
                             'can be retried' % (jobid, document['status']))
        oid = document['_id']
        self._change(
            jobid, lambda: self.jobWrites.requeue(oid, self.now()),
            {'status': QUEUED, 'retryCounter': 0}, immediate, 'retried')

    def removeJob(self, jobid):
        oid = self._document(jobid)['_id']
        return self.jobsCollection.delete_one({'_id': oid}).deleted_count == 1

    def removeJobs(self, stati=None):
        stati = REMOVABLE_STATI if stati is None else tuple(stati)
        for status in stati:
            if status not in interfaces.STATI:
                raise ValueError('Unknown job status %r' % (status,))
        return {status: self.jobsCollection.delete_many(
            {'status': status}).deleted_count for status in stati}

    # processing

    def pullNextJob(self, jobQuery=None, callTime=None):
        now = toBSONTime(callTime) if callTime else self.now()
        document = self.jobWrites.claimNext(now, self.workerId,
                                            self.leaseTime, jobQuery)
        if document is None:
            return None
        try:
            return loadJob(document)
        except UnknownJobClassError as error:
            # A deployment mistake, not the job's: count it as a failed
            # attempt (another worker may have the class) and say why.
            logger.error('Job %s cannot run here: %s', document['_id'],
                         error)
            self.jobWrites.fail(document['_id'], document['claim'],
                                jobstate.failureUpdate(
                                    document.get('retryCounter'),
                                    document.get('maxRetries', 3),
                                    document.get('retryDelay', 10),
                                    '[%s] %s' % (now.isoformat(
                                        timespec='seconds'), error),
                                    '', now, final=False))
            return None

    def processJob(self, jobid, job=None):
        if job is None:
            document = self.jobWrites.claimJob(
                toObjectId(jobid), self.now(), self.workerId,
                self.leaseTime)
            if document is None:
                return False
            job = loadJob(document)
        self._runClaimedJob(job)
        return True

    def processNextJob(self, jobQuery=None, callTime=None):
        job = self.pullNextJob(jobQuery, callTime)
        if job is None:
            return False
        self._runClaimedJob(job, callTime)
        return True

    def processJobs(self, jobQuery=None, callTime=None):
        count = 0
        while self.processNextJob(jobQuery, callTime):
            count += 1
        return count

    def _runClaimedJob(self, job, callTime=None):
        # Join before the savepoint: a rollback then empties our buffer
        # instead of removing us from the transaction.
        self._dataManager()
        savepoint = self.transactionManager.get().savepoint(optimistic=True)
        self.leases.add(job.__name__, job.claim)
        recorded = False
        try:
            try:
                output = job(self)
                checkStorable(output, 'output')
            except Exception as error:
                self._rollback(savepoint)
                self._recordFailure(job, error, isinstance(error, JobError),
                                    callTime)
            else:
                self._recordOutcome(job, lambda: self.jobWrites.complete(
                    toObjectId(job.__name__), job.claim, output,
                    self.now()))
            recorded = True
        finally:
            if not recorded:
                self.leases.discard(job.__name__, job.claim)

    def _releaseLeaseAtEnd(self, job):
        """Keep renewing the job's lease until the transaction that stores
        its outcome ends: a lease that expired while the outcome waits for
        the commit would let another worker run the job again. Committed,
        the job is no longer processing; aborted, it runs again once the
        lease expires."""
        def release(*ignored):
            self.leases.discard(job.__name__, job.claim)
        txn = self.transactionManager.get()
        txn.addAfterCommitHook(release)
        txn.addAfterAbortHook(release)

    def _rollback(self, savepoint):
        try:
            savepoint.rollback()
        except Exception:
            # The job ended its transaction itself, or a participant
            # cannot roll back to a savepoint: drop all of it.
            self.transactionManager.abort()

    def _recordFailure(self, job, error, final, callTime=None):
        message = getJobErrorMessage(self.registry, job, error)
        update = jobstate.failureUpdate(
            job.retryCounter, job.maxRetries, job.retryDelay, message,
            traceback.format_exc(), toBSONTime(callTime) if callTime
            else self.now(), final)
        self._recordOutcome(job, lambda: self.jobWrites.fail(
            toObjectId(job.__name__), job.claim, update))

    def _recordOutcome(self, job, write):
        def conditionalWrite():
            if not write():
                logger.warning(
                    'The outcome of job %s was not stored: the job was '
                    'cancelled or taken over after its lease expired.',
                    job.__name__)
            return True
        self._dataManager().addWrite(conditionalWrite, wake=True)
        self._releaseLeaseAtEnd(job)

    def recoverExpiredJobs(self, callTime=None):
        """Requeue (or fail) jobs whose worker stopped renewing its lease.
        """
        now = toBSONTime(callTime) if callTime else self.now()
        recovered = self.jobWrites.recoverExpired(now)
        for jobid, status in recovered:
            logger.warning('Job %s lost its worker; it is now %s.',
                           jobid, status)
        if recovered:
            self.wakeWorkers()
        return recovered

    # scheduler

    def addScheduler(self, item):
        return self.scheduler.add(item)

    def scheduleNextJob(self, callTime=None):
        from m01.remote.scheduler import scheduleNextJob
        return scheduleNextJob(self, callTime)

    def scheduleItemNow(self, itemid):
        item = self.scheduler[itemid]
        return self.addJob(item.jobName, item.input, immediate=True)

    # threads

    @property
    def isProcessing(self):
        return self._jobWorker.isRunning

    @property
    def isScheduling(self):
        return self._schedulerWorker.isRunning

    def startProcessor(self):
        self._jobWorker.start(self.jobWorkerFactory,
                              self.jobWorkerArguments)

    def stopProcessor(self, timeout=None):
        self._jobWorker.stop(timeout)

    def startScheduler(self):
        self._schedulerWorker.start(self.schedulerWorkerFactory,
                                    self.schedulerWorkerArguments)

    def stopScheduler(self, timeout=None):
        self._schedulerWorker.stop(timeout)
