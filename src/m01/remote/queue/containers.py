"""Read access to stored jobs and job factories, as traversable mappings.
"""
import time

import bson
import pymongo
import pymongo.errors
import zope.interface

from m01.remote import interfaces
from m01.remote.job import (
    Job,
    checkStorable,
    dumpFactory,
    loadFactory,
    loadJob,
)
from m01.remote.queue.persistent import JobChanges

SORT_FIELDS = ('created', 'queued', 'completed')
#: The order of the latest failures: the newest queued first.
LATEST_ERRORS_ORDER = (('queued', pymongo.DESCENDING),
                       ('_id', pymongo.DESCENDING))


def _kept(collection, name):
    """The method ``name`` of ``collection`` where its store offers it
    (the embedded store's collections keep counts and orders up to date
    with each change), else None: asked of its class, since a server's
    collection answers any attribute with a subcollection."""
    if hasattr(type(collection), name):
        return getattr(collection, name)
    return None


def _hasErrors(document):
    """Whether a stored job recorded an error (``errors.0`` exists)."""
    errors = document.get('errors')
    return isinstance(errors, list) and bool(errors)


def toObjectId(jobid):
    """The ObjectId of a job id string; KeyError for a malformed one, so
    that a bad id in a URL is simply not found."""
    if isinstance(jobid, bson.ObjectId):
        return jobid
    try:
        return bson.ObjectId(jobid)
    except (bson.errors.InvalidId, TypeError):
        raise KeyError(jobid)


@zope.interface.implementer(interfaces.IJobContainer)
class JobContainer:
    """The jobs of a processor (``parent``) in ``collection``: the stored
    ones and those ``pending`` (a ``QueueTransaction``) in the current
    transaction, as that transaction sees them.

    A stored job read here writes the fields set on it at commit,
    through ``jobWrites`` (``m01.remote.queue.persistent``). The pages'
    read-only queries (``query``, ``countByStatus``, ``latestErrors``)
    read ``pages`` (``collection`` with the pages' read preference)."""

    __name__ = 'jobs'

    def __init__(self, parent, collection, pending, jobWrites=None,
                 pages=None):
        self.__parent__ = parent
        self.collection = collection
        self.pages = collection if pages is None else pages
        self.pending = pending
        self.jobWrites = jobWrites

    def _located(self, job, document=None):
        job.__parent__ = self
        if self.jobWrites is not None and document is not None and \
                self.pending.addedDocument(str(document['_id'])) is None:
            job._changes = JobChanges(self.pending, self.jobWrites,
                                      document)
        return job

    def document(self, jobid):
        """The job's document as this transaction sees it, or None."""
        try:
            oid = toObjectId(jobid)
        except KeyError:
            return None
        added = self.pending.addedDocument(str(oid))
        if added is not None:
            return added
        document = self.collection.find_one({'_id': oid})
        return self.pending.withChanges(document) if document else None

    def __getitem__(self, jobid):
        document = self.document(jobid)
        if document is None:
            raise KeyError(jobid)
        return self._located(loadJob(document, strict=False), document)

    def get(self, jobid, default=None):
        try:
            return self[jobid]
        except KeyError:
            return default

    def __contains__(self, jobid):
        return self.get(jobid) is not None

    def _documents(self):
        added = self.pending.addedDocuments()
        seen = {document['_id'] for document in added}
        for document in self.collection.find().sort('_id', 1):
            if document['_id'] not in seen:
                yield self.pending.withChanges(document)
        yield from added

    def keys(self):
        return [str(document['_id']) for document in self._documents()]

    def values(self):
        return [self._located(loadJob(document, strict=False), document)
                for document in self._documents()]

    def items(self):
        return [(job.__name__, job) for job in self.values()]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        added = len(self.pending.addedDocuments())
        return self.collection.count_documents({}) + added

    def query(self, status=None, name=None, sort='created', descending=True,
              skip=0, limit=50, match=None):
        """One page of stored jobs and the total matching count; ``match``
        is a further MongoDB filter the jobs must match."""
        if sort not in SORT_FIELDS:
            raise ValueError('Cannot sort jobs by %r; choose one of %s'
                             % (sort, ', '.join(SORT_FIELDS)))
        if status is not None and status not in interfaces.STATI:
            raise ValueError('Unknown job status %r' % (status,))
        skip, limit = int(skip), int(limit)
        if skip < 0 or limit < 1:
            raise ValueError('skip must be >= 0 and limit >= 1')
        query = {}
        if status is not None:
            query['status'] = status
        if name is not None:
            query['name'] = name
        if match:
            query = {'$and': [query, match]} if query else dict(match)
        direction = pymongo.DESCENDING if descending else pymongo.ASCENDING
        cursor = self.pages.find(query).sort(
            [(sort, direction), ('_id', direction)]).skip(skip).limit(limit)
        jobs = [self._located(loadJob(document, strict=False))
                for document in cursor]
        if len(jobs) < limit and (jobs or not skip):
            # A page that is not full is the last: the jobs before it and
            # its own are all there are, counted without a second pass
            # (a search's page 1, mostly).
            return skip + len(jobs), jobs
        return self.pages.count_documents(query), jobs

    def withIds(self, oids):
        """The stored jobs of the ObjectIds ``oids`` that exist, in one
        query."""
        cursor = self.collection.find({'_id': {'$in': list(oids)}})
        return [self._located(loadJob(document, strict=False))
                for document in cursor]

    def countByStatus(self, match=None):
        """``{status: count}`` of the stored jobs (matching ``match``)."""
        # One pass over the jobs, not one count per status.
        counts = dict.fromkeys(interfaces.STATI, 0)
        countBy = _kept(self.pages, 'countBy')
        if not match and countBy is not None:
            # Kept up to date by the embedded store.
            for (status,), n in countBy(('status',)).items():
                if status in counts:
                    counts[status] = n
            return counts
        pipeline = [{'$group': {'_id': '$status', 'n': {'$sum': 1}}}]
        if match:
            pipeline.insert(0, {'$match': match})
        for row in self.pages.aggregate(pipeline):
            if row['_id'] in counts:
                counts[row['_id']] = row['n']
        return counts

    def latestErrors(self, limit=10):
        documents = None
        latest = _kept(self.pages, 'latest')
        if latest is not None:
            # Kept in order by the embedded store, which would otherwise
            # test and sort every job at each request.
            documents = latest(LATEST_ERRORS_ORDER, limit, _hasErrors)
        if documents is None:
            documents = self.pages.find(
                {'errors.0': {'$exists': True}}).sort(
                LATEST_ERRORS_ORDER).limit(limit)
        return [self._located(loadJob(document, strict=False))
                for document in documents]


@zope.interface.implementer(interfaces.IJobFactoryContainer)
class JobFactoryContainer:
    """The job factories of a processor (``parent``), shared through
    ``collection`` by every process using the database. A factory read
    from the database is trusted for ``cacheSeconds``.

    A paused factory's jobs are not claimed by any process: a pause is a
    document in ``pauses`` (its ``_id`` the factory name), apart from the
    factory, so a site storing its factories again at start-up does not
    resume them. Claims read the pauses at most every ``pauseSeconds``.
    """

    __name__ = 'factories'

    def __init__(self, parent, collection, pauses, cacheSeconds=10.0,
                 pauseSeconds=2.0):
        self.__parent__ = parent
        self.collection = collection
        self.pauses = pauses
        self.cacheSeconds = cacheSeconds
        self.pauseSeconds = pauseSeconds
        self._cache = {}
        self._paused = None     # (monotonic time read, names)
        self._capped = None

    def _located(self, factory):
        factory.__parent__ = self
        return factory

    def add(self, name, job):
        """Store ``job`` as the factory ``name`` (at once)."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError('A job factory name must be a non-empty '
                             'string, not %r' % (name,))
        if not isinstance(job, Job):
            raise ValueError('A job factory must be a m01.remote.job.Job, '
                             'not %r' % (job,))
        job.name = job.__name__ = name
        document = dumpFactory(name, job)
        checkStorable(document['data'], 'factory settings')
        self.collection.replace_one({'_id': name}, document, upsert=True)
        self._cache[name] = (time.monotonic(), job)
        self._capped = None

    def remove(self, name):
        """Remove the factory ``name``; whether there was one."""
        self._cache.pop(name, None)
        return self.collection.delete_one({'_id': name}).deleted_count == 1

    def factory(self, name, lastKnown=False):
        """The factory ``name`` (not located); KeyError if there is none.

        With ``lastKnown``, a factory this process has read before serves
        when the store cannot be reached (trusted for another
        ``cacheSeconds``: one read per period waits for the store, not
        every call)."""
        cached = self._cache.get(name)
        if cached and time.monotonic() - cached[0] < self.cacheSeconds:
            return cached[1]
        try:
            document = self.collection.find_one({'_id': name})
        except pymongo.errors.ConnectionFailure:
            if not (lastKnown and cached):
                raise
            self._cache[name] = (time.monotonic(), cached[1])
            return cached[1]
        if document is None:
            self._cache.pop(name, None)
            raise KeyError(name)
        factory = loadFactory(document)
        self._cache[name] = (time.monotonic(), factory)
        return factory

    def __getitem__(self, name):
        return self._located(self.factory(name))

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name):
        return self.get(name) is not None

    # pauses

    def pause(self, name):
        """Stop every process from claiming jobs of the factory ``name``
        until it is resumed; KeyError for an unknown factory."""
        self.factory(name)
        try:
            self.pauses.insert_one({'_id': name})
        except pymongo.errors.DuplicateKeyError:
            pass          # paused already
        self._paused = None

    def resume(self, name):
        """Let the jobs of the factory ``name`` be claimed again."""
        self.pauses.delete_one({'_id': name})
        self._paused = None

    def pausedNames(self, fresh=False):
        """The names of the paused factories (read at most every
        ``pauseSeconds`` unless ``fresh``)."""
        cached = self._paused
        if fresh or cached is None or \
                time.monotonic() - cached[0] >= self.pauseSeconds:
            names = frozenset(document['_id']
                              for document in self.pauses.find())
            cached = self._paused = (time.monotonic(), names)
        return cached[1]

    def isPaused(self, name):
        return name in self.pausedNames(fresh=True)

    def cappedNames(self):
        """The names of the factories with a concurrency limit (read at
        most every ``cacheSeconds``)."""
        cached = self._capped
        if cached is None or \
                time.monotonic() - cached[0] >= self.cacheSeconds:
            names = frozenset(document['_id'] for document in
                              self.collection.find(
                                  {'data.concurrency': {'$gte': 1}},
                                  {'_id': 1}))
            cached = self._capped = (time.monotonic(), names)
        return cached[1]

    def rateLimits(self):
        """``{name: [starts, seconds]}`` of the factories with a rate
        limit, read fresh (only those factories, only that field)."""
        return {document['_id']: document['data']['rateLimit']
                for document in self.collection.find(
                    {'data.rateLimit': {'$ne': None}},
                    {'data.rateLimit': 1})}

    def _factories(self):
        cursor = self.collection.find().sort('_id', 1)
        return [self._located(loadFactory(document)) for document in cursor]

    def keys(self):
        return [factory.__name__ for factory in self._factories()]

    def values(self):
        return self._factories()

    def items(self):
        return [(factory.__name__, factory) for factory in self._factories()]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return self.collection.count_documents({})
