"""What an operator reads of a queue: counts, pages of jobs, a job, the
factories, the scheduler items, the workers, the charts' figures. Every
answer is bounded: listings are paged (at most ``MAX_PAGE_SIZE`` rows),
counts are one aggregation, ids looked up ``MAX_LOOKUP`` per query."""
import datetime
import math

import bson
import pymongo
import zope.interface

from m01.remote import interfaces
from m01.remote.interfaces import QUEUED
from m01.remote.job import DEFAULT_QUEUE
from m01.remote.operations import stats, waits
from m01.remote.operations.factories import (
    QueueInfo,
    factoryInfo,
)
from m01.remote.operations.filters import (
    JobFilter,
    JobPage,
    checkPage,
    checkSort,
)
from m01.remote.operations.interfaces import IQueueQueries
from m01.remote.queue.containers import toObjectId
from m01.remote.queue.rates import factoryScope, queueScope
from m01.remote.scheduler import jobIdFor
from m01.remote.worker.heartbeats import processState

#: Scheduler items one page lists, at most.
MAX_ITEMS_PAGE = 500
#: Processes a listing shows, at most (the most recently seen).
MAX_WORKERS = 200
#: The dependencies and dependents a job's page lists, at most.
MAX_RELATIONS = 100
#: Jobs looked up by id at once, at most.
MAX_LOOKUP = 500
#: Seconds after a Delay item's call its job is looked for, at most, and
#: the jobs of its factory created then looked at.
DELAY_RUN_WINDOW = 60
DELAY_RUN_CANDIDATES = 20
#: How far the clock of the process that made a job may be behind.
CLOCK_SLACK = datetime.timedelta(seconds=1)
#: How long after a Delay item's run was due a scheduler may have made
#: it (its poll interval and then some), in the milliseconds BSON keeps.
DELAY_LATENESS_MS = 5000


def _runOf(itemid, called, candidates):
    """The id among ``candidates`` that the scheduler gives the run of
    the item ``itemid`` it made at ``called``, due up to
    ``DELAY_LATENESS_MS`` before; None when none is."""
    if not candidates:
        return None
    millisecond = datetime.timedelta(milliseconds=1)
    for late in range(DELAY_LATENESS_MS + 1):
        jobid = jobIdFor(itemid, called - late * millisecond)
        if jobid in candidates:
            return jobid
    return None


def _clockMade(oid, created):
    """Whether the ObjectId ``oid`` was made from the clock when the job
    was created (as every id but the scheduler's is)."""
    if not isinstance(oid, bson.ObjectId) or created is None:
        return True
    made = oid.generation_time.replace(tzinfo=None)
    if created.tzinfo is not None:
        created = created.astimezone(datetime.timezone.utc).replace(
            tzinfo=None)
    return abs((made - created).total_seconds()) <= \
        CLOCK_SLACK.total_seconds() * 5


@zope.interface.implementer(IQueueQueries)
class QueueQueries:
    """The reads of the processor ``processor`` (bound to the unit of
    work's transaction manager: its pending jobs are seen)."""

    def __init__(self, processor):
        self.processor = processor

    def countByStatus(self, jobFilter=None):
        match = jobFilter.query() if jobFilter is not None else None
        return self.processor.jobs.countByStatus(match)

    def jobs(self, jobFilter=None, sort='created', descending=True, page=1,
             pageSize=50):
        jobFilter = jobFilter or JobFilter()
        checkSort(sort, 'desc' if descending else 'asc')
        page, pageSize = checkPage(page, pageSize)
        total, jobs = self._page(jobFilter, sort, descending, page, pageSize)
        pages = max(1, math.ceil(total / pageSize))
        if page > pages:
            # Past the end: the last page rather than nothing.
            page = pages
            total, jobs = self._page(jobFilter, sort, descending, page,
                                     pageSize)
            pages = max(1, math.ceil(total / pageSize))
        return JobPage(jobs=jobs, page=page, pages=pages, total=total,
                       pageSize=pageSize)

    def _page(self, jobFilter, sort, descending, page, pageSize):
        return self.processor.jobs.query(
            sort=sort, descending=descending, skip=(page - 1) * pageSize,
            limit=pageSize, match=jobFilter.query())

    def job(self, jobid):
        return self.processor.jobs[jobid]

    def jobsById(self, jobids):
        jobids = list(jobids)
        if len(jobids) > MAX_LOOKUP:
            raise ValueError('At most %d jobs are looked up at once, not %d'
                             % (MAX_LOOKUP, len(jobids)))
        oids = []
        for jobid in jobids:
            try:
                oids.append(toObjectId(jobid))
            except KeyError:
                continue          # malformed: there is no such job
        if not oids:
            return {}
        return {job.__name__: job
                for job in self.processor.jobs.withIds(oids)}

    def relations(self, jobid, limit=MAX_RELATIONS):
        document = self.processor.getJobDocument(jobid)
        if document is None:
            raise KeyError(jobid)
        dependencies = self.processor.dependencies
        dependsOn, total = dependencies.dependencies(document, limit)
        workflow = document.get('workflow')
        return {'dependsOn': dependsOn, 'dependsOnTotal': total,
                'dependents': dependencies.dependents(document['_id'],
                                                      limit),
                'workflow': str(workflow) if workflow else None,
                'onFailure': document.get('onFailure')}

    def workflow(self, workflowid, page=1, pageSize=50):
        page, pageSize = checkPage(page, pageSize)
        dependencies = self.processor.dependencies
        progress = dependencies.workflowProgress(toObjectId(workflowid))
        total = sum(progress.values())
        if not total:
            raise KeyError(workflowid)
        pages = max(1, math.ceil(total / pageSize))
        page = min(page, pages)
        jobs = dependencies.workflowJobs(
            toObjectId(workflowid), (page - 1) * pageSize, pageSize)
        return {'workflow': str(workflowid), 'progress': progress,
                'total': total, 'jobs': jobs, 'page': page, 'pages': pages,
                'pageSize': pageSize}

    def latestFailures(self, limit=10):
        return self.processor.jobs.latestErrors(limit=limit)

    def factories(self):
        container = self.processor.jobFactories
        paused = container.pausedNames(fresh=True)
        periodsOf = self.processor.retention.periodsOf
        return [factoryInfo(name, factory, name in paused,
                            self._rateUsed(factoryScope(name),
                                           factory.rateLimit),
                            periodsOf(factory))
                for name, factory in container.items()]

    def _rateUsed(self, scope, limit):
        if not limit:
            return None
        return self.processor.rates.used(scope, limit,
                                         self.processor.now())

    def queues(self):
        """Every queue a job, a factory or a setting names, by name, as a
        ``QueueInfo``."""
        counts = stats.queueCounts(self.processor.jobsCollection)
        settings = self.processor.queueSettings.documents(fresh=True)
        factories = {}
        for name, factory in self.processor.jobFactories.items():
            factories.setdefault(factory.queue, []).append(name)
        result = []
        for name in sorted(set(counts) | set(settings) | set(factories)
                           | {DEFAULT_QUEUE}):
            setting = settings.get(name) or {}
            limit = setting.get('rateLimit')
            result.append(QueueInfo(
                name=name, paused=bool(setting.get('paused')),
                rateLimit=limit,
                rateUsed=self._rateUsed(queueScope(name), limit),
                counts=counts.get(name) or dict.fromkeys(
                    interfaces.STATI, 0),
                factories=sorted(factories.get(name, ()))))
        return result

    def factoryNames(self):
        """The names of the job factories, sorted."""
        return self.processor.jobFactories.keys()

    def factory(self, name):
        """The factory ``name`` as a ``FactoryInfo``; KeyError if none."""
        container = self.processor.jobFactories
        factory = container.factory(name)
        return factoryInfo(name, factory, container.isPaused(name),
                           self._rateUsed(factoryScope(name),
                                          factory.rateLimit),
                           self.processor.retention.periodsOf(factory))

    def schedulerItems(self, page=1, pageSize=100, active=None):
        if isinstance(pageSize, bool) or not isinstance(pageSize, int) or \
                not 1 <= pageSize <= MAX_ITEMS_PAGE:
            raise ValueError('pageSize must be a whole number from 1 to %d'
                             % MAX_ITEMS_PAGE)
        if active not in (None, True, False):
            raise ValueError('active is true, false or None, not %r'
                             % (active,))
        checkPage(page, 1)
        scheduler = self.processor.scheduler
        match = {} if active is None else {'active': active}
        total = scheduler.count(match)
        pages = max(1, math.ceil(total / pageSize))
        page = min(page, pages)
        items = scheduler.query(
            sort=[('active', pymongo.DESCENDING),
                  ('nextCallTime', pymongo.ASCENDING),
                  ('_id', pymongo.ASCENDING)],
            skip=(page - 1) * pageSize, limit=pageSize, match=match)
        return total, items

    def delayLastRuns(self, items):
        """``{itemid: (callTime, jobid)}`` of the Delay items of ``items``
        whose last run's job is found.

        A Delay item runs ``delay`` seconds after the call that last ran
        it, so that call was at ``nextCallTime - delay``, and its job was
        created then, under the id the scheduler derives from the item
        and the time the run was due (``scheduler.jobIdFor``), which was
        at most ``DELAY_LATENESS`` before the call. The jobs of the
        item's factory created then whose ids were not made from the
        clock (as every other job's are) are the candidates; the one
        whose id the item's due times give is the run's. One query per
        item, and the ids of its due times hashed until one matches."""
        found = {}
        for item in items:
            delay = getattr(item, 'delay', None)
            if not delay or item.nextCallTime is None or \
                    interfaces.ICron.providedBy(item):
                continue
            called = item.nextCallTime - datetime.timedelta(seconds=delay)
            window = datetime.timedelta(
                seconds=min(delay, DELAY_RUN_WINDOW))
            candidates = {
                str(document['_id']) for document in
                self.processor.jobsCollection.find(
                    {'name': item.jobName,
                     'created': {'$gte': called - CLOCK_SLACK,
                                 '$lte': called + window}},
                    {'_id': 1, 'created': 1}).sort(
                        [('created', pymongo.ASCENDING)]).limit(
                            DELAY_RUN_CANDIDATES)
                if not _clockMade(document['_id'], document['created'])}
            jobid = _runOf(item.__name__, called, candidates)
            if jobid is not None:
                found[item.__name__] = (called, jobid)
        return found

    def workers(self, limit=MAX_WORKERS):
        """The processes that beat (``worker.heartbeats``), the most recently
        seen first, each a dict of its heartbeat with its ``id`` and its
        ``state`` ('running', 'quiet', 'stopping', 'stopped', 'gone')."""
        if isinstance(limit, bool) or not isinstance(limit, int) or \
                not 1 <= limit <= MAX_WORKERS:
            raise ValueError('limit must be a whole number from 1 to %d'
                             % MAX_WORKERS)
        monitor = self.processor.monitor
        beats = list(monitor.beats.find().sort(
            [('seen', pymongo.DESCENDING), ('_id', pymongo.ASCENDING)])
            .limit(limit))
        controls = {control['_id']: control for control in
                    monitor.controls.find(
                        {'_id': {'$in': [b['_id'] for b in beats]}})
                    } if beats else {}
        now = self.processor.now()
        return [self._worker(beat, controls.get(beat['_id']), now)
                for beat in beats]

    def worker(self, processId):
        if not isinstance(processId, str) or len(processId) > 500:
            raise KeyError(processId)
        monitor = self.processor.monitor
        beat = monitor.beats.find_one({'_id': processId})
        if beat is None:
            raise KeyError(processId)
        return self._worker(beat, monitor.controls.find_one(
            {'_id': processId}), self.processor.now())

    @staticmethod
    def _worker(beat, control, now):
        worker = {key: value for key, value in beat.items() if key != '_id'}
        worker.update(id=beat['_id'],
                      state=processState(beat, control, now),
                      control=(control or {}).get('action'))
        return worker

    def capacity(self):
        """What decides whether a due job is claimed now (a
        ``waits.Capacity``): the paused factories and queues, the
        concurrency limits and their slots taken, the rate limits used up,
        the worker threads alive and busy, and the thread running each
        job the heartbeats list (a command per limit, a few besides)."""
        factories = self.processor.jobFactories
        caps, spent = {}, {}
        for name in sorted(factories.cappedNames()):
            try:
                limit = factories.factory(name).concurrency
            except KeyError:
                continue          # removed meanwhile
            if limit:
                caps[name] = (limit, self.processor.slots.running(name))
        limits = [('factory', name, factoryScope(name), limit)
                  for name, limit in sorted(factories.rateLimits().items())]
        queues = self.processor.queueSettings
        limits += [('queue', name, queueScope(name), setting['rateLimit'])
                   for name, setting in queues.documents(fresh=True).items()
                   if setting.get('rateLimit')]
        for kind, name, scope, limit in limits:
            used = self._rateUsed(scope, limit)
            if used >= limit[0]:
                spent[kind, name] = (limit[0], limit[1], used)
        return waits.capacityOf(self.workers(),
                                factories.pausedNames(fresh=True), caps,
                                queues.pausedNames(fresh=True), spent)

    def waitReasons(self, job, capacity=None):
        """Why the queued ``job`` is not running yet (``waits.reasons``);
        None for a job that is not queued."""
        if job.status != QUEUED:
            return None
        return waits.reasons(job, capacity or self.capacity(),
                             self.processor.now())

    def position(self, job, capacity=None):
        """How many due jobs a free thread claims before the queued, due
        ``job`` (its paused factories' left out), at most
        ``waits.MAX_POSITION``; None for a job that is not queued."""
        if job.status != QUEUED:
            return None
        query = waits.aheadQuery(job, capacity or self.capacity(),
                                 self.processor.now())
        return self.processor.jobsCollection.count_documents(
            query, limit=waits.MAX_POSITION)

    def countsByFactory(self):
        return stats.statusCounts(self.processor.jobsCollection)

    def backlog(self):
        return stats.backlog(self.processor.jobsCollection,
                             self.processor.now())

    def outcomes(self, window='hour'):
        return stats.series(self.processor.counters, window,
                            self.processor.now())

    def outcomeTotals(self):
        return self.processor.counters.totals()

    def stats(self, window='hour', latest=10):
        """The figures of the charts: throughput and failures per bucket
        of the ``window`` ('hour' per minute, 'day' per 15 minutes,
        'week' per hour), each factory's jobs, backlog, latency and mean
        run time, the workers alive and the latest failures."""
        stats.checkWindow(window)
        now = self.processor.now()
        buckets, perFactory = self.outcomes(window)
        factories = stats.factoryStats(
            self.countsByFactory(), self.backlog(), perFactory,
            self.factoryNames(), now)
        workers = self.workers()
        states = [worker['state'] for worker in workers]
        totals = dict.fromkeys(stats.OUTCOMES, 0)
        for bucket in buckets:
            for name in totals:
                totals[name] += bucket[name]
        return {'window': window, 'now': now,
                'bucketSeconds': stats.WINDOWS[window][1],
                'buckets': buckets, 'totals': totals,
                'factories': factories,
                'workers': {'alive': sum(1 for s in states
                                         if s not in ('gone', 'stopped')),
                            'gone': states.count('gone'),
                            'listed': len(states)},
                'latestFailures': self.latestFailures(latest)}

    def threads(self):
        """Whether this process runs the job worker and the scheduler."""
        rp = self.processor
        return {'worker': rp.isProcessing, 'scheduler': rp.isScheduling}

    def overview(self, latest=10):
        counts = self.countByStatus()
        workers = self.workers()
        alive = [w for w in workers if w['state'] not in ('gone', 'stopped')]
        return {'counts': counts, 'total': sum(counts.values()),
                'threads': self.threads(),
                'latestFailures': self.latestFailures(latest),
                'workers': workers, 'workersAlive': len(alive)}
