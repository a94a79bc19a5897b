"""The jobs of the outbox: written as rows with the site's, moved after.

A job added in a request is kept in the queue's data manager as ever
(the processor shows it before the commit). When the commit begins
(a before-commit hook of the transaction) the jobs added become rows of
the request's SQL session, so the site's database commits them with the
site's own rows or refuses them with those. Once the transaction has
committed (an after-commit hook) they are inserted into MongoDB under
their ids and their rows deleted.

Moving a row twice stores nothing twice: a job's id is fixed when it is
added, and the insert of an id the queue has already is refused
(duplicate key), which counts as moved. So a row is only deleted after
its job is in the queue, and any process may move any row at any time:
the request that committed it, or the sweep of a worker process after
a crash or while MongoDB was away.
"""
import datetime
import logging
import time

import bson
import pymongo.errors
import sqlalchemy as sa
import sqlalchemy.exc
import sqlalchemy.orm
import zope.interface
import zope.sqlalchemy

from m01.remote.interfaces import IJobOutbox
from m01.remote.job import DuplicateJobError

logger = logging.getLogger('m01.remote')

UTC = datetime.timezone.utc
#: As the queue reads its documents: datetimes in UTC.
CODEC = bson.CodecOptions(tz_aware=True, tzinfo=UTC)

#: Rows one sweep transaction moves (and one statement deletes).
BATCH_SIZE = 100
#: Seconds a committed row is left to its request's own move.
GRACE = 10.0
#: Seconds a sweep goes on with further batches while rows are left.
SWEEP_SECONDS = 5.0
#: Seconds between two sweeps of the upkeep (the lease keeper's tick
#: may come more often).
SWEEP_INTERVAL = 5.0
#: Seconds the requests leave their jobs to the sweep after a move
#: failed, rather than each waiting for an unreachable store.
MOVE_PAUSE = 10.0

#: MongoDB's code for a duplicate key.
DUPLICATE_KEY = 11000

#: What a move or a sweep may meet: the store or the database away.
STORE_ERRORS = (pymongo.errors.PyMongoError, sqlalchemy.exc.SQLAlchemyError)


def encode(document):
    return bson.encode(document)


def decode(data):
    return bson.decode(bytes(data), codec_options=CODEC)


def sqlTime(value):
    """``value`` (a UTC datetime) as the naive UTC datetime stored."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def ownEngine(engine):
    """``engine`` for the outbox's own statements (the moves' deletes,
    the sweep): at READ COMMITTED where the database has it. They need
    row locks, not a serializable view of the site's tables, and under
    SERIALIZABLE a sweep reading the table would make the site's own
    transactions fail more often."""
    if engine.dialect.name == 'sqlite':
        return engine       # serializable, and no other level but dirty
    return engine.execution_options(isolation_level='READ COMMITTED')


def dbsession(request):
    """The request's session as the Pyramid starter projects name it
    (``request.dbsession``)."""
    return request.dbsession


@zope.interface.implementer(IJobOutbox)
class JobOutbox:
    """The outbox of one queue: rows of ``table`` in the site's database,
    reached through ``engine`` (an SQLAlchemy ``Engine``) outside the
    requests (``ownEngine``).

    ``jobWrites`` (``IJobWrites``) stores the jobs moved, ``wakeup``
    (``IWakeup``) wakes this process's idle workers for them, ``now``
    tells the time, and ``sessionOf(request)`` is the request's session
    (default: ``request.dbsession``).
    """

    def __init__(self, engine, table, jobWrites, wakeup, now,
                 sessionOf=dbsession, batchSize=BATCH_SIZE, grace=GRACE,
                 sweepInterval=SWEEP_INTERVAL):
        self.engine = ownEngine(engine)
        self.table = table
        self.jobWrites = jobWrites
        self.wakeup = wakeup
        self.now = now
        self._sessionOf = sessionOf
        self.batchSize = batchSize
        self.grace = grace
        self.sweepInterval = sweepInterval
        self._lastSweep = None
        self._sweepFailing = False
        self._movePausedUntil = 0.0

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, self.table.name)

    def sessionOf(self, request):
        session = self._sessionOf(request)
        if session is None:
            # Else the request's jobs would bypass the outbox unseen.
            raise ValueError('The outbox found no SQL session for the '
                             'request (%r returned None)'
                             % (self._sessionOf,))
        return session

    # in the request's transaction

    def follow(self, session, transaction, dataManager):
        staged = []
        transaction.addBeforeCommitHook(
            self._writeAdded, (session, dataManager, staged))
        transaction.addAfterCommitHook(self._moveCommitted, (staged,))

    def _writeAdded(self, session, dataManager, staged):
        documents = dataManager.takeInserts()
        if not documents:
            return
        if isinstance(session, sa.orm.scoped_session):
            session = session()    # zope.sqlalchemy knows the session
        self.write(session, documents)
        # zope.sqlalchemy commits a session it was told changed; a Core
        # statement, unlike the ORM's, does not tell it.
        zope.sqlalchemy.mark_changed(session,
                                     dataManager.transaction_manager)
        staged.extend(documents)

    def write(self, session, documents):
        added = sqlTime(self.now())
        session.execute(self.table.insert(), [
            {'id': str(document['_id']), 'name': document['name'],
             'document': encode(document), 'added': added}
            for document in documents])

    def _moveCommitted(self, committed, documents):
        # Not committed: the rows are gone with the transaction, or (a
        # participant after the SQL commit failed) committed all the
        # same, and the sweep moves them.
        if not committed or not documents:
            return
        if time.monotonic() < self._movePausedUntil:
            return       # a move failed just now: the sweep takes them
        try:
            self.move(documents)
        except STORE_ERRORS as error:
            self._movePausedUntil = time.monotonic() + MOVE_PAUSE
            logger.warning(
                '%d jobs committed to the outbox (%s) were not moved into '
                'the queue (%s); the sweep of a worker moves them once it '
                'can', len(documents),
                ', '.join(str(d['_id']) for d in documents[:5])
                + (', ...' if len(documents) > 5 else ''), error)

    # moving

    def move(self, documents):
        stored = 0
        for start in range(0, len(documents), self.batchSize):
            batch = documents[start:start + self.batchSize]
            stored += self._store(batch)
            with self.engine.begin() as connection:
                connection.execute(self.table.delete().where(
                    self.table.c.id.in_([str(d['_id']) for d in batch])))
        if stored:
            self.wakeup.set()
        return stored

    def _store(self, documents):
        """Insert ``documents`` into the queue, skipping those whose id
        it has already (moved before); how many were inserted."""
        stored = 0
        remaining = list(documents)
        while remaining:
            try:
                self.jobWrites.insertJobs(remaining)
            except (pymongo.errors.BulkWriteError, DuplicateJobError) as e:
                # The store names a duplicate id a DuplicateJobError, from
                # the server's error.
                error = e if isinstance(e, pymongo.errors.BulkWriteError) \
                    else e.__cause__
                if not isinstance(error, pymongo.errors.BulkWriteError):
                    raise
                errors = error.details.get('writeErrors') or []
                if not errors or any(e.get('code') != DUPLICATE_KEY
                                     for e in errors):
                    raise
                # An ordered insert stops at its first refusal: the ones
                # before it are stored, the one refused was moved before.
                index = min(e['index'] for e in errors)
                stored += index
                remaining = remaining[index + 1:]
            else:
                return stored + len(remaining)
        return stored

    def sweep(self, grace=None):
        grace = self.grace if grace is None else grace
        table = self.table
        cutoff = sqlTime(self.now()) - datetime.timedelta(seconds=grace)
        query = sa.select(table.c.id, table.c.document).where(
            table.c.added <= cutoff).order_by(
            table.c.added, table.c.id).limit(self.batchSize).with_for_update(
            skip_locked=True)
        deadline = time.monotonic() + SWEEP_SECONDS
        stored = 0
        while True:
            # The rows stay locked until their jobs are stored and they
            # are deleted: a concurrent sweep skips them (on a database
            # without row locks it moves them too, and stores none
            # twice).
            with self.engine.begin() as connection:
                rows = connection.execute(query).all()
                if rows:
                    stored += self._store([decode(row.document)
                                           for row in rows])
                    connection.execute(table.delete().where(
                        table.c.id.in_([row.id for row in rows])))
            if len(rows) < self.batchSize or time.monotonic() >= deadline:
                break
        if stored:
            self._movePausedUntil = 0.0
            self.wakeup.set()
        return stored

    # reading

    def status(self, oid):
        with self.engine.connect() as connection:
            data = connection.execute(
                sa.select(self.table.c.document).where(
                    self.table.c.id == str(oid))).scalar()
        return decode(data).get('status') if data is not None else None

    def backlog(self):
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(sa.func.count()).select_from(self.table)).scalar()

    # IUpkeep

    def tidy(self, now):
        """Sweep, at most every ``sweepInterval`` seconds; how many jobs
        it moved. A sweep that cannot reach MongoDB or the database is
        logged once, until one succeeds."""
        started = time.monotonic()
        if self._lastSweep is not None and \
                started - self._lastSweep < self.sweepInterval:
            return 0
        self._lastSweep = started
        try:
            moved = self.sweep()
        except STORE_ERRORS as error:
            if not self._sweepFailing:
                logger.warning('The outbox sweep cannot move jobs now (%s); '
                               'it tries again every %.0f s', error,
                               self.sweepInterval)
            self._sweepFailing = True
            return 0
        if self._sweepFailing:
            logger.info('The outbox sweep moves jobs again')
        self._sweepFailing = False
        if moved:
            logger.info('The outbox sweep moved %d jobs into the queue',
                        moved)
        return moved
