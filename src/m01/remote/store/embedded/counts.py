"""Counts the embedded store keeps up to date with each change, for the
pages' aggregates (see ``index``): the documents by the values of some
fields, and the queued, active jobs of each name by when they are due
and when they were queued. Each is told the ids changed since it last
looked (``note``), so a request reads what changed, not every job.
"""
import bisect
import datetime

from m01.remote.interfaces import QUEUED


class CountIndex:
    """The number of documents by their values of ``fields``."""

    def __init__(self, fields):
        self.fields = fields
        self.keys = {}       # id -> its values
        self.counts = {}     # values -> number of documents

    def note(self, ids, documents):
        counts = self.counts
        for oid in ids:
            old = self.keys.pop(oid, None)
            if old is not None:
                counts[old] -= 1
                if not counts[old]:
                    del counts[old]
            document = documents.get(oid)
            if document is None:
                continue
            key = tuple(_hashable(document.get(field))
                        for field in self.fields)
            self.keys[oid] = key
            counts[key] = counts.get(key, 0) + 1


#: Sorts after every id's text in an index entry.
_LAST = '\U0010ffff'


class _Named:
    """The queued, active jobs of one name: ``(retryTime, id)`` and
    ``(queued, id)`` entries, each list sorted."""

    def __init__(self):
        self.times = []
        self.ages = []


class BacklogIndex:
    """The queued, active documents with a ``retryTime``, by ``name``."""

    def __init__(self):
        self.names = {}         # name -> _Named
        self.entries = {}       # id -> (name, time entry, age entry)
        self.retryTimes = {}    # id text -> retryTime

    def note(self, ids, documents):
        for oid in ids:
            self._remove(oid)
            document = documents.get(oid)
            if document is None or document.get('status') != QUEUED or \
                    document.get('active') is not True:
                continue
            name, retryTime = document.get('name'), document.get('retryTime')
            if not isinstance(name, str) or \
                    not isinstance(retryTime, datetime.datetime):
                continue
            key = str(oid)
            queued = document.get('queued')
            timeEntry = (retryTime, key)
            ageEntry = (queued, key) if isinstance(
                queued, datetime.datetime) else None
            named = self.names.setdefault(name, _Named())
            bisect.insort(named.times, timeEntry)
            if ageEntry is not None:
                bisect.insort(named.ages, ageEntry)
            self.entries[oid] = (name, timeEntry, ageEntry)
            self.retryTimes[key] = retryTime

    def due(self, now):
        """``{name: (n, queued)}``: the documents due at ``now``
        (``retryTime`` passed) by their ``name``, and when the oldest of
        them was queued (None when unknown). Counting the due ones is a
        binary search; the oldest is the first in queued order that is
        due (the first one, unless jobs queued earlier wait for a later
        retry)."""
        aware = now.tzinfo is not None
        if aware:
            now = now.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        result = {}
        for name, members in self.names.items():
            count = bisect.bisect_right(members.times, (now, _LAST))
            if not count:
                continue
            oldest = None
            for queued, key in members.ages:
                if self.retryTimes[key] <= now:
                    oldest = queued
                    break
            if aware and oldest is not None:
                oldest = oldest.replace(tzinfo=datetime.timezone.utc)
            result[name] = (count, oldest)
        return result

    def _remove(self, oid):
        entry = self.entries.pop(oid, None)
        if entry is None:
            return
        name, timeEntry, ageEntry = entry
        named = self.names[name]
        _discard(named.times, timeEntry)
        if ageEntry is not None:
            _discard(named.ages, ageEntry)
        del self.retryTimes[timeEntry[1]]
        if not named.times:
            del self.names[name]


def _discard(entries, entry):
    number = bisect.bisect_left(entries, entry)
    if number < len(entries) and entries[number] == entry:
        del entries[number]


def _hashable(value):
    if isinstance(value, (dict, list)):
        return repr(value)
    return value
