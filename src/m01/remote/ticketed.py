"""Safe job changes on a server without atomic conditional updates.

FerretDB v1 runs ``update`` and ``findAndModify`` as a read followed by a
write by ``_id``: two clients racing for one queued job both "claim" it
(six processes claimed 1,000 jobs 4,903 times when we measured). The
only atomic operation it has is an insert with a unique ``_id``. And its
SQLite backend answers any query other than ``{_id: value}`` by reading
the whole collection, so a claim that filters and sorts the jobs
collection gets slower with every job ever stored. (Its updates and
deletes by ``_id`` also take longer as a collection grows, which is
why the queue collection is kept to the live jobs.)

So on such a server:

* Every job document carries a ``version``. A change first inserts the
  ticket ``<jobid>:<version>`` into the tickets collection; only the
  client whose insert succeeded writes, and it writes by ``_id`` alone
  (no other client can write that version, so no filter is needed).
* Live jobs (queued or running) also have an entry in a small queue
  collection, read unsorted (the SQLite backend returns rows in insertion
  order, and a sort would make it read them all): claims and lease
  recovery read it, never the jobs collection. An entry holds a copy of
  its job's fields, so a worker's ``jobQuery`` is matched there, with
  the matching rules of the embedded store.
* Tickets are purged once no racer can still hold their version.

Cheap where it can be: a worker remembers the job as its claim wrote it,
so its outcome is won at that version without reading the job again (a
lease renewal or a cancel meanwhile took that ticket: the outcome is then
tried the reading way). Lease renewal and recovery ask for the running
entries only.

An entry is stored just before its job: a claim meeting an entry whose
job is not there yet leaves it alone, and drops it only once it is older
than ``ORPHAN_AGE`` (its job was removed, or its insert failed).
"""
import collections
import datetime
import random
import threading
import time

import pymongo
from mongomock.filtering import filter_applies

from m01.remote.interfaces import CANCELLED, ERROR, PROCESSING, QUEUED
from m01.remote.jobstate import (
    AtomicJobWrites,
    cancelUpdate,
    claimFields,
    completeUpdate,
    lostWorkerUpdate,
    requeueUpdate,
    versioned,
)

#: Tickets older than this are purged; racers are long gone by then.
TICKET_LIFETIME = datetime.timedelta(hours=1)
#: Seconds between two purges of old tickets (a purge reads them all).
PURGE_INTERVAL = 600.0
#: Queue entries a claim reads, in growing windows, before it reads all
#: of them: each entry read costs (about 0.35 ms on FerretDB's SQLite
#: backend), and the first window nearly always holds a due one.
WINDOWS = (16, 128)
#: Among the due entries, how many a claim tries in random order after the
#: oldest, so that workers losing the race for it spread out.
SPREAD = 8
#: An entry whose job is missing for this long is left over, not early.
ORPHAN_AGE = datetime.timedelta(minutes=10)
#: Claimed jobs remembered for their outcome, at most.
REMEMBERED = 10000

def queueEntry(document):
    """The queue entry of a queued job document."""
    job = {key: value for key, value in document.items()
           if key not in ('output', 'errors', 'tracebacks')}
    return {'_id': document['_id'], 'state': QUEUED,
            'retryTime': document['retryTime'], 'job': job}


class TicketedJobWrites(AtomicJobWrites):
    """Each change is won by inserting a ticket, then written by ``_id``.
    """

    #: How often a change is tried again after losing its ticket to a
    #: change that left its condition true (a lease renewal, say).
    attempts = 10

    def __init__(self, database, prefix):
        super().__init__(database, prefix)
        self.tickets = database[prefix + 'tickets']
        self.queue = database[prefix + 'queue']
        self._lastPurge = 0.0
        # claim token -> the job as this process last wrote it
        self._claimed = collections.OrderedDict()
        self._claimedLock = threading.Lock()

    def ensureIndexes(self):
        # Only {_id: value} queries are fast on this server; secondary
        # indexes would just slow the writes down.
        pass

    def insertJobs(self, documents):
        # Entries first: an entry without its job is dropped by the next
        # claim that meets it, a job without an entry would never run.
        self.queue.insert_many([queueEntry(d) for d in documents],
                               ordered=True)
        self.jobs.insert_many(documents, ordered=True)

    # the ticket

    def _transition(self, document, update, entry=None, now=None):
        """Win the ticket for the document's version, then write the job
        and its queue entry; the job as written, or None when another
        client won. ``entry`` is ``('set', fields)``, ``('put', doc)`` or
        ``('drop', None)``."""
        version = document.get('version', 0)
        ticket = {'_id': '%s:%d' % (document['_id'], version),
                  'at': now or datetime.datetime.now(datetime.timezone.utc)}
        try:
            self.tickets.insert_one(ticket)
        except pymongo.errors.DuplicateKeyError:
            return None
        oid = document['_id']
        if entry is not None:
            action, value = entry
            if action == 'drop':
                self.queue.delete_one({'_id': oid})
            elif action == 'put':
                self.queue.replace_one({'_id': oid}, value, upsert=True)
            else:
                self.queue.update_one({'_id': oid}, {'$set': value})
        if not self.jobs.update_one({'_id': oid},
                                    versioned(update)).matched_count:
            return None  # the job was removed meanwhile
        written = dict(document, **update.get('$set', {}))
        for key in update.get('$unset', {}):
            written.pop(key, None)
        written['version'] = version + 1
        return written

    def _changeIf(self, oid, condition, update, entry, now=None):
        """Read the job and change it while ``condition`` holds; the job
        as written, or None."""
        for _ in range(self.attempts):
            document = self.jobs.find_one({'_id': oid})
            if document is None or not condition(document):
                return None
            written = self._transition(document, update, entry(document),
                                       now)
            if written is not None:
                return written
        return None

    # the jobs this process claimed

    def _remember(self, written):
        with self._claimedLock:
            self._claimed[written['claim']] = written
            while len(self._claimed) > REMEMBERED:
                self._claimed.popitem(last=False)

    def _renewed(self, claim, written):
        with self._claimedLock:
            if claim in self._claimed:
                self._claimed[claim] = written

    def _recall(self, oid, claim):
        with self._claimedLock:
            document = self._claimed.pop(claim, None)
        return document if document and document['_id'] == oid else None

    def _outcome(self, oid, claim, update, entry, now=None):
        """Store a worker's outcome: at the version its claim (or lease
        renewal) wrote, else the reading way."""
        document = self._recall(oid, claim)
        if document is not None and self._transition(
                document, update, entry(document), now) is not None:
            return True
        return self._changeIf(oid, self._owns(claim), update, entry,
                              now) is not None

    def _afterFailure(self, document, update):
        fields = update['$set']
        if fields['status'] != QUEUED:
            return ('drop', None)
        requeued = dict(document, **fields)
        return ('put', queueEntry(requeued))

    # claims

    def _dueEntries(self, now, jobQuery, limit):
        cursor = self.queue.find()
        if limit:
            cursor = cursor.limit(limit)
        entries = list(cursor)
        due = [entry for entry in entries
               if entry['state'] == QUEUED and entry['retryTime'] <= now
               and (not jobQuery or filter_applies(jobQuery, entry['job']))]
        return due, len(entries)

    def claimNext(self, now, worker, leaseTime, jobQuery=None):
        for _ in range(3):
            for window in WINDOWS + (None,):
                due, read = self._dueEntries(now, jobQuery, window)
                if due or read != window:
                    break  # found some, or read them all
            if not due:
                return None
            tries = due[:1] + random.sample(due[1:SPREAD + 1],
                                            min(len(due) - 1, SPREAD))
            for entry in tries:
                written = self._claim(entry['_id'], now, worker, leaseTime,
                                      entry)
                if written is not None:
                    return written
        return None

    def _claim(self, oid, now, worker, leaseTime, entry=None):
        document = self.jobs.find_one({'_id': oid})
        if document is None:
            # Not inserted yet (its entry is stored first), or removed.
            created = ((entry or {}).get('job') or {}).get('created')
            if created is None or created < now - ORPHAN_AGE:
                self.queue.delete_one({'_id': oid})
            return None
        if document['status'] in (CANCELLED, ERROR, 'completed'):
            self.queue.delete_one({'_id': oid})   # a left-over entry
            return None
        if document['status'] != QUEUED or not document.get('active', True):
            return None
        fields = claimFields(now, worker, leaseTime)
        change = ('set', {'state': PROCESSING, 'claim': fields['claim'],
                          'leaseExpires': fields['leaseExpires']})
        written = self._transition(document, {'$set': fields}, change, now)
        if written is not None:
            self._remember(written)
        return written

    def claimJob(self, oid, now, worker, leaseTime):
        for _ in range(self.attempts):
            document = self.jobs.find_one({'_id': oid})
            if document is None or document['status'] != QUEUED:
                return None
            written = self._claim(oid, now, worker, leaseTime)
            if written is not None:
                return written
        return None

    # outcomes and other changes

    def _owns(self, claim):
        return lambda d: d['status'] == PROCESSING and d.get('claim') == claim

    def complete(self, oid, claim, output, now):
        return self._outcome(oid, claim, completeUpdate(output, now),
                             lambda d: ('drop', None), now)

    def fail(self, oid, claim, update):
        return self._outcome(oid, claim, update,
                             lambda d: self._afterFailure(d, update))

    def cancel(self, oid, now):
        return self._changeIf(
            oid, lambda d: d['status'] in (QUEUED, PROCESSING),
            cancelUpdate(now), lambda d: ('drop', None), now) is not None

    def requeue(self, oid, now):
        update = requeueUpdate(now)
        return self._changeIf(
            oid, lambda d: d['status'] in (ERROR, CANCELLED), update,
            lambda d: ('put', queueEntry(dict(d, **update['$set']))),
            now) is not None

    def _running(self):
        # Filtered by the server, so only running entries come back.
        return self.queue.find({'state': PROCESSING})

    def extendLeases(self, claims, until):
        extended = 0
        claims = set(claims)
        if not claims:
            return 0
        for entry in self._running():
            if entry['state'] != PROCESSING or entry.get('claim') not in \
                    claims:
                continue
            written = self._changeIf(
                entry['_id'], self._owns(entry['claim']),
                {'$set': {'leaseExpires': until}},
                lambda d: ('set', {'leaseExpires': until}))
            if written is not None:
                self._renewed(entry['claim'], written)
                extended += 1
        return extended

    def recoverExpired(self, now, limit=100):
        recovered = []
        for entry in self._running():
            if len(recovered) >= limit:
                break
            if entry['state'] != PROCESSING or entry['leaseExpires'] >= now:
                continue
            document = self.jobs.find_one({'_id': entry['_id']})
            if document is None or document['status'] != PROCESSING or \
                    document.get('claim') != entry.get('claim') or \
                    document['leaseExpires'] >= now:
                continue
            update = lostWorkerUpdate(document, now)
            written = self._transition(
                document, update, self._afterFailure(document, update), now)
            if written is not None:
                recovered.append((str(document['_id']),
                                  update['$set']['status']))
        return recovered

    def purgeTickets(self, now):
        if time.monotonic() - self._lastPurge < PURGE_INTERVAL:
            return 0
        self._lastPurge = time.monotonic()
        return self.tickets.delete_many(
            {'at': {'$lt': now - TICKET_LIFETIME}}).deleted_count
