"""Joining the ``transaction``: queue writes are buffered until commit.

MongoDB gives us no two-phase commit, so the buffered writes run in
``tpc_vote`` of a data manager that votes after every other participant
(the last-resource order, see ``QueueDataManager.sortKey``): a
participant that refuses (a one-phase SQL COMMIT) does so before
anything is written, and a failed write still aborts the participants
that only prepared.

Which transaction: the current one of the transaction manager of the
unit of work. A request's is pyramid_tm's ``request.tm`` (the thread's
default manager, or an explicit one); a worker loop owns one of its own.
``QueueTransaction`` is a processor's share of one manager's
transactions.
"""
import copy

import transaction.interfaces
import zope.interface

#: The first character of the queue's sort key: U+10FFFF, the greatest
#: code point, a noncharacter that no name or path begins with.
LAST = '\U0010ffff'


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
        # Whether an outbox takes the jobs added at commit.
        self.followed = False

    def pendingDocument(self, jobid):
        for document in self.inserts:
            if str(document['_id']) == jobid:
                return document
        return None

    def takeInserts(self):
        """The documents of the jobs added, handed over to be stored
        another way (the outbox); the commit inserts none of them."""
        documents, self.inserts = self.inserts, []
        return documents

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
        """Sort after every other participant, so vote after them.

        ``transaction`` calls the participants' ``tpc_vote`` in the order
        of their sort keys, compared as strings. zope.sqlalchemy's
        one-phase data manager (``'~sqlalchemy:<n>'``) runs the SQL
        COMMIT in its ``tpc_vote``, which PostgreSQL may refuse (a
        serialization failure, a deferred constraint): our writes must
        come after it, or a refused COMMIT leaves jobs behind (the
        ``'~m01.remote:<n>'`` of earlier releases sorted before it). Its
        two-phase data manager (``'sqlalchemy.twophase:<n>'``) and a ZODB
        connection (its storage's key, a file name for a FileStorage)
        prepare in ``tpc_vote`` and commit in ``tpc_finish``: writing
        after they prepared, a failed write still aborts them.

        ``'~'`` is the greatest printable ASCII character, and other
        packages begin keys with one or more of it to vote late; the
        queue's key begins with ``LAST`` (U+10FFFF), above every
        character, so it sorts after any key that does not begin with
        that same noncharacter. Only one participant that cannot prepare
        can be last; with a one-phase SQL session, it is the queue.
        """
        return '%sm01.remote:%d' % (LAST, id(self))

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
    commit.

    ``follow(transaction, dataManager)``, when given, is called once per
    transaction, as the first job is added: the outbox takes the jobs
    added from the data manager at commit (``IJobOutbox.follow``)."""

    def __init__(self, transactionManager, key, insertJobs, wakeWorkers,
                 finishOutcomes=None, follow=None):
        self.transactionManager = transactionManager
        self._key = key
        self._insertJobs = insertJobs
        self._wakeWorkers = wakeWorkers
        self._finishOutcomes = finishOutcomes
        self._follow = follow

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

    def add(self, document):
        """Add a job's document to the current transaction: stored when
        it commits (by the outbox, when this follows one)."""
        dm = self.dataManager()
        dm.inserts.append(document)
        if self._follow is not None and not dm.followed:
            dm.followed = True
            self._follow(self.transactionManager.get(), dm)

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

