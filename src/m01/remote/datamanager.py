"""Joining the ``transaction``: queue writes are buffered until commit.

MongoDB (and FerretDB v1 in particular) gives us no two-phase commit, so
the buffered writes run in ``tpc_vote`` and the data manager sorts last:
every other participant has voted by then, and a failed write still
aborts the whole transaction.
"""
import copy

import transaction.interfaces
import zope.interface


@zope.interface.implementer(transaction.interfaces.IDataManager)
class QueueDataManager:
    """The pending writes of one processor in one transaction."""

    def __init__(self, processor, transactionManager):
        self.processor = processor
        self.transaction_manager = transactionManager
        # Documents of jobs added in this transaction, in order; one
        # insert_many stores them all.
        self.inserts = []
        # jobid -> fields set on a stored job by this transaction, so the
        # processor shows its own pending changes before the commit.
        self.updates = {}
        # Conditional writes, each a callable run once at commit.
        self.writes = []
        self.wakeWorkers = False

    def pendingDocument(self, jobid):
        for document in self.inserts:
            if str(document['_id']) == jobid:
                return document
        return None

    def addWrite(self, write, jobid=None, fields=None, wake=False):
        self.writes.append(write)
        if jobid is not None and fields:
            self.updates.setdefault(jobid, {}).update(fields)
        self.wakeWorkers = self.wakeWorkers or wake

    def _clear(self):
        self.inserts = []
        self.updates = {}
        self.writes = []
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
            self.processor.insertJobDocuments(self.inserts)
        for write in self.writes:
            write()

    def tpc_finish(self, txn):
        if self.inserts or self.wakeWorkers:
            self.processor.wakeWorkers()
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
        self.wakeWorkers = dataManager.wakeWorkers

    def rollback(self):
        dm = self.dataManager
        dm.inserts = copy.deepcopy(self.inserts)
        dm.updates = copy.deepcopy(self.updates)
        dm.writes = list(self.writes)
        dm.wakeWorkers = self.wakeWorkers
