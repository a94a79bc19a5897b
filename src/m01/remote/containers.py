"""Read access to stored jobs and job factories, as traversable mappings.
"""
import bson
import pymongo
import zope.interface

from m01.remote import interfaces
from m01.remote.job import loadFactory, loadJob

SORT_FIELDS = ('created', 'queued', 'completed')


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
    """The jobs of a processor: the stored ones and those pending in the
    current transaction."""

    __name__ = 'jobs'

    def __init__(self, processor):
        self.__parent__ = processor
        self.processor = processor

    @property
    def collection(self):
        return self.processor.jobsCollection

    def _located(self, job):
        job.__parent__ = self
        return job

    def __getitem__(self, jobid):
        document = self.processor.getJobDocument(jobid)
        if document is None:
            raise KeyError(jobid)
        return self._located(loadJob(document, strict=False))

    def get(self, jobid, default=None):
        try:
            return self[jobid]
        except KeyError:
            return default

    def __contains__(self, jobid):
        return self.get(jobid) is not None

    def _documents(self):
        pending = self.processor.pendingJobDocuments()
        seen = {document['_id'] for document in pending}
        for document in self.collection.find().sort('_id', 1):
            if document['_id'] not in seen:
                yield self.processor.withPendingUpdates(document)
        yield from pending

    def keys(self):
        return [str(document['_id']) for document in self._documents()]

    def values(self):
        return [self._located(loadJob(document, strict=False))
                for document in self._documents()]

    def items(self):
        return [(job.__name__, job) for job in self.values()]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        pending = len(self.processor.pendingJobDocuments())
        return self.collection.count_documents({}) + pending

    def query(self, status=None, name=None, sort='created', descending=True,
              skip=0, limit=50):
        """One page of stored jobs and the total matching count."""
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
        direction = pymongo.DESCENDING if descending else pymongo.ASCENDING
        cursor = self.collection.find(query).sort(
            [(sort, direction), ('_id', direction)]).skip(skip).limit(limit)
        jobs = [self._located(loadJob(document, strict=False))
                for document in cursor]
        return self.collection.count_documents(query), jobs

    def countByStatus(self):
        # One pass over the jobs, not one count per status.
        counts = dict.fromkeys(interfaces.STATI, 0)
        for row in self.collection.aggregate(
                [{'$group': {'_id': '$status', 'n': {'$sum': 1}}}]):
            if row['_id'] in counts:
                counts[row['_id']] = row['n']
        return counts

    def latestErrors(self, limit=10):
        cursor = self.collection.find(
            {'errors.0': {'$exists': True}}).sort(
            [('queued', pymongo.DESCENDING), ('_id', pymongo.DESCENDING)]
        ).limit(limit)
        return [self._located(loadJob(document, strict=False))
                for document in cursor]


@zope.interface.implementer(interfaces.IJobFactoryContainer)
class JobFactoryContainer:
    """The job factories, shared through the database."""

    __name__ = 'factories'

    def __init__(self, processor):
        self.__parent__ = processor
        self.processor = processor

    def _located(self, factory):
        factory.__parent__ = self
        return factory

    def __getitem__(self, name):
        return self._located(self.processor.getJobFactory(name))

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name):
        return self.get(name) is not None

    def _factories(self):
        cursor = self.processor.factoriesCollection.find().sort('_id', 1)
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
        return self.processor.factoriesCollection.count_documents({})
