"""Which ``IJobWrites`` strategy a server gets, and the embedded one.

- MongoDB, and any server whose single-document conditional updates and
  ``findAndModify`` are atomic, takes ``store.atomic.AtomicJobWrites``.
- The embedded store (mongomock) serialises its calls, so the same writes
  are safe there; only its claim differs (``EmbeddedJobWrites``).
- FerretDB v1 applies an update as a read followed by a write, so two
  workers can both claim one job there: it is refused at first use
  (``UnsupportedServer``).
"""
import threading

import zope.interface

from m01.remote.interfaces import QUEUED, IJobWrites
from m01.remote.queue.updates import (
    CLAIM_ORDER,
    claimFields,
    dueQuery,
    versioned,
)
from m01.remote.store import isEmbedded
from m01.remote.store.atomic import AtomicJobWrites


class EmbeddedJobWrites(AtomicJobWrites):
    """The embedded store: the same conditional writes, but a claim finds
    the oldest due job through an ordered index of the queued jobs
    (``SerializedCollection.claimFirst``), not through a sorted query,
    which mongomock answers by copying and sorting every queued job."""

    def claimNext(self, now, worker, leaseTime, jobQuery=None,
                  excludedNames=()):
        return self.jobs.claimFirst(
            dueQuery(now, jobQuery, excludedNames), CLAIM_ORDER,
            versioned({'$set': claimFields(now, worker, leaseTime)}),
            equal=[('status', QUEUED)])


    def claimMany(self, now, worker, leaseTime, limit, jobQuery=None,
                  excludedNames=()):
        # One call: the index gives up to ``limit`` jobs under the lock.
        return self.jobs.claimMany(
            dueQuery(now, jobQuery, excludedNames), CLAIM_ORDER,
            versioned({'$set': claimFields(now, worker, leaseTime)}),
            limit, equal=[('status', QUEUED)])


    def _change(self, query, update):
        # Applied in place where it can be (``updateEach``).
        return self.jobs.updateEach([(query, versioned(update))]) == [1]

    def finishMany(self, outcomes):
        # One call for all: mongomock has no bulk write of its own.
        modified = self.jobs.updateEach(
            [(self._owned(oid, claim), versioned(update))
             for oid, claim, update in outcomes])
        return [oid for (oid, _, _), count in zip(outcomes, modified,
                                                  strict=True)
                if count != 1]


#: What the queue needs of a server, said where one is refused.
SUPPORTED_SERVERS = (
    'm01.remote supports MongoDB and servers whose single-document '
    'conditional updates and findAndModify are atomic (tested on '
    'mongo-java-server)')


class UnsupportedServer(RuntimeError):
    """The server cannot keep the queue's promise: a job claimed once."""


def checkSupported(buildInfo):
    """Refuse a server, from its ``buildInfo`` answer, whose conditional
    writes are not atomic: FerretDB v1."""
    version = str(buildInfo.get('ferretdbVersion') or '')
    if version.lstrip('v').startswith('1.'):
        raise UnsupportedServer(
            'FerretDB %s applies an update as a read followed by a write, '
            'so two workers may both claim one job: %s.'
            % (version, SUPPORTED_SERVERS))


def needsExactKeyIndexes(buildInfo):
    """Whether the outcome writes need indexes of exactly the keys they
    name, ``(_id, version)`` and ``(_id, claim)``.

    MongoDB (its ``buildInfo`` names the git commit it was built from)
    serves them from the ``_id`` index. Another server may use an index
    only for a query naming exactly its keys (mongo-java-server does), and
    would read every job for each outcome without them.
    """
    return 'gitVersion' not in buildInfo or 'ferretdbVersion' in buildInfo


def jobWritesFor(database, prefix):
    """The strategy the server behind ``database`` gets; its
    ``buildInfo`` is asked once, and a server that cannot keep the
    queue's promise is refused (``UnsupportedServer``)."""
    if isEmbedded(database):
        return EmbeddedJobWrites(database, prefix)
    buildInfo = database.client.server_info()
    checkSupported(buildInfo)
    return AtomicJobWrites(database, prefix,
                           exactKeyIndexes=needsExactKeyIndexes(buildInfo))


@zope.interface.implementer(IJobWrites)
class ServerJobWrites:
    """The strategy of ``jobWritesFor``, chosen when it is first used:
    creating a processor must not need its server to be up. Every
    ``IJobWrites`` method is the chosen strategy's."""

    def __init__(self, database, prefix):
        self._database = database
        self._prefix = prefix
        self._strategy = None
        self._lock = threading.Lock()

    @property
    def strategy(self):
        if self._strategy is None:
            with self._lock:
                if self._strategy is None:
                    self._strategy = jobWritesFor(self._database,
                                                  self._prefix)
        return self._strategy

    def __getattr__(self, name):
        if name in IJobWrites:
            return getattr(self.strategy, name)
        raise AttributeError(name)
