"""Noticing a job that used the thread's default transaction while its
worker ran it in a transaction of its own (``ThreadTransaction``)."""
import logging

import transaction
import transaction.interfaces
import zope.interface

logger = logging.getLogger('m01.remote')


@zope.interface.implementer(transaction.interfaces.ISynchronizer)
class ThreadTransaction:
    """Notices a job that used the thread's default transaction
    (``transaction.get()``) while the worker ran it in a transaction of
    its own: that work would never be committed by the worker.

    It watches through the manager's public synchronizer hook
    (``registerSynch``), which tells a synchronizer of the current
    transaction when it registers and of each one begun after: another
    transaction current after the job than before, or commit or abort
    hooks added to the one open before, give the job away. (A resource
    joining a transaction the thread had open before shows in nothing
    public.)"""

    def __init__(self, manager):
        self.watched = manager is not transaction.manager
        self.began = []
        if self.watched:
            transaction.manager.registerSynch(self)
            self.before = self.began.pop() if self.began else None
            self.hooks = self._hooks(self.before)

    @staticmethod
    def _hooks(txn):
        if txn is None:
            return None
        return tuple(len(list(hooks())) for hooks in (
            txn.getBeforeCommitHooks, txn.getAfterCommitHooks,
            txn.getBeforeAbortHooks, txn.getAfterAbortHooks))

    def _current(self):
        """The thread's current transaction, None when there is none: told
        to a synchronizer registering (``get()`` would begin one)."""
        told = []
        probe = _Told(told)
        transaction.manager.registerSynch(probe)
        transaction.manager.unregisterSynch(probe)
        return told[-1] if told else None

    # ISynchronizer

    def newTransaction(self, txn):
        self.began.append(txn)

    def beforeCompletion(self, txn):
        pass

    def afterCompletion(self, txn):
        pass

    def warnIfJoined(self, job):
        if not self.watched:
            return
        transaction.manager.unregisterSynch(self)
        current = self._current()
        if self.began or current is not self.before or \
                self._hooks(current) != self.hooks:
            logger.warning(
                'Job %s joined the thread\'s default transaction '
                '(transaction.get()); its worker commits another one: join '
                'remoteProcessor.transactionManager.get() instead, or that '
                'work is not stored with the job.', job.__name__)


@zope.interface.implementer(transaction.interfaces.ISynchronizer)
class _Told:
    """A synchronizer noting the transactions it is told of."""

    def __init__(self, told):
        self.newTransaction = told.append

    def beforeCompletion(self, txn):
        pass

    def afterCompletion(self, txn):
        pass

