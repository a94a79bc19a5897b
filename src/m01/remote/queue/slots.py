"""Concurrency limits: at most ``concurrency`` jobs of a factory running
at once, across every process.

A running job of a limited factory holds one of its ``concurrency``
slots, a document ``{_id: 'slot:<factory>:<n>', job, claim}``. A worker
claims the job first (one conditional write, as any claim), then takes a
slot by inserting one: the insert of a given ``_id`` is atomic on every
store, so no two jobs hold the same slot, and a factory never runs more
jobs than it has slots. No slot free: the job goes back to the queue in
its place (``IJobWrites.unclaim``) and the factory is left out of this
process's claims for a moment.

A slot is released when its job's outcome is stored, or when the job
ends otherwise (a lost worker, a timeout): the lease keeper of any
process removes a slot whose job no longer runs under its claim. Either
is one delete conditional on the slot's claim, so a release and a tidy
racing for one slot never remove a newer one.
"""
import re
import threading
import time

import pymongo.errors
import zope.interface

from m01.remote.interfaces import PROCESSING, IUpkeep

#: Seconds a factory found at its limit is left out of this process's
#: claims (a local release ends it earlier).
FULL_SECONDS = 0.5


@zope.interface.implementer(IUpkeep)
class ConcurrencySlots:
    """The slots of one database (``collection``); ``now`` tells the time
    and ``jobWrites`` (``IJobWrites``) a stored job's state."""

    def __init__(self, collection, now, jobWrites):
        self.collection = collection
        self.now = now
        self.jobWrites = jobWrites
        self._full = {}
        self._lock = threading.Lock()

    def acquire(self, name, limit, oid, claim):
        """A slot of factory ``name`` for the job ``oid`` running under
        ``claim``: its id, or None when all ``limit`` are taken."""
        for number in range(limit):
            slot = 'slot:%s:%d' % (name, number)
            try:
                self.collection.insert_one({'_id': slot, 'job': oid,
                                            'claim': claim,
                                            'at': self.now()})
                return slot
            except pymongo.errors.DuplicateKeyError:
                continue
        with self._lock:
            self._full[name] = time.monotonic() + FULL_SECONDS
        return None

    def fullNames(self):
        """The factories this process found at their limit just now."""
        now = time.monotonic()
        with self._lock:
            for name in [n for n, until in self._full.items()
                         if until <= now]:
                del self._full[name]
            return set(self._full)

    def release(self, slot, claim):
        """The job holding ``slot`` under ``claim`` ended."""
        name = slot.split(':')[1] if slot.count(':') >= 2 else None
        with self._lock:
            self._full.pop(name, None)
        return self._end(slot, claim)

    def _end(self, slot, claim):
        return self.collection.delete_one(
            {'_id': slot, 'claim': claim}).deleted_count == 1

    def running(self, name):
        """How many slots of factory ``name`` are held."""
        return self.collection.count_documents(
            {'_id': {'$regex': '^slot:%s:' % re.escape(name)}})

    # IUpkeep

    def tidy(self, now):
        freed = 0
        for slot in self.collection.find():
            held = (PROCESSING, slot['claim'])
            if self.jobWrites.state(slot['job']) != held and \
                    self._end(slot['_id'], slot['claim']):
                freed += 1
        return freed
