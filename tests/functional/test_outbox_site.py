"""The outbox in the SQL host site (support.sqlsite with ``outbox=True``:
PostgreSQL, zope.sqlalchemy, pyramid_tm's explicit manager,
pyramid_retry, SERIALIZABLE), in one-phase and two-phase mode: whatever
PostgreSQL refuses at COMMIT, the committed orders equal the stored
jobs, no job names an order that did not commit and no committed order
has a second one; with MongoDB stopped between the SQL commit and the
move too, once it is back and the sweep ran. Concurrent sweeps on
PostgreSQL skip each other's rows."""
import collections
import concurrent.futures
import threading

import pymongo.errors
import pytest
import transaction

from support import javaserver, sqlsite, testserver
from support.waiting import until

MODES = [pytest.param(False, id='onephase'),
         pytest.param(True, id='twophase')]

#: The customer no order may name (the deferred foreign key fails).
MISSING_CUSTOMER = 0


@pytest.fixture
def outbox_site(postgres_database, mongojava_uri):
    """The site with the outbox, its store on mongo-java-server."""
    sites = []

    def make(twophase, store_uri=mongojava_uri, **kw):
        with testserver.scratch_database(store_uri) as db:
            site = sqlsite.OrderSite(postgres_database, store_uri, db.name,
                                     twophase=twophase, outbox=True, **kw)
            sites.append(site)
            return site
    yield make
    for site in sites:
        site.close()


def assert_exactly_once(site):
    committed = site.committedOrders()
    jobs = site.storedJobs()
    # One job per committed order, none for an order that did not commit.
    assert sorted(jobs) == sorted(committed)
    assert site.processor.outbox.backlog() == 0
    assert site.preparedTransactions() == 0


def test_an_order_commits_with_its_job(outbox_site):
    site = outbox_site(False)
    site.addCustomers(1)
    response = site.placeOrder(1, 1)
    assert site.committedOrders() == {1}
    assert site.storedJobs() == [1]
    assert site.processor.getJobStatus(response.json['job']) == 'queued'
    assert_exactly_once(site)


@pytest.mark.parametrize('twophase', MODES)
def test_concurrent_orders_in_a_write_skew(outbox_site, twophase):
    site = outbox_site(twophase)
    customers = 4
    site.addCustomers(customers)
    orders = [(n, n % customers + 1) for n in range(1, 201)]
    outcomes = site.placeOrders(orders, threads=4)
    assert sum(outcomes.values()) == len(orders)
    assert site.counts['refused'] > 0
    assert outcomes['ok'] > 0
    assert_exactly_once(site)
    assert len(site.committedOrders()) == outcomes['ok']


@pytest.mark.parametrize('twophase', MODES)
def test_concurrent_orders_with_deferred_foreign_keys(outbox_site,
                                                      twophase):
    site = outbox_site(twophase)
    site.addCustomers(200)
    orders = [(n, MISSING_CUSTOMER if n % 8 == 0 else n)
              for n in range(1, 201)]
    outcomes = site.placeOrders(orders, threads=4, read=False)
    bad = {n for n, customer in orders if customer == MISSING_CUSTOMER}
    assert site.counts['refused'] >= len(bad)
    committed = site.committedOrders()
    assert not committed & bad
    assert len(committed) == outcomes['ok'] > 0
    assert_exactly_once(site)


class StopOnFirstMove:
    """The outbox's ``IJobWrites``: the first move, which comes once a
    request's SQL transaction has committed, stops the store before it
    inserts; so do the ones after it (the store is down)."""

    def __init__(self, writes, server):
        self.writes = writes
        self.server = server
        self.lock = threading.Lock()
        self.moves = 0

    def insertJobs(self, documents):
        with self.lock:
            self.moves += 1
            if self.server.process is not None:
                self.server.stop()
        return self.writes.insertJobs(documents)


@pytest.mark.parametrize('twophase', MODES)
def test_mongodb_stopped_across_the_commit(outbox_site, twophase):
    # A server of its own (the session's mongo-java-server, which the
    # fixture needs, shows the launcher is there), keeping its data in a
    # file across the stop.
    server = javaserver.JavaServer(backend='h2')
    try:
        server.start()
        # A move fails within a second, not after pymongo's 5 s.
        site = outbox_site(twophase, store_uri=server.uri
                           + '?serverSelectionTimeoutMS=1000')
        processor = site.processor
        outbox = processor.outbox
        customers = 4
        site.addCustomers(customers)
        outbox.jobWrites = StopOnFirstMove(processor.jobWrites, server)
        # Write skews and deferred foreign keys refused at COMMIT; the
        # store stops as the first order's move begins, and stays away
        # while the others commit.
        orders = [(n, MISSING_CUSTOMER if n % 8 == 0
                   else n % customers + 1) for n in range(1, 81)]
        outcomes = site.placeOrders(orders, threads=4)
        committed = site.committedOrders()
        assert len(committed) == outcomes['ok'] > 0
        assert site.counts['refused'] > 0
        assert outbox.jobWrites.moves > 0
        assert server.process is None
        # Every committed order's job waits in the outbox, and only those.
        assert outbox.backlog() == len(committed)
        assert {outbox.status(jobid) for jobid in outboxIds(site)} == {
            'queued'}
        # The store is back: the workers' upkeep moves them, and the
        # worker runs each once.
        server.start()
        outbox.jobWrites = processor.jobWrites
        outbox.grace = 0.0
        outbox.sweepInterval = 0.0
        processor.leases.leaseTime = 1.5       # a tick every 0.5 s
        processor.startProcessor()
        try:
            until(lambda: outbox.backlog() == 0, what='the sweep')
            until(lambda: processor.jobs.countByStatus()['completed']
                  == len(committed), what='the jobs run')
        finally:
            processor.stopProcessor()
        assert_exactly_once(site)
        results = collections.Counter(
            document['output'] for document in
            processor.jobsCollection.find({}, {'output': 1}))
        assert results == collections.Counter(
            'shipped order %d' % order for order in committed)
    finally:
        server.close()


class LostAnswers:
    """The outbox's ``IJobWrites``: each insert is applied, and its
    answer lost (as when the process dies before it deletes the rows)."""

    def __init__(self, writes):
        self.writes = writes

    def insertJobs(self, documents):
        self.writes.insertJobs(documents)
        raise pymongo.errors.AutoReconnect('connection closed')


def test_a_repeated_move_stores_nothing_twice(outbox_site):
    site = outbox_site(False)
    outbox = site.processor.outbox
    site.addCustomers(4)
    outbox.jobWrites = LostAnswers(site.processor.jobWrites)
    outcomes = site.placeOrders([(n, n % 4 + 1) for n in range(1, 41)],
                                threads=4)
    committed = site.committedOrders()
    assert len(committed) == outcomes['ok'] > 0
    # The jobs of the first moves are stored (the ones after them were
    # left to the sweep), and every row is still there.
    moved = site.storedJobs()
    assert moved and set(moved) <= committed
    assert outbox.backlog() == len(committed)
    outbox.jobWrites = site.processor.jobWrites
    assert outbox.sweep(grace=0) == len(committed) - len(moved)
    assert_exactly_once(site)


def outboxIds(site):
    table = site.processor.outbox.table
    with site.engine.connect() as connection:
        return set(connection.scalars(table.select().with_only_columns(
            table.c.id)))


class Away:
    """The outbox's ``IJobWrites`` while the store is away."""

    def insertJobs(self, documents):
        raise pymongo.errors.ServerSelectionTimeoutError('away')


def test_concurrent_sweeps_skip_each_others_rows(outbox_site):
    site = outbox_site(False)
    processor = site.processor
    outbox = processor.outbox
    site.addCustomers(1)
    sessions = site.app.registry['dbsession_factory']
    orders = list(range(1, 31))
    outbox.jobWrites = Away()
    for order in orders:
        manager = transaction.TransactionManager()
        with manager:
            session = sqlsite.get_tm_session(sessions, manager)
            session.add(sqlsite.Order(id=order, customer_id=1, item='x'))
            processor.bind(manager, session=session).addJob(
                'ship', {'order': order})
    assert outbox.backlog() == len(orders)
    outbox.jobWrites = Held(processor.jobWrites)
    outbox.batchSize = 10
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # The first sweep locks the oldest 10 rows and waits in its
        # insert; the second skips them and moves the other 20.
        first = pool.submit(outbox.sweep, 0.0)
        until(lambda: outbox.jobWrites.waiting, what='the first sweep')
        assert outbox.sweep(0.0) == 20
        outbox.jobWrites.release.set()
        assert first.result(timeout=30) == 10
    assert sorted(outbox.jobWrites.moved[0]) == orders[:10]
    assert sorted(sum(outbox.jobWrites.moved[1:], [])) == orders[10:]
    assert_exactly_once(site)


class Held:
    """The outbox's ``IJobWrites``: the first insert waits until
    ``release`` is set; records the orders each insert moved."""

    def __init__(self, writes):
        self.writes = writes
        self.release = threading.Event()
        self.waiting = False
        self.moved = []
        self.lock = threading.Lock()

    def insertJobs(self, documents):
        with self.lock:
            first = not self.moved
            self.moved.append([d['input']['order'] for d in documents])
        if first:
            self.waiting = True
            assert self.release.wait(30)
        return self.writes.insertJobs(documents)
