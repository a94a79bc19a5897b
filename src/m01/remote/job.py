"""Jobs: the base class users subclass, and how jobs are stored.

A job document names its class by a registry key, never by an import path
that would be followed: a document can only be loaded back into a class
this process has imported (every ``Job`` subclass registers itself when
its class statement runs), so database content never decides what code
is imported.
"""

import bson
import transaction.interfaces
import zope.interface

from m01.remote import interfaces, limits
from m01.remote.limits import (  # noqa: F401  (the names of record)
    MAX_PRIORITY,
    MAX_SECONDS,
    RETAINED,
    checkPriority,
    checkRetention,
    checkSeconds,
    dueTime,
)
from m01.remote.queuenames import (
    DEFAULT_QUEUE,
    checkQueueName,
    checkRateLimit,
)

#: BSON's document size limit; MongoDB refuses anything larger.
MAX_BSON_SIZE = limits.MAX_BSON_SIZE

_jobClasses = {}

# The fields every job document has; anything else a subclass wants to
# keep must be declared in its ``fields``.
BASE_FIELDS = ('input', 'maxRetries', 'retryDelay', 'active', 'title',
               'priority', 'timeout', 'retryBackoff', 'retryDelayMax',
               'retryJitter', 'concurrency', 'queue', 'rateLimit')

#: A factory's settings its jobs' documents do not carry.
FACTORY_FIELDS = ('retention',)

BACKOFFS = ('fixed', 'exponential')

#: What a job loaded through the processor writes when its attribute is
#: set and the transaction commits (``edit``).
EDITABLE = ('retryTime', 'maxRetries', 'retryDelay', 'priority', 'title',
            'timeout', 'active', 'retryBackoff', 'retryDelayMax',
            'retryJitter', 'input')


class JobError(Exception):
    """Raised by a job to end it in status ``error`` without a retry."""


class OutputNotStored(JobError):
    """The job returned an output that cannot be stored (too large, or
    of a type BSON cannot store): it ends in ``error`` at once, since
    running it again would return the same."""


class DuplicateJobError(ValueError):
    """A job with the requested id exists already."""


class DuplicateJobKeyError(ValueError):
    """A live job (queued or processing) has the key already; its id is
    ``jobid``."""

    def __init__(self, message, jobid):
        super().__init__(message)
        self.jobid = jobid


class ConflictError(transaction.interfaces.TransientError):
    """A changed job could not be written: it changed meanwhile. Retrying
    the transaction (pyramid_retry does) reads it again."""


class AttemptRefused(Exception):
    """The commit of a unit of work was refused: the claim of a job it
    ran no longer held (the job was cancelled, timed out or taken over),
    so nothing of the unit is stored. ``jobids`` are the refused jobs."""

    def __init__(self, message, jobids):
        super().__init__(message)
        self.jobids = list(jobids)


class JobInterrupted(Exception):
    """Raised in a running job (by ``checkpoint``, ``progress`` or
    ``log``) that must stop: it is no longer this worker's."""


class JobCancelled(JobInterrupted):
    """The running job was cancelled; it ends ``cancelled``."""


class JobTimedOut(JobInterrupted):
    """The running job ran past its timeout: a failed attempt, retried by
    its rules."""


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


def jobClassModules():
    """The modules defining the job classes this process registered: what
    another interpreter imports to load the same jobs."""
    return sorted({cls.__module__ for cls in _jobClasses.values()})


def getJobClass(key):
    try:
        return _jobClasses[key]
    except KeyError:
        raise UnknownJobClassError(
            'Job class %r is not known in this process: import the module '
            'that defines it before processing its jobs.' % key)


def checkStorable(value, what='input'):
    """Raise ValueError unless BSON can store ``value`` within its limit
    and the nesting limit (checked first, without recursion): MAX_DEPTH
    levels for a value given, more for the documents wrapping values.

    An ``output`` takes at most ``limits.MAX_OUTPUT`` bytes; anything
    else (an input, a job document, a factory's settings) at most
    ``limits.MAX_JOB_DOCUMENT``: what the two leave of 16 MB holds
    everything a job's outcomes add (``limits.OUTCOME_BYTES``)."""
    limits.checkDepth(value, 'The job %s' % what,
                      limits.MAX_DEPTH if what in ('input', 'output')
                      else limits.MAX_DOCUMENT_DEPTH)
    try:
        size = len(bson.encode({'v': value}))
    except (bson.errors.InvalidDocument, TypeError, OverflowError,
            UnicodeEncodeError) as e:
        raise ValueError('The job %s cannot be stored: %s' % (what, e))
    if what == 'output':
        if size > limits.MAX_OUTPUT:
            raise ValueError(
                'The job output is %d bytes; at most %d bytes (%s) are '
                'stored.' % (size, limits.MAX_OUTPUT,
                             _megabytes(limits.MAX_OUTPUT)))
    elif size > limits.MAX_JOB_DOCUMENT:
        raise ValueError(
            'The job %s is %d bytes; a job document must stay under %d '
            'bytes (%s) with its input and settings, leaving the rest of '
            'the 16 MB MongoDB stores to its outcomes.' % (
                what, size, limits.MAX_JOB_DOCUMENT,
                _megabytes(limits.MAX_JOB_DOCUMENT)))


def _megabytes(size):
    return '%g MB' % (size / (1024 * 1024))


def checkOutput(output):
    """Raise ``OutputNotStored`` unless ``output`` can be stored
    (``checkStorable``), whatever checking it raised."""
    try:
        checkStorable(output, 'output')
    except ValueError as error:
        raise OutputNotStored(limits.storableText(error)) from error
    except Exception as error:
        # A value of its own kind, failing as BSON reads it.
        raise OutputNotStored('The job output cannot be stored: %s: %s' % (
            type(error).__name__, limits.storableText(error))) from error


@zope.interface.implementer(interfaces.IJob)
class Job:
    """Subclass and implement ``__call__(self, remoteProcessor)``.

    ``Job(data)`` sets the stored fields (``BASE_FIELDS``: ``input``,
    ``maxRetries``, ``retryDelay``, ``active``, ``title``, ``priority``,
    ``timeout``, ``retryBackoff``, ``retryDelayMax``, ``retryJitter``,
    ``concurrency``, ``queue``, ``rateLimit``) and the names a subclass
    declares in ``fields``; an unknown key or a bad value is refused.

    While it runs, a job may call ``self.checkpoint()``,
    ``self.progress(fraction, message)`` and ``self.log(line)``: each
    raises ``JobCancelled`` once the job was cancelled (``JobTimedOut``
    past its timeout), so a long job stops where it is safe to.
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
    errorTime = None
    priority = 0
    timeout = None
    retryBackoff = 'fixed'
    retryDelayMax = None
    retryJitter = 0
    concurrency = None
    #: The queue its jobs join (workers select queues by name).
    queue = DEFAULT_QUEUE
    #: At most ``starts`` jobs of the factory start per ``seconds``
    #: (``[starts, seconds]``), across every process; None: no limit.
    rateLimit = None
    #: ``{status: seconds or None}`` its jobs are kept once ended in each
    #: final status, over the processor's (``queue.retention``).
    retention = None
    key = None
    #: Seconds the job's key stays held after it ended (``addJob``'s
    #: ``keyPeriod``), or None.
    keyPeriod = None
    version = 0
    #: The trace context of the span active when the job was added
    #: (``m01.remote.queue.tracing``), or None.
    traceContext = None
    #: The stored ``progress`` (fraction, message, at) and ``log`` lines.
    reportedProgress = None
    #: Set while the job runs (``m01.remote.queue.control.JobControl``).
    _control = None
    #: Set on a job loaded through the processor (``EDITABLE`` fields).
    _changes = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        registerJobClass(cls)

    def __init__(self, data=None):
        self.errors = []
        self.tracebacks = []
        self.attempts = []
        self.logLines = []
        for key, value in dict(data or {}).items():
            if key not in BASE_FIELDS and key not in FACTORY_FIELDS and \
                    key not in self.fields:
                raise ValueError(
                    '%s does not accept %r; it accepts %s' % (
                        type(self).__name__, key,
                        ', '.join(BASE_FIELDS + FACTORY_FIELDS +
                                  tuple(self.fields))))
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
        checkPriority(self.priority)
        checkSeconds(self.timeout, 'timeout', optional=True, positive=True)
        checkSeconds(self.retryDelay, 'retryDelay')
        checkSeconds(self.retryDelayMax, 'retryDelayMax', optional=True)
        if self.retryBackoff not in BACKOFFS:
            raise ValueError('retryBackoff must be one of %s, not %r'
                             % (', '.join(BACKOFFS), self.retryBackoff))
        jitter = self.retryJitter
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) \
                or not 0 <= jitter <= 1:
            raise ValueError('retryJitter must be a fraction from 0 to 1, '
                             'not %r' % (jitter,))
        limit = self.concurrency
        if limit is not None and (isinstance(limit, bool) or
                                  not isinstance(limit, int) or limit < 1):
            raise ValueError('concurrency must be a whole number >= 1 or '
                             'None, not %r' % (limit,))
        checkQueueName(self.queue)
        if self.rateLimit is not None:
            self.rateLimit = checkRateLimit(self.rateLimit)
        if self.retention is not None:
            checkRetention(self.retention)

    def __setattr__(self, name, value):
        changes = self._changes
        if changes is not None and name in EDITABLE:
            value = changes.set(self, name, value)
        object.__setattr__(self, name, value)

    # while the job runs

    def checkpoint(self):
        """Raise ``JobCancelled`` if the job was cancelled meanwhile (or
        ``JobTimedOut`` past its timeout); a no-op outside a worker."""
        if self._control is not None:
            self._control.checkpoint()

    def progress(self, fraction, message=None):
        """Store how far the job got (``fraction`` from 0 to 1, an optional
        short ``message``) with the job, for the pages; a checkpoint."""
        if not isinstance(fraction, (int, float)) or \
                isinstance(fraction, bool) or not 0 <= fraction <= 1:
            raise ValueError('progress takes a fraction from 0 to 1, not %r'
                             % (fraction,))
        if self._control is not None:
            self._control.progress(float(fraction), message)

    def log(self, line):
        """Keep a line of text with the job (the newest lines are kept);
        a checkpoint."""
        if self._control is not None:
            self._control.log(line)

    def __call__(self, remoteProcessor):
        raise NotImplementedError(
            '%s must implement __call__(remoteProcessor)'
            % type(self).__name__)

    def data(self):
        """The factory's settings, as given to ``Job(data)``."""
        names = BASE_FIELDS + FACTORY_FIELDS + tuple(self.fields)
        return {key: getattr(self, key) for key in names}

    def getJob(self, input=None):
        job = type(self)(self.data())
        job.name = self.name
        job.input = input
        return job

    def dump(self):
        """The job document, without the fields the processor sets."""
        extra = {key: getattr(self, key) for key in self.fields}
        document = {'name': self.name, 'jobClass': jobClassKey(type(self)),
                    'data': extra}
        document.update({key: getattr(self, key) for key in BASE_FIELDS})
        return document

    def __repr__(self):
        if self.status is None:
            return '<%s %r>' % (type(self).__name__, self.__name__)
        return '<%s %r %s>' % (type(self).__name__, self.__name__,
                               self.status)


STORED_ATTRIBUTES = BASE_FIELDS + (
    'name', 'output', 'status', 'retryCounter', 'retryTime', 'created',
    'queued', 'picked', 'completed', 'worker', 'leaseExpires', 'claim',
    'errors', 'tracebacks', 'attempts', 'key', 'keyPeriod', 'version',
    'traceContext')
#: Stored fields whose attribute has another name (``progress`` and
#: ``log`` are the methods a running job calls).
RENAMED_ATTRIBUTES = {'progress': 'reportedProgress', 'log': 'logLines'}


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
    job.attempts = []
    job.logLines = []
    for key in STORED_ATTRIBUTES:
        if key in document:
            setattr(job, key, document[key])
    for key, attribute in RENAMED_ATTRIBUTES.items():
        if key in document:
            setattr(job, attribute, document[key])
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
