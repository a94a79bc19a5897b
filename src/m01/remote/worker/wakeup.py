"""What an idle loop waits on: a wake-up now, or at a time.

A worker with nothing to claim waits until jobs are committed (in this
process: by the commit; in another: by a change stream), until the
earliest due time it knows of (a job delayed until then, a scheduler item
due then), or until its ``waitTime`` has passed and it polls anyway.

``set()`` wakes every loop waiting now, or the next one to wait if none
is; ``setAt(when)`` does so at ``when``. Only the earliest
``MAX_DUE_TIMES`` due times are kept: the poll finds the jobs of the
others, so memory stays bounded whatever a stream announces.

Which committed changes wake which loops (``watchJobs``,
``watchScheduler``, ``m01.remote.wakeup``):

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
import bisect
import datetime
import threading
import time

import zope.interface

from m01.remote.interfaces import QUEUED, IWakeup
from m01.remote.worker.changestreams import ChangeWatcher

#: Due times kept, the earliest ones.
MAX_DUE_TIMES = 1000


@zope.interface.implementer(IWakeup)
class Wakeup:
    """A wake-up for the loops of one processor; ``now`` tells the time
    the due times are compared with (the processor's clock)."""

    def __init__(self, now, maxDueTimes=MAX_DUE_TIMES):
        self.now = now
        self.maxDueTimes = maxDueTimes
        self._condition = threading.Condition()
        # Set and not consumed by a waiter yet.
        self._pending = False
        # Advanced by every wake-up: a waiter returns once it moved.
        self._generation = 0
        self._due = []
        self.waiting = 0

    @property
    def idle(self):
        """Whether a loop waits and nothing woke it yet."""
        with self._condition:
            return self.waiting > 0 and not self._pending

    @property
    def dueTimes(self):
        with self._condition:
            return list(self._due)

    def set(self):
        with self._condition:
            self._wake()

    def _wake(self):
        self._pending = True
        self._generation += 1
        self._condition.notify_all()

    def setAt(self, when):
        if when <= self.now():
            self.set()
            return
        with self._condition:
            if len(self._due) >= self.maxDueTimes and when >= self._due[-1]:
                return
            bisect.insort(self._due, when)
            del self._due[self.maxDueTimes:]
            # A waiter may have to wake earlier than it planned.
            self._condition.notify_all()

    def _fireDue(self):
        """Wake the loops if the earliest due time has come; the seconds
        until it otherwise (None when there is none)."""
        if not self._due:
            return None
        now = self.now()
        if self._due[0] > now:
            return (self._due[0] - now).total_seconds()
        del self._due[:bisect.bisect_right(self._due, now)]
        self._wake()
        return 0.0

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        with self._condition:
            self.waiting += 1
            try:
                generation = self._generation
                while True:
                    untilDue = self._fireDue()
                    if self._pending or self._generation != generation:
                        self._pending = False
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    if untilDue is not None:
                        remaining = min(remaining, untilDue)
                    self._condition.wait(remaining)
            finally:
                self.waiting -= 1


# which committed changes wake which loops
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
