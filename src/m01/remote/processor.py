"""The remote processor: the specification's facade over the job queue,
its scheduler and its threads (``IRemoteProcessor``).

Its collaborators are made by ``m01.remote.wiring``; each call goes to
the one that does the work: claims (``queue.claims``), runs
(``queue.runner``), a new job's document (``queue.updates``), its
dependencies (``queue.dependencies``), a cancel's or a retry's writes
(``queue.changes``), writes at commit (``queue.transaction``).
"""
import copy
import functools

import transaction
import zope.component
import zope.interface

from m01.remote import interfaces
from m01.remote.clock import QueueClock, toBSONTime
from m01.remote.interfaces import (
    CANCELLED,
    ERROR,
    QUEUED,
    REMOVABLE_STATI,
)
from m01.remote.job import (
    DuplicateJobKeyError,
    checkPriority,
    checkQueueName,
    checkSeconds,
    checkStorable,
)
from m01.remote.queue import events
from m01.remote.queue.changes import (
    keyReleaser,
    releaseKey,
    requeueing,
)
from m01.remote.queue.containers import JobContainer, toObjectId
from m01.remote.queue.debounce import Debouncer
from m01.remote.queue.search import TERMS_INDEX
from m01.remote.queue.transaction import QueueTransaction
from m01.remote.queue.updates import newJobDocument
from m01.remote.scheduler import scheduleNextJob
from m01.remote.store import storeDatabase
from m01.remote.wiring import wire
from m01.remote.worker import SchedulerWorker, SimpleJobWorker
from m01.remote.workflows import ProcessorWorkflows


@zope.interface.implementer(interfaces.IRemoteProcessor)
class RemoteProcessor(ProcessorWorkflows):
    """A job queue and scheduler stored in a MongoDB database.

    ``database`` is a pymongo ``Database``, the embedded store's, or a
    plain mongomock one (which becomes the embedded store's).
    ``registry`` (default: the global one) adapts error messages and
    finds worker kinds, run wrappers and the subscribers of job events;
    worker threads get it from here, never from thread-locals.

    Jobs added, cancelled or retried join the current transaction of
    ``transactionManager`` (default: the thread's, ``transaction.manager``).
    ``bind(manager)`` gives the same processor working in the transactions
    of another manager: a request's ``request.tm``, a worker loop's own.

    ``wakeup`` (``'auto'``, ``'changestream'``, ``'poll'``) says how
    idle loops learn of other processes' commits (``worker.wakeup``).

    The queue's own collections are written with ``writeConcern``
    (``'majority'`` or a number of members); the pages' read-only
    queries read with ``readPreference`` (``m01.remote.store.cluster``).
    """

    __name__ = None
    __parent__ = None
    #: The outbox of the jobs added through a binding with a session
    #: (``useOutbox``), or None.
    outbox = None
    #: The SQL session whose rows the jobs added here become, or None.
    _outboxSession = None

    def __init__(self, database, name='root', registry=None, prefix='r',
                 leaseTime=60.0, transactionManager=None, clock=None,
                 wakeup='auto', writeConcern='majority',
                 readPreference='primary',
                 jobWorkerFactory=None, jobWorkerArguments=None,
                 schedulerWorkerFactory=None, schedulerWorkerArguments=None):
        if not name or not isinstance(name, str):
            raise ValueError('A processor needs a name, not %r' % (name,))
        if leaseTime <= 0:
            raise ValueError('leaseTime must be positive, not %r'
                             % (leaseTime,))
        # A plain mongomock database (a site's own tests) becomes the
        # embedded store's.
        database = storeDatabase(database)
        self.database = database
        self.name = name
        self.prefix = prefix
        self.registry = registry or zope.component.getGlobalSiteManager()
        self.now = QueueClock(clock)
        self.jobWorkerFactory = jobWorkerFactory or SimpleJobWorker
        self.jobWorkerArguments = dict(
            {'waitTime': 1.0} if jobWorkerArguments is None
            else jobWorkerArguments)
        self.schedulerWorkerFactory = (schedulerWorkerFactory or
                                       SchedulerWorker)
        self.schedulerWorkerArguments = dict(
            {'waitTime': 1.0} if schedulerWorkerArguments is None
            else schedulerWorkerArguments)
        wire(self, database, prefix, leaseTime, wakeup, writeConcern,
             readPreference)
        self._transactionKey = object()
        self._useTransactionManager(transactionManager or transaction.manager)

    def _useTransactionManager(self, transactionManager, session=None):
        follow = None
        if session is not None:
            if self.outbox is None:
                raise ValueError(
                    'Processor %r has no outbox for the jobs of an SQL '
                    'session: set one up with config.set_remote_outbox() '
                    '(m01.remote.outbox)' % (self.name,))
            follow = functools.partial(self.outbox.follow, session)
        self.transactionManager = transactionManager
        self._outboxSession = session
        self.pending = QueueTransaction(
            transactionManager, self._transactionKey,
            self.jobWrites.insertJobs, self.jobWakeup.set,
            self.jobWrites.finishMany, follow,
            holdClaims=self.leases.holdClaims)
        self.jobs = JobContainer(self, self.jobsCollection, self.pending,
                                 self.jobWrites,
                                 pages=self.pageJobsCollection)
        self.debouncer = Debouncer(self.keys, self.jobs.document,
                                   self.pending, self.jobWrites, self.now)

    def bind(self, transactionManager, session=None):
        """This processor, its jobs joining the transactions of
        ``transactionManager`` (with ``session``, an SQLAlchemy session it
        commits, as rows of that session in the outbox: ``useOutbox``).
        Everything else (threads, leases, caches) is shared."""
        bound = copy.copy(self)
        bound._useTransactionManager(transactionManager, session)
        return bound

    def useOutbox(self, outbox):
        """Send the jobs added through a binding with a session through
        ``outbox`` (``IJobOutbox``); the lease keeper sweeps it, and a key
        whose job waits in it stays taken."""
        self.outbox = outbox
        self.keys.waiting = outbox.status
        self.leases.upkeep.append(outbox)

    def __repr__(self):
        return '<%s %r>' % (type(self).__name__, self.name)

    def __getitem__(self, name):
        # Traversal: /jobs/<id>, /factories/<name>, /scheduler/<id>
        children = {'jobs': self.jobs, 'factories': self.jobFactories,
                    'scheduler': self.scheduler}
        return children[name]

    clock = property(
        lambda self: self.now.clock,
        lambda self, clock: setattr(self.now, 'clock', clock),
        doc="The function telling the time, that ``now`` reads: set it to "
            "move every collaborator's time.")

    @property
    def leaseTime(self):
        return self.leases.leaseTime

    @property
    def workerId(self):
        return self.claims.workerId

    def ensureIndexes(self):
        self.jobWrites.ensureIndexes()
        self.dependencies.ensureIndexes()
        self.jobsCollection.create_index([('created', -1), ('_id', -1)],
                                         name='m01_remote_created')
        self.jobsCollection.create_index(TERMS_INDEX,
                                         name='m01_remote_terms')
        self.scheduler.ensureIndexes()
        self.counters.ensureIndexes()
        self.retention.ensureIndexes()
        self.monitor.ensureIndexes()
        self.rates.ensureIndexes()

    def close(self):
        # No thread of this processor uses the client after this.
        self.stopProcessor()
        self.stopScheduler()
        self.jobChanges.stop()
        self.schedulerChanges.stop()
        self.threads.writeCounters(self.counters.close, 'it closed')

    # transaction

    def pendingJobDocuments(self):
        return self.pending.addedDocuments()

    def insertJobDocuments(self, documents):
        self.jobWrites.insertJobs(documents)

    def wakeWorkers(self):
        self.jobWakeup.set()

    def waitForWork(self, timeout):
        return self.jobWakeup.wait(timeout)

    def wakeScheduler(self):
        self.schedulerWakeup.set()

    def waitForSchedule(self, timeout):
        return self.schedulerWakeup.wait(timeout)

    # job factories

    def addJobFactory(self, name, job):
        self.jobFactories.add(name, job)

    def getJobFactory(self, name):
        return self.jobFactories.factory(name)

    def removeJobFactory(self, name):
        return self.jobFactories.remove(name)

    def pauseJobFactory(self, name):
        self.jobFactories.pause(name)

    def resumeJobFactory(self, name):
        self.jobFactories.resume(name)
        self.wakeWorkers()

    def pauseQueue(self, name):
        self.queueSettings.pause(name)

    def resumeQueue(self, name):
        self.queueSettings.resume(name)
        self.wakeWorkers()

    def setQueueRateLimit(self, name, rateLimit):
        self.queueSettings.setRateLimit(name, rateLimit)

    # jobs

    def addJob(self, name, input=None, immediate=False, jobid=None,
               delay=None, at=None, priority=None, timeout=None, key=None,
               onDuplicateKey='return', dependsOn=None, onFailure='cancel',
               queue=None, keyPeriod=None, debounce=None):
        # A job for the outbox needs no MongoDB (unless it has a key):
        # the factory last read serves while the store is away.
        try:
            if self._outboxSession is not None and not immediate:
                factory = self.jobFactories.factory(name, lastKnown=True)
            else:
                factory = self.getJobFactory(name)
        except KeyError:
            known = ', '.join(repr(n) for n in self.jobFactories.keys())
            raise ValueError('Unknown job factory %r; known factories: %s'
                             % (name, known or 'none'))
        checkStorable(input)
        job = factory.getJob(input)
        if priority is not None:
            checkPriority(priority)
            job.priority = priority
        if timeout is not None:
            checkSeconds(timeout, 'timeout', positive=True)
            job.timeout = timeout
        if queue is not None:
            job.queue = checkQueueName(queue)
        if onDuplicateKey not in ('return', 'raise'):
            raise ValueError("onDuplicateKey is 'return' or 'raise', not %r"
                             % (onDuplicateKey,))
        document = newJobDocument(job, input, self.now(), jobid, delay, at,
                                  key, keyPeriod, debounce)
        self._dependOn(document, dependsOn, onFailure, immediate)
        if key is not None:
            holder, moved = self.debouncer.add(document, immediate)
            if holder is not None:
                if not moved and onDuplicateKey == 'raise':
                    raise self.debouncer.duplicate(holder, key)
                return holder
        if immediate:
            try:
                self.insertJobDocuments([document])
            except BaseException:
                releaseKey(self.keys, document)
                raise
            self.wakeWorkers()
        else:
            self.pending.add(document)
            if key is not None:
                self.transactionManager.get().addAfterAbortHook(
                    keyReleaser(self.keys, document))
        self._settle(document, immediate)
        events.added(self.registry, self, job, document,
                     None if immediate else self.transactionManager)
        return str(document['_id'])

    def getJobDocument(self, jobid):
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
        self._checkCancellable(jobid, document)
        pending = self.pending.addedDocument(str(document['_id']))
        if pending is not None:
            pending['status'] = CANCELLED
            return
        self._change(jobid, events.cancelled(
            self.registry, self, jobid, self._cancelling(document),
            None if immediate else self.transactionManager),
            {'status': CANCELLED}, immediate, 'cancelled')

    def retryJob(self, jobid, immediate=False):
        document = self._document(jobid)
        if document['status'] not in (ERROR, CANCELLED):
            raise ValueError('Job %s is %s; only jobs in error or cancelled '
                             'can be retried' % (jobid, document['status']))
        oid = document['_id']
        if document.get('key'):
            holder = self.keys.reserve(document['key'], oid,
                                       self.jobs.document,
                                       document.get('keyPeriod'))
            if holder is not None and holder != str(oid):
                raise DuplicateJobKeyError(
                    'Job %s cannot be retried: job %s holds its key %r'
                    % (jobid, holder, document['key']), holder)
        self._change(jobid, requeueing(self.jobWrites, self.now, oid),
                     {'status': QUEUED, 'retryCounter': 0}, immediate,
                     'retried')

    def removeJob(self, jobid):
        document = self._document(jobid)
        removed = self.jobsCollection.delete_one(
            {'_id': document['_id']}).deleted_count == 1
        if removed:
            releaseKey(self.keys, document)
        return removed

    def removeJobs(self, stati=None):
        stati = REMOVABLE_STATI if stati is None else tuple(stati)
        for status in stati:
            if status not in interfaces.STATI:
                raise ValueError('Unknown job status %r' % (status,))
        return {status: self.jobsCollection.delete_many(
            {'status': status}).deleted_count for status in stati}

    # processing

    def pullNextJob(self, jobQuery=None, callTime=None, queues=None):
        return self.claims.next(jobQuery, callTime, queues)

    def pullNextJobs(self, limit, jobQuery=None, callTime=None,
                     queues=None):
        return self.claims.many(limit, jobQuery, callTime, queues)

    def processJob(self, jobid, job=None):
        if job is None:
            job = self.claims.one(toObjectId(jobid))
            if job is None:
                return False
        self.runner.run(job, self, self.pending)
        return True

    def processNextJob(self, jobQuery=None, callTime=None, queues=None):
        job = self.pullNextJob(jobQuery, callTime, queues)
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
        return self.leases.recover(toBSONTime(callTime) if callTime
                                   else None)

    # scheduler

    def addScheduler(self, item):
        itemid = self.scheduler.add(item)
        self.wakeScheduler()
        return itemid

    def scheduleNextJob(self, callTime=None):
        if self.monitor.quiet:
            return None
        return scheduleNextJob(self, callTime)

    def scheduleItemNow(self, itemid):
        item = self.scheduler[itemid]
        return self.addJob(item.jobName, item.input, immediate=True)

    # threads

    @property
    def isProcessing(self):
        return self.threads.worker.isRunning

    @property
    def isScheduling(self):
        return self.threads.scheduler.isRunning

    def startProcessor(self):
        self.threads.startWorker(self.jobWorkerFactory,
                                 self.jobWorkerArguments)

    def stopProcessor(self, timeout=None):
        self.threads.stopWorker(timeout)

    def startScheduler(self):
        self.threads.startScheduler(self.schedulerWorkerFactory,
                                    self.schedulerWorkerArguments)

    def stopScheduler(self, timeout=None):
        self.threads.stopScheduler(timeout)
