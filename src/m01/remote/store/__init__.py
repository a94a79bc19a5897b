"""Connecting to the store: a real MongoDB (``mongodb://``) or the
embedded in-memory one (``mongomock://``).

mongomock is not thread-safe: two threads running ``find_one_and_update``
on one collection can fail with "dictionary changed size during
iteration". Worker threads share the processor's collections, so the
embedded store hands out proxies that serialise every call on one lock
and read cursors to the end while holding it.
"""
import datetime
import logging
import threading
import urllib.parse

import pymongo

from m01.remote.store.embedded import index as embeddedindex

logger = logging.getLogger('m01.remote')

UTC = datetime.timezone.utc

EMBEDDED_SCHEME = 'mongomock'

#: The attribute of a mongomock client holding the lock its calls are
#: serialised on.
LOCK_ATTRIBUTE = '_m01_remote_lock'

#: The attribute holding the URI a server client ``connect`` made was
#: given: another process (a process worker's child) connects with it.
#: (Not a weak mapping: clients of the same hosts compare equal.)
URI_ATTRIBUTE = '_m01_remote_uri'


def connect(uri, **options):
    """Return a client for ``uri``.

    ``mongomock://`` gives a fresh in-memory store (nothing is kept across
    restarts, and only this process sees it); anything else goes to
    ``pymongo.MongoClient``. Datetimes come back timezone-aware in UTC.
    """
    options.setdefault('tz_aware', True)
    options.setdefault('tzinfo', UTC)
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme == EMBEDDED_SCHEME:
        import mongomock
        return SerializedClient(mongomock.MongoClient(**options))
    if scheme not in ('mongodb', 'mongodb+srv'):
        raise ValueError(
            'Unsupported store URI %r: use mongodb://host:port/ for a '
            'MongoDB server or mongomock:// for the embedded in-memory '
            'store.' % uri)
    if 'serverselectiontimeoutms' not in uri.lower():
        # Fail within seconds when the server is down, not after 30 s;
        # an explicit URI option is left to win.
        options.setdefault('serverSelectionTimeoutMS', 5000)
    if 'retrywrites' not in uri.lower():
        # pymongo's default, kept whatever it becomes: a claim or an
        # outcome cut off by a step-down is retried once by the driver
        # and applied once by the server (m01.remote.store.retried).
        options.setdefault('retryWrites', True)
    client = pymongo.MongoClient(uri, **options)
    setattr(client, URI_ATTRIBUTE, uri)
    if not client.options.retry_writes:
        logger.warning('%s turns retryable writes off: a claim or an '
                       'outcome cut off by a primary stepping down then '
                       'waits for its lease to expire', _redacted(uri))
    return client


def uriOf(database):
    """The URI ``connect`` made the client of ``database`` from; None for
    the embedded store and for a client made otherwise."""
    if isEmbedded(database):
        return None
    return vars(database.client).get(URI_ATTRIBUTE)


def _redacted(uri):
    """``uri`` without its password."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(':%s@' % parts.password, ':***@', 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def isEmbedded(database):
    """Whether ``database`` lives in the embedded in-memory store."""
    return isinstance(database, SerializedDatabase)


def _isMongomock(value, name):
    return (type(value).__module__ or '').startswith('mongomock') and \
        type(value).__name__ == name


def storeDatabase(database):
    """``database`` as the queue uses it.

    A mongomock database handed in as it is (``mongomock.MongoClient().db``,
    what a site's own tests make) becomes the embedded store's: its
    datetimes read back timezone-aware in UTC, as ``connect`` makes them,
    and every call serialised on the lock of its client (the lock of every
    processor on that client). Calls made through the site's own handle
    bypass that lock: they must not run while the queue's threads work.
    Anything else is returned as it is.
    """
    if not _isMongomock(database, 'Database'):
        return database
    if not database.codec_options.tz_aware:
        # mongomock stores datetimes naive in UTC whatever reads them:
        # this view of the same store only reads them back aware.
        database = type(database)(
            database.client, database.name, database._store,
            read_preference=database.read_preference,
            codec_options=database.codec_options._replace(tz_aware=True),
            read_concern=database.read_concern)
    return SerializedDatabase(database, _clientLock(database.client))


def _clientLock(client):
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
        super().__init__(client, lock or _clientLock(client))

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
        document as updated (None when none matches), among the documents with
        the ``equal`` (field, value) pairs. mongomock has no indexes and copies
        and sorts every document a sorted query matches: this reads an ordered
        index of those documents instead (``m01.remote.store.embedded.index``),
        and the search and the write are one
        step under the lock."""
        from mongomock.helpers import patch_datetime_awareness_in_document
        query = patch_datetime_awareness_in_document(query)
        with self._lock:
            return embeddedindex.claimFirst(
                self._wrapped, query, order, update, equal)


    def claimMany(self, query, order, update, limit, equal=()):
        """``claimFirst`` up to ``limit`` times under one hold of the lock,
        all with the same ``update``; the documents claimed, in order."""
        from mongomock.helpers import patch_datetime_awareness_in_document
        query = patch_datetime_awareness_in_document(query)
        claimed = []
        with self._lock:
            while len(claimed) < limit:
                document = embeddedindex.claimFirst(
                    self._wrapped, query, order, update, equal)
                if document is None:
                    break
                claimed.append(document)
        return claimed


    def updateEach(self, changes):
        """``update_one(filter, update)`` for each pair of ``changes``,
        under one hold of the lock; the modified count of each."""
        with self._lock:
            return [embeddedindex.updateOne(self._wrapped, query, update)
                    for query, update in changes]


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
        embeddedindex.instrument(value)
        return SerializedCollection(value, lock)
    if name in ('Cursor', 'CommandCursor'):
        return SerializedCursor(value, lock)
    return value
