"""Retention: how long a finished job is kept, by its final status.

A job that ended (``completed``, ``error``, ``cancelled``: its
``completed`` field tells when) is removed once its status's period
passed: ``periods`` (``m01.remote.retention.completed`` and so on; by
default a day for completed jobs, a week for the others), or the periods
its factory sets (``Job({'retention': {'completed': 3600}})``), each
period seconds or None to keep the jobs for ever.

Every process's lease keeper removes them as its upkeep (``IUpkeep``),
at most every ``interval`` seconds, or again a second later when its
last round had more than it removes in one (a busy site catching up): a
round reads at most ``maxBatches`` batches of ``batchSize`` due jobs
(and no other after ``maxSeconds``), oldest first, by one query per
status and factory, and removes each batch with one ``delete_many`` whose
filter restates the status and the end time (a job requeued meanwhile,
or ended anew, is not removed). Processes removing at once remove each
job once.

Kept whatever their period:

- a job whose key it holds for a period after it ended
  (``addJob(..., keyPeriod=...)``), until that period passed, so the
  job a ``DuplicateJobKeyError`` names can be read;
- a job named in the ``dependsOn`` field of a job that waits for it
  (status ``waiting``), while that job waits.

No TTL index: one index removes by one date, whatever the status and
factory, and cannot tell which jobs a key or a waiting job still needs.
The removal reads the index ``RETENTION_INDEX`` (status, end time).

What the charts and the stats count is in the outcome counters
(``queue.counters``), which a job's removal leaves as they are.
"""
import datetime
import time

import bson
import pymongo
import zope.interface

from m01.remote.interfaces import (
    CANCELLED,
    COMPLETED,
    ERROR,
    WAITING,
    IJobRetention,
)
from m01.remote.job import RETAINED, checkRetention
from m01.remote.queue.keys import heldUntil

DAY = 24 * 3600.0
#: The final statuses, and how long a job ending in each is kept by
#: default (seconds; None: for ever).
DEFAULT_PERIODS = {COMPLETED: DAY, ERROR: 7 * DAY, CANCELLED: 7 * DAY}
#: Due jobs one removal considers, and removals one round makes at most.
BATCH_SIZE = 1000
MAX_BATCHES = 50
#: Seconds between two rounds that removed all that was due.
INTERVAL = 10.0
#: Seconds a round may take before it leaves the rest to the next: the
#: lease keeper renews leases between two.
MAX_ROUND_SECONDS = 5.0
#: What the removal's query reads.
RETENTION_INDEX = [('status', pymongo.ASCENDING),
                   ('completed', pymongo.ASCENDING)]


@zope.interface.implementer(IJobRetention)
class JobRetention:
    """The retention of the jobs in ``jobs`` (a collection); the periods
    of each factory are read from ``factories`` (the factories'
    collection); ``now`` tells the time."""

    def __init__(self, jobs, factories, now, periods=None,
                 batchSize=BATCH_SIZE, maxBatches=MAX_BATCHES,
                 interval=INTERVAL, maxSeconds=MAX_ROUND_SECONDS):
        self.jobs = jobs
        self.factories = factories
        self.now = now
        self.periods = checkRetention(
            DEFAULT_PERIODS if periods is None else periods)
        self.batchSize = batchSize
        self.maxBatches = maxBatches
        self.interval = interval
        self.maxSeconds = maxSeconds
        #: Whether the last round left due jobs (the lease keeper's next
        #: round comes sooner, and does not wait for ``interval``).
        self.behind = False
        self._last = None

    def ensureIndexes(self):
        self.jobs.create_index(RETENTION_INDEX, name='m01_remote_retention')

    def periodsOf(self, factory):
        own = getattr(factory, 'retention', None) or {}
        return dict(self.periods, **own)

    def _groups(self):
        """``[(name filter, periods)]``: each factory with periods of its
        own, then the other jobs under ``periods``."""
        groups = []
        own = []
        for document in self.factories.find(
                {'data.retention': {'$ne': None}},
                {'data.retention': 1}):
            periods = dict(self.periods, **document['data']['retention'])
            if periods != self.periods:
                own.append(document['_id'])
                groups.append(({'name': document['_id']}, periods))
        groups.append(({'name': {'$nin': own}} if own else {},
                       self.periods))
        return groups

    # IUpkeep

    def tidy(self, now):
        """Remove what is due, at most every ``interval`` seconds unless
        the last round left some."""
        if not self.behind and self._last is not None and \
                time.monotonic() - self._last < self.interval:
            return 0
        self._last = time.monotonic()
        return self.removeDue(now)

    def removeDue(self, now):
        # Full batches bound a round; each status and factory adds at
        # most one more, which was not.
        removed = batches = 0
        self.behind = False
        deadline = time.monotonic() + self.maxSeconds
        for status in RETAINED:
            for names, periods in self._groups():
                period = periods.get(status)
                if period is None:
                    continue            # kept for ever
                cutoff = now - datetime.timedelta(seconds=period)
                for due in self._batches(status, cutoff, names,
                                         self.maxBatches - batches):
                    removed += self._remove(due, status, cutoff, now)
                    if len(due) < self.batchSize:
                        break
                    batches += 1
                    if batches >= self.maxBatches or \
                            time.monotonic() > deadline:
                        self.behind = True
                        return removed
        return removed

    def _batches(self, status, cutoff, names, batches):
        """The jobs in ``status`` that ended before ``cutoff``, of the
        factories ``names`` (a filter), oldest first, read by one query
        for at most ``batches`` batches, in batches."""
        cursor = self.jobs.find(
            dict(names, status=status, completed={'$lt': cutoff}),
            {'_id': 1, 'completed': 1, 'keyPeriod': 1}).sort(
                RETENTION_INDEX[1:]).limit(batches * self.batchSize)
        due = []
        for document in cursor:
            due.append(document)
            if len(due) == self.batchSize:
                yield due
                due = []
        yield due

    def _remove(self, due, status, cutoff, now):
        """Remove the jobs ``due`` but those still needed, each only
        while it is in ``status`` and ended before ``cutoff``: how many
        were removed."""
        if not due:
            return 0
        needed = self._needed(due, now)
        removable = [document['_id'] for document in due
                     if document['_id'] not in needed]
        if not removable:
            return 0
        return self.jobs.delete_many(
            {'_id': {'$in': removable}, 'status': status,
             'completed': {'$lt': cutoff}}).deleted_count

    def _needed(self, due, now):
        """The ids among ``due`` that must be kept: a key held for a
        period, or a waiting job depending on them."""
        needed = {document['_id'] for document in due
                  if heldUntil(document.get('keyPeriod'),
                               document.get('completed'), now)}
        ids = [document['_id'] for document in due]
        names = ids + [str(oid) for oid in ids]
        for waiting in self.jobs.find(
                {'status': WAITING, 'dependsOn': {'$in': names}},
                {'dependsOn': 1}):
            for dependency in waiting.get('dependsOn') or ():
                if isinstance(dependency, str) and \
                        bson.ObjectId.is_valid(dependency):
                    dependency = bson.ObjectId(dependency)
                needed.add(dependency)
        return needed
