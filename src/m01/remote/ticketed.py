"""Safe job changes on a server without atomic conditional updates.

FerretDB v1 runs ``update`` and ``findAndModify`` as a read followed by a
write by ``_id``: two clients racing for one queued job both "claim" it
(six processes claimed 1,000 jobs 4,903 times when we measured). The
only atomic operation it has is an insert with a unique ``_id``. And its
SQLite backend answers any query other than ``{_id: value}`` by reading
the whole collection, so a claim that filters and sorts the jobs
collection gets slower with every job ever stored. (Even ``{_id: value}``
is a scan there, as SQLite does not use FerretDB's ``_id`` index for it:
a look-up reads the table up to its document, an update or delete all of
it. That is why the queue collection is kept to the live jobs.)

So on such a server:

* Every job document carries a ``version``. A change first inserts the
  ticket ``<jobid>:<version>`` into the tickets collection; only the
  client whose insert succeeded writes the job, by ``_id`` and version.
* The ticket holds the change as the values it sets (the retry counter
  and the error list counted out, the next version included), so writing
  it twice writes the same job. A client that won a ticket and then died,
  or lost the server, before writing the job would otherwise block that
  job until the ticket is purged: a client that meets a ticket older than
  ``STALE_TICKET`` whose job is still at that version writes it instead.
* Live jobs (queued or running) also have an entry in a small queue
  collection, read unsorted (the SQLite backend returns rows in insertion
  order, and a sort would make it read them all): claims and lease
  recovery read it, never the jobs collection. An entry holds a copy of
  its job's fields under ``job``, so the server matches a worker's
  ``jobQuery`` there, its field names prefixed (``entryQuery``); such a
  claim reads the whole queue collection on FerretDB, which applies a
  limit only to a query without a filter.
* The job is the truth, its entry a hint kept true: an entry is written
  after its job, except for a job becoming live (added, or queued again
  from ``error`` or ``cancelled``), whose entry is written first, so a
  live job never lacks one. Claims and lease recovery that find an entry
  disagreeing with its job (a client stopped between the two writes)
  correct the entry, or drop it once its job has ended.
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
import zope.interface

from m01.remote.clock import utcnow
from m01.remote.interfaces import (
    CANCELLED,
    ERROR,
    PROCESSING,
    QUEUED,
    IJobWrites,
)
from m01.remote.jobstate import (
    cancelUpdate,
    checkDeletable,
    claimFields,
    lostWorkerUpdate,
    orderKey,
    requeueUpdate,
    timedOut,
    timedOutUpdate,
    unclaimUpdate,
)

LIVE = (QUEUED, PROCESSING)
#: Tickets older than this are purged; racers are long gone by then.
TICKET_LIFETIME = datetime.timedelta(hours=1)
#: A ticket whose change is not written after this long was won by a
#: client that stopped between the ticket and the job: anyone writes it.
#: A client still writing it then writes the same values, and only on the
#: version the ticket names, so the two never disagree.
STALE_TICKET = datetime.timedelta(seconds=30)
#: Seconds between two purges of old tickets (a purge reads them all).
PURGE_INTERVAL = 600.0
#: Queue entries a claim reads, in growing windows, before it reads all
#: of them: each entry read costs (about 0.35 ms on FerretDB's SQLite
#: backend), and the first window nearly always holds a due one.
WINDOWS = (16, 128)
#: Among the due entries, how many a claim tries in random order after the
#: oldest, so that workers losing the race for it spread out.
SPREAD = 8
#: A job whose entry disagrees with it is corrected by another client
#: only once its change is this old: until then the client that made the
#: change may still be writing the entry.
ENTRY_GRACE = datetime.timedelta(seconds=10)
#: An entry whose job is missing for this long is left over, not early.
ORPHAN_AGE = datetime.timedelta(minutes=10)
#: Claimed jobs remembered for their outcome, at most.
REMEMBERED = 10000
#: Past this many, those whose lease has expired are forgotten: a job
#: cancelled or taken over while it ran never sends its outcome.
PRUNE_AT = 100


#: Logical operators whose operands are queries themselves.
_LOGICAL = ('$and', '$or', '$nor')


def entryQuery(jobQuery):
    """``jobQuery`` (a filter on a job's fields) as a filter on the queue
    entries holding a copy of them under ``job``. ValueError for an
    operator that does not name fields (``$expr``, ``$where``, ...)."""
    if not isinstance(jobQuery, dict):
        raise ValueError('A jobQuery is a dict, not %r' % (jobQuery,))
    query = {}
    for key, value in jobQuery.items():
        if key in _LOGICAL:
            if not isinstance(value, (list, tuple)):
                raise ValueError('%s takes a list of queries' % key)
            query[key] = [entryQuery(part) for part in value]
        elif key.startswith('$'):
            raise ValueError(
                'A jobQuery with %s cannot be matched on a server without '
                'atomic updates (FerretDB v1); use field conditions joined '
                'by %s' % (key, ', '.join(_LOGICAL)))
        else:
            query['job.' + key] = value
    return query


#: The fields of a job its queue entry does not copy (they only grow).
ENTRY_LEAVES_OUT = ('output', 'errors', 'tracebacks', 'attempts', 'log',
                    'progress', 'terms')


def queueEntry(document):
    """The queue entry of a queued job document."""
    job = {key: value for key, value in document.items()
           if key not in ENTRY_LEAVES_OUT}
    return {'_id': document['_id'], 'state': QUEUED,
            'retryTime': document['retryTime'], 'job': job}


def runningFields(document):
    """What the entry of a running job says about it."""
    return {'state': PROCESSING, 'claim': document.get('claim'),
            'leaseExpires': document.get('leaseExpires'),
            'picked': document.get('picked'),
            'timeout': document.get('timeout')}


def absoluteChange(document, update):
    """``update`` (``$set``, ``$unset``, ``$inc``, ``$push``) as the values
    it gives ``document``, the next version included, and the fields it
    removes: ``(fields, unset)``. Written twice, it writes the same job.
    """
    fields = dict(update.get('$set', {}))
    for key, amount in update.get('$inc', {}).items():
        fields[key] = (document.get(key) or 0) + amount
    for key, value in update.get('$push', {}).items():
        values = list(document.get(key) or [])
        if isinstance(value, dict) and '$each' in value:
            values += list(value['$each'])
            if '$slice' in value:
                values = values[value['$slice']:] if value['$slice'] < 0 \
                    else values[:value['$slice']]
        else:
            values.append(value)
        fields[key] = values
    fields['version'] = document.get('version', 0) + 1
    unset = sorted(key for key in update.get('$unset', {})
                   if key not in fields)
    return fields, unset


def changed(document, fields, unset):
    """The document as the change writes it."""
    written = dict(document, **fields)
    for key in unset:
        written.pop(key, None)
    return written


@zope.interface.implementer(IJobWrites)
class TicketedJobWrites:
    """Each change is won by inserting a ticket, then written by ``_id``.
    """

    #: How often a change is tried again after losing its ticket to a
    #: change that left its condition true (a lease renewal, say).
    attempts = 10

    def __init__(self, database, prefix):
        self.jobs = database[prefix + 'jobs']
        self.tickets = database[prefix + 'tickets']
        self.queue = database[prefix + 'queue']
        self._lastPurge = 0.0
        # claim token -> the job as this process last wrote it
        self._claimed = collections.OrderedDict()
        self._claimedLock = threading.Lock()

    def ensureIndexes(self):
        # The SQLite backend uses no index for any query (not even the
        # _id one); secondary indexes would just slow the writes down.
        pass

    def insertJobs(self, documents):
        # Entries first: an entry without its job is dropped by the next
        # claim that meets it, a job without an entry would never run.
        self.queue.insert_many([queueEntry(d) for d in documents],
                               ordered=True)
        self.jobs.insert_many(documents, ordered=True)

    # the ticket

    @staticmethod
    def _ticketId(document):
        return '%s:%d' % (document['_id'], document.get('version', 0))

    def _transition(self, document, update, now=None):
        """Win the ticket for the document's version, then write the job
        and its queue entry; the job as written, or None when another
        client won (or the job was removed)."""
        now = now or utcnow()
        fields, unset = absoluteChange(document, update)
        ticket = {'_id': self._ticketId(document), 'at': now,
                  'set': fields, 'unset': unset}
        try:
            self.tickets.insert_one(ticket)
        except pymongo.errors.DuplicateKeyError:
            self._finishStale(document, now)
            return None
        return self._write(document, fields, unset)

    def _write(self, document, fields, unset):
        """Write a won change: the job (at the version it was won for) and
        its entry, the entry first only when the job becomes live."""
        written = changed(document, fields, unset)
        becomesLive = document['status'] not in LIVE and \
            written['status'] in LIVE
        if becomesLive:
            self._writeEntry(written)
        update = {'$set': fields}
        if unset:
            update['$unset'] = dict.fromkeys(unset, '')
        if not self.jobs.update_one(
                {'_id': document['_id'],
                 'version': document.get('version', 0)},
                update).matched_count:
            return None  # removed, or written by a client finishing it
        if not becomesLive:
            self._writeEntry(written)
        return written

    def _writeEntry(self, written):
        oid = written['_id']
        if written['status'] == QUEUED:
            self.queue.replace_one({'_id': oid}, queueEntry(written),
                                   upsert=True)
        elif written['status'] == PROCESSING:
            self.queue.update_one({'_id': oid},
                                  {'$set': runningFields(written)})
        else:
            self.queue.delete_one({'_id': oid})

    def _finishStale(self, document, now):
        """Write the change of the ticket held on the document's version
        when its client stopped before writing it; True when written."""
        ticket = self.tickets.find_one({'_id': self._ticketId(document)})
        if ticket is None or ('set' not in ticket and
                              not ticket.get('delete')) or \
                ticket['at'] > now - STALE_TICKET:
            return False   # purged, or its client may still be writing
        if ticket.get('delete'):
            return self._remove(document)
        return self._write(document, ticket['set'],
                           ticket['unset']) is not None

    def _changeIf(self, oid, condition, update, now=None):
        """Read the job and change it while ``condition`` holds; the job
        as written, or None. ``update`` may be a function of the job."""
        for _ in range(self.attempts):
            document = self.jobs.find_one({'_id': oid})
            if document is None or not condition(document):
                return None
            written = self._transition(
                document, update(document) if callable(update) else update,
                now)
            if written is not None:
                return written
        return None

    # the jobs this process claimed

    def _remember(self, written):
        with self._claimedLock:
            self._claimed[written['claim']] = written
            if len(self._claimed) > PRUNE_AT:
                now = utcnow()
                for claim in [claim for claim, document
                              in self._claimed.items()
                              if document.get('leaseExpires') is not None
                              and document['leaseExpires'] < now]:
                    del self._claimed[claim]
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

    def _outcome(self, oid, claim, update, now=None):
        """Store a worker's outcome: at the version its claim (or lease
        renewal) wrote, else the reading way."""
        document = self._recall(oid, claim)
        if document is not None and self._transition(
                document, update, now) is not None:
            return True
        return self._changeIf(oid, self._owns(claim), update,
                              now) is not None

    # claims

    def _dueEntries(self, now, limit, excludedNames):
        cursor = self.queue.find()
        if limit:
            cursor = cursor.limit(limit)
        entries = list(cursor)
        due = []
        for entry in entries:
            job = entry.get('job') or {}
            if entry['state'] == QUEUED and entry['retryTime'] <= now \
                    and job.get('active', True) \
                    and job.get('name') not in excludedNames:
                due.append(entry)
        return due, len(entries)

    def _dueMatching(self, now, jobQuery, excludedNames):
        # The server filters: it reads the whole queue collection then.
        due = {'state': QUEUED, 'retryTime': {'$lte': now},
               'job.active': {'$ne': False}}
        if excludedNames:
            due['job.name'] = {'$nin': sorted(excludedNames)}
        return list(self.queue.find(
            {'$and': [due, entryQuery(jobQuery)]}).limit(WINDOWS[0]))

    def _due(self, now, jobQuery, excludedNames):
        if jobQuery:
            return self._dueMatching(now, jobQuery, excludedNames)
        for window in WINDOWS + (None,):
            due, read = self._dueEntries(now, window, excludedNames)
            if due or read != window:
                return due  # found some, or read them all
        return due

    def claimNext(self, now, worker, leaseTime, jobQuery=None,
                  excludedNames=()):
        for _ in range(3):
            due = self._due(now, jobQuery, set(excludedNames))
            if not due:
                return None
            # The claim order among the entries read (the server returns
            # them unsorted, in the order they were stored).
            due.sort(key=lambda entry: orderKey(
                dict(entry.get('job') or {}, _id=entry['_id'])))
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
        if entry is not None and not self._entryAgrees(entry, document,
                                                       now):
            return None
        if document is None or document['status'] != QUEUED or \
                not document.get('active', True):
            return None
        if entry is not None and document['retryTime'] > now:
            return None   # the entry is older than a retry delay
        written = self._transition(
            document, {'$set': claimFields(now, worker, leaseTime)}, now)
        if written is not None:
            self._remember(written)
        return written

    def _entryAgrees(self, entry, document, now):
        """Whether a queued entry is its job's; if not, correct or drop
        it (see the module docstring)."""
        oid = entry['_id']
        if document is None:
            # Not inserted yet (its entry is stored first), or removed.
            created = (entry.get('job') or {}).get('created')
            if created is None or created < now - ORPHAN_AGE:
                self.queue.delete_one({'_id': oid})
            return False
        if document['status'] == QUEUED:
            return True
        if document['status'] not in LIVE and \
                (entry.get('job') or {}).get('version', 0) > \
                document.get('version', 0):
            # Queued again, the job not written yet: finish it if its
            # client stopped.
            self._finishStale(document, now)
        elif self._settled(document, now):
            # Claimed (or ended), and the client that did it stopped
            # before writing the entry; or a left-over.
            self._writeEntry(document)
        # Else its client is writing the entry now: a correction from
        # what was just read could undo a newer change (a claim handed
        # back at once, say).
        return False

    @staticmethod
    def _settled(document, now):
        """Whether the job's last change is old enough that the client
        that made it has surely written its entry."""
        changedAt = document.get('picked') \
            if document['status'] == PROCESSING else document.get('completed')
        return changedAt is None or changedAt < now - ENTRY_GRACE

    def claimMany(self, now, worker, leaseTime, limit, jobQuery=None,
                  excludedNames=()):
        # No batches on FerretDB v1: every claim is won through its own
        # ticket, so a batch would cost what single claims cost.
        claimed = self.claimNext(now, worker, leaseTime, jobQuery,
                                 excludedNames)
        return [claimed] if claimed is not None else []

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

    def finish(self, oid, claim, update):
        return self._outcome(oid, claim, update)

    def finishMany(self, outcomes):
        # No batches here: each outcome is won on its own.
        return [oid for oid, claim, update in outcomes
                if not self._outcome(oid, claim, update)]

    def unclaim(self, oid, claim):
        return self._outcome(oid, claim, unclaimUpdate())

    def report(self, oid, claim, update):
        # Won like any change: FerretDB writes the whole job, so a report
        # written the plain way could undo a change made meanwhile.
        document = self._recall(oid, claim)
        if document is not None:
            written = self._transition(document, update)
            if written is not None:
                self._remember(written)
                return True
        written = self._changeIf(oid, self._owns(claim), update)
        if written is None:
            return False
        self._remember(written)
        return True

    def state(self, oid):
        document = self.jobs.find_one({'_id': oid})
        if document is None:
            return None
        return document['status'], document.get('claim')

    def cancel(self, oid, now):
        return self._changeIf(
            oid, lambda d: d['status'] in LIVE,
            lambda d: cancelUpdate(d, now), now) is not None

    def edit(self, oid, version, fields):
        document = self.jobs.find_one({'_id': oid})
        if document is None or document.get('version', 0) != version:
            return False
        return self._transition(document, {'$set': fields}) is not None

    def requeue(self, oid, now):
        return self._changeIf(
            oid, lambda d: d['status'] in (ERROR, CANCELLED),
            requeueUpdate(now),
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
                {'$set': {'leaseExpires': until}})
            if written is not None:
                self._renewed(entry['claim'], written)
                extended += 1
        return extended

    def holdClaims(self, claims, until):
        lost = []
        for oid, claim in claims:
            written = self._changeIf(oid, self._owns(claim),
                                     {'$set': {'leaseExpires': until}})
            if written is None:
                lost.append(oid)
            else:
                self._renewed(claim, written)
        return lost

    def _endRunning(self, now, limit, entryEnds, jobEnds, updateFor):
        ended = []
        for entry in self._running():
            if len(ended) >= limit:
                break
            if entry['state'] != PROCESSING or not entryEnds(entry):
                continue
            document = self._runningJob(entry, now, jobEnds)
            if document is None:
                continue
            written = self._transition(document, updateFor(document, now),
                                       now)
            if written is not None:
                ended.append((str(document['_id']), written['status']))
        return ended

    def recoverExpired(self, now, limit=100):
        return self._endRunning(
            now, limit, lambda entry: entry['leaseExpires'] < now,
            lambda document: document['leaseExpires'] < now,
            lostWorkerUpdate)

    def stopTimedOut(self, now, limit=100):
        return self._endRunning(
            now, limit, lambda entry: timedOut(entry, now),
            lambda document: timedOut(document, now), timedOutUpdate)

    def _runningJob(self, entry, now, ends):
        """The running job of an entry whose end came (``ends``), if it
        did come; else the entry is corrected or dropped."""
        oid = entry['_id']
        document = self.jobs.find_one({'_id': oid})
        if document is None:
            if entry['leaseExpires'] < now - ORPHAN_AGE:
                self.queue.delete_one({'_id': oid})   # the job was removed
            return None
        status = document['status']
        if status == PROCESSING and document.get('claim') == \
                entry.get('claim') and ends(document):
            return document
        # Requeued, claimed again or renewed, and the entry write did not
        # happen; or the job has ended: the entry says what the job does.
        self._writeEntry(document)
        return None

    def delete(self, oids, stati):
        checkDeletable(stati)
        deleted = 0
        for oid in oids:
            document = self.jobs.find_one({'_id': oid})
            if document is None or document['status'] not in stati:
                continue
            # Won like any change, so no claim can take the job meanwhile;
            # the ticket says "delete", for whoever finds it stale.
            try:
                self.tickets.insert_one({'_id': self._ticketId(document),
                                         'at': utcnow(), 'delete': True})
            except pymongo.errors.DuplicateKeyError:
                continue        # changed meanwhile: as it is now, it stays
            if self._remove(document):
                deleted += 1
        return deleted

    def _remove(self, document):
        """Remove a job whose delete was won at its version, then its
        entry."""
        removed = self.jobs.delete_one(
            {'_id': document['_id'],
             'version': document.get('version', 0)}).deleted_count
        self.queue.delete_one({'_id': document['_id']})
        return bool(removed)

    def maintain(self, now):
        return self._purgeTickets(now)

    def _purgeTickets(self, now):
        if time.monotonic() - self._lastPurge < PURGE_INTERVAL:
            return 0
        self._lastPurge = time.monotonic()
        return self.tickets.delete_many(
            {'at': {'$lt': now - TICKET_LIFETIME}}).deleted_count
