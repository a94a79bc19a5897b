"""A host site on ZODB with the queue beside it, for tests and
benchmarks.

pyramid_zodbconn opens a connection of a FileStorage (``Data.fs`` in
``directory``) in the request's transaction (``request.tm``, pyramid_tm's
explicit manager), pyramid_retry retries what ZODB refuses with a
``ConflictError`` (3 attempts by default), and ``config.include(
'm01.remote')`` keeps the queue at ``store_uri``.

Its one view, ``POST /changes`` with ``id``, appends the change ``id``
to one persistent ledger that every request changes, and adds a
``record`` job whose input names it. Two requests that change the ledger
at once conflict: the one that commits second gets a ConflictError and
is run again. ``tally()`` compares the ledger with the stored jobs::

    from support.zodbsite import LedgerSite

    site = LedgerSite(directory, store_uri, 'm01test')
    site.postChanges(range(1, 201), threads=4)
    site.tally()   # {'committed': ..., 'jobs': ..., 'orphans': 0, ...}
    site.close()
"""
import collections
import os

import persistent
import pyramid.request
import transaction
import ZODB
import ZODB.FileStorage
from pyramid.config import Configurator
from pyramid_retry import IBeforeRetry
from pyramid_zodbconn import get_connection

from m01.remote.interfaces import IRemoteProcessor
from m01.remote.job import Job
from support import hostrequests


class Ledger(persistent.Persistent):
    """The changes committed, in order."""

    def __init__(self):
        self.changes = ()

    def add(self, change):
        self.changes += (change,)


class RecordJob(Job):
    """The site's job: records the change its input names."""

    def __call__(self, remoteProcessor):
        return 'recorded change %s' % self.input['change']


def add_change(request):
    change = int(request.params['id'])
    ledger = get_connection(request).root()['ledger']
    ledger.add(change)
    jobid = request.remote_processor.addJob('record', {'change': change})
    registry = request.registry
    txn = request.tm.get()
    for hook in registry.before_commit:
        txn.addBeforeCommitHook(hook)
    registry.before_commit[:] = []
    registry.counts.watch(txn)
    return {'change': change, 'job': jobid}


def make_app(path, store_uri, store_database, attempts=3, pool_size=7):
    """The site's WSGI application on the FileStorage at ``path``, with
    ``pool_size`` connections kept open."""
    config = Configurator(settings={
        'tm.manager_hook': 'pyramid_tm.explicit_manager',
        'retry.attempts': str(attempts),
        'zodbconn.uri': 'file://%s?connection_pool_size=%d' % (path,
                                                               pool_size),
        'm01.remote.uri': store_uri,
        'm01.remote.database': store_database,
        'm01.remote.pages': 'false',
    })
    config.include('pyramid_retry')
    config.include('pyramid_zodbconn')
    config.include('m01.remote')
    config.add_remote_job_factory('record', RecordJob)
    config.add_route('changes', '/changes')
    config.add_view(add_change, route_name='changes', request_method='POST',
                    renderer='json', require_csrf=False)
    config.add_subscriber(hostrequests.count_retry, IBeforeRetry)
    config.registry.counts = hostrequests.Counts()
    # Callables run (once) before the commit of the next change.
    config.registry.before_commit = []
    return config.make_wsgi_app()


class LedgerSite:
    """The site with its FileStorage in ``directory`` and the queue's
    store at ``store_uri`` (database ``store_database``)."""

    def __init__(self, directory, store_uri, store_database, attempts=3,
                 pool_size=7):
        self.path = os.path.join(str(directory), 'Data.fs')
        # The ledger exists before the first request (the storage is
        # closed again: pyramid_zodbconn opens it).
        db = ZODB.DB(ZODB.FileStorage.FileStorage(self.path))
        with db.transaction() as connection:
            connection.root()['ledger'] = Ledger()
        db.close()
        self.app = make_app(self.path, store_uri, store_database,
                            attempts=attempts, pool_size=pool_size)
        self.processor = self.app.registry.getUtility(IRemoteProcessor)
        self.counts = self.app.registry.counts
        # A connection of the site's database, outside the requests.
        request = pyramid.request.Request.blank('/')
        request.registry = self.app.registry
        self.manager = transaction.TransactionManager()
        self.connection = get_connection(request).db().open(
            transaction_manager=self.manager)

    def close(self):
        self.processor.close()
        db = self.connection.db()
        self.manager.abort()
        self.connection.close()
        db.close()

    def postChange(self, change):
        """POST one change; the response, or the exception that ended
        it."""
        return hostrequests.post(self.app, '/changes', {'id': change})

    def postChanges(self, changes, threads=4):
        """POST ``changes`` from ``threads`` threads; a Counter of the
        outcomes (``'ok'`` or the exception's class name)."""
        return hostrequests.post_all(
            self.app, '/changes', [{'id': change} for change in changes],
            threads=threads)

    def interleaveRival(self, change):
        """Have a rival change the ledger and commit just before the next
        request's transaction commits: that request's commit fails with a
        ConflictError, and pyramid_retry runs it again."""
        def commit_rival():
            manager = transaction.TransactionManager()
            connection = self.connection.db().open(
                transaction_manager=manager)
            try:
                connection.root()['ledger'].add(change)
                manager.commit()
            finally:
                connection.close()
        self.app.registry.before_commit.append(commit_rival)

    def committedChanges(self):
        """The changes in the committed ledger, in order."""
        self.manager.begin()  # the latest committed state
        return list(self.connection.root()['ledger'].changes)

    def storedJobs(self):
        """The changes the stored ``record`` jobs name, one per job."""
        return [document['input']['change'] for document in
                self.processor.jobsCollection.find(
                    {'name': 'record'}, {'input': 1})]

    def tally(self, rivals=()):
        """As ``sqlsite.OrderSite.tally``: committed changes (but the
        ``rivals``), jobs, orphans, extras and missing."""
        committed = collections.Counter(
            change for change in self.committedChanges()
            if change not in rivals)
        jobs = collections.Counter(self.storedJobs())
        return {
            'committed': sum(committed.values()),
            'jobs': sum(jobs.values()),
            'orphans': sum(n for change, n in jobs.items()
                           if change not in committed),
            'extras': sum(max(n - committed[change], 0)
                          for change, n in jobs.items()
                          if change in committed),
            'missing': sum(max(n - jobs[change], 0)
                           for change, n in committed.items()),
        }
