"""Joining the ``transaction``: queue writes are buffered until commit.

MongoDB gives us no two-phase commit, so
the buffered writes run in ``tpc_vote`` and the data manager sorts last:
every other participant has voted by then, and a failed write still
aborts the whole transaction.

Which transaction: the current one of the transaction manager of the
unit of work. A request's is pyramid_tm's ``request.tm`` (the thread's
default manager, or an explicit one); a worker loop owns one of its own.
``QueueTransaction`` is a processor's share of one manager's
transactions.
"""
import copy

import transaction.interfaces
import zope.interface


@zope.interface.implementer(transaction.interfaces.IDataManager)
class QueueDataManager:
    """The pending writes of one processor in one transaction.

    At commit, ``insertJobs(documents)`` stores the jobs added, then the
    conditional writes run, then ``finishOutcomes(outcomes)`` stores the
    outcomes of the jobs run in the transaction (one command for all,
    where the server allows) and answers which were refused (each
    outcome's ``refused`` or ``stored`` callback is called); once
    committed, ``wakeWorkers()`` is called if there was anything for a
    worker.
    """

    def __init__(self, transactionManager, insertJobs, wakeWorkers,
                 finishOutcomes=None):
        self.transaction_manager = transactionManager
        self._insertJobs = insertJobs
        self._wakeWorkers = wakeWorkers
        self._finishOutcomes = finishOutcomes
        # Documents of jobs added in this transaction, in order; one
        # insert_many stores them all.
        self.inserts = []
        # jobid -> fields set on a stored job by this transaction, so the
        # processor shows its own pending changes before the commit.
        self.updates = {}
        # Conditional writes, each a callable run once at commit.
        self.writes = []
        # (oid, claim, update, refused, stored): job outcomes, stored
        # together; ``refused()`` is called for one its claim no longer
        # holds, ``stored()`` (when given) for the others.
        self.outcomes = []
        self.wakeWorkers = False

    def pendingDocument(self, jobid):
        for document in self.inserts:
            if str(document['_id']) == jobid:
                return document
        return None

    def addWrite(self, write, jobid=None, fields=None, wake=False):
        self.writes.append(write)
        if jobid is not None and fields:
            self.noteChange(jobid, fields)
        self.wakeWorkers = self.wakeWorkers or wake

    def addOutcome(self, oid, claim, update, refused, stored=None):
        self.outcomes.append((oid, claim, update, refused, stored))
        self.wakeWorkers = True

    def noteChange(self, jobid, fields):
        """Show ``fields`` on the job ``jobid`` until the commit."""
        self.updates.setdefault(jobid, {}).update(fields)

    def _clear(self):
        self.inserts = []
        self.updates = {}
        self.writes = []
        self.outcomes = []
        self.wakeWorkers = False

    # IDataManager

    def abort(self, txn):
        self._clear()

    def tpc_begin(self, txn):
        pass

    def commit(self, txn):
        pass

    def tpc_vote(self, txn):
        if self.inserts:
            self._insertJobs(self.inserts)
        for write in self.writes:
            write()
        if self.outcomes:
            refused = set(self._finishOutcomes(
                [(oid, claim, update)
                 for oid, claim, update, _, _ in self.outcomes]))
            for oid, _, _, onRefused, onStored in self.outcomes:
                if oid in refused:
                    onRefused()
                elif onStored is not None:
                    onStored()

    def tpc_finish(self, txn):
        if self.inserts or self.wakeWorkers:
            self._wakeWorkers()
        self._clear()

    def tpc_abort(self, txn):
        self._clear()

    def sortKey(self):
        return '~m01.remote:%d' % id(self)

    def savepoint(self):
        return QueueSavepoint(self)


@zope.interface.implementer(transaction.interfaces.IDataManagerSavepoint)
class QueueSavepoint:

    def __init__(self, dataManager):
        self.dataManager = dataManager
        self.inserts = copy.deepcopy(dataManager.inserts)
        self.updates = copy.deepcopy(dataManager.updates)
        self.writes = list(dataManager.writes)
        self.outcomes = list(dataManager.outcomes)
        self.wakeWorkers = dataManager.wakeWorkers

    def rollback(self):
        dm = self.dataManager
        dm.inserts = copy.deepcopy(self.inserts)
        dm.updates = copy.deepcopy(self.updates)
        dm.writes = list(self.writes)
        dm.outcomes = list(self.outcomes)
        dm.wakeWorkers = self.wakeWorkers


class QueueTransaction:
    """A processor's writes in the current transaction of
    ``transactionManager``: the data manager joined to it (``key``, shared
    by every binding of one processor, finds it again), and the jobs the
    transaction added or changed, which the processor shows before the
    commit."""

    def __init__(self, transactionManager, key, insertJobs, wakeWorkers,
                 finishOutcomes=None):
        self.transactionManager = transactionManager
        self._key = key
        self._insertJobs = insertJobs
        self._wakeWorkers = wakeWorkers
        self._finishOutcomes = finishOutcomes

    def dataManager(self, join=True):
        """The data manager of the current transaction; joined to it when
        there is none yet, or None when ``join`` is false."""
        txn = self.transactionManager.get()
        try:
            return txn.data(self._key)
        except KeyError:
            if not join:
                return None
        dm = QueueDataManager(self.transactionManager, self._insertJobs,
                              self._wakeWorkers, self._finishOutcomes)
        txn.join(dm)
        txn.set_data(self._key, dm)
        return dm

    def addedDocuments(self):
        """The documents of the jobs added in this transaction."""
        dm = self.dataManager(join=False)
        return list(dm.inserts) if dm is not None else []

    def addedDocument(self, jobid):
        """The document of the job ``jobid`` if this transaction added
        it, else None."""
        dm = self.dataManager(join=False)
        return dm.pendingDocument(jobid) if dm is not None else None

    def withChanges(self, document):
        """A stored job's document with the fields this transaction set.
        """
        dm = self.dataManager(join=False)
        if dm is not None and str(document['_id']) in dm.updates:
            document = dict(document, **dm.updates[str(document['_id'])])
        return document

