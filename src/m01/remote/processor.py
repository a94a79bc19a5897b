"""The remote processor: job factories, the job queue and its threads."""
import copy
import logging
import os
import socket
import threading

import bson
import pymongo.errors
import transaction
import zope.component
import zope.interface

from m01.remote import interfaces
from m01.remote.clock import toBSONTime, utcnow
from m01.remote.containers import JobContainer, JobFactoryContainer, toObjectId
from m01.remote.datamanager import QueueTransaction
from m01.remote.execution import JobRunner
from m01.remote.interfaces import (
    CANCELLED,
    ERROR,
    PROCESSING,
    QUEUED,
    REMOVABLE_STATI,
)
from m01.remote.job import (
    DuplicateJobError,
    UnknownJobClassError,
    checkStorable,
    loadJob,
)
from m01.remote.jobwrites import ServerJobWrites
from m01.remote.leases import LeaseKeeper
from m01.remote.threads import WorkerThread

logger = logging.getLogger('m01.remote')


@zope.interface.implementer(interfaces.IRemoteProcessor)
class RemoteProcessor:
    """A job queue and scheduler stored in a MongoDB database.

    ``database`` is a pymongo ``Database`` (or the embedded store's).
    ``registry`` is the component registry used to adapt error messages
    and to find worker kinds; it defaults to the global one. Worker
    threads get it from here, never from thread-locals.

    Jobs added, cancelled or retried join the current transaction of
    ``transactionManager`` (default: the thread's, ``transaction.manager``).
    ``bind(manager)`` gives the same processor working in the transactions
    of another manager: a request's ``request.tm``, a worker loop's own.
    """

    __name__ = None
    __parent__ = None

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
        self.clock = clock or utcnow
        self.factoriesCollection = database[prefix + 'factories']
        self.jobsCollection = database[prefix + 'jobs']
        self.schedulerCollection = database[prefix + 'scheduler']
        self.prefix = prefix
        #: How job changes are made safe on this server (``IJobWrites``),
        #: decided at first use: a processor is made without its server.
        self.jobWrites = ServerJobWrites(database, prefix, ticketed)
        self.jobFactories = JobFactoryContainer(self,
                                                self.factoriesCollection)
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
        self._wakeup = threading.Event()
        self.leases = LeaseKeeper(
            name, float(leaseTime), self.jobWrites, self.now,
            recovered=lambda jobids: self.wakeWorkers())
        self.runner = JobRunner(self.jobWrites, self.leases, self.registry,
                                self.now)
        self._transactionKey = object()
        self._useTransactionManager(transactionManager or transaction.manager)
        self._jobWorker = WorkerThread(self, 'worker')
        self._schedulerWorker = WorkerThread(self, 'scheduler')

    def _useTransactionManager(self, transactionManager):
        self.transactionManager = transactionManager
        self.pending = QueueTransaction(
            transactionManager, self._transactionKey,
            self.insertJobDocuments, self.wakeWorkers)
        self.jobs = JobContainer(self, self.jobsCollection, self.pending)

    def bind(self, transactionManager):
        """This processor, its jobs joining the transactions of
        ``transactionManager``. Everything else (threads, leases, caches)
        is shared with this one."""
        bound = copy.copy(self)
        bound._useTransactionManager(transactionManager)
        return bound

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
    def leaseTime(self):
        """Seconds a claim lasts (renewed while the job runs)."""
        return self.leases.leaseTime

    @property
    def workerId(self):
        # Read at each claim: a forked process has another pid.
        return '%s:%d:%s' % (socket.gethostname(), os.getpid(), self.name)

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

    def pendingJobDocuments(self):
        return self.pending.addedDocuments()

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
        """Store a job factory (at once, for every process)."""
        self.jobFactories.add(name, job)

    def getJobFactory(self, name):
        return self.jobFactories.factory(name)

    def removeJobFactory(self, name):
        return self.jobFactories.remove(name)

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
            self.pending.dataManager().inserts.append(document)
        return str(document['_id'])

    def getJobDocument(self, jobid):
        """The job's document as this transaction sees it, or None."""
        return self.jobs.document(jobid)

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
        self.pending.dataManager().addWrite(write, jobid, fields, wake=True)

    def cancelJob(self, jobid, immediate=False):
        document = self._document(jobid)
        if document['status'] not in (QUEUED, PROCESSING):
            raise ValueError('Job %s is %s; only queued or processing jobs '
                             'can be cancelled' % (jobid, document['status']))
        pending = self.pending.addedDocument(str(document['_id']))
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
            self.runner.failUnloadable(document, error, now)
            return None

    def processJob(self, jobid, job=None):
        if job is None:
            document = self.jobWrites.claimJob(
                toObjectId(jobid), self.now(), self.workerId,
                self.leaseTime)
            if document is None:
                return False
            job = loadJob(document)
        self.runner.run(job, self, self.pending)
        return True

    def processNextJob(self, jobQuery=None, callTime=None):
        job = self.pullNextJob(jobQuery, callTime)
        if job is None:
            return False
        self.runner.run(job, self, self.pending, callTime)
        return True

    def processJobs(self, jobQuery=None, callTime=None):
        count = 0
        while self.processNextJob(jobQuery, callTime):
            count += 1
        return count

    def recoverExpiredJobs(self, callTime=None):
        """Requeue (or fail) jobs whose worker stopped renewing its lease.
        """
        return self.leases.recover(toBSONTime(callTime) if callTime
                                   else None)

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
