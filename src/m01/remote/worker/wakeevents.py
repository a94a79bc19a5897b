"""Which committed changes wake which idle loops
(``m01.remote.worker.wakeup``).

Job workers wake for a job that became claimable: one inserted queued,
one updated to ``status: 'queued'`` (queued again by hand, retried after
a failed attempt, given back unstarted, recovered from a lost worker),
one given a new ``retryTime`` or made active. A job due later (its
``retryTime`` ahead) wakes them when it comes due, not at once.

Schedulers wake for an item added or changed: one whose ``nextCallTime``
or ``active`` was written. An item wakes them at its next call time
(after its lock, if it is locked), an item due already at once.

The server filters with ``jobPipeline`` / ``schedulerPipeline``, so
completions, claims, lease renewals and locks never reach the process;
the handlers decide the rest from the fields a change carries. These
are, on MongoDB, an insert's (or replace's) ``fullDocument`` and an
update's ``updateDescription.updatedFields``; mongo-java-server puts an
update's ``$set`` and ``$unset`` values in ``fullDocument`` instead
(``documentKey`` is the update itself there), which reads the same.
"""
import datetime

from m01.remote.interfaces import QUEUED
from m01.remote.worker.changestreams import ChangeWatcher

WRITES = ('insert', 'update', 'replace')


WRITTEN = {'$exists': True}


def _writing(**conditions):
    """The changes writing a field as ``conditions`` say, however the
    server reports them."""
    return [{'%s.%s' % (where, field): condition}
            for field, condition in conditions.items()
            for where in ('fullDocument', 'updateDescription.updatedFields')]


def jobPipeline():
    """The changes of the jobs collection that may wake a worker (not
    claims, outcomes other than a retry, renewals or progress)."""
    return [{'$match': {'operationType': {'$in': list(WRITES)},
                        '$or': _writing(status=QUEUED, retryTime=WRITTEN,
                                        active=True)}}]


def schedulerPipeline():
    """The changes of the scheduler collection that may wake a scheduler
    (not its locks)."""
    return [{'$match': {'operationType': {'$in': list(WRITES)},
                        '$or': _writing(nextCallTime=WRITTEN,
                                        active=True)}}]


def changedFields(change):
    """The fields a change event says its document has now."""
    fields = dict(change.get('fullDocument') or {})
    description = change.get('updateDescription') or {}
    fields.update(description.get('updatedFields') or {})
    return fields


def _time(value):
    """A datetime of a change, in UTC (a client that is not timezone-aware
    reads them naive)."""
    if not isinstance(value, datetime.datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value


#: A change that wakes nobody.
NOBODY = object()
#: A change that wakes at once.
NOW = None


def jobDueTime(change):
    """When the change lets a worker claim a job: ``NOW``, a time, or
    ``NOBODY``."""
    fields = changedFields(change)
    status = fields.get('status')
    if change.get('operationType') != 'update' and status != QUEUED:
        return NOBODY          # a whole document, not a queued job
    if status is not None and status != QUEUED:
        return NOBODY          # claimed, ended, cancelled
    if fields.get('active') is False:
        return NOBODY
    return _time(fields.get('retryTime'))


def itemDueTime(change):
    """When the change makes a scheduler item due: ``NOW``, a time, or
    ``NOBODY``."""
    fields = changedFields(change)
    if fields.get('active') is False:
        return NOBODY
    due = _time(fields.get('nextCallTime'))
    if due is None:
        # Activated without a call time here: a scheduler looks.
        return NOW if fields.get('active') is True else NOBODY
    locked = _time(fields.get('retryTime'))
    return max(due, locked) if locked is not None else due


class Waker:
    """Wakes ``wakeup`` (``IWakeup``) for the changes ``dueTime`` says a
    time for; answers whether it woke it at once."""

    def __init__(self, wakeup, dueTime):
        self.wakeup = wakeup
        self.dueTime = dueTime

    def __call__(self, change):
        due = self.dueTime(change)
        if due is NOBODY:
            return False
        if due is NOW or due <= self.wakeup.now():
            self.wakeup.set()
            return True
        self.wakeup.setAt(due)
        return False


def watchJobs(collection, wakeup, name, mode):
    """The ``ChangeWatcher`` waking the job workers of processor
    ``name`` through ``wakeup`` for the changes of ``collection``."""
    return ChangeWatcher(collection, jobPipeline(),
                         Waker(wakeup, jobDueTime), wakeup.set,
                         '%s %s' % (name, collection.name), mode,
                         needed=lambda: wakeup.waiting > 0)


def watchScheduler(collection, wakeup, name, mode):
    """The ``ChangeWatcher`` waking the scheduler of processor ``name``
    through ``wakeup`` for the changes of ``collection``."""
    return ChangeWatcher(collection, schedulerPipeline(),
                         Waker(wakeup, itemDueTime), wakeup.set,
                         '%s %s' % (name, collection.name), mode,
                         needed=lambda: wakeup.waiting > 0)
