"""mongomock behind one lock: the only module that wraps mongomock
objects.

mongomock is not thread-safe: two threads running ``find_one_and_update``
on one collection can fail with "dictionary changed size during
iteration". Worker threads share the processor's collections, so the
embedded store hands out proxies that serialise every call on one lock
and read cursors to the end while holding it. Where the index fits the
mongomock in use (``compat.indexed``), each collection is instrumented
for it (``index``) and offers the claims ``EmbeddedJobWrites`` makes.
"""
import threading

import pymongo
from mongomock import helpers

from m01.remote.store.embedded import index
from m01.remote.store.embedded.compat import indexed

#: The attribute of a mongomock client holding the lock its calls are
#: serialised on.
LOCK_ATTRIBUTE = '_m01_remote_lock'


def isMongomockDatabase(value):
    """Whether ``value`` is a plain mongomock database."""
    return (type(value).__module__ or '').startswith('mongomock') and \
        type(value).__name__ == 'Database'


def serializedDatabase(database):
    """A plain mongomock database (``mongomock.MongoClient().db``, what a
    site's own tests make) as the embedded store's: its datetimes read
    back timezone-aware in UTC, as ``connect`` makes them, and every call
    serialised on the lock of its client (the lock of every processor on
    that client). Calls made through the site's own handle bypass that
    lock: they must not run while the queue's threads work."""
    if not database.codec_options.tz_aware:
        # mongomock stores datetimes naive in UTC whatever reads them:
        # this view of the same store only reads them back aware.
        database = type(database)(
            database.client, database.name, database._store,
            read_preference=database.read_preference,
            codec_options=database.codec_options._replace(tz_aware=True),
            read_concern=database.read_concern)
    return SerializedDatabase(database, clientLock(database.client))


def clientLock(client):
    """The lock of a mongomock ``client``, made at first use."""
    # Kept in the client's own attributes (mongomock's client answers any
    # other attribute name with a database of that name).
    return vars(client).setdefault(LOCK_ATTRIBUTE, threading.RLock())


class _Serialized:
    """Forward attribute access to a mongomock object under a lock."""

    def __init__(self, wrapped, lock):
        self._wrapped = wrapped
        self._lock = lock

    def __getattr__(self, name):
        value = getattr(self._wrapped, name)
        wrapped = _wrap(value, self._lock)
        if wrapped is not value or not callable(value):
            return wrapped
        lock = self._lock

        def call(*args, **kw):
            with lock:
                return _wrap(value(*args, **kw), lock)
        call.__name__ = name
        return call

    def __eq__(self, other):
        if isinstance(other, _Serialized):
            other = other._wrapped
        return self._wrapped == other

    def __hash__(self):
        return hash(self._wrapped)

    def __repr__(self):
        return 'Serialized(%r)' % (self._wrapped,)


class SerializedClient(_Serialized):

    def __init__(self, client, lock=None):
        super().__init__(client, lock or clientLock(client))

    def __getitem__(self, name):
        return self.get_database(name)


class SerializedDatabase(_Serialized):

    @property
    def name(self):
        return self._wrapped.name

    @property
    def client(self):
        return SerializedClient(self._wrapped.client, self._lock)

    def __getitem__(self, name):
        return self.get_collection(name)


class SerializedCollection(_Serialized):

    @property
    def name(self):
        return self._wrapped.name

    @property
    def database(self):
        return SerializedDatabase(self._wrapped.database, self._lock)

    def __getitem__(self, name):
        return self.get_collection(name)

    def claimFirst(self, query, order, update, equal=()):
        """``find_one_and_update(query, update, sort=order)`` returning the
        document as updated (None when none matches), among the documents
        with the ``equal`` (field, value) pairs; the search and the write
        are one step under the lock. mongomock has no indexes and copies
        and sorts every document a sorted query matches: where it can,
        this reads an ordered index of those documents instead
        (``index``)."""
        with self._lock:
            return self._claimFirst(query, order, update, equal)

    def claimMany(self, query, order, update, limit, equal=()):
        """``claimFirst`` up to ``limit`` times under one hold of the lock,
        all with the same ``update``; the documents claimed, in order."""
        claimed = []
        with self._lock:
            while len(claimed) < limit:
                document = self._claimFirst(query, order, update, equal)
                if document is None:
                    break
                claimed.append(document)
        return claimed

    def updateEach(self, changes, matched=False):
        """``update_one(filter, update)`` for each pair of ``changes``,
        under one hold of the lock; the modified count of each (with
        ``matched``, the matched count)."""
        with self._lock:
            if not indexed():
                results = [self._wrapped.update_one(query, update)
                           for query, update in changes]
                return [result.matched_count if matched
                        else result.modified_count for result in results]
            return [index.updateOne(self._wrapped, query, update,
                                    matched=matched)
                    for query, update in changes]

    def countBy(self, fields):
        """``{(value, ...): n}``: the documents counted by their values of
        ``fields``, kept up to date from the changes since the last call
        where the index fits (``index.countBy``), else counted."""
        with self._lock:
            if indexed():
                return index.countBy(self._wrapped, fields)
            counts = {}
            for document in self._wrapped.find({}, dict.fromkeys(fields, 1)):
                key = tuple(document.get(field) for field in fields)
                counts[key] = counts.get(key, 0) + 1
            return counts

    def latest(self, order, limit, where):
        """Up to ``limit`` documents for which ``where(document)`` holds,
        first in ``order`` (``index.latest``), or None where the index
        does not fit. ``where`` is one function kept for the life of the
        process (it names an index)."""
        with self._lock:
            if indexed():
                return index.latest(self._wrapped, order, limit, where)
            return None

    def backlog(self, now):
        """``{name: (due jobs, queued time of the oldest)}`` at ``now``
        (``index.backlog``), or None where the index does not fit."""
        with self._lock:
            if indexed():
                return index.backlog(self._wrapped, now)
            return None

    def _claimFirst(self, query, order, update, equal):
        if not indexed():
            return self._wrapped.find_one_and_update(
                dict(query, **dict(equal)), update, sort=list(order),
                return_document=pymongo.ReturnDocument.AFTER)
        return index.claimFirst(
            self._wrapped, helpers.patch_datetime_awareness_in_document(query),
            order, update, equal)


class SerializedCursor(_Serialized):
    """A cursor whose results are computed under the lock at first use."""

    def __iter__(self):
        with self._lock:
            documents = list(self._wrapped)
        return iter(documents)

    def __next__(self):
        with self._lock:
            return next(self._wrapped)

    def __getitem__(self, index):
        with self._lock:
            return self._wrapped[index]


def _wrap(value, lock):
    # Only the mongomock types need the lock; plain results pass through.
    module = type(value).__module__ or ''
    if not module.startswith('mongomock'):
        return value
    name = type(value).__name__
    if name == 'MongoClient':
        return SerializedClient(value, lock)
    if name == 'Database':
        return SerializedDatabase(value, lock)
    if name == 'Collection':
        if indexed():
            index.instrument(value)
        return SerializedCollection(value, lock)
    if name in ('Cursor', 'CommandCursor'):
        return SerializedCursor(value, lock)
    return value
