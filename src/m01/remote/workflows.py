"""The processor's dependencies, chains and groups (``IRemoteProcessor``):
a part of ``RemoteProcessor``, which inherits it.

A job added with ``dependsOn`` waits (``queue.dependencies`` tells how it
is released); a chain and a group are jobs added together, in one
transaction, depending on each other and named by one workflow id.
"""
import functools

import bson

from m01.remote.interfaces import WAITING
from m01.remote.queue.changes import cancelling
from m01.remote.queue.dependencies import (
    CANCEL,
    DEPENDENTS,
    RUN,
    applyDependencies,
    checkDependencies,
    checkOnFailure,
    checkSteps,
    settling,
)
from m01.remote.queue.updates import CANCEL_REFUSED, CANCELLABLE


class ProcessorWorkflows:
    """What ``RemoteProcessor`` does for jobs depending on others."""

    def _dependOn(self, document, dependsOn, onFailure, immediate):
        """Make the new job ``document`` depend on the jobs ``dependsOn``
        (``IRemoteProcessor.addJob``)."""
        checkOnFailure(onFailure)
        if dependsOn is not None:
            oids = checkDependencies(dependsOn)
            applyDependencies(document, oids,
                              self._dependencyStatuses(oids, immediate),
                              onFailure, document['created'])

    def _cancelling(self, document):
        """The write cancelling the stored job ``document``."""
        return cancelling(self.jobWrites, self.keys, self.counters,
                          self.now, document, self.dependencies)

    def _settle(self, document, immediate):
        """The job ``document``, if waiting, is stored (``immediate``) or
        will be when the transaction commits: mark the jobs it waits for,
        so that their end looks for it (those added in this transaction
        at once, the stored ones with it), and release it from those that
        ended before it was stored."""
        if document['status'] != WAITING:
            return
        txn = None if immediate else self.transactionManager.get()
        stored = []
        for oid in document['waitingFor']:
            pending = self.pending.addedDocument(str(oid))
            if pending is not None:
                pending[DEPENDENTS] = True
            else:
                stored.append(oid)
        if txn is None:
            self.dependencies.mark(stored)
            self.dependencies.settle([document['_id']])
            return
        if stored:
            self.pending.dataManager().addWrite(
                functools.partial(self.dependencies.mark, stored))
        txn.addAfterCommitHook(settling(self.dependencies, document['_id']))

    @staticmethod
    def _checkCancellable(jobid, document):
        """ValueError unless the job ``document`` may be cancelled: it
        waits, is queued or runs."""
        if document['status'] not in CANCELLABLE:
            raise ValueError(CANCEL_REFUSED % (jobid, document['status']))

    def _dependencyStatuses(self, oids, immediate=False):
        """``{oid: status}`` of the jobs ``oids``, added in this
        transaction or stored; ValueError naming an unknown one (or one
        not stored yet, for a job stored ``immediate``)."""
        statuses = {}
        for oid in oids:
            pending = self.pending.addedDocument(str(oid))
            if pending is not None and immediate:
                raise ValueError(
                    'Job %s in dependsOn is stored when the transaction '
                    'commits: add its dependents in it, not immediate'
                    % oid)
            if pending is not None:
                statuses[oid] = pending['status']
        statuses.update(self.dependencies.statuses(
            [oid for oid in oids if oid not in statuses]))
        unknown = [str(oid) for oid in oids if oid not in statuses]
        if unknown:
            raise ValueError('Unknown job %s in dependsOn'
                             % ', '.join(unknown))
        return statuses

    def addChain(self, jobs, onFailure=CANCEL):
        steps = checkSteps(jobs)
        checkOnFailure(onFailure)
        return self._addWorkflow(steps, None, onFailure, chain=True)

    def addGroup(self, jobs, callback=None, onFailure=RUN):
        steps = checkSteps(jobs)
        if callback is not None:
            callback = checkSteps([callback], 'callback')[0]
        checkOnFailure(onFailure)
        return self._addWorkflow(steps, callback, onFailure, chain=False)

    def _addWorkflow(self, steps, callback, onFailure, chain):
        workflow = bson.ObjectId()
        # Joined before the savepoint, so that its rollback empties our
        # buffer: the jobs are added all, or none.
        self.pending.dataManager()
        savepoint = self.transactionManager.get().savepoint(optimistic=True)
        try:
            added = []
            for step in steps:
                dependsOn = added[-1:] if chain and added else None
                added.append(self._addStep(step, dependsOn, onFailure,
                                           workflow))
            last = None
            if callback is not None:
                last = self._addStep(callback, added, onFailure, workflow)
        except BaseException:
            savepoint.rollback()
            raise
        return {'workflow': str(workflow), 'jobs': added, 'callback': last}

    def _addStep(self, step, dependsOn, onFailure, workflow):
        jobid = self.addJob(dependsOn=dependsOn, onFailure=onFailure,
                            **step)
        # Not stored yet: it is, with its workflow, at the commit.
        self.pending.addedDocument(jobid)['workflow'] = workflow
        return jobid

    def getDependencyResults(self, jobid):
        return self.dependencies.results(self._document(jobid)['_id'])
