"""A host site on the SQL stack most Pyramid sites run, with the queue
beside it, for tests and benchmarks.

The layout of the pyramid-cookiecutter-starter's SQLAlchemy flavour: an
engine and a session factory made once, and ``request.dbsession`` a
session joined to the request's transaction by
``zope.sqlalchemy.register(session, transaction_manager=request.tm)``;
pyramid_tm with the explicit manager its documentation recommends,
pyramid_retry (3 attempts by default), SERIALIZABLE isolation on
PostgreSQL, and ``config.include('m01.remote')`` with its store at
``store_uri``. ``twophase=True`` makes the sessions two-phase
(``TwoPhaseSessionDataManager``: PREPARE TRANSACTION in ``tpc_vote``,
COMMIT PREPARED in ``tpc_finish``). ``outbox=True`` sends the jobs
through the outbox (``config.set_remote_outbox()`` with its defaults,
which are this layout's ``request.dbsession`` and
``registry['dbsession_factory']``).

Its one view, ``POST /orders`` with ``id`` and ``customer``, reads the
customer's orders (unless ``read=0``), inserts an order numbered ``id``
(the client's order number, so a retried request inserts the same one)
and adds a ``ship`` job whose input names it. What PostgreSQL refuses at
COMMIT:

- two concurrent orders of one customer, each reading the customer's
  orders then inserting one (write skew), under SERIALIZABLE;
- an order of a customer that does not exist: the foreign key is
  DEFERRABLE INITIALLY DEFERRED, so the insert passes and the COMMIT
  fails.

``tally()`` reads both databases and says what the promise is about:
every committed order has exactly one job, and no job names an order
that did not commit::

    from support.sqlsite import OrderSite

    site = OrderSite(sql_uri, store_uri, 'm01test', twophase=False)
    site.addCustomers(8)
    outcome = site.placeOrders([(1, 1), (2, 1), ...], threads=4)
    site.tally()   # {'committed': ..., 'jobs': ..., 'orphans': 0, ...}
    site.close()
"""
import collections

import psycopg
import sqlalchemy
import sqlalchemy.orm
import zope.sqlalchemy
from pyramid.config import Configurator
from pyramid_retry import IBeforeRetry

from m01.remote.interfaces import IRemoteProcessor
from m01.remote.job import Job
from m01.remote.outbox import create_outbox_table
from support import hostrequests

#: The order items of the orders a rival transaction inserts, which are
#: not the site's and add no job.
RIVAL_ITEM = 'rival'


class Base(sqlalchemy.orm.DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = 'customers'
    id = sqlalchemy.Column(sqlalchemy.Integer, primary_key=True,
                           autoincrement=False)
    name = sqlalchemy.Column(sqlalchemy.Text, nullable=False)


class Order(Base):
    __tablename__ = 'orders'
    id = sqlalchemy.Column(sqlalchemy.Integer, primary_key=True,
                           autoincrement=False)
    # Checked at COMMIT, not at the insert.
    customer_id = sqlalchemy.Column(
        sqlalchemy.Integer,
        sqlalchemy.ForeignKey('customers.id', deferrable=True,
                              initially='DEFERRED'),
        nullable=False, index=True)
    item = sqlalchemy.Column(sqlalchemy.Text, nullable=False)


class ShipJob(Job):
    """The site's job: ships the order its input names."""

    def __call__(self, remoteProcessor):
        return 'shipped order %s' % self.input['order']


def sqlalchemy_url(uri):
    """``postgresql://...`` with the psycopg (3) driver."""
    scheme, _, rest = uri.partition('://')
    if scheme in ('postgresql', 'postgres'):
        return 'postgresql+psycopg://' + rest
    return uri


def get_engine(uri, pool_size=10):
    return sqlalchemy.create_engine(
        sqlalchemy_url(uri), isolation_level='SERIALIZABLE',
        pool_size=pool_size, max_overflow=0, pool_timeout=60)


def get_session_factory(engine, twophase=False):
    return sqlalchemy.orm.sessionmaker(bind=engine, twophase=twophase)


def get_tm_session(session_factory, transaction_manager):
    """A session joined to the transactions of ``transaction_manager``,
    as the starter's ``models/__init__.py`` makes it."""
    dbsession = session_factory()
    zope.sqlalchemy.register(dbsession,
                             transaction_manager=transaction_manager)
    return dbsession


def place_order(request):
    order_id = int(request.params['id'])
    customer = int(request.params['customer'])
    dbsession = request.dbsession
    item = 'order of customer %d' % customer
    if request.params.get('read', '1') != '0':
        # What makes two orders of one customer a write skew: each reads
        # the customer's orders, then inserts one the other did not see.
        count = dbsession.scalar(
            sqlalchemy.select(sqlalchemy.func.count()).select_from(Order)
            .where(Order.customer_id == customer))
        item = 'order %d of customer %d' % (count + 1, customer)
    dbsession.add(Order(id=order_id, customer_id=customer, item=item))
    dbsession.flush()
    jobid = request.remote_processor.addJob('ship', {'order': order_id})
    registry = request.registry
    txn = request.tm.get()
    for hook in registry.before_commit:
        txn.addBeforeCommitHook(hook)
    registry.before_commit[:] = []
    registry.counts.watch(txn)
    return {'order': order_id, 'job': jobid}


def make_app(session_factory, store_uri, store_database, attempts=3,
             settings=None, outbox=False):
    """The site's WSGI application (its ``main``)."""
    settings = dict({
        'tm.manager_hook': 'pyramid_tm.explicit_manager',
        'retry.attempts': str(attempts),
        'm01.remote.uri': store_uri,
        'm01.remote.database': store_database,
        'm01.remote.pages': 'false',
    }, **(settings or {}))
    config = Configurator(settings=settings)
    config.include('pyramid_retry')
    config.include('m01.remote')
    config.registry['dbsession_factory'] = session_factory
    config.add_request_method(
        lambda request: get_tm_session(session_factory, request.tm),
        'dbsession', reify=True)
    if outbox:
        config.include('m01.remote.outbox')
        config.set_remote_outbox()
    config.add_remote_job_factory('ship', ShipJob)
    config.add_route('orders', '/orders')
    config.add_view(place_order, route_name='orders', request_method='POST',
                    renderer='json', require_csrf=False)
    config.add_subscriber(hostrequests.count_retry, IBeforeRetry)
    config.registry.counts = hostrequests.Counts()
    # Callables run (once) before the commit of the next order.
    config.registry.before_commit = []
    return config.make_wsgi_app()


class OrderSite:
    """The site on a PostgreSQL database (``sql_uri``) and the queue's
    store (``store_uri``, database ``store_database``)."""

    def __init__(self, sql_uri, store_uri, store_database, twophase=False,
                 attempts=3, pool_size=10, outbox=False):
        self.sql_uri = sql_uri
        self.twophase = twophase
        self.engine = get_engine(sql_uri, pool_size=pool_size)
        Base.metadata.create_all(self.engine)
        if outbox:
            create_outbox_table(self.engine)
        self.app = make_app(get_session_factory(self.engine, twophase),
                            store_uri, store_database, attempts=attempts,
                            outbox=outbox)
        self.processor = self.app.registry.getUtility(IRemoteProcessor)
        self.counts = self.app.registry.counts

    def close(self):
        self.processor.close()
        self.engine.dispose()

    def addCustomers(self, n):
        with self.engine.begin() as conn:
            conn.execute(sqlalchemy.insert(Customer), [
                {'id': i, 'name': 'customer %d' % i}
                for i in range(1, n + 1)])

    def placeOrder(self, order_id, customer, read=True):
        """POST one order (``read``: reading the customer's orders
        first); the response, or the exception that ended it."""
        return hostrequests.post(self.app, '/orders', {
            'id': order_id, 'customer': customer, 'read': int(read)})

    def placeOrders(self, orders, threads=4, read=True):
        """POST ``orders`` (``(id, customer)`` pairs) from ``threads``
        threads; a Counter of the outcomes (``'ok'`` or the exception's
        class name)."""
        return hostrequests.post_all(
            self.app, '/orders',
            [{'id': order_id, 'customer': customer, 'read': int(read)}
             for order_id, customer in orders], threads=threads)

    def interleaveRival(self, customer, order_id):
        """Have a rival transaction read ``customer``'s orders and insert
        one now, and commit it just before the next order's transaction
        commits: that order and the rival are a write skew, and
        PostgreSQL refuses the order's COMMIT (or PREPARE)."""
        conn = psycopg.connect(self.sql_uri)
        conn.execute('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE')
        conn.execute('SELECT count(*) FROM orders WHERE customer_id = %s',
                     (customer,))
        conn.execute('INSERT INTO orders (id, customer_id, item) '
                     'VALUES (%s, %s, %s)', (order_id, customer, RIVAL_ITEM))

        def commit_rival():
            try:
                conn.commit()
            finally:
                conn.close()
        self.app.registry.before_commit.append(commit_rival)

    def committedOrders(self):
        """The ids of the site's orders that committed."""
        with self.engine.connect() as conn:
            return set(conn.scalars(
                sqlalchemy.select(Order.id).where(Order.item != RIVAL_ITEM)))

    def preparedTransactions(self):
        """Transactions left prepared (two-phase) in the database."""
        with self.engine.connect() as conn:
            return conn.scalar(sqlalchemy.text(
                'SELECT count(*) FROM pg_prepared_xacts '
                'WHERE database = current_database()'))

    def storedJobs(self):
        """The order ids the stored ``ship`` jobs name, one per job."""
        return [document['input']['order'] for document in
                self.processor.jobsCollection.find(
                    {'name': 'ship'}, {'input': 1})]

    def tally(self):
        """The promise, counted: ``committed`` orders, ``jobs`` stored,
        ``orphans`` (jobs for orders that never committed), ``extras``
        (jobs beyond the first for a committed order) and ``missing``
        (committed orders without a job)."""
        committed = self.committedOrders()
        jobs = collections.Counter(self.storedJobs())
        return {
            'committed': len(committed),
            'jobs': sum(jobs.values()),
            'orphans': sum(n for order, n in jobs.items()
                           if order not in committed),
            'extras': sum(n - 1 for order, n in jobs.items()
                          if order in committed),
            'missing': len(committed - set(jobs)),
        }
