"""What an operator changes: jobs one by one or in bulk, factories,
scheduler items, this process's threads.

Each change of a job is one conditional write of the processor's
``IJobWrites`` (restating the status it needs), made at once so that
the answer says what happened; a job whose status moved meanwhile is
left as it is now and counted as refused. A bulk action works through
its jobs in chunks of ``CHUNK`` read by ``_id``, and changes at most
its bound (``BULK_LIMITS``) per call: more are left for the next call,
which the result announces (``more``). Which jobs a bulk action
changes is read by ``BulkRequest`` (``bulkrequest``): without ids or a
filter that narrows it changes nothing unless told ``all``.
"""
import dataclasses

import zope.interface
from bson import ObjectId

from m01.remote.operations.bulkrequest import (  # noqa: F401
    ACTION_STATI,
    ACTIONS,
    MAX_SELECTED,
    BulkRequest,
    checkAction,
    selectedIds,
)
from m01.remote.operations.interfaces import IQueueActions
from m01.remote.queue.updates import DELETABLE
from m01.remote.worker.heartbeats import sendControl

#: The most jobs one call changes: a cancel or a retry is two or three
#: commands per job, a delete one command per chunk.
BULK_LIMITS = {'cancel': 500, 'retry': 500, 'delete': 5000}
#: Jobs read (and deleted) at a time.
CHUNK = 500
#: What an operator asks of a process.
WORKER_ACTIONS = ('quiet', 'resume', 'stop')
#: Seconds stopping a thread waits for its running jobs (a request must
#: not hang on a long job; the thread still ends once its job is done).
STOP_TIMEOUT = 5.0


@dataclasses.dataclass
class BulkResult:
    """What a bulk action did: how many jobs it changed, how many it
    found changed meanwhile (left as they are), and whether more
    matching jobs are left for another call."""

    action: str
    done: int = 0
    refused: int = 0
    more: bool = False


@zope.interface.implementer(IQueueActions)
class QueueActions:
    """The changes an operator makes through ``processor`` (bound to the
    unit of work's transaction manager)."""

    def __init__(self, processor):
        self.processor = processor

    # one job

    def addJob(self, name, input=None, **options):
        options.pop('immediate', None)
        return self.processor.addJob(name, input, **options)

    def addWorkflow(self, kind, jobs, callback=None, onFailure=None):
        options = {} if onFailure is None else {'onFailure': onFailure}
        if kind == 'chain':
            if callback is not None:
                raise ValueError('A chain has no callback: its last job '
                                 'is the one that runs last')
            return self.processor.addChain(jobs, **options)
        if kind == 'group':
            return self.processor.addGroup(jobs, callback, **options)
        raise ValueError("A workflow is a 'chain' or a 'group', not %r"
                         % (kind,))

    def cancelJob(self, jobid):
        self.processor.cancelJob(jobid, immediate=True)

    def retryJob(self, jobid):
        self.processor.retryJob(jobid, immediate=True)

    def deleteJob(self, jobid):
        document = self.processor.getJobDocument(jobid)
        if document is None:
            raise KeyError(jobid)
        if not self._delete([document]):
            current = self.processor.getJobDocument(jobid)
            if current is None:
                raise KeyError(jobid)
            raise ValueError('Job %s is %s; cancel it before deleting it.'
                             % (jobid, current['status']))

    def _delete(self, documents):
        """Remove the jobs of ``documents`` (``_id``, ``key``) that are
        not processing; how many were removed. The keys of those removed
        are freed."""
        oids = [document['_id'] for document in documents]
        removed = self.processor.jobWrites.delete(oids, DELETABLE)
        keyed = {document['_id']: document['key'] for document in documents
                 if document.get('key')}
        if keyed and removed:
            left = {document['_id'] for document in
                    self.processor.jobsCollection.find(
                        {'_id': {'$in': list(keyed)}}, {'_id': 1})}
            for oid, key in keyed.items():
                if oid not in left:
                    self.processor.keys.release(key, oid)
        return removed

    # many jobs

    @staticmethod
    def _target(request):
        """The MongoDB filter of the jobs ``request`` (a ``BulkRequest``)
        would change, or None when no job can match."""
        stati = ACTION_STATI[request.action]
        jobFilter = request.jobFilter
        query = jobFilter.query() if jobFilter is not None else {}
        wanted = [status for status in
                  (jobFilter.statuses if jobFilter is not None
                   and jobFilter.statuses else stati) if status in stati]
        if not wanted:
            return None
        query['status'] = {'$in': wanted}
        if request.jobids is not None:
            if not request.jobids:
                return None
            query['_id'] = {'$in': list(request.jobids)}
        return query

    def countBulk(self, action, jobFilter=None, jobids=None, all=False):
        query = self._target(BulkRequest(action, jobFilter, jobids, all))
        if query is None:
            return 0
        return self.processor.jobsCollection.count_documents(query)

    def bulk(self, action, jobFilter=None, jobids=None, limit=None,
             all=False):
        request = BulkRequest(action, jobFilter, jobids, all)
        if limit is not None and (isinstance(limit, bool) or
                                  not isinstance(limit, int) or limit < 1):
            raise ValueError('limit must be a whole number from 1, not %r'
                             % (limit,))
        query = self._target(request)
        result = BulkResult(action)
        if query is None:
            return result
        bound = BULK_LIMITS[action]
        limit = bound if limit is None else min(limit, bound)
        collection = self.processor.jobsCollection
        after = None
        while result.done < limit:
            page = dict(query)
            if after is not None:
                page = {'$and': [query, {'_id': {'$gt': after}}]}
            documents = list(collection.find(
                page, {'_id': 1, 'key': 1, 'status': 1}).sort('_id', 1)
                .limit(min(CHUNK, limit - result.done)))
            if not documents:
                return result
            after = documents[-1]['_id']
            done = self._apply(action, documents)
            result.done += done
            result.refused += len(documents) - done
        page = {'$and': [query, {'_id': {'$gt': after}}]} if after else query
        result.more = collection.find_one(page, {'_id': 1}) is not None
        return result

    def _apply(self, action, documents):
        if action == 'delete':
            return self._delete(documents)
        change = self.cancelJob if action == 'cancel' else self.retryJob
        done = 0
        for document in documents:
            try:
                change(str(document['_id']))
            except (KeyError, ValueError):
                continue      # changed meanwhile, removed, or its key taken
            done += 1
        return done

    # factories

    def pauseFactory(self, name):
        self.processor.pauseJobFactory(name)

    def resumeFactory(self, name):
        self.processor.jobFactories.factory(name)   # KeyError if unknown
        self.processor.resumeJobFactory(name)

    # queues

    def pauseQueue(self, name):
        self.processor.pauseQueue(name)

    def resumeQueue(self, name):
        self.processor.resumeQueue(name)

    def setQueueRateLimit(self, name, rateLimit):
        self.processor.setQueueRateLimit(name, rateLimit)

    # the scheduler

    def setSchedulerItemActive(self, itemid, active):
        if not isinstance(active, bool):
            raise ValueError('active is true or false, not %r' % (active,))
        return self.processor.scheduler.update(itemid, active=active)

    def setAllSchedulerItemsActive(self, active):
        if not isinstance(active, bool):
            raise ValueError('active is true or false, not %r' % (active,))
        scheduler = self.processor.scheduler
        changed, seen = 0, []
        while True:
            # Each item through the scheduler's update, as one toggled; an
            # item is tried once, so the loop ends whatever happens.
            items = scheduler.query(limit=CHUNK, match={
                'active': not active, '_id': {'$nin': seen}})
            if not items:
                return changed
            for item in items:
                seen.append(ObjectId(item.__name__))
                try:
                    scheduler.update(item.__name__, active=active)
                except KeyError:
                    continue          # removed meanwhile
                changed += 1

    def runSchedulerItem(self, itemid):
        return self.processor.scheduleItemNow(itemid)

    def deleteSchedulerItem(self, itemid):
        self.processor.scheduler.remove(itemid)

    def addSchedulerItem(self, item):
        return self.processor.addScheduler(item)

    def updateSchedulerItem(self, itemid, **fields):
        return self.processor.scheduler.update(itemid, **fields)

    # the processes that work for the queue

    def controlWorker(self, processId, action):
        """Ask the process ``processId`` (a heartbeat's id) to 'quiet'
        (take no more jobs), 'stop' (as on SIGTERM), or 'resume' (take
        jobs again); KeyError for a process that never beat."""
        if action not in WORKER_ACTIONS:
            raise ValueError('action must be one of %s, not %r'
                             % (', '.join(WORKER_ACTIONS), action))
        if not isinstance(processId, str) or len(processId) > 500:
            raise KeyError(processId)
        monitor = self.processor.monitor
        if monitor.beats.find_one({'_id': processId}, {'_id': 1}) is None:
            raise KeyError(processId)
        sendControl(monitor.controls, processId,
                    None if action == 'resume' else action,
                    self.processor.now())

    # this process's threads

    def switchThreads(self, kind, running, timeout=None):
        rp = self.processor
        timeout = STOP_TIMEOUT if timeout is None else timeout
        if kind == 'worker':
            rp.startProcessor() if running else rp.stopProcessor(timeout)
        elif kind == 'scheduler':
            rp.startScheduler() if running else rp.stopScheduler(timeout)
        else:
            raise ValueError("kind is 'worker' or 'scheduler', not %r"
                             % (kind,))
