"""The queue writes after every participant that can refuse.

``transaction`` votes its participants in the order of their sort keys.
The queue's data manager sorts after zope.sqlalchemy's one-phase and
two-phase data managers and after ZODB connections, indeed after any key
that does not begin with its own first character; a participant refusing
in its vote (a one-phase SQL COMMIT) leaves no job behind; a failed job
insert aborts the participants that only prepared (two-phase SQL, ZODB).
What remains is said here too: in one-phase mode a failed insert comes
after the SQL COMMIT, whose rows stay without their job.
"""
import hypothesis
import hypothesis.strategies as st
import pymongo.errors
import pytest
import sqlalchemy
import sqlalchemy.orm
import transaction
import transaction.interfaces
import ZODB
import ZODB.DemoStorage
import ZODB.FileStorage
import ZODB.MappingStorage
import zope.interface
import zope.sqlalchemy
import zope.sqlalchemy.datamanager

from m01.remote.processor import RemoteProcessor
from m01.remote.queue.transaction import LAST, QueueDataManager
from m01.remote.testing import EchoJob
from support import sqlsite


def processor(database, manager=None):
    rp = RemoteProcessor(database, transactionManager=manager)
    rp.addJobFactory('echo', EchoJob())
    return rp


def stored_inputs(rp):
    return sorted(d['input'] for d in rp.jobsCollection.find({}))


def fail_inserts(monkeypatch, rp):
    """The processor bound again, its job inserts failing as a lost
    server would (a binding's transactions take the store's writes as
    they are when it is bound)."""
    def insertJobs(documents):
        raise pymongo.errors.AutoReconnect('connection closed')
    monkeypatch.setattr(rp.jobWrites, 'insertJobs', insertJobs)
    return rp.bind(rp.transactionManager)


# The sort keys of the real participants

@pytest.fixture
def sqlite_engine(tmp_path):
    engine = sqlalchemy.create_engine('sqlite:///%s' % (tmp_path / 'db'))
    yield engine
    engine.dispose()


@pytest.fixture
def zodb_connections(tmp_path):
    """Connections of the ZODB storages a site uses, for one manager."""
    manager = transaction.TransactionManager()
    databases = [
        ZODB.DB(ZODB.FileStorage.FileStorage(str(tmp_path / 'Data.fs'))),
        ZODB.DB(ZODB.MappingStorage.MappingStorage()),
        ZODB.DB(ZODB.DemoStorage.DemoStorage()),
    ]
    connections = [db.open(transaction_manager=manager) for db in databases]
    yield manager, connections
    manager.abort()
    for connection, db in zip(connections, databases, strict=True):
        connection.close()
        db.close()


def test_the_queue_sorts_after_the_real_participants(
        mongomock_database, sqlite_engine, zodb_connections):
    manager, connections = zodb_connections
    rp = processor(mongomock_database, manager)
    rp.addJob('echo', 'sorted')
    queue = rp.pending.dataManager(join=False)
    assert isinstance(queue, QueueDataManager)
    sql = [
        zope.sqlalchemy.datamanager.SessionDataManager(
            sqlalchemy.orm.Session(sqlite_engine), 'active', manager),
        zope.sqlalchemy.datamanager.TwoPhaseSessionDataManager(
            sqlalchemy.orm.Session(sqlite_engine, twophase=True), 'active',
            manager),
    ]
    participants = [queue] + sql + connections
    # The order in which transaction calls tpc_begin, commit, tpc_vote
    # and tpc_finish.
    ordered = sorted(participants, key=lambda dm: dm.sortKey())
    assert ordered[-1] is queue
    assert sql[0].sortKey().startswith('~sqlalchemy:')
    assert queue.sortKey() > sql[0].sortKey()


@hypothesis.given(st.text())
def test_the_queue_sorts_after_any_other_key(key):
    queue = QueueDataManager(None, None, None)
    hypothesis.assume(not key.startswith(LAST))
    assert key < queue.sortKey()
    # The keys of packages that vote late with '~' (zope.sqlalchemy's
    # one-phase data manager among them).
    assert '~' * 8 + key < queue.sortKey()


def test_two_queues_sort_apart():
    first, second = (QueueDataManager(None, None, None) for _ in range(2))
    assert first.sortKey() != second.sortKey()
    assert first.sortKey().startswith(LAST + 'm01.remote:')


# The order in which the participants vote, and what a refusal leaves

@zope.interface.implementer(transaction.interfaces.IDataManager)
class Participant:
    """A participant of the transaction that records its calls; a
    one-phase one (``refuse`` raises in ``tpc_vote``, as a refused SQL
    COMMIT does) or a two-phase one (prepares in ``tpc_vote``, commits
    in ``tpc_finish``)."""

    def __init__(self, manager, key, calls, refuse=False):
        self.transaction_manager = manager
        self.key = key
        self.calls = calls
        self.refuse = refuse
        manager.get().join(self)

    def _record(self, name):
        self.calls.append('%s %s' % (self.key, name))

    def abort(self, txn):
        self._record('abort')

    def tpc_begin(self, txn):
        self._record('tpc_begin')

    def commit(self, txn):
        self._record('commit')

    def tpc_vote(self, txn):
        self._record('tpc_vote')
        if self.refuse:
            raise RefusedCommit('%s refused' % self.key)

    def tpc_finish(self, txn):
        self._record('tpc_finish')

    def tpc_abort(self, txn):
        self._record('tpc_abort')

    def sortKey(self):
        return self.key


class RefusedCommit(Exception):
    pass


#: Keys that vote late, as zope.sqlalchemy's one-phase data manager and
#: other packages choose them.
LATE_KEYS = ['~sqlalchemy:1', '~~cache:1', '~~~~hopefullyLast', '\uffff']


@pytest.mark.parametrize('key', LATE_KEYS)
def test_a_one_phase_participant_that_refuses_leaves_no_job(database, key):
    manager = transaction.TransactionManager()
    rp = processor(database, manager)
    calls = []
    rp.addJob('echo', 'refused')
    Participant(manager, key, calls, refuse=True)
    with pytest.raises(RefusedCommit):
        manager.commit()
    manager.abort()
    assert '%s tpc_vote' % key in calls
    assert stored_inputs(rp) == []
    rp.addJob('echo', 'next')
    manager.commit()
    assert stored_inputs(rp) == ['next']


def test_the_queue_inserts_after_every_vote(database):
    manager = transaction.TransactionManager()
    rp = processor(database, manager)
    calls = []
    original = rp.jobWrites.insertJobs

    def insertJobs(documents):
        calls.append('queue insert')
        return original(documents)
    rp.jobWrites.insertJobs = insertJobs
    rp = rp.bind(manager)
    rp.addJob('echo', 'last')
    for key in ['/var/site/Data.fs:1', 'sqlalchemy.twophase:1'] + LATE_KEYS:
        Participant(manager, key, calls)
    manager.commit()
    votes = [call for call in calls if call.endswith(' tpc_vote')]
    assert len(votes) == 2 + len(LATE_KEYS)
    assert calls.index('queue insert') > max(calls.index(v) for v in votes)
    assert calls.index('queue insert') < min(
        i for i, call in enumerate(calls) if call.endswith(' tpc_finish'))
    assert stored_inputs(rp) == ['last']


def test_a_failed_insert_aborts_the_prepared_participants(database,
                                                          monkeypatch):
    manager = transaction.TransactionManager()
    rp = processor(database, manager)
    calls = []
    rp = fail_inserts(monkeypatch, rp)
    rp.addJob('echo', 'lost')
    prepared = Participant(manager, 'sqlalchemy.twophase:1', calls)
    with pytest.raises(pymongo.errors.AutoReconnect):
        manager.commit()
    manager.abort()
    voted = calls.index('%s tpc_vote' % prepared.key)
    assert calls.index('%s tpc_abort' % prepared.key) > voted
    assert '%s tpc_finish' % prepared.key not in calls


class Watched(ZODB.FileStorage.FileStorage):
    """A FileStorage that records when it votes."""

    calls = None

    def tpc_vote(self, transaction):
        self.calls.append('zodb vote')
        return super().tpc_vote(transaction)


def test_real_participants_vote_before_the_queue_inserts(
        database, sqlite_engine, tmp_path, monkeypatch):
    calls = []
    manager = transaction.TransactionManager()
    rp = processor(database, manager)
    original = rp.jobWrites.insertJobs

    def insertJobs(documents):
        calls.append('queue insert')
        return original(documents)
    monkeypatch.setattr(rp.jobWrites, 'insertJobs', insertJobs)
    rp = rp.bind(manager)
    sqlalchemy.event.listen(sqlite_engine, 'commit',
                            lambda conn: calls.append('sql commit'))
    storage = Watched(str(tmp_path / 'Data.fs'))
    storage.calls = []
    db = ZODB.DB(storage)  # commits the root object
    storage.calls = calls
    connection = db.open(transaction_manager=manager)
    try:
        session = sqlalchemy.orm.Session(sqlite_engine)
        zope.sqlalchemy.register(session, transaction_manager=manager)
        session.execute(sqlalchemy.text('CREATE TABLE t (n INTEGER)'))
        session.execute(sqlalchemy.text('INSERT INTO t VALUES (1)'))
        zope.sqlalchemy.mark_changed(session, transaction_manager=manager)
        connection.root()['n'] = 1
        rp.addJob('echo', 'all three')
        manager.commit()
    finally:
        connection.close()
        db.close()
    assert calls == ['zodb vote', 'sql commit', 'queue insert']
    assert stored_inputs(rp) == ['all three']


def test_a_sqlite_commit_refused_by_a_deferred_key_leaves_no_job(
        database, sqlite_engine):
    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql('CREATE TABLE parent (id INTEGER PRIMARY KEY)')
        conn.exec_driver_sql(
            'CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER '
            'REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)')
    sqlalchemy.event.listen(
        sqlite_engine, 'connect',
        lambda conn, record: conn.execute('PRAGMA foreign_keys = ON'))
    sqlite_engine.dispose()
    manager = transaction.TransactionManager()
    rp = processor(database, manager)
    session = sqlalchemy.orm.Session(sqlite_engine)
    zope.sqlalchemy.register(session, transaction_manager=manager)
    session.execute(sqlalchemy.text('INSERT INTO child VALUES (1, 7)'))
    zope.sqlalchemy.mark_changed(session, transaction_manager=manager)
    rp.addJob('echo', 'child 1')
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        manager.commit()
    manager.abort()
    assert stored_inputs(rp) == []


def test_a_failed_insert_aborts_a_zodb_change(database, tmp_path,
                                              monkeypatch):
    manager = transaction.TransactionManager()
    rp = processor(database, manager)
    db = ZODB.DB(ZODB.FileStorage.FileStorage(str(tmp_path / 'Data.fs')))
    try:
        connection = db.open(transaction_manager=manager)
        connection.root()['order'] = 1
        rp = fail_inserts(monkeypatch, rp)
        rp.addJob('echo', 'order 1')
        with pytest.raises(pymongo.errors.AutoReconnect):
            manager.commit()
        manager.abort()
        connection.close()
        other = db.open()
        assert 'order' not in other.root()
        other.close()
    finally:
        db.close()
    assert stored_inputs(rp) == []


# What remains, on PostgreSQL through the SQL host site

@pytest.mark.parametrize('twophase', [False, True],
                         ids=['onephase', 'twophase'])
def test_a_failed_insert_after_the_sql_vote(postgres_database,
                                            mongomock_database, monkeypatch,
                                            twophase):
    site = sqlsite.OrderSite(postgres_database, 'mongomock://',
                             mongomock_database.name, twophase=twophase)
    try:
        site.addCustomers(1)
        fail_inserts(monkeypatch, site.processor)
        failed = site.placeOrder(1, customer=1)
        assert isinstance(failed, pymongo.errors.AutoReconnect)
        assert site.storedJobs() == []
        assert site.preparedTransactions() == 0
        if twophase:
            # The prepared order was rolled back with the request.
            assert site.committedOrders() == set()
        else:
            # The window of one-phase mode: the SQL COMMIT came first, so
            # the order stays, without its job, and the request failed.
            assert site.committedOrders() == {1}
    finally:
        site.close()
