"""Jobs that wait for other jobs: dependencies, chains and groups.

A job added with ``dependsOn`` names the jobs it waits for in its
``dependsOn`` field (kept for good: its dependents are found by it, and
what removes ended jobs must keep those a waiting job still names). Until
each of them ended it is ``waiting``, a status no claim looks at; the
ids it still waits for are its ``waitingFor`` list.

The release is one conditional write per ended dependency, made by
whoever stored that dependency's outcome (the runner after its commit, a
cancel, the lease keeper for a lost or timed-out job), after it:

- the dependency completed (or failed, and the dependent runs anyway,
  ``onFailure='run'``): ``$pull`` its id from ``waitingFor`` while the
  list holds more ids than it; or, when the list is exactly that id, set
  the job ``queued`` and drop the list. Of two dependencies ending at the
  same moment one pulls its id, the other finds the list holding its id
  alone and queues the job: the job is released exactly once, whatever
  the order (each write restates the list it expects);
- the dependency ended in error or was cancelled, and the dependent
  cancels on failure (``onFailure='cancel'``, the default): set the job
  ``cancelled``, with a message naming the dependency, while it is still
  waiting for it; its own dependents follow the same way.

A process dying between a dependency's outcome and its release leaves
the dependent waiting for a job that ended: ``tidy``, part of each
lease keeper's upkeep, looks at a bounded number of waiting jobs per
tick (going round all of them in turn) and makes the releases missed.
"""
import logging

import bson
import pymongo
import zope.interface

from m01.remote.clock import stamp
from m01.remote.interfaces import (
    CANCELLED,
    COMPLETED,
    ERROR,
    QUEUED,
    WAITING,
    IJobDependencies,
)
from m01.remote.job import JobError
from m01.remote.limits import MAX_DEPENDENCIES, MAX_ERRORS
from m01.remote.queue.containers import toObjectId

logger = logging.getLogger('m01.remote')

#: What a dependent does when a job it depends on ends in error or is
#: cancelled (``onFailure``).
CANCEL = 'cancel'
RUN = 'run'
ON_FAILURE = (CANCEL, RUN)

#: The field marking a job other jobs depend on (set as the first such
#: job is added): only the end of a job so marked looks for the jobs
#: waiting for it.
DEPENDENTS = 'hasDependents'

#: The statuses a dependency has ended in.
ENDED = (COMPLETED, ERROR, CANCELLED)
#: What the release of a job that was removed before it ended sees.
REMOVED = 'removed'

FAILED_MESSAGE = 'Cancelled: job %s it depends on %s.'
HOW = {ERROR: 'ended in error', CANCELLED: 'was cancelled',
       REMOVED: 'was removed'}

#: How many times a release writes again after a concurrent one changed
#: the list it expected (each retry needs another dependency to have
#: ended meanwhile).
ATTEMPTS = 8
#: How many waiting jobs one tidy looks at.
SWEEP_LIMIT = 200


def checkOnFailure(onFailure):
    if onFailure not in ON_FAILURE:
        raise ValueError("onFailure is 'cancel' or 'run', not %r"
                         % (onFailure,))
    return onFailure


def checkDependencies(dependsOn):
    """The ids of ``dependsOn`` (a list of job ids) as ObjectIds, each
    once, in order; ValueError for anything else."""
    if isinstance(dependsOn, (str, bytes, dict)) or \
            not hasattr(dependsOn, '__iter__'):
        raise ValueError('dependsOn is a list of job ids, not %r'
                         % (dependsOn,))
    oids = []
    for jobid in dependsOn:
        if not isinstance(jobid, (str, bson.ObjectId)):
            raise ValueError('dependsOn holds job ids, not %r' % (jobid,))
        try:
            oid = toObjectId(jobid)
        except KeyError:
            raise ValueError('%r in dependsOn is no job id' % (jobid,))
        if oid not in oids:
            oids.append(oid)
        if len(oids) > MAX_DEPENDENCIES:
            raise ValueError('A job depends on at most %d jobs'
                             % MAX_DEPENDENCIES)
    if not oids:
        raise ValueError('dependsOn names no job')
    return oids


#: What a job of a chain or group may say besides its factory's name.
STEP_FIELDS = ('name', 'input', 'priority', 'timeout', 'delay', 'at')


def checkSteps(jobs, what='jobs'):
    """The jobs of a chain or group (each a ``(name, input)`` pair or a
    dict of ``STEP_FIELDS``, ``name`` required) as dicts of ``addJob``
    arguments; ValueError for anything else."""
    if isinstance(jobs, (str, bytes, dict)) or \
            not hasattr(jobs, '__iter__'):
        raise ValueError('%s is a list of jobs, not %r' % (what, jobs))
    steps = []
    for job in jobs:
        if isinstance(job, (tuple, list)) and len(job) == 2:
            job = {'name': job[0], 'input': job[1]}
        if not isinstance(job, dict) or not isinstance(job.get('name'), str):
            raise ValueError('A job of %s is a (name, input) pair or an '
                             'object with a name, not %r' % (what, job))
        unknown = sorted(set(job) - set(STEP_FIELDS))
        if unknown:
            raise ValueError('A job of %s has no field %r; its fields: %s'
                             % (what, unknown[0], ', '.join(STEP_FIELDS)))
        steps.append(dict(job))
        if len(steps) > MAX_DEPENDENCIES:
            raise ValueError('A chain or group holds at most %d jobs'
                             % MAX_DEPENDENCIES)
    if not steps:
        raise ValueError('%s holds no job' % what)
    return steps


def settling(dependencies, oid):
    """A transaction hook making the releases the job ``oid``, added
    waiting, missed while it was not stored yet."""
    def settle(committed):
        if committed:
            try:
                dependencies.settle([oid])
            except Exception:
                logger.exception('Releasing job %s failed; the lease keeper '
                                 'releases it later', oid)
    return settle


def failedMessage(oid, status, now):
    return stamp(FAILED_MESSAGE % (oid, HOW.get(status, status)), now)


def applyDependencies(document, oids, statuses, onFailure, now):
    """Make the new job ``document`` depend on the jobs ``oids``, whose
    statuses are ``statuses`` (``{oid: status}``, every one known): it
    waits for those not ended yet; one already failed cancels it at once
    (unless it runs anyway)."""
    document['dependsOn'] = list(oids)
    document['onFailure'] = onFailure
    if onFailure == CANCEL:
        for oid in oids:
            if statuses[oid] in (ERROR, CANCELLED):
                message = failedMessage(oid, statuses[oid], now)
                document.update({'status': CANCELLED, 'completed': now,
                                 'errors': [message], 'tracebacks': ['']})
                return document
    waiting = [oid for oid in oids if statuses[oid] not in ENDED]
    if waiting:
        document['status'] = WAITING
        document['waitingFor'] = waiting
    return document


@zope.interface.implementer(IJobDependencies)
class Dependencies:
    """Releases the jobs waiting for others in ``jobs`` (the jobs
    collection; ``pages``, the one the pages read, defaults to it).
    ``now`` tells the time; a dependent cancelled is counted
    (``counters``, ``IOutcomeCounters``), gives its key back (``keys``)
    and is told to ``swept`` (``queue.events.SweepEvents``: its
    ``IJobEnded``); ``wakeup`` (``IWakeup``) is set when a job was
    queued.
    """

    #: Sends the events of the dependents cancelled, or None.
    swept = None

    def __init__(self, jobs, now, counters=None, keys=None, wakeup=None,
                 pages=None, sweepLimit=SWEEP_LIMIT):
        self.jobs = jobs
        self.pages = pages if pages is not None else jobs
        self.now = now
        self.counters = counters
        self.keys = keys
        self.wakeup = wakeup
        self.sweepLimit = sweepLimit
        # Where the next tidy goes on: the last waiting job looked at.
        self._after = None

    def ensureIndexes(self):
        self.jobs.create_index([('dependsOn', 1)],
                               name='m01_remote_depends_on', sparse=True)
        self.jobs.create_index([('workflow', 1), ('_id', 1)],
                               name='m01_remote_workflow', sparse=True)
        self.jobs.create_index([('status', 1), ('_id', 1)],
                               name='m01_remote_status')

    def mark(self, oids):
        """Mark the stored jobs ``oids`` as jobs others depend on."""
        self.jobs.update_many({'_id': {'$in': list(oids)}},
                              {'$set': {DEPENDENTS: True}})

    def statuses(self, oids):
        """``{oid: status}`` of the stored jobs among ``oids``."""
        return {document['_id']: document['status'] for document in
                self.jobs.find({'_id': {'$in': list(oids)}}, {'status': 1})}

    # releases

    def ended(self, oid, status):
        """The job ``oid`` ended in ``status`` (its outcome stored):
        release the jobs waiting for it; how many were released (queued
        or cancelled)."""
        return self._releaseAll([(toObjectId(oid), status)])

    def endedSafely(self, oid, status):
        """``ended``, a failure logged: the lease keeper's tidy makes the
        release later."""
        try:
            return self.ended(oid, status)
        except Exception:
            logger.exception('Releasing the jobs waiting for job %s failed; '
                             'the lease keeper releases them later', oid)
            return 0

    def _releaseAll(self, endings):
        released = 0
        while endings:
            oid, status = endings.pop()
            dependents = [document['_id'] for document in self.jobs.find(
                {'dependsOn': oid, 'status': WAITING}, {'_id': 1})]
            for dependent in dependents:
                outcome = self.release(dependent, oid, status)
                if outcome in (QUEUED, CANCELLED):
                    released += 1
                if outcome == CANCELLED:
                    endings.append((dependent, CANCELLED))
        return released

    def release(self, oid, ended, status):
        """The job ``ended``, which the waiting job ``oid`` depends on,
        ended in ``status``: one conditional write. The job's status when
        the write was made: queued or cancelled (released), waiting (it
        waits for others still); None when there was nothing to write
        (released from ``ended`` by another already)."""
        now = self.now()
        base = {'_id': oid, 'status': WAITING}
        failed = status != COMPLETED
        if failed:
            document = self.jobs.find_one_and_update(
                dict(base, waitingFor=ended, onFailure={'$ne': RUN}),
                {'$set': {'status': CANCELLED, 'completed': now},
                 '$unset': {'waitingFor': ''},
                 '$push': {
                     'errors': {'$each': [failedMessage(ended, status, now)],
                                '$slice': -MAX_ERRORS},
                     'tracebacks': {'$each': [''], '$slice': -MAX_ERRORS}},
                 '$inc': {'version': 1}},
                {'name': 1, 'key': 1})
            if document is not None:
                self._cancelled(document, now)
                return CANCELLED
            base['onFailure'] = RUN
        for _ in range(ATTEMPTS):
            # The last one waited for: the job is queued.
            if self.jobs.find_one_and_update(
                    dict(base, waitingFor=[ended]),
                    {'$set': {'status': QUEUED, 'queued': now},
                     '$unset': {'waitingFor': ''},
                     '$inc': {'version': 1}},
                    {'_id': 1}) is not None:
                if self.wakeup is not None:
                    self.wakeup.set()
                return QUEUED
            # Others are waited for still: only this one goes.
            pulled = self.jobs.update_one(
                dict(base, **{'$and': [{'waitingFor': ended},
                                       {'waitingFor': {'$ne': [ended]}}]}),
                {'$pull': {'waitingFor': ended}, '$inc': {'version': 1}})
            if pulled.modified_count:
                return WAITING
            # Neither: the job waits no more for ``ended`` (released by
            # another), or another dependency's pull left ours alone.
            if self.jobs.count_documents(
                    dict(base, waitingFor=[ended]), limit=1) == 0:
                return None
        logger.warning('Job %s: the release for job %s lost %d races; the '
                       'lease keeper makes it later', oid, ended, ATTEMPTS)
        return None

    def _cancelled(self, document, now):
        if self.counters is not None:
            self.counters.count(document['name'], CANCELLED, now, None)
        if document.get('key') and self.keys is not None:
            self.keys.release(document['key'], document['_id'])
        if self.swept is not None:
            self.swept([(str(document['_id']), CANCELLED)],
                       JobError('A job it depends on failed'))

    # repairs

    def settle(self, oids):
        """Make the releases the waiting jobs ``oids`` (just stored) missed:
        a dependency that ended between their ``addJob`` and their
        commit. How many releases it made."""
        documents = list(self.jobs.find(
            {'_id': {'$in': [toObjectId(oid) for oid in oids]},
             'status': WAITING}, {'waitingFor': 1}))
        return self._repair(documents)

    def _repair(self, documents):
        waited = {oid for document in documents
                  for oid in document.get('waitingFor') or ()}
        if not waited:
            return 0
        statuses = self.statuses(waited)
        made = 0
        for document in documents:
            for oid in document.get('waitingFor') or ():
                status = statuses.get(oid, REMOVED)
                if status not in ENDED and status != REMOVED:
                    continue
                outcome = self.release(document['_id'], oid, status)
                if outcome is not None:
                    made += 1
                if outcome == CANCELLED:
                    made += self._releaseAll([(document['_id'], CANCELLED)])
                if outcome in (QUEUED, CANCELLED):
                    break
        return made

    # IUpkeep

    def tidy(self, now):
        """Release the waiting jobs whose dependencies ended without
        releasing them (their process died in between): up to
        ``sweepLimit`` waiting jobs per call, going on from the last one
        looked at, round all of them. How many releases it made (a job
        waiting for several may take several)."""
        query = {'status': WAITING}
        if self._after is not None:
            query['_id'] = {'$gt': self._after}
        documents = list(self.jobs.find(query, {'waitingFor': 1}).sort(
            '_id', pymongo.ASCENDING).limit(self.sweepLimit))
        self._after = documents[-1]['_id'] \
            if len(documents) == self.sweepLimit else None
        made = self._repair(documents)
        if made:
            logger.warning('Made %d releases of waiting jobs missed when '
                           'their dependencies ended', made)
        return made

    # reading

    def results(self, oid):
        """``[{'id', 'status', 'output'}]`` of the jobs ``oid`` depends on,
        in its order (a removed one as status None)."""
        document = self.jobs.find_one({'_id': toObjectId(oid)},
                                      {'dependsOn': 1})
        if document is None:
            raise KeyError(oid)
        oids = document.get('dependsOn') or []
        found = {d['_id']: d for d in self.jobs.find(
            {'_id': {'$in': oids}}, {'status': 1, 'output': 1})}
        return [{'id': str(dep), 'status': found.get(dep, {}).get('status'),
                 'output': found.get(dep, {}).get('output')}
                for dep in oids]

    def dependencies(self, document, limit=100):
        """``[(jobid, name, status)]`` of the first ``limit`` jobs the job
        ``document`` depends on, in its order (None for a removed one),
        and how many there are."""
        oids = document.get('dependsOn') or []
        found = {d['_id']: d for d in self.pages.find(
            {'_id': {'$in': oids[:limit]}}, {'status': 1, 'name': 1})}
        return ([(str(oid), found.get(oid, {}).get('name'),
                  found.get(oid, {}).get('status')) for oid in oids[:limit]],
                len(oids))

    def dependents(self, oid, limit=100):
        """``[(jobid, name, status)]`` of the first ``limit`` jobs that
        depend on the job ``oid``."""
        return [(str(d['_id']), d.get('name'), d['status'])
                for d in self.pages.find(
                    {'dependsOn': toObjectId(oid)},
                    {'status': 1, 'name': 1}).sort('_id', 1).limit(limit)]

    def workflowJobs(self, workflow, skip=0, limit=50):
        """``[(jobid, name, status)]`` of the jobs of ``workflow``, in the
        order they were added, one page."""
        return [(str(d['_id']), d.get('name'), d['status'])
                for d in self.pages.find(
                    {'workflow': toObjectId(workflow)},
                    {'status': 1, 'name': 1}).sort('_id', 1)
                .skip(skip).limit(limit)]

    def workflowProgress(self, workflow):
        """``{status: count}`` of the jobs of ``workflow``."""
        counts = {}
        for row in self.pages.aggregate([
                {'$match': {'workflow': toObjectId(workflow)}},
                {'$group': {'_id': '$status', 'n': {'$sum': 1}}}]):
            counts[row['_id']] = row['n']
        return counts
