"""Outcome counters: how many jobs of each factory completed, failed,
ended in error, were cancelled, timed out or lost their worker, per
minute, with the seconds they ran; what the stats and the metrics read.

Counting costs no command per job. An outcome stored (its conditional
write succeeded) is added to this process's tally in memory; the tally
is written at most every ``flushSeconds`` (a timer armed by the first
count after a write, the lease keeper's round, a stopping worker), one
``$inc`` upsert per minute and factory, one per hour and factory and
one per factory's running total, whatever the number of jobs. So the
counts are at most ``flushSeconds`` behind, and those of a process that
is killed in between are lost.

Documents (``_id`` ``m|<minute>|<factory>``, ``h|<hour>|<factory>``,
``t|<factory>``) are shared by every process: an ``$inc`` is atomic and
the counts exact. Minute and hour documents older than ``retentionDays``
are removed by the lease keeper's upkeep (``IUpkeep``), at most every
hour; totals stay.
"""
import datetime
import logging
import threading
import time

import pymongo
import pymongo.errors
import zope.interface

from m01.remote.interfaces import ERROR, IOutcomeCounters, IUpkeep
from m01.remote.queue.updates import (
    CANCELLED_OUTCOME,
    COMPLETED_OUTCOME,
    FAILED_OUTCOME,
    LOST_OUTCOME,
    TIMED_OUT_OUTCOME,
)

logger = logging.getLogger('m01.remote')

#: The counters of a document, and the attempt outcome each counts.
OUTCOMES = ('completed', 'failed', 'error', 'cancelled', 'timedOut', 'lost')
ATTEMPT_COUNTERS = {COMPLETED_OUTCOME: 'completed',
                    FAILED_OUTCOME: 'failed', TIMED_OUT_OUTCOME: 'timedOut',
                    LOST_OUTCOME: 'lost', CANCELLED_OUTCOME: 'cancelled'}
#: Besides the outcomes: seconds run, and the attempts that ran.
FIELDS = OUTCOMES + ('seconds', 'runs')

MINUTE, HOUR, TOTAL = 'minute', 'hour', 'total'
#: Seconds between two writes of the tally, at most.
FLUSH_SECONDS = 10.0
#: Days minute and hour documents are kept (``m01.remote.stats.
#: retention_days``): a week's chart and a day more.
RETENTION_DAYS = 8
#: Seconds between two prunings.
PRUNE_INTERVAL = 3600.0
#: The index the stats' reads use.
COUNTERS_INDEX = [('kind', pymongo.ASCENDING), ('at', pymongo.ASCENDING)]


def truncated(moment, kind):
    """The start of the minute or hour ``moment`` falls in."""
    moment = moment.replace(second=0, microsecond=0)
    return moment.replace(minute=0) if kind == HOUR else moment


def documentId(kind, at, name):
    if kind == TOTAL:
        return 't|%s' % name
    return '%s|%s|%s' % ('m' if kind == MINUTE else 'h',
                         at.strftime('%Y-%m-%dT%H:%M'), name)


def attemptOf(update):
    """The attempt record an outcome update pushes, or None."""
    pushed = (update.get('$push') or {}).get('attempts')
    if isinstance(pushed, dict) and pushed.get('$each'):
        return pushed['$each'][-1]
    return None


@zope.interface.implementer(IOutcomeCounters, IUpkeep)
class OutcomeCounters:
    """The counters in ``collection``; ``now`` tells the time."""

    def __init__(self, collection, now, retentionDays=RETENTION_DAYS,
                 flushSeconds=FLUSH_SECONDS):
        self.collection = collection
        self.now = now
        self.retentionDays = retentionDays
        self.flushSeconds = flushSeconds
        # (minute, factory) -> {field: amount}
        self._tally = {}
        self._lock = threading.Lock()
        self._flushLock = threading.Lock()
        self._timer = None
        self._lastPrune = None

    def ensureIndexes(self):
        self.collection.create_index(COUNTERS_INDEX,
                                     name='m01_remote_counters')

    # counting

    def count(self, name, outcome, at=None, seconds=None, final=False):
        if outcome not in OUTCOMES:
            raise ValueError('outcome must be one of %s, not %r'
                             % (', '.join(OUTCOMES), outcome))
        fields = {outcome: 1}
        if final and outcome != 'error':
            fields['error'] = 1
        if seconds is not None:
            fields['seconds'] = float(seconds)
            fields['runs'] = 1
        minute = truncated(at or self.now(), MINUTE)
        with self._lock:
            tally = self._tally.setdefault((minute, name), {})
            for field, amount in fields.items():
                tally[field] = tally.get(field, 0) + amount
            arm = self._timer is None
            if arm:
                self._timer = threading.Timer(self.flushSeconds,
                                              self._flushLater)
                self._timer.daemon = True
                self._timer.name = 'm01.remote-counters'
        if arm:
            self._timer.start()

    def countUpdate(self, name, update):
        attempt = attemptOf(update)
        status = (update.get('$set') or {}).get('status')
        if attempt is None:
            if status == 'cancelled':     # a queued job, cancelled
                self.count(name, 'cancelled')
            return
        outcome = ATTEMPT_COUNTERS.get(attempt.get('outcome'))
        if outcome is not None:
            self.count(name, outcome, attempt.get('ended'),
                       attempt.get('seconds'), final=status == ERROR)

    def countEnded(self, documents):
        """Count jobs ended by another process's lease keeper (a lost
        worker, a timeout): each document's ``name``, ``status`` and last
        attempt."""
        for document in documents:
            attempts = document.get('attempts') or ()
            if attempts:
                self.countUpdate(document['name'], {
                    '$set': {'status': document.get('status')},
                    '$push': {'attempts': {'$each': [attempts[-1]]}}})

    # writing

    def _flushLater(self):
        with self._lock:
            self._timer = None
        try:
            self.flush()
        except pymongo.errors.InvalidOperation:
            # The client was closed under us (the process, or its owner,
            # shuts down): nothing can be written any more.
            logger.debug('The outcome counters were not written: the '
                         'client is closed')
        except Exception:
            logger.exception('Writing the outcome counters failed; they '
                             'are written with the next ones')

    def flush(self):
        with self._flushLock:
            with self._lock:
                tally, self._tally = self._tally, {}
            if not tally:
                return 0
            writes = self._writes(tally)
            try:
                for kind, at, name, fields in writes:
                    self._inc(kind, at, name, fields)
            except BaseException:
                with self._lock:     # kept for the next write
                    for key, fields in tally.items():
                        mine = self._tally.setdefault(key, {})
                        for field, amount in fields.items():
                            mine[field] = mine.get(field, 0) + amount
                raise
            return len(writes)

    @staticmethod
    def _writes(tally):
        """The documents a tally increments: its minutes, their hours and
        the totals, each once."""
        merged = {}
        for (minute, name), fields in tally.items():
            for kind, at in ((MINUTE, minute),
                             (HOUR, truncated(minute, HOUR)),
                             (TOTAL, None)):
                into = merged.setdefault((kind, at, name), {})
                for field, amount in fields.items():
                    into[field] = into.get(field, 0) + amount
        return [(kind, at, name, fields)
                for (kind, at, name), fields in merged.items()]

    def _inc(self, kind, at, name, fields):
        update = {'$inc': fields,
                  '$set': {'kind': kind, 'at': at, 'factory': name}}
        oid = documentId(kind, at, name)
        try:
            self.collection.update_one({'_id': oid}, update, upsert=True)
        except pymongo.errors.DuplicateKeyError:
            # Another process inserted it first: it is there now.
            self.collection.update_one({'_id': oid}, update)

    def close(self):
        """Write what is counted, and disarm the timer."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.flush()

    # reading

    def read(self, kind, since, until=None, names=None):
        """The documents of ``kind`` ('minute' or 'hour') from ``since``
        to ``until`` (excluded; default: for ever), of the factories
        ``names`` (default: all)."""
        if kind not in (MINUTE, HOUR):
            raise ValueError("kind is 'minute' or 'hour', not %r" % (kind,))
        at = {'$gte': since}
        if until is not None:
            at['$lt'] = until
        query = {'kind': kind, 'at': at}
        if names is not None:
            query['factory'] = {'$in': list(names)}
        return list(self.collection.find(query, {'_id': 0}))

    def totals(self):
        """``{factory: {field: amount}}`` since counting began."""
        return {document['factory']: {field: document.get(field, 0)
                                      for field in FIELDS}
                for document in self.collection.find({'kind': TOTAL})}

    # IUpkeep

    def tidy(self, now):
        """Write the tally; remove documents past the retention, at most
        every ``PRUNE_INTERVAL`` seconds."""
        self.flush()
        if self._lastPrune is not None and \
                time.monotonic() - self._lastPrune < PRUNE_INTERVAL:
            return 0
        self._lastPrune = time.monotonic()
        return self.collection.delete_many({
            'kind': {'$in': [MINUTE, HOUR]},
            'at': {'$lt': now - datetime.timedelta(
                days=self.retentionDays)}}).deleted_count
