"""``config.set_remote_outbox()``: a site turns the outbox on."""
import sqlalchemy as sa
import sqlalchemy.orm
import zope.interface
from pyramid.exceptions import ConfigurationError

from m01.remote.interfaces import IJobOutboxFactory
from m01.remote.outbox.jobs import BATCH_SIZE, GRACE, JobOutbox, dbsession
from m01.remote.outbox.table import checkTable, outbox

#: The largest batch a sweep transaction may move.
MAX_BATCH_SIZE = 10000


def findEngine(engine, registry):
    """The ``Engine`` that ``engine`` names: an engine, a ``sessionmaker``
    (its ``bind``), a callable taking the registry and returning either,
    or None for the starter projects' ``registry['dbsession_factory']``.
    """
    if engine is None:
        engine = registry.get('dbsession_factory')
        if engine is None:
            raise ConfigurationError(
                'set_remote_outbox(): name the engine the outbox sweep '
                'uses (engine=...); the registry has no '
                "'dbsession_factory' to take it from")
    if callable(engine) and not isinstance(
            engine, (sa.engine.Engine, sqlalchemy.orm.sessionmaker)):
        engine = engine(registry)
    if isinstance(engine, sqlalchemy.orm.sessionmaker):
        engine = engine.kw.get('bind')
    if not isinstance(engine, sa.engine.Engine):
        raise ConfigurationError(
            'set_remote_outbox(): engine=... gives an SQLAlchemy Engine '
            '(or a sessionmaker bound to one), not %r' % (engine,))
    return engine


@zope.interface.implementer(IJobOutboxFactory)
class OutboxFactory:
    """Makes a processor's ``JobOutbox`` from what the directive was
    given; the engine is found when the first processor is made."""

    def __init__(self, registry, engine, table, sessionOf, batchSize,
                 grace):
        self.registry = registry
        self.engine = engine
        self.table = table
        self.sessionOf = sessionOf
        self.batchSize = batchSize
        self.grace = grace

    def __call__(self, processor):
        return JobOutbox(
            findEngine(self.engine, self.registry), self.table,
            processor.jobWrites, processor.jobWakeup, processor.now,
            sessionOf=self.sessionOf, batchSize=self.batchSize,
            grace=self.grace)


def set_remote_outbox(config, session=None, engine=None, table=None,
                      batch_size=BATCH_SIZE, grace=GRACE):
    """Send the jobs added in a request through the outbox: rows of the
    request's SQL session, committed with the site's own rows, moved into
    the queue after the commit.

    ``session`` is a callable taking the request and returning its
    SQLAlchemy session, which ``request.tm`` commits (zope.sqlalchemy);
    default: ``request.dbsession``. ``engine`` is what the workers' sweep
    connects with: an ``Engine``, a ``sessionmaker`` bound to one, or a
    callable taking the registry and returning either; default: the
    ``registry['dbsession_factory']`` of the Pyramid starter projects.
    ``table`` is the outbox table (``outbox_table(metadata)``), default
    ``m01.remote.outbox.outbox``. ``batch_size`` rows are moved per sweep
    transaction; a sweep takes rows committed at least ``grace`` seconds
    ago. Each argument may be a dotted name.
    """
    session = dbsession if session is None else config.maybe_dotted(session)
    engine = config.maybe_dotted(engine)
    table = outbox if table is None else config.maybe_dotted(table)
    if not callable(session):
        raise ConfigurationError(
            'set_remote_outbox(): session=... is a callable taking the '
            'request and returning its SQLAlchemy session, not %r'
            % (session,))
    try:
        checkTable(table)
    except ValueError as error:
        raise ConfigurationError('set_remote_outbox(): %s' % error)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
            or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigurationError(
            'set_remote_outbox(): batch_size is a whole number from 1 to '
            '%d, not %r' % (MAX_BATCH_SIZE, batch_size))
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) \
            or not 0 <= grace < float('inf'):
        raise ConfigurationError(
            'set_remote_outbox(): grace is a number of seconds >= 0, not %r'
            % (grace,))

    def register():
        config.registry.registerUtility(
            OutboxFactory(config.registry, engine, table, session,
                          batch_size, float(grace)),
            IJobOutboxFactory)

    intr = config.introspectable('m01.remote outbox', table.name,
                                 table.name, 'm01.remote outbox')
    intr['table'] = table
    # Before the processor is made (m01.remote.PROCESSOR_ORDER).
    config.action('m01.remote.outbox', register, introspectables=(intr,))
