"""Claiming due jobs for this process's workers.

Each claim is one conditional write of ``IJobWrites`` (``claimNext``, a
batch's ``claimMany``, a named job's ``claimJob``). Around it: jobs of a
paused factory are left out, and so is every job while an operator has
asked this process to take none (``IProcessMonitor.quiet``); a job of a
factory with a concurrency limit starts only with one of its slots, or
goes back to the queue in its place; a claimed job whose class this
process lacks is a failed attempt at once; every job claimed has its
lease renewed from its claim on.
"""
import os
import socket

from m01.remote.clock import toBSONTime
from m01.remote.job import UnknownJobClassError, loadJob


class Claims:
    """The claims of one processor's workers, made with ``jobWrites``
    (``IJobWrites``) for the worker ``name`` of this process: ``factories``
    says which factories are paused or capped and their limits, ``slots``
    holds the concurrency slots (``ConcurrencySlots``), ``leases`` renews
    the claimed jobs' leases (``LeaseKeeper``), ``runner`` fails a job
    that cannot load (``JobRunner``), ``monitor`` says whether an operator
    quieted this process (``IProcessMonitor``) and ``now`` tells the
    time."""

    #: How often a claim skips a factory at its concurrency limit and
    #: claims again.
    rounds = 5

    def __init__(self, name, jobWrites, factories, slots, leases, runner,
                 monitor, now):
        self.name = name
        self.jobWrites = jobWrites
        self.factories = factories
        self.slots = slots
        self.leases = leases
        self.runner = runner
        self.monitor = monitor
        self.now = now

    @property
    def workerId(self):
        # Read at each claim: a forked process has another pid.
        return '%s:%d:%s' % (socket.gethostname(), os.getpid(), self.name)

    def _time(self, callTime):
        return toBSONTime(callTime) if callTime else self.now()

    def next(self, jobQuery=None, callTime=None):
        """The first due job (``pullNextJob``), claimed, or None."""
        if self.monitor.quiet:
            return None      # an operator asked this process to take none
        now = self._time(callTime)
        excluded = set(self.factories.pausedNames())
        for _ in range(self.rounds):
            excluded |= self.slots.fullNames()
            document = self.jobWrites.claimNext(
                now, self.workerId, self.leases.leaseTime, jobQuery,
                excluded)
            if document is None:
                return None
            if self._takeSlot(document):
                return self._loaded(document, now)
            excluded.add(document['name'])
        return None

    def many(self, limit, jobQuery=None, callTime=None):
        """Up to ``limit`` due jobs claimed at once (``pullNextJobs``), in
        claim order. Jobs of factories with a concurrency limit are not
        batched: one of them is claimed singly beside the batch, with its
        slot."""
        if self.monitor.quiet:
            return []        # an operator asked this process to take none
        if limit <= 1:
            job = self.next(jobQuery, callTime)
            return [job] if job is not None else []
        now = self._time(callTime)
        capped = self.factories.cappedNames()
        excluded = set(self.factories.pausedNames()) | capped
        documents = self.jobWrites.claimMany(
            now, self.workerId, self.leases.leaseTime, limit, jobQuery,
            excluded)
        jobs = [job for job in (self._loaded(document, now)
                                for document in documents)
                if job is not None]
        if capped and len(documents) < limit:
            onlyCapped = {'name': {'$in': sorted(capped)}}
            job = self.next(
                {'$and': [jobQuery, onlyCapped]} if jobQuery else onlyCapped,
                callTime)
            if job is not None:
                jobs.append(job)
        return jobs

    def one(self, oid):
        """The queued job ``oid`` claimed, or None."""
        now = self.now()
        document = self.jobWrites.claimJob(oid, now, self.workerId,
                                           self.leases.leaseTime)
        if document is None or not self._takeSlot(document):
            return None
        return self._loaded(document, now)

    def _takeSlot(self, document):
        """Whether the claimed job may start: its factory has no
        concurrency limit, or a slot was free (``document['slot']``). If
        not, the job went back to the queue."""
        try:
            limit = self.factories.factory(document['name']).concurrency
        except KeyError:
            limit = None
        if not limit:
            return True
        slot = self.slots.acquire(document['name'], limit, document['_id'],
                                  document['claim'])
        if slot is None:
            self.jobWrites.unclaim(document['_id'], document['claim'])
            return False
        document['slot'] = slot
        return True

    def _loaded(self, document, now):
        try:
            job = loadJob(document)
        except UnknownJobClassError as error:
            self.runner.failUnloadable(document, error, now)
            if document.get('slot'):
                self.slots.release(document['slot'], document['claim'])
            return None
        job.slot = document.get('slot')
        # Renewed from the claim on: a claimed job may wait for its
        # thread, or for the jobs before it in its batch.
        self.leases.add(job.__name__, job.claim,
                        expires=document.get('leaseExpires'))
        return job
