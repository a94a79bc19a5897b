"""The remote processor: job factories, the job queue and its threads."""
import copy
import functools
import logging
import os
import socket

import bson
import pymongo.errors
import transaction
import zope.component
import zope.interface

from m01.remote import interfaces
from m01.remote.clock import toBSONTime, utcnow
from m01.remote.interfaces import (
    CANCELLED,
    ERROR,
    PROCESSING,
    QUEUED,
    REMOVABLE_STATI,
)
from m01.remote.job import (
    DuplicateJobError,
    DuplicateJobKeyError,
    UnknownJobClassError,
    checkPriority,
    checkSeconds,
    checkStorable,
    dueTime,
    loadJob,
)
from m01.remote.queue.containers import (
    JobContainer,
    JobFactoryContainer,
    toObjectId,
)
from m01.remote.queue.counters import OutcomeCounters
from m01.remote.queue.keys import JobKeys, checkKey
from m01.remote.queue.leases import LeaseKeeper
from m01.remote.queue.runner import JobRunner
from m01.remote.queue.search import TERMS_INDEX, addedTerms
from m01.remote.queue.slots import ConcurrencySlots
from m01.remote.queue.transaction import QueueTransaction
from m01.remote.store import storeDatabase
from m01.remote.store.cluster import forPages, queueDatabase
from m01.remote.store.retried import RetriedOutcomes
from m01.remote.store.strategy import ServerJobWrites
from m01.remote.worker.heartbeats import ProcessMonitor
from m01.remote.worker.threads import WorkerThread
from m01.remote.worker.wakeevents import watchJobs, watchScheduler
from m01.remote.worker.wakeup import Wakeup

logger = logging.getLogger('m01.remote')


@zope.interface.implementer(interfaces.IRemoteProcessor)
class RemoteProcessor:
    """A job queue and scheduler stored in a MongoDB database.

    ``database`` is a pymongo ``Database``, the embedded store's, or a
    plain mongomock one, which becomes the embedded store's
    (``store.storeDatabase``).
    ``registry`` is the component registry used to adapt error messages
    and to find worker kinds; it defaults to the global one. Worker
    threads get it from here, never from thread-locals.

    Jobs added, cancelled or retried join the current transaction of
    ``transactionManager`` (default: the thread's, ``transaction.manager``).
    ``bind(manager)`` gives the same processor working in the transactions
    of another manager: a request's ``request.tm``, a worker loop's own.

    ``wakeup`` says how idle loops learn of jobs (and scheduler items)
    committed by other processes: ``'auto'``, through change streams
    where the server offers them, else by polling; ``'changestream'``;
    ``'poll'`` (``m01.remote.worker.wakeevents``).

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
    outboxSession = None

    def __init__(self, database, name='root', registry=None, prefix='r',
                 leaseTime=60.0, transactionManager=None, clock=None,
                 wakeup='auto', writeConcern='majority',
                 readPreference='primary',
                 jobWorkerFactory=None, jobWorkerArguments=None,
                 schedulerWorkerFactory=None, schedulerWorkerArguments=None):
        from m01.remote import worker
        if not name or not isinstance(name, str):
            raise ValueError('A processor needs a name, not %r' % (name,))
        if leaseTime <= 0:
            raise ValueError('leaseTime must be positive, not %r'
                             % (leaseTime,))
        # A plain mongomock database becomes the embedded store's.
        database = storeDatabase(database)
        self.database = database
        database = queueDatabase(database, writeConcern)
        self.name = name
        self.registry = registry or zope.component.getGlobalSiteManager()
        self.clock = clock or utcnow
        self.factoriesCollection = database[prefix + 'factories']
        self.jobsCollection = database[prefix + 'jobs']
        self.schedulerCollection = database[prefix + 'scheduler']
        self.pageJobsCollection = forPages(self.jobsCollection,
                                           readPreference)
        self.prefix = prefix
        #: How job changes are made safe on this server (``IJobWrites``),
        #: decided at first use: a processor is made without its server.
        self.jobWrites = RetriedOutcomes(
            ServerJobWrites(database, prefix), self.jobsCollection)
        self.jobFactories = JobFactoryContainer(
            self, self.factoriesCollection, database[prefix + 'pauses'])
        self.keys = JobKeys(database[prefix + 'keys'], self.now,
                            self._storedStatus)
        # Not ``self.jobWrites.state``: that would choose the strategy,
        # asking the server, now.
        self.slots = ConcurrencySlots(
            database[prefix + 'slots'], self.now,
            lambda oid: self.jobWrites.state(oid))
        #: How many jobs of each factory ended how (``IOutcomeCounters``).
        self.counters = OutcomeCounters(database[prefix + 'counters'],
                                        self.now)
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
        #: The heartbeat of this processor's workers, and an operator's
        #: say over them (``IProcessMonitor``).
        self.monitor = ProcessMonitor(
            database[prefix + 'workers'], database[prefix + 'controls'],
            self.now, name, running=lambda: self.leases.running(),
            onStop=self._stopAsAsked)
        #: What the idle loops wait on, and what wakes them for other
        #: processes' commits.
        self.jobWakeup = Wakeup(self.now)
        self.schedulerWakeup = Wakeup(self.now)
        self.jobChanges = watchJobs(self.jobsCollection, self.jobWakeup,
                                    name, wakeup)
        self.schedulerChanges = watchScheduler(
            self.schedulerCollection, self.schedulerWakeup, name, wakeup)
        self.leases = LeaseKeeper(
            name, float(leaseTime), self.jobWrites, self.now,
            recovered=self._jobsEnded,
            upkeep=(self.slots, self.keys, self.counters, self.monitor))
        self.runner = JobRunner(self.jobWrites, self.leases, self.registry,
                                self.now, slots=self.slots, keys=self.keys,
                                counters=self.counters)
        self._transactionKey = object()
        self._useTransactionManager(transactionManager or transaction.manager)
        self._jobWorker = WorkerThread(self, 'worker')
        self._schedulerWorker = WorkerThread(self, 'scheduler')

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
        self.outboxSession = session
        self.pending = QueueTransaction(
            transactionManager, self._transactionKey,
            self.insertJobDocuments, self.wakeWorkers,
            lambda *args: self.jobWrites.finishMany(*args), follow)
        self.jobs = JobContainer(self, self.jobsCollection, self.pending,
                                 self.jobWrites,
                                 pages=self.pageJobsCollection)

    def bind(self, transactionManager, session=None):
        """This processor, its jobs joining the transactions of
        ``transactionManager``. Everything else (threads, leases, caches)
        is shared with this one.

        With ``session`` (an SQLAlchemy session that ``transactionManager``
        commits, through zope.sqlalchemy), the jobs added become rows of
        that session in the outbox (``useOutbox``), committed or rolled
        back with the session's own, and are moved into the queue once
        committed."""
        bound = copy.copy(self)
        bound._useTransactionManager(transactionManager, session)
        return bound

    def useOutbox(self, outbox):
        """Send the jobs added through a binding with a session through
        ``outbox`` (``IJobOutbox``); the lease keeper sweeps it."""
        self.outbox = outbox
        self.leases.upkeep.append(outbox)

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
        self.jobsCollection.create_index(TERMS_INDEX,
                                         name='m01_remote_terms')
        self.scheduler.ensureIndexes()
        self.counters.ensureIndexes()
        self.monitor.ensureIndexes()

    def close(self):
        self.stopProcessor()
        self.stopScheduler()
        # No thread of ours goes on using the client after this.
        self.jobChanges.stop()
        self.schedulerChanges.stop()
        self._writeCounters(self.counters.close, 'it closed')

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
        self.jobWakeup.set()

    def _jobsEnded(self, jobids):
        # Recovered or stopped by the lease keeper: they may run again.
        self.wakeWorkers()
        self.counters.countEnded(self.jobsCollection.find(
            {'_id': {'$in': [toObjectId(jobid) for jobid in jobids]}},
            {'name': 1, 'status': 1, 'attempts': 1}))

    def waitForWork(self, timeout):
        """Block until jobs were committed (here, or elsewhere as a change
        stream tells), one came due, or timeout seconds."""
        return self.jobWakeup.wait(timeout)

    def wakeScheduler(self):
        self.schedulerWakeup.set()

    def waitForSchedule(self, timeout):
        """Block until a scheduler item was added or changed (here, or
        elsewhere as a change stream tells), one came due, or timeout
        seconds."""
        return self.schedulerWakeup.wait(timeout)

    # job factories

    def addJobFactory(self, name, job):
        """Store a job factory (at once, for every process)."""
        self.jobFactories.add(name, job)

    def getJobFactory(self, name):
        return self.jobFactories.factory(name)

    def removeJobFactory(self, name):
        return self.jobFactories.remove(name)

    # jobs

    def addJob(self, name, input=None, immediate=False, jobid=None,
               delay=None, at=None, priority=None, timeout=None, key=None,
               onDuplicateKey='return'):
        # A job for the outbox needs no MongoDB (unless it has a key):
        # the factory last read serves while the store is away.
        try:
            if self.outboxSession is not None and not immediate:
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
        if onDuplicateKey not in ('return', 'raise'):
            raise ValueError("onDuplicateKey is 'return' or 'raise', not %r"
                             % (onDuplicateKey,))
        now = self.now()
        document = job.dump()
        document.update({
            '_id': toObjectId(jobid) if jobid is not None
            else bson.ObjectId(),
            'status': QUEUED, 'created': now, 'queued': now,
            'retryTime': dueTime(now, delay, at), 'retryCounter': 0,
            'errors': [], 'tracebacks': [], 'attempts': [], 'output': None,
            'version': 0})
        if key is not None:
            checkKey(key)
            document['key'] = key
        document['terms'] = addedTerms(document['_id'], input)
        checkStorable(document, 'document')
        if key is not None:
            holder = self.keys.reserve(key, document['_id'], self._status)
            if holder is not None:
                if onDuplicateKey == 'raise':
                    raise DuplicateJobKeyError(
                        'Job %s holds the key %r: it is queued or running'
                        % (holder, key), holder)
                return holder
        if immediate:
            try:
                self.insertJobDocuments([document])
            except BaseException:
                self._releaseKey(document)
                raise
            self.wakeWorkers()
        else:
            self.pending.add(document)
            if key is not None:
                self.transactionManager.get().addAfterAbortHook(
                    lambda *ignored: self._releaseKey(document))
        return str(document['_id'])

    def _releaseKey(self, document):
        if document.get('key'):
            self.keys.release(document['key'], document['_id'])

    def _storedStatus(self, oid):
        state = self.jobWrites.state(oid)
        return state[0] if state else self._outboxStatus(oid)

    def _status(self, oid):
        """A job's status as this transaction sees it, or None."""
        document = self.getJobDocument(oid)
        return document['status'] if document else self._outboxStatus(oid)

    def _outboxStatus(self, oid):
        # A job committed to the outbox and not moved yet holds its key.
        return self.outbox.status(oid) if self.outbox is not None else None

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

        def cancel():
            now = self.now()
            cancelled = self.jobWrites.cancel(oid, now)
            if cancelled:
                self._releaseKey(document)
                picked = document.get('picked')
                self.counters.count(
                    document['name'], 'cancelled', now,
                    (now - picked).total_seconds() if picked and
                    document['status'] == PROCESSING else None)
            return cancelled
        self._change(jobid, cancel, {'status': CANCELLED}, immediate,
                     'cancelled')

    def retryJob(self, jobid, immediate=False):
        """Queue a job that ended in error or was cancelled again."""
        document = self._document(jobid)
        if document['status'] not in (ERROR, CANCELLED):
            raise ValueError('Job %s is %s; only jobs in error or cancelled '
                             'can be retried' % (jobid, document['status']))
        oid = document['_id']
        if document.get('key'):
            holder = self.keys.reserve(document['key'], oid, self._status)
            if holder is not None and holder != str(oid):
                raise DuplicateJobKeyError(
                    'Job %s cannot be retried: job %s holds its key %r'
                    % (jobid, holder, document['key']), holder)
        self._change(
            jobid, lambda: self.jobWrites.requeue(oid, self.now()),
            {'status': QUEUED, 'retryCounter': 0}, immediate, 'retried')

    def removeJob(self, jobid):
        document = self._document(jobid)
        removed = self.jobsCollection.delete_one(
            {'_id': document['_id']}).deleted_count == 1
        if removed:
            self._releaseKey(document)
        return removed

    def removeJobs(self, stati=None):
        stati = REMOVABLE_STATI if stati is None else tuple(stati)
        for status in stati:
            if status not in interfaces.STATI:
                raise ValueError('Unknown job status %r' % (status,))
        return {status: self.jobsCollection.delete_many(
            {'status': status}).deleted_count for status in stati}

    # processing

    #: How often a claim skips a factory at its concurrency limit and
    #: claims again.
    claimRounds = 5

    def pullNextJob(self, jobQuery=None, callTime=None):
        if self.monitor.quiet:
            return None      # an operator asked this process to take none
        now = toBSONTime(callTime) if callTime else self.now()
        excluded = set(self.jobFactories.pausedNames())
        for _ in range(self.claimRounds):
            excluded |= self.slots.fullNames()
            document = self.jobWrites.claimNext(
                now, self.workerId, self.leaseTime, jobQuery, excluded)
            if document is None:
                return None
            if self._takeSlot(document):
                return self._loadClaimed(document, now)
            excluded.add(document['name'])
        return None

    def pullNextJobs(self, limit, jobQuery=None, callTime=None):
        """Claim up to ``limit`` due jobs at once (``IJobWrites.claimMany``:
        a constant number of commands) and return them in claim order.

        Jobs of factories with a concurrency limit are not batched: one of
        them is claimed singly beside the batch, with its slot."""
        if self.monitor.quiet:
            return []        # an operator asked this process to take none
        if limit <= 1:
            job = self.pullNextJob(jobQuery, callTime)
            return [job] if job is not None else []
        now = toBSONTime(callTime) if callTime else self.now()
        capped = self.jobFactories.cappedNames()
        excluded = set(self.jobFactories.pausedNames()) | capped
        documents = self.jobWrites.claimMany(
            now, self.workerId, self.leaseTime, limit, jobQuery, excluded)
        jobs = []
        for document in documents:
            job = self._loadClaimed(document, now)
            if job is not None:
                jobs.append(job)
        if capped and len(documents) < limit:
            onlyCapped = {'name': {'$in': sorted(capped)}}
            job = self.pullNextJob(
                {'$and': [jobQuery, onlyCapped]} if jobQuery else onlyCapped,
                callTime)
            if job is not None:
                jobs.append(job)
        return jobs

    def _takeSlot(self, document):
        """Whether the claimed job may start: its factory has no
        concurrency limit, or a slot was free (``document['slot']``). If
        not, the job went back to the queue."""
        try:
            limit = self.getJobFactory(document['name']).concurrency
        except KeyError:
            limit = None
        if not limit:
            return True
        slot = self.slots.acquire(document['name'], limit, document['_id'],
                                  document['claim'])
        if slot is None:
            self.jobWrites.unclaim(document['_id'], document['claim'])
            return False
        document['slot'] = slot
        return True

    def _loadClaimed(self, document, now):
        try:
            job = loadJob(document)
        except UnknownJobClassError as error:
            self.runner.failUnloadable(document, error, now)
            if document.get('slot'):
                self.slots.release(document['slot'], document['claim'])
            return None
        job.slot = document.get('slot')
        # Renewed from the claim on: a claimed job may wait for its
        # thread, or for the jobs before it in its batch.
        self.leases.add(job.__name__, job.claim)
        return job

    def processJob(self, jobid, job=None):
        if job is None:
            now = self.now()
            document = self.jobWrites.claimJob(
                toObjectId(jobid), now, self.workerId, self.leaseTime)
            if document is None or not self._takeSlot(document):
                return False
            job = self._loadClaimed(document, now)
            if job is None:
                return False
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

    def pauseJobFactory(self, name):
        """Stop every process from claiming jobs of the factory ``name``
        (within ``jobFactories.pauseSeconds``) until it is resumed."""
        self.jobFactories.pause(name)

    def resumeJobFactory(self, name):
        self.jobFactories.resume(name)
        self.wakeWorkers()

    # scheduler

    def addScheduler(self, item):
        itemid = self.scheduler.add(item)
        self.wakeScheduler()
        return itemid

    def scheduleNextJob(self, callTime=None):
        if self.monitor.quiet:
            return None
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
        self.monitor.acquire('worker', getattr(self._jobWorker.worker,
                                               'maxThreads', 1))

    def stopProcessor(self, timeout=None):
        self._jobWorker.stop(timeout)
        self.monitor.release('worker')
        self._writeCounters(self.counters.flush, 'its job worker stopped')

    def _writeCounters(self, write, when):
        # Stopping or closing must not fail with the server gone.
        try:
            write()
        except pymongo.errors.PyMongoError as error:
            logger.warning('The outcome counters of %s could not be written '
                           'as %s: %s', self.name, when, error)

    def startScheduler(self):
        self._schedulerWorker.start(self.schedulerWorkerFactory,
                                    self.schedulerWorkerArguments)
        self.monitor.acquire('scheduler')

    def stopScheduler(self, timeout=None):
        self._schedulerWorker.stop(timeout)
        self.monitor.release('scheduler')

    def _stopAsAsked(self):
        # An operator asked this process to stop (``IProcessMonitor``).
        self.stopProcessor()
        self.stopScheduler()
