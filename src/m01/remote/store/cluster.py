"""What a MongoDB replica set or sharded cluster needs of the queue.

Write concern (``m01.remote.write_concern``, ``majority`` by default).
Every change of the queue's state (a job's claim and outcome, its key
lock, its concurrency slot, a scheduler item's lock) is acknowledged
only once a majority of the replica set holds it. A write acknowledged
by the primary alone is lost when that primary fails before a secondary
copied it (the new primary never saw it, and the old one rolls it back
when it rejoins), which is what Jepsen found of MongoDB at ``w: 1``: a
claim lost that way lets another worker run the job too, an outcome lost
runs it again. With ``majority``, an acknowledged change survives any
failover. The URI's ``wtimeoutMS`` and ``journal`` still apply. A job's
own writes through ``remoteProcessor.database`` keep the client's write
concern: the processor applies this one to the queue's collections only.

Read preference (``m01.remote.read_preference``, ``primary`` by
default). Only the management pages' read-only queries follow it (the
jobs list and its count, the counts by status, the latest failures):
``secondaryPreferred`` moves them off the primary, at the price of pages
that may lag by the replication delay. Every read a decision depends on
(a claim, a job's state before a change, a job's own page, which follows
each action) goes to the primary.

Retryable writes: pymongo retries a write once after a network error or
a primary stepping down, under the same transaction number, and the
server applies it once and answers the retry with the first result.
``store.connect`` keeps them on (``retryWrites=true``) unless the URI
turns them off. How a claim or an outcome cut off by a step-down that
the retry does not cover either is handled: ``m01.remote.store.retried``.

The embedded store has no replicas: it ignores both.
"""
from pymongo import read_preferences
from pymongo.write_concern import WriteConcern

from m01.remote.store import isEmbedded

#: The read preferences, as MongoDB spells them.
READ_PREFERENCES = {
    'primary': read_preferences.Primary,
    'primaryPreferred': read_preferences.PrimaryPreferred,
    'secondary': read_preferences.Secondary,
    'secondaryPreferred': read_preferences.SecondaryPreferred,
    'nearest': read_preferences.Nearest,
}


def writeConcern(value, default=None):
    """The ``WriteConcern`` of ``value`` (``'majority'`` or a number of
    members), keeping the timeout and journal options of ``default``
    (the client's write concern, from its URI)."""
    if value != 'majority' and (isinstance(value, bool) or
                                not isinstance(value, int) or value < 1):
        raise ValueError("A write concern is 'majority' or a number of "
                         "members >= 1, not %r" % (value,))
    kept = {} if default is None else {
        key: value for key, value in default.document.items()
        if key in ('wtimeout', 'j')}
    return WriteConcern(w=value, **kept)


def readPreference(name):
    """The pymongo read preference named ``name``."""
    if name not in READ_PREFERENCES:
        raise ValueError('A read preference is one of %s, not %r'
                         % (', '.join(READ_PREFERENCES), name))
    return READ_PREFERENCES[name]()


def queueDatabase(database, concern='majority'):
    """``database`` writing with the write concern ``concern``, for the
    queue's own collections (the embedded store: ``database``)."""
    if isEmbedded(database):
        return database
    return database.with_options(
        write_concern=writeConcern(concern, database.write_concern))


def forPages(collection, preference='primary'):
    """``collection`` reading with the read preference ``preference``, for
    the pages' read-only queries (the embedded store: ``collection``)."""
    readPreference(preference)
    if isEmbedded(collection.database) or preference == 'primary':
        return collection
    return collection.with_options(read_preference=readPreference(
        preference))
