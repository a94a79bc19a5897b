"""Rate limits: at most ``starts`` jobs start per ``seconds``, across
every process, for a factory (``Job.rateLimit``) or a queue
(``QueueSettings.setRateLimit``).

A limit of N starts per period is N slot documents ``{_id:
'<scope>#<n>', scope, number, at}`` (the scope is ``factory:<name>`` or
``queue:<name>``), ``at`` the last start the slot allowed. A worker
claims a job first (one conditional write, as any claim), then takes a
slot of each limit on it with one conditional write: the slot whose
``at`` lies at least a period back gets the claim's time, atomically, so
no two starts take one slot, and the starts one slot allows are a period
apart or more. Within any period, then, at most N jobs start; that holds
for windows at any offset, not only for windows aligned to a clock.

No slot free: the job goes back to the queue in its place
(``IJobWrites.unclaim``: neither failed nor retried, its place in the
claim order kept) and the scope is left out of this process's claims
until its first slot frees.
"""
import datetime
import threading

import pymongo
import pymongo.errors


def factoryScope(name):
    return 'factory:%s' % name


def queueScope(name):
    return 'queue:%s' % name


#: When a slot never used was used: long enough ago for any period.
NEVER = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)


class RateSlots:
    """The rate limit slots of one database (``collection``)."""

    def __init__(self, collection):
        self.collection = collection
        self._made = set()          # (scope, starts) whose slots exist
        self._full = {}             # scope -> the time its first slot frees
        self._lock = threading.Lock()

    def ensureIndexes(self):
        self.collection.create_index([('scope', 1), ('number', 1)],
                                     name='m01_remote_rate_scope')

    def _make(self, scope, starts):
        if (scope, starts) in self._made:
            return
        documents = [{'_id': '%s#%d' % (scope, number), 'scope': scope,
                      'number': number, 'at': NEVER}
                     for number in range(starts)]
        try:
            self.collection.insert_many(documents, ordered=False)
        except pymongo.errors.BulkWriteError as error:
            codes = {each.get('code') for each in
                     error.details.get('writeErrors', ())}
            if codes - {11000}:
                raise
        with self._lock:
            self._made.add((scope, starts))

    def take(self, scope, limit, now, jobid):
        """A start of ``scope`` under ``limit`` (``[starts, seconds]``) at
        ``now`` for the job ``jobid``: ``(slot id, its previous time)``,
        or None when every slot was used within the period (then the
        scope counts as full until its first slot frees)."""
        starts, seconds = limit
        self._make(scope, starts)
        before = now - datetime.timedelta(seconds=seconds)
        document = self.collection.find_one_and_update(
            {'scope': scope, 'number': {'$lt': starts},
             'at': {'$lte': before}},
            {'$set': {'at': now, 'job': jobid}},
            sort=[('at', pymongo.ASCENDING)])
        if document is not None:
            return document['_id'], document['at']
        frees = self.firstFree(scope, limit)
        with self._lock:
            self._full[scope] = frees or now
        return None

    def giveBack(self, taken, jobid, now):
        """A slot ``taken`` for ``jobid`` at ``now`` whose job did not
        start after all: its previous time again (unless another start
        took it since)."""
        slot, previous = taken
        self.collection.update_one({'_id': slot, 'job': jobid, 'at': now},
                                   {'$set': {'at': previous}})

    def firstFree(self, scope, limit):
        """When the first slot of ``scope`` frees (None if one is free
        or none was made)."""
        starts, seconds = limit
        first = self.collection.find_one(
            {'scope': scope, 'number': {'$lt': starts}},
            sort=[('at', pymongo.ASCENDING)])
        if first is None:
            return None
        return _aware(first['at']) + datetime.timedelta(seconds=seconds)

    def fullScopes(self, now):
        """The scopes this process found full, and still are at ``now``."""
        with self._lock:
            for scope in [s for s, until in self._full.items()
                          if _aware(until) <= now]:
                del self._full[scope]
            return set(self._full)

    def used(self, scope, limit, now):
        """How many starts of ``scope`` lie within the period up to
        ``now``."""
        starts, seconds = limit
        return self.collection.count_documents(
            {'scope': scope, 'number': {'$lt': starts},
             'at': {'$gt': now - datetime.timedelta(seconds=seconds)}})


def _aware(value):
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value
