"""Shared fixtures: the stores, a fresh database per test, and clean
transaction and component-registry state.

Every test that asks for ``database`` (or ``store_uri``) runs on each
store, with its id:

- ``mongomock``: the embedded in-memory store;
- ``mongojava``: mongo-java-server, a MongoDB-wire server whose
  conditional writes are atomic, so the queue takes the path a MongoDB
  deployment takes there (started once per session);
- ``mongodb``: the server named by ``M01_REMOTE_TEST_MONGODB_URI``, only
  when that is set (a real MongoDB, for those who have one).

When a server cannot be had its runs are skipped with the reason, except
under ``CI=true``, where they fail: CI must never go green without them.

``postgres_uri`` is a throw-away PostgreSQL server (the site's own SQL
database beside the queue), started once per session, and
``postgres_database`` a fresh database on it per test; the same rule
holds for them.

The tests are in levels, each a folder (``python -m pytest tests/unit``
runs one): ``unit/`` (no server: cron, settings, pages' formatting, the
wake-ups, the package's layout), ``stores/`` (the contracts of the
store, the processor, the queue and the scheduler, on every store),
``functional/`` (the Pyramid add-on: includeme, directives, every page
and the API through WebTest, the browser), ``spec/`` (the
specification's doctests), ``processes/`` (process workers, the
``m01remote`` command, the fault scenarios). ``support/`` holds what they
share; ``installed/`` is the host site the wheel check runs.
"""
import os

import pytest
import transaction
import zope.component
import zope.component.testing

from m01.remote import store
from support import javaserver, postgres, testserver

URI_VARIABLE = 'M01_REMOTE_TEST_MONGODB_URI'

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Processes the tests start (workers, producers) import the support
# package and the demo site as the tests do (pyproject's pythonpath).
os.environ['PYTHONPATH'] = os.pathsep.join(
    [os.path.join(ROOT, 'tests'), os.path.join(ROOT, 'examples', 'demo')]
    + [path for path in os.environ.get('PYTHONPATH', '').split(os.pathsep)
       if path])


def _on_ci():
    return os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def _unavailable(reason, store):
    _missing('no MongoDB-wire server for the %s tests: %s' % (store, reason))


def _missing(reason):
    """Skip with ``reason``; under CI fail instead."""
    if _on_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _terminal_progress(config):
    """Print to the terminal past pytest's capturing (a build is slow)."""
    reporter = config.pluginmanager.get_plugin('terminalreporter')
    capture = config.pluginmanager.get_plugin('capturemanager')

    def progress(message):
        if reporter is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line('support.testserver: %s' % message)
    return progress


@pytest.fixture(scope='session')
def mongojava_uri(request):
    """The URI of the mongo-java-server (its oplog on, so change streams
    work), started at most once per session, for tests that start
    processes as for the ``mongojava`` store.

    pytest keeps a session fixture's failure, so a missing Java costs one
    attempt, not one per test. Give each process the same database name
    (``database.name`` or ``testserver.unique_database_name()``) and drop
    it at the end.
    """
    server = javaserver.JavaServer(
        oplog=True, progress=_terminal_progress(request.config))
    try:
        server.start()
    except javaserver.JavaServerUnavailable as e:
        server.close()
        _unavailable(str(e), 'mongojava')
    request.addfinalizer(server.close)
    return server.uri


@pytest.fixture(scope='session')
def mongodb_uri():
    """The server named by ``M01_REMOTE_TEST_MONGODB_URI``."""
    uri = os.environ.get(URI_VARIABLE)
    client = store.connect(uri, serverSelectionTimeoutMS=5000)
    try:
        client.admin.command('ping')
    except Exception as e:  # any failure means: no usable server
        # pymongo appends its whole topology description; the first
        # part says what went wrong.
        reason = str(e).split(' (configured timeouts')[0]
        _unavailable('%s=%s does not answer ping: %s'
                     % (URI_VARIABLE, uri, reason), 'mongodb')
    finally:
        client.close()
    return uri


@pytest.fixture(scope='session')
def postgres_uri(request):
    """The URI of a throw-away PostgreSQL server (its ``postgres``
    database), started at most once per session."""
    server = postgres.PostgresServer()
    try:
        server.start()
    except postgres.PostgresUnavailable as e:
        server.close()
        _missing('no PostgreSQL server for the SQL tests: %s' % e)
    request.addfinalizer(server.close)
    return server.uri


@pytest.fixture
def postgres_database(postgres_uri):
    """The URI of a fresh, uniquely named PostgreSQL database, dropped
    after the test."""
    with postgres.scratch_database(postgres_uri) as uri:
        yield uri


#: The stores every storage test runs on, in this order.
STORES = [
    pytest.param('mongomock', id='mongomock'),
    pytest.param('mongojava', id='mongojava', marks=pytest.mark.mongojava),
] + ([pytest.param('mongodb', id='mongodb', marks=pytest.mark.mongodb)]
     if os.environ.get(URI_VARIABLE) else [])


@pytest.fixture(params=STORES)
def store_uri(request):
    """``mongomock://`` or the URI of one of the servers."""
    if request.param == 'mongomock':
        return 'mongomock://'
    return request.getfixturevalue('%s_uri' % request.param)


def _fresh_database(uri):
    with testserver.scratch_database(uri) as database:
        yield database


@pytest.fixture
def database(store_uri):
    """A fresh, uniquely named database on each store, dropped after."""
    yield from _fresh_database(store_uri)


@pytest.fixture
def mongomock_database():
    """A fresh database on the embedded store only, for fast unit tests."""
    yield from _fresh_database('mongomock://')


@pytest.fixture(autouse=True)
def _clean_transaction():
    # A test that fails mid-transaction must not leave its pending work
    # (jobs joined to the thread's transaction) to the next test.
    transaction.abort()
    yield
    transaction.abort()


@pytest.fixture
def global_registry():
    """zope.component's global site manager, emptied before and after."""
    zope.component.testing.setUp()
    yield zope.component.getGlobalSiteManager()
    zope.component.testing.tearDown()
