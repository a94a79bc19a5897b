"""The outbox (``m01.remote.outbox``) on SQLite, on every store: jobs
added in a transaction become rows of its SQL session, committed or
refused with the session's own rows, moved into the queue after the
commit; the sweep moves what a failed move or a crash left behind, and a
repeated move stores nothing twice."""
import datetime
import logging
import subprocess
import sys

import bson
import pymongo.errors
import pytest
import sqlalchemy as sa
import sqlalchemy.exc
import sqlalchemy.orm
import transaction
import zope.component
import zope.sqlalchemy
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError, ConfigurationExecutionError
from webtest import TestApp
from zope.interface.verify import verifyObject

from m01.remote import interfaces, make_remote_processor, testing
from m01.remote.interfaces import CANCELLED, QUEUED
from m01.remote.outbox import (
    JobOutbox,
    create_outbox_table,
    outbox_table,
    set_remote_outbox,
)
from m01.remote.outbox import jobs as outboxjobs
from m01.remote.outbox.config import OutboxFactory
from m01.remote.processor import RemoteProcessor
from m01.remote.queue.keys import PENDING_AGE
from m01.remote.settings import get_remote_settings

UTC = datetime.timezone.utc


class Orders:
    """A site's own SQL database (SQLite in a file): orders whose
    customer is a deferred foreign key, checked at COMMIT."""

    def __init__(self, path):
        # Each connection closed after use: SQLite keeps a transaction
        # whose COMMIT was refused open, and a pooled connection would
        # hand its rows to the next user.
        self.engine = sa.create_engine('sqlite:///%s' % path,
                                       poolclass=sa.pool.NullPool)
        sa.event.listen(self.engine, 'connect', self._foreignKeys)
        self.metadata = sa.MetaData()
        self.customers = sa.Table(
            'customers', self.metadata,
            sa.Column('id', sa.Integer, primary_key=True))
        self.orders = sa.Table(
            'orders', self.metadata,
            sa.Column('id', sa.Integer, primary_key=True),
            sa.Column('customer', sa.Integer, sa.ForeignKey(
                'customers.id', deferrable=True, initially='DEFERRED')))
        self.outbox = outbox_table(self.metadata)
        self.metadata.create_all(self.engine)
        with self.engine.begin() as connection:
            connection.execute(self.customers.insert(), [{'id': 1}])
        self.sessions = sa.orm.sessionmaker(bind=self.engine)

    @staticmethod
    def _foreignKeys(connection, record):
        connection.execute('PRAGMA foreign_keys = ON')

    def session(self, manager):
        session = self.sessions()
        zope.sqlalchemy.register(session, transaction_manager=manager)
        return session

    def order(self, session, customer=1):
        return session.execute(self.orders.insert().values(
            customer=customer)).inserted_primary_key[0]

    def ids(self, table):
        with self.engine.connect() as connection:
            return {row[0] for row in connection.execute(
                sa.select(table.c.id))}

    def close(self):
        self.engine.dispose()


class Writes:
    """The processor's ``IJobWrites``, its job inserts failing while
    ``failing`` is an error (the store away), or failing once after they
    were applied (``lostAnswer``: the answer of a stored insert lost)."""

    def __init__(self, writes):
        self.writes = writes
        self.failing = None
        self.lostAnswer = False
        self.inserts = 0

    def insertJobs(self, documents):
        if self.failing is not None:
            raise self.failing
        self.inserts += 1
        self.writes.insertJobs(documents)
        if self.lostAnswer:
            self.lostAnswer = False
            raise pymongo.errors.AutoReconnect('the answer was lost')


AWAY = pymongo.errors.ServerSelectionTimeoutError('the store is away')


@pytest.fixture
def site(tmp_path):
    orders = Orders(tmp_path / 'site.db')
    yield orders
    orders.close()


@pytest.fixture
def rp(database):
    processor = RemoteProcessor(database, registry=zope.component.
                                globalregistry.BaseGlobalComponents('test'))
    processor.ensureIndexes()
    processor.addJobFactory('echo', testing.EchoJob())
    yield processor
    processor.close()


@pytest.fixture
def writes(rp):
    return Writes(rp.jobWrites)


@pytest.fixture
def outbox(rp, site, writes):
    box = JobOutbox(site.engine, site.outbox, writes, rp.jobWakeup, rp.now,
                    batchSize=10)
    rp.useOutbox(box)
    return box


@pytest.fixture
def manager():
    return transaction.TransactionManager()


def stored(rp):
    return {str(document['_id']) for document in rp.jobsCollection.find()}


def outboxRows(site):
    return site.ids(site.outbox)


def addOrder(rp, site, manager, n=1, customer=1, commit=True):
    """One transaction: ``n`` orders, one job each; their ids."""
    session = site.session(manager)
    bound = rp.bind(manager, session=session)
    manager.begin()
    jobids = []
    for _ in range(n):
        order = site.order(session, customer)
        jobids.append(bound.addJob('echo', {'order': order}))
    if commit:
        manager.commit()
    return jobids


def test_interfaces(rp, outbox, site):
    verifyObject(interfaces.IJobOutbox, outbox)
    verifyObject(interfaces.IUpkeep, outbox)
    verifyObject(interfaces.IRemoteProcessor, rp)
    factory = OutboxFactory({}, site.engine, site.outbox, lambda r: None,
                            10, 1.0)
    verifyObject(interfaces.IJobOutboxFactory, factory)
    assert isinstance(factory(rp), JobOutbox)
    assert outbox in rp.leases.upkeep


def test_a_committed_job_is_moved_into_the_queue_under_its_id(
        rp, outbox, site, manager):
    session = site.session(manager)
    bound = rp.bind(manager, session=session)
    manager.begin()
    site.order(session)
    jobid = bound.addJob('echo', {'order': 1})
    bson.ObjectId(jobid)                     # the id, at once
    # Before the commit the processor shows the job it added...
    assert bound.getJobStatus(jobid) == QUEUED
    assert [str(d['_id']) for d in bound.pendingJobDocuments()] == [jobid]
    # ...and neither the queue nor the outbox has it.
    assert stored(rp) == set() and outboxRows(site) == set()
    manager.commit()
    assert stored(rp) == {jobid}
    assert outboxRows(site) == set()
    assert rp.getJobResult(jobid) is None
    assert rp.getJob(jobid).input == {'order': 1}
    assert rp.processNextJob() is True
    transaction.commit()
    assert rp.getJobResult(jobid) == {'order': 1}


def test_the_stored_document_is_the_one_added(rp, outbox, site, manager,
                                              writes):
    writes.failing = AWAY
    jobid, = addOrder(rp, site, manager)
    with site.engine.connect() as connection:
        data = connection.execute(sa.select(site.outbox.c.document)).scalar()
    row = outboxjobs.decode(data)
    writes.failing = None
    outbox.sweep(grace=0)
    document = rp.jobsCollection.find_one({'_id': bson.ObjectId(jobid)})
    assert document == row
    assert document['created'].tzinfo is not None
    assert row['name'] == 'echo' and row['status'] == QUEUED


def test_a_refused_commit_stores_no_job(rp, outbox, site, manager):
    session = site.session(manager)
    bound = rp.bind(manager, session=session)
    manager.begin()
    site.order(session, customer=2)    # no such customer: refused at COMMIT
    bound.addJob('echo', {'order': 'refused'})
    with pytest.raises(sa.exc.IntegrityError):
        manager.commit()
    manager.abort()
    assert stored(rp) == set()
    assert outboxRows(site) == set() and site.ids(site.orders) == set()


def test_an_aborted_transaction_stores_no_job(rp, outbox, site, manager):
    addOrder(rp, site, manager, commit=False)
    manager.abort()
    assert stored(rp) == set() and outboxRows(site) == set()


def test_committed_orders_equal_stored_jobs(rp, outbox, site, manager):
    expected = {}
    for number in range(12):
        customer = 2 if number % 4 == 3 else 1     # every fourth refused
        session = site.session(manager)
        bound = rp.bind(manager, session=session)
        manager.begin()
        order = site.order(session, customer)
        jobid = bound.addJob('echo', {'order': order})
        try:
            manager.commit()
        except sa.exc.IntegrityError:
            manager.abort()
        else:
            expected[order] = jobid
    assert len(expected) == 9
    assert site.ids(site.orders) == set(expected)
    jobs = {d['input']['order']: str(d['_id'])
            for d in rp.jobsCollection.find()}
    assert jobs == expected
    assert outboxRows(site) == set()


def test_a_rolled_back_savepoint_takes_its_jobs_along(rp, outbox, site,
                                                      manager):
    session = site.session(manager)
    bound = rp.bind(manager, session=session)
    manager.begin()
    kept = bound.addJob('echo', 'kept')
    savepoint = manager.savepoint()
    bound.addJob('echo', 'dropped')
    savepoint.rollback()
    manager.commit()
    assert stored(rp) == {kept}


def test_a_job_cancelled_before_the_commit_is_stored_cancelled(
        rp, outbox, site, manager):
    session = site.session(manager)
    bound = rp.bind(manager, session=session)
    manager.begin()
    jobid = bound.addJob('echo', 'changed my mind')
    bound.cancelJob(jobid)
    manager.commit()
    assert rp.getJobStatus(jobid) == CANCELLED


def test_a_transaction_without_sql_of_its_own_commits_its_rows(
        rp, outbox, site, manager, writes):
    # Only the outbox writes to the session: zope.sqlalchemy must still
    # commit it (a Core insert does not mark a session changed).
    writes.failing = AWAY
    session = site.session(manager)
    bound = rp.bind(manager, session=session)
    manager.begin()
    jobid = bound.addJob('echo', 'alone')
    manager.commit()
    assert outboxRows(site) == {jobid}


def test_a_scoped_session_commits_its_rows(rp, outbox, site, manager,
                                           writes):
    # The older layout: one scoped_session registered once.
    writes.failing = AWAY
    scoped = sa.orm.scoped_session(site.sessions)
    zope.sqlalchemy.register(scoped, transaction_manager=manager)
    try:
        bound = rp.bind(manager, session=scoped)
        manager.begin()
        jobid = bound.addJob('echo', 'scoped')
        manager.commit()
        assert outboxRows(site) == {jobid}
    finally:
        scoped.remove()


def test_immediate_jobs_and_other_bindings_go_to_the_store_directly(
        rp, outbox, site, manager, writes):
    writes.failing = AWAY
    session = site.session(manager)
    bound = rp.bind(manager, session=session)
    manager.begin()
    now = bound.addJob('echo', 'now', immediate=True)
    manager.abort()
    assert stored(rp) == {now} and outboxRows(site) == set()
    plain = rp.bind(manager)
    manager.begin()
    direct = plain.addJob('echo', 'direct')
    manager.commit()
    assert stored(rp) == {now, direct}


def test_a_binding_with_a_session_needs_an_outbox(rp, site, manager):
    with pytest.raises(ValueError, match='set_remote_outbox'):
        rp.bind(manager, session=site.session(manager))


def test_a_failed_move_leaves_the_job_to_the_sweep(
        rp, outbox, site, manager, writes, caplog):
    writes.failing = AWAY
    with caplog.at_level(logging.WARNING, logger='m01.remote'):
        jobid, = addOrder(rp, site, manager)     # the commit succeeds
    assert 'were not moved into the queue' in caplog.text
    assert jobid in caplog.text
    assert stored(rp) == set() and outboxRows(site) == {jobid}
    # The next commits leave theirs to the sweep too, for a while,
    # rather than each waiting for the store.
    writes.failing = None
    second, = addOrder(rp, site, manager)
    assert writes.inserts == 0 and outboxRows(site) == {jobid, second}
    assert outbox.backlog() == 2
    assert outbox.sweep(grace=0) == 2
    assert stored(rp) == {jobid, second} and outbox.backlog() == 0


def test_the_sweep_leaves_recent_rows_to_their_request(
        rp, outbox, site, manager, writes):
    writes.failing = AWAY
    addOrder(rp, site, manager)
    writes.failing = None
    assert outbox.sweep() == 0           # within the grace
    assert outbox.backlog() == 1
    assert outbox.sweep(grace=0) == 1


def test_the_sweep_moves_in_batches_until_none_is_left(
        rp, outbox, site, manager, writes):
    writes.failing = AWAY
    jobids = addOrder(rp, site, manager, n=25)
    writes.failing = None
    assert outbox.sweep(grace=0) == 25
    assert writes.inserts == 3           # batches of 10
    assert stored(rp) == set(jobids) and outbox.backlog() == 0


def test_a_repeated_move_stores_nothing_twice(rp, outbox, site, manager,
                                              writes):
    # A crash after the jobs were stored, before their rows were
    # deleted: the answer of the insert is lost, the rows stay.
    writes.lostAnswer = True
    jobids = addOrder(rp, site, manager, n=3)
    assert stored(rp) == set(jobids) and outboxRows(site) == set(jobids)
    assert outbox.sweep(grace=0) == 0
    assert rp.jobsCollection.count_documents({}) == 3
    assert outbox.backlog() == 0


def test_a_move_stores_the_jobs_not_moved_yet(rp, outbox, site, manager,
                                              writes):
    writes.failing = AWAY
    jobids = addOrder(rp, site, manager, n=5)
    documents = [outboxjobs.decode(row.document) for row in
                 site.engine.connect().execute(
                     sa.select(site.outbox.c.document).order_by(
                         site.outbox.c.id))]
    writes.failing = None
    # Two of them were moved (by a sweep that died before deleting).
    rp.jobWrites.insertJobs([documents[1], documents[3]])
    assert outbox.move(documents) == 3
    assert stored(rp) == set(jobids)
    assert rp.jobsCollection.count_documents({}) == 5
    assert outbox.move(documents) == 0
    assert rp.jobsCollection.count_documents({}) == 5


def test_a_move_raises_what_is_not_a_duplicate(rp, outbox, site, manager,
                                               writes):
    writes.failing = pymongo.errors.BulkWriteError(
        {'writeErrors': [{'index': 0, 'code': 2, 'errmsg': 'bad'}]})
    jobids = addOrder(rp, site, manager)
    assert outboxRows(site) == set(jobids)
    with pytest.raises(pymongo.errors.BulkWriteError):
        outbox.sweep(grace=0)
    assert outboxRows(site) == set(jobids)


def test_the_upkeep_sweeps_every_interval_and_logs_an_outage_once(
        rp, outbox, site, manager, writes, caplog):
    writes.failing = AWAY
    addOrder(rp, site, manager)
    outbox.grace = 0.0
    outbox.sweepInterval = 0.0
    with caplog.at_level(logging.INFO, logger='m01.remote'):
        assert outbox.tidy(rp.now()) == 0
        assert outbox.tidy(rp.now()) == 0
        failures = caplog.text.count('The outbox sweep cannot move jobs')
        writes.failing = None
        # The lease keeper's tick runs it with the other upkeep.
        rp.leases.tick()
    assert failures == 1
    assert 'The outbox sweep moves jobs again' in caplog.text
    assert outbox.backlog() == 0 and len(stored(rp)) == 1
    outbox.sweepInterval = 3600.0
    writes.failing = AWAY
    addOrder(rp, site, manager)
    writes.failing = None
    assert outbox.tidy(rp.now()) == 0 and outbox.backlog() == 1


def test_a_key_held_by_a_job_in_the_outbox_holds(
        database, site, manager):
    # The lock of a key whose job is not in the queue is taken over after
    # PENDING_AGE; a job waiting in the outbox still holds it.
    now = [datetime.datetime(2030, 1, 1, tzinfo=UTC)]
    processor = RemoteProcessor(database, clock=lambda: now[0])
    processor.addJobFactory('echo', testing.EchoJob())
    writes = Writes(processor.jobWrites)
    box = JobOutbox(site.engine, site.outbox, writes, processor.jobWakeup,
                    processor.now)
    processor.useOutbox(box)
    try:
        writes.failing = AWAY
        session = site.session(manager)
        bound = processor.bind(manager, session=session)
        manager.begin()
        first = bound.addJob('echo', 1, key='invoice-1')
        manager.commit()
        assert outboxRows(site) == {first}
        now[0] += PENDING_AGE * 2
        session = site.session(manager)
        bound = processor.bind(manager, session=session)
        manager.begin()
        assert bound.addJob('echo', 2, key='invoice-1') == first
        manager.abort()
        assert processor.keys.tidy(processor.now()) == 0
        writes.failing = None
        box.sweep(grace=0)
        assert processor.getJobStatus(first) == QUEUED
    finally:
        processor.close()


class Unreachable:
    """A collection whose reads fail: the store is away."""

    def find_one(self, *args, **kw):
        raise AWAY


def test_a_job_for_the_outbox_needs_no_store_to_be_added(
        rp, outbox, site, manager, writes):
    rp.getJobFactory('echo')              # read once while it was there
    rp.jobFactories.cacheSeconds = 0.0
    rp.jobFactories.collection = Unreachable()
    writes.failing = AWAY
    jobids = addOrder(rp, site, manager, n=2)
    assert outboxRows(site) == set(jobids)
    # Without the outbox the store is needed.
    with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
        rp.bind(manager).addJob('echo', 'direct')


# the directive


def order_view(request):
    session = request.dbsession
    order = session.execute(request.registry['orders'].orders.insert()
                            .values(customer=1)).inserted_primary_key[0]
    jobid = request.remote_processor.addJob('echo', {'order': order})
    return {'order': order, 'jobid': jobid}


def make_app(site, database, **outbox):
    config = Configurator(settings={
        'm01.remote.uri': 'mongomock://',
        'm01.remote.database': database.name,
        'm01.remote.pages': 'false',
        'tm.manager_hook': 'pyramid_tm.explicit_manager'})
    config.registry['orders'] = site
    config.registry['dbsession_factory'] = site.sessions
    config.add_request_method(
        lambda request: site.session(request.tm), 'dbsession', reify=True)
    config.include('m01.remote')
    config.include('m01.remote.outbox')
    config.set_remote_outbox(**outbox)
    config.add_remote_job_factory('echo', testing.EchoJob)
    config.add_route('order', '/order')
    config.add_view(order_view, route_name='order', renderer='json')
    return config.make_wsgi_app()


def test_the_directive_sends_a_requests_jobs_through_the_outbox(
        site, mongomock_database):
    app = make_app(site, mongomock_database, table=site.outbox)
    processor = app.registry.getUtility(interfaces.IRemoteProcessor)
    try:
        assert isinstance(processor.outbox, JobOutbox)
        assert processor.outbox.engine.url == site.engine.url
        assert processor.outbox in processor.leases.upkeep
        answer = TestApp(app).post('/order').json
        assert site.ids(site.orders) == {answer['order']}
        assert processor.getJob(answer['jobid']).input == {
            'order': answer['order']}
        assert outboxRows(site) == set()
        # A worker command serving another name makes a processor of its
        # own: it sweeps the same table.
        other = make_remote_processor(app.registry, get_remote_settings(
            app.registry).replace(name='other'))
        try:
            assert other.outbox.table is site.outbox
            assert other.outbox in other.leases.upkeep
        finally:
            other.close()
    finally:
        processor.close()


def test_the_queue_imports_no_sqlalchemy_without_the_outbox():
    # The outbox is an extra: a site without SQLAlchemy runs the queue.
    code = ('import sys, m01.remote, m01.remote.processor, '
            'm01.remote.console, m01.remote.views; '
            'print(sorted(m for m in sys.modules if "sqlalchemy" in m))')
    output = subprocess.run([sys.executable, '-c', code], check=True,
                            capture_output=True, text=True).stdout
    assert output.strip() == '[]'


def test_a_request_without_a_session_is_refused(site, mongomock_database):
    app = make_app(site, mongomock_database, table=site.outbox,
                   session=lambda request: None)
    processor = app.registry.getUtility(interfaces.IRemoteProcessor)
    try:
        with pytest.raises(ValueError, match='found no SQL session'):
            TestApp(app).post('/order')
        assert site.ids(site.orders) == set()
    finally:
        processor.close()


def test_the_outbox_table_can_be_created(tmp_path):
    engine = sa.create_engine('sqlite:///%s' % (tmp_path / 'x.db'))
    create_outbox_table(engine)
    create_outbox_table(engine)                  # again: nothing to do
    assert sa.inspect(engine).has_table('m01_remote_outbox')
    engine.dispose()


@pytest.mark.parametrize('arguments, message', [
    ({'session': 42}, 'session=... is a callable'),
    ({'table': sa.Table('t', sa.MetaData(), sa.Column('id', sa.Integer))},
     'has no column name, document, added'),
    ({'batch_size': 0}, 'batch_size is a whole number'),
    ({'batch_size': True}, 'batch_size is a whole number'),
    ({'grace': -1}, 'grace is a number of seconds'),
])
def test_the_directive_refuses_bad_arguments(arguments, message):
    config = Configurator()
    with pytest.raises(ConfigurationError, match=message):
        set_remote_outbox(config, **arguments)


def test_the_directive_needs_an_engine(site, mongomock_database):
    config = Configurator(settings={
        'm01.remote.uri': 'mongomock://',
        'm01.remote.database': mongomock_database.name,
        'm01.remote.pages': 'false'})
    config.include('m01.remote')
    config.include('m01.remote.outbox')
    config.set_remote_outbox(engine=lambda registry: 'not an engine')
    with pytest.raises(ConfigurationExecutionError,
                       match='gives an SQLAlchemy Engine'):
        config.commit()
