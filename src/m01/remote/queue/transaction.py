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

The attempts of jobs run in the transaction (a worker's unit of work:
one job, or a batch) are stored with what they wrote, or not at all
(``m01.remote.queue.runner`` tells the whole story):

- ``commit`` (called on every participant before any votes, so before a
  one-phase SQL session commits) fences the unit: one conditional write
  per attempt, renewing its lease while the job is still processing
  under the attempt's claim (``holdClaims``; skipped when no other
  participant takes part, the outcomes, written first and each
  conditional on its claim, being fence enough: a refused one has its
  own queue writes dropped at the vote, and the others are stored, not
  given back to run again). If one claim no longer holds (the job was
  cancelled, timed out or taken over since it ran) it raises
  ``AttemptRefused``: the transaction aborts and nothing is written
  anywhere; the attempts whose claims held are told (``withdrawn``) so
  their worker gives their jobs back to the queue.
- ``tpc_vote`` stores the outcomes first, each conditional on its claim,
  then inserts the jobs added and runs the conditional writes. An
  outcome refused there (a cancel or a timeout that came between the
  fence and the outcome) raises ``AttemptRefused`` when no outcome was
  stored: nothing of the queue is written and every participant that
  has not committed yet aborts. When others were stored (a batch), their
  attempts' writes are written and the refused attempt's own queue
  writes (what it added and changed between its ``mark`` and its
  outcome) are dropped; what it wrote to another resource of the
  transaction is committed with the others', and its log line says so.

A write failing after the outcomes were stored (a duplicate job id, a
job changed meanwhile, the database lost) fails the commit, but those
outcomes stay stored.
"""
import contextvars
import copy

import transaction.interfaces
import zope.interface

from m01.remote.job import AttemptRefused

#: True while a worker's unit of work (one that ran claimed jobs) stores
#: its writes at the vote: the jobs it added and the fields it set are
#: then retried across lost answers, for as long as its claims may hold
#: (``store.retried``). A request's writes are tried once: its error is
#: the request's, and a web request never waits minutes for a server.
HOLDING_CLAIMS = contextvars.ContextVar('m01.remote.holdingClaims',
                                        default=False)

#: The first character of the queue's sort key: U+10FFFF, the greatest
#: code point, a noncharacter that no name or path begins with.
LAST = '\U0010ffff'

#: What became of a refused attempt's writes, by where it was refused.
ABORTED_AT_FENCE = ('its transaction was aborted before anything was '
                    'written: its writes were discarded')
ABORTED_AT_VOTE = ('its transaction was aborted: its writes to the queue '
                   'and to every resource that had not committed yet were '
                   'discarded')
DROPPED_ALONE = ('its writes to the queue were discarded; the other jobs '
                 'of its batch were stored')
DROPPED_AT_VOTE = ('its writes to the queue were discarded, but what it '
                   'wrote to other resources of the transaction was '
                   'committed with the other jobs of its batch')


class PendingOutcome:
    """The outcome of one attempt of the job ``oid`` under ``claim``, and
    where its queue writes begin and end (``(inserts, writes)``
    positions). ``refused(consequence)`` is called if its claim no longer
    holds (``consequence`` says what became of its writes), ``stored()``
    once its outcome was stored, ``withdrawn()`` if its claim held but
    the transaction was aborted for another attempt in it."""

    __slots__ = ('oid', 'claim', 'update', 'start', 'end', 'refused',
                 'stored', 'withdrawn')

    def __init__(self, oid, claim, update, start, end, refused,
                 stored=None, withdrawn=None):
        self.oid = oid
        self.claim = claim
        self.update = update
        self.start = start
        self.end = end
        self.refused = refused
        self.stored = stored
        self.withdrawn = withdrawn


class Edit:
    """The conditional write of the fields set on one loaded job in one
    transaction (``changes``: its ``JobChanges``), kept by the data
    manager under ``key`` so that a savepoint rolls them back too."""

    def __init__(self, dataManager, key, changes):
        self.dataManager = dataManager
        self.key = key
        self.changes = changes

    def __call__(self):
        fields = self.dataManager.edits.get(self.key)
        if fields:
            self.changes.write(dict(fields))


@zope.interface.implementer(transaction.interfaces.IDataManager)
class QueueDataManager:
    """The pending writes of one processor in one transaction.

    At ``commit``, ``holdClaims([(oid, claim)])`` fences the attempts run
    in the transaction and answers which claims no longer hold. At
    ``tpc_vote``, ``finishOutcomes(outcomes)`` stores their outcomes (one
    command for all, where the server allows) and answers which were
    refused; then ``insertJobs(documents)`` stores the jobs added and
    the conditional writes run. Once committed, ``wakeWorkers()`` is
    called if there was anything for a worker.
    """

    def __init__(self, transactionManager, insertJobs, wakeWorkers,
                 finishOutcomes=None, holdClaims=None):
        self.transaction_manager = transactionManager
        self._insertJobs = insertJobs
        self._wakeWorkers = wakeWorkers
        self._finishOutcomes = finishOutcomes
        self._holdClaims = holdClaims
        self._clear()
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

    def addEdit(self, changes, jobid, fields):
        """Set ``fields`` on the stored job ``jobid`` at commit, by
        ``changes.write(fields)`` (a ``JobChanges``): one write for every
        field set through ``changes`` in this transaction."""
        key = id(changes)
        if key not in self.edits:
            self.edits[key] = {}
            self.writes.append(Edit(self, key, changes))
        self.edits[key].update(fields)
        self.noteChange(jobid, fields)

    def mark(self):
        """Where the writes of an attempt about to run begin: hand it to
        ``addOutcome`` with the attempt's outcome."""
        return (len(self.inserts), len(self.writes))

    def addOutcome(self, oid, claim, update, start, refused, stored=None,
                   withdrawn=None):
        """Store the outcome ``update`` of the attempt of job ``oid``
        under ``claim`` with what it wrote since ``start`` (a ``mark``),
        conditional on its claim (see ``PendingOutcome`` for the callbacks)."""
        self.outcomes.append(PendingOutcome(
            oid, claim, update, start, self.mark(), refused, stored,
            withdrawn))
        self.wakeWorkers = True

    def withdraw(self):
        """The transaction is about to be aborted for none of its
        attempts' own doing (a participant could not roll back to the
        savepoint of a refused or failed one): tell each attempt whose
        outcome was pending (``withdrawn``)."""
        for attempt in self.outcomes:
            if attempt.withdrawn is not None:
                attempt.withdrawn()

    def noteChange(self, jobid, fields):
        """Show ``fields`` on the job ``jobid`` until the commit."""
        self.updates.setdefault(jobid, {}).update(fields)

    def _clear(self):
        # Documents of jobs added in this transaction, in order; one
        # insert_many stores them all.
        self.inserts = []
        # jobid -> fields set on a stored job by this transaction, so the
        # processor shows its own pending changes before the commit.
        self.updates = {}
        # Conditional writes, each a callable run once at commit.
        self.writes = []
        # Edit.key -> the fields an Edit of ``writes`` sets.
        self.edits = {}
        # The attempts run in this transaction (``PendingOutcome``), in
        # order.
        self.outcomes = []
        self.wakeWorkers = False

    def _alone(self, txn):
        """Whether no other resource takes part in ``txn`` (as its list of
        them, ``_resources``, tells; when it cannot be told, not)."""
        resources = getattr(txn, '_resources', None)
        return resources is not None and all(
            resource is self for resource in resources)

    def _without(self, attempts):
        """The inserts and writes of this transaction but those of
        ``attempts``."""
        inserts, writes = set(), set()
        for attempt in attempts:
            inserts.update(range(attempt.start[0], attempt.end[0]))
            writes.update(range(attempt.start[1], attempt.end[1]))
        return ([document for number, document in enumerate(self.inserts)
                 if number not in inserts],
                [write for number, write in enumerate(self.writes)
                 if number not in writes])

    # IDataManager

    def abort(self, txn):
        self._clear()

    def tpc_begin(self, txn):
        pass

    def commit(self, txn):
        if not self.outcomes or self._holdClaims is None:
            return
        if self._alone(txn):
            # Nothing else to commit: the outcomes, stored first at the
            # vote and each conditional on its claim, are the fence; a
            # refused one's queue writes are dropped there.
            return
        lost = set(self._holdClaims(
            [(attempt.oid, attempt.claim) for attempt in self.outcomes]))
        if not lost:
            return
        for attempt in self.outcomes:
            if attempt.oid in lost:
                attempt.refused(ABORTED_AT_FENCE)
            elif attempt.withdrawn is not None:
                attempt.withdrawn()
        raise AttemptRefused(
            'The claim of job %s no longer holds: nothing of its unit of '
            'work is stored' % ', '.join(sorted(str(oid) for oid in lost)),
            lost)

    def tpc_vote(self, txn):
        token = HOLDING_CLAIMS.set(bool(self.outcomes))
        try:
            self._vote(txn)
        finally:
            HOLDING_CLAIMS.reset(token)

    def _vote(self, txn):
        inserts, writes = self.inserts, self.writes
        if self.outcomes:
            lost = set(self._finishOutcomes(
                [(attempt.oid, attempt.claim, attempt.update)
                 for attempt in self.outcomes]))
            refused = [attempt for attempt in self.outcomes
                       if attempt.oid in lost]
            if len(refused) == len(self.outcomes):
                for attempt in refused:
                    attempt.refused(ABORTED_AT_VOTE)
                raise AttemptRefused(
                    'The outcome of job %s was refused: its transaction is '
                    'aborted' % ', '.join(sorted(str(oid) for oid in lost)),
                    lost)
            if refused:
                inserts, writes = self._without(refused)
            dropped = DROPPED_ALONE if self._alone(txn) else DROPPED_AT_VOTE
            for attempt in self.outcomes:
                if attempt.oid in lost:
                    attempt.refused(dropped)
                elif attempt.stored is not None:
                    attempt.stored()
        if inserts:
            self._insertJobs(inserts)
        for write in writes:
            write()

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
        self.edits = copy.deepcopy(dataManager.edits)
        self.outcomes = list(dataManager.outcomes)
        self.wakeWorkers = dataManager.wakeWorkers

    def rollback(self):
        dm = self.dataManager
        dm.inserts = copy.deepcopy(self.inserts)
        dm.updates = copy.deepcopy(self.updates)
        dm.writes = list(self.writes)
        dm.edits = copy.deepcopy(self.edits)
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
                 finishOutcomes=None, follow=None, holdClaims=None):
        self.transactionManager = transactionManager
        self._key = key
        self._insertJobs = insertJobs
        self._wakeWorkers = wakeWorkers
        self._finishOutcomes = finishOutcomes
        self._follow = follow
        self._holdClaims = holdClaims

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
                              self._wakeWorkers, self._finishOutcomes,
                              self._holdClaims)
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

