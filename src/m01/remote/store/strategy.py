"""Which ``IJobWrites`` strategy a server gets.

- MongoDB, and any server whose single-document conditional updates and
  ``findAndModify`` are atomic, takes ``store.atomic.AtomicJobWrites``.
- The embedded store (mongomock) serialises its calls, so the same writes
  are safe there; its claims and its writes of one job go through the
  store's index where that fits the mongomock in use
  (``store.embedded.writes.EmbeddedJobWrites``).
- FerretDB v1 applies an update as a read followed by a write, so two
  workers can both claim one job there: it is refused at first use
  (``UnsupportedServer``).
"""
import threading

import zope.interface

from m01.remote.interfaces import IJobWrites
from m01.remote.store import isEmbedded
from m01.remote.store.atomic import AtomicJobWrites
from m01.remote.store.embedded.writes import EmbeddedJobWrites

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
    ``IJobWrites`` method is the chosen strategy's, looked up when it is
    called: a collaborator may be handed a method before the server is
    asked."""

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
        if name not in IJobWrites:
            raise AttributeError(name)

        def deferred(*args, **kw):
            return getattr(self.strategy, name)(*args, **kw)
        deferred.__name__ = name
        return deferred
