"""Jobs: the base class users subclass, and how jobs are stored.

A job document names its class by a registry key, never by an import path
that would be followed: a document can only be loaded back into a class
this process has imported (every ``Job`` subclass registers itself when
its class statement runs), so database content never decides what code
is imported.
"""
import bson
import zope.interface

from m01.remote import interfaces

#: BSON's document size limit; MongoDB refuses anything larger.
MAX_BSON_SIZE = 16 * 1024 * 1024

_jobClasses = {}

# The fields every job document has; anything else a subclass wants to
# keep must be declared in its ``fields``.
BASE_FIELDS = ('input', 'maxRetries', 'retryDelay', 'active', 'title')


class JobError(Exception):
    """Raised by a job to end it in status ``error`` without a retry."""


class DuplicateJobError(ValueError):
    """A job with the requested id exists already."""


class UnknownJobClassError(LookupError):
    """A stored document names a job class this process has not imported.
    """


def jobClassKey(cls):
    return '%s.%s' % (cls.__module__, cls.__qualname__)


def registerJobClass(cls, key=None):
    """Make ``cls`` loadable under ``key`` (default: its dotted name)."""
    key = key or jobClassKey(cls)
    _jobClasses[key] = cls
    return key


def getJobClass(key):
    try:
        return _jobClasses[key]
    except KeyError:
        raise UnknownJobClassError(
            'Job class %r is not known in this process: import the module '
            'that defines it before processing its jobs.' % key)


def checkStorable(value, what='input'):
    """Raise ValueError unless BSON can store ``value`` within 16 MB and
    the nesting limit (checked first, without recursion): MAX_DEPTH
    levels for a value given, more for the documents wrapping values."""
    from m01.remote import limits
    limits.checkDepth(value, 'The job %s' % what,
                      limits.MAX_DEPTH if what in ('input', 'output')
                      else limits.MAX_DOCUMENT_DEPTH)
    try:
        size = len(bson.encode({'v': value}))
    except (bson.errors.InvalidDocument, TypeError, OverflowError) as e:
        raise ValueError('The job %s cannot be stored: %s' % (what, e))
    if size > MAX_BSON_SIZE:
        raise ValueError(
            'The job %s is %d bytes; a job document must stay under %d '
            'bytes (16 MB).' % (what, size, MAX_BSON_SIZE))


@zope.interface.implementer(interfaces.IJob)
class Job:
    """Subclass and implement ``__call__(self, remoteProcessor)``.

    ``Job(data)`` sets the stored fields (``input``, ``maxRetries``,
    ``retryDelay``, ``active``, ``title``) and the names a subclass
    declares in ``fields``; an unknown key is refused.
    """

    fields = ()

    __name__ = None
    __parent__ = None
    name = None
    title = ''
    input = None
    output = None
    status = None
    active = True
    maxRetries = 3
    retryDelay = 10
    retryCounter = 0
    retryTime = None
    created = None
    queued = None
    picked = None
    completed = None
    worker = None
    leaseExpires = None
    claim = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        registerJobClass(cls)

    def __init__(self, data=None):
        self.errors = []
        self.tracebacks = []
        for key, value in dict(data or {}).items():
            if key not in BASE_FIELDS and key not in self.fields:
                raise ValueError(
                    '%s does not accept %r; it accepts %s' % (
                        type(self).__name__, key,
                        ', '.join(BASE_FIELDS + tuple(self.fields))))
            setattr(self, key, value)
        self._checkLimits()

    def _checkLimits(self):
        for key in ('maxRetries', 'retryDelay'):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or value < 0:
                raise ValueError('%s must be a number >= 0, not %r'
                                 % (key, value))
        if self.maxRetries < 1:
            raise ValueError('maxRetries must be at least 1')

    def __call__(self, remoteProcessor):
        raise NotImplementedError(
            '%s must implement __call__(remoteProcessor)'
            % type(self).__name__)

    def data(self):
        """The factory's settings, as given to ``Job(data)``."""
        names = BASE_FIELDS + tuple(self.fields)
        return {key: getattr(self, key) for key in names}

    def getJob(self, input=None):
        job = type(self)(self.data())
        job.name = self.name
        job.input = input
        return job

    def dump(self):
        """The job document, without the fields the processor sets."""
        extra = {key: getattr(self, key) for key in self.fields}
        return {
            'name': self.name,
            'jobClass': jobClassKey(type(self)),
            'title': self.title,
            'input': self.input,
            'maxRetries': self.maxRetries,
            'retryDelay': self.retryDelay,
            'active': self.active,
            'data': extra,
        }

    def __repr__(self):
        if self.status is None:
            return '<%s %r>' % (type(self).__name__, self.__name__)
        return '<%s %r %s>' % (type(self).__name__, self.__name__,
                               self.status)


STORED_ATTRIBUTES = (
    'name', 'title', 'input', 'output', 'status', 'active', 'maxRetries',
    'retryDelay', 'retryCounter', 'retryTime', 'created', 'queued',
    'picked', 'completed', 'worker', 'leaseExpires', 'claim', 'errors',
    'tracebacks')


def loadJob(document, strict=True):
    """Turn a stored job document back into its job object.

    With ``strict`` false (for reading only: the pages, listings) a job of
    a class this process has not imported loads as a plain ``Job``; a
    worker must not run it, so processing loads strictly.
    """
    try:
        cls = getJobClass(document['jobClass'])
    except UnknownJobClassError:
        if strict:
            raise
        cls = Job
    job = cls.__new__(cls)
    job.errors = []
    job.tracebacks = []
    for key in STORED_ATTRIBUTES:
        if key in document:
            setattr(job, key, document[key])
    for key, value in (document.get('data') or {}).items():
        if key in cls.fields:
            setattr(job, key, value)
    job.__name__ = str(document['_id'])
    return job


def dumpFactory(name, job):
    return {'_id': name, 'jobClass': jobClassKey(type(job)),
            'data': job.data()}


def loadFactory(document):
    cls = getJobClass(document['jobClass'])
    factory = cls(document.get('data') or {})
    factory.name = factory.__name__ = document['_id']
    return factory
