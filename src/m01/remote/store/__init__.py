"""The storage seam: connecting to a real MongoDB (``mongodb://``) or to
the embedded in-memory store (``mongomock://``, ``store.embedded``), and
how job changes are made safe on each (``IJobWrites``:
``store.strategy`` picks ``store.atomic`` or the embedded one, and
``store.retried`` retries outcomes across a primary step-down;
``store.cluster`` gives the queue's collections their write concern).
"""
import datetime
import logging
import urllib.parse

import pymongo
import pymongo.errors

from m01.remote.settings import (
    CONNECT_TIMEOUT,
    SERVER_SELECTION_TIMEOUT,
    SOCKET_TIMEOUT,
)
from m01.remote.store import embedded
from m01.remote.store.embedded.client import (
    SerializedDatabase,
    isMongomockDatabase,
    serializedDatabase,
)

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


def connect(uri, socketTimeout=SOCKET_TIMEOUT, connectTimeout=CONNECT_TIMEOUT,
            serverSelectionTimeout=SERVER_SELECTION_TIMEOUT, **options):
    """Return a client for ``uri``.

    ``mongomock://`` gives a fresh in-memory store (nothing is kept across
    restarts, and only this process sees it); anything else goes to
    ``pymongo.MongoClient``. Datetimes come back timezone-aware in UTC.

    Every call the client makes is bounded (seconds; the
    ``m01.remote.*_timeout`` settings): ``socketTimeout`` for an answer
    to arrive, ``connectTimeout`` to open a connection (and for the
    driver's checks of the server), ``serverSelectionTimeout`` to find
    the server. A call that passes the socket timeout raises a
    ``NetworkTimeout`` (``queue.leases.isTimeout``), a
    ``ConnectionFailure``. The same option in the URI
    (``socketTimeoutMS`` and so on) or in ``options`` wins.
    """
    options.setdefault('tz_aware', True)
    options.setdefault('tzinfo', UTC)
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme == EMBEDDED_SCHEME:
        return embedded.connect(**options)
    if scheme not in ('mongodb', 'mongodb+srv'):
        raise ValueError(
            'Unsupported store URI %r: use mongodb://host:port/ for a '
            'MongoDB server or mongomock:// for the embedded in-memory '
            'store.' % uri)
    named = uri.lower()
    for option, seconds in (('socketTimeoutMS', socketTimeout),
                            ('connectTimeoutMS', connectTimeout),
                            ('serverSelectionTimeoutMS',
                             serverSelectionTimeout)):
        if option.lower() not in named and seconds is not None:
            options.setdefault(option, max(int(seconds * 1000), 1))
    if 'retrywrites' not in named:
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


def socketTimeoutOf(database):
    """Seconds the client of ``database`` waits for an answer; None for
    the embedded store and for a client without a socket timeout."""
    if isEmbedded(database):
        return None
    return database.client.options.pool_options.socket_timeout


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


def storeDatabase(database):
    """``database`` as the queue uses it: a plain mongomock database
    handed in as it is becomes the embedded store's
    (``embedded.client.serializedDatabase``); anything else is returned
    as it is."""
    if isMongomockDatabase(database):
        return serializedDatabase(database)
    return database
