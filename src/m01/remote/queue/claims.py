"""Claiming due jobs for this process's workers.

Each claim is one conditional write of ``IJobWrites`` (``claimNext``, a
batch's ``claimMany``, a named job's ``claimJob``). Around it: jobs of a
paused factory are left out, and so is every job while an operator has
asked this process to take none (``IProcessMonitor.quiet``); a job of a
factory with a concurrency limit starts only with one of its slots, or
goes back to the queue in its place; so does a job of a factory or a
queue with a rate limit whose period allows no more starts
(``RateSlots``); a claimed job whose class this process lacks is a
failed attempt at once; every job claimed has its lease renewed from its
claim on. A claim may be restricted to queues (``queues``); the jobs of
a paused queue are left out as those of a paused factory are.
"""
import os
import socket

from m01.remote.clock import toBSONTime
from m01.remote.job import DEFAULT_QUEUE, UnknownJobClassError, loadJob
from m01.remote.queue.dependencies import DEPENDENTS
from m01.remote.queue.rates import factoryScope, queueScope


class Claims:
    """The claims of one processor's workers, made with ``jobWrites``
    (``IJobWrites``) for the worker ``name`` of this process: ``factories``
    says which factories are paused or capped and their limits, ``slots``
    holds the concurrency slots (``ConcurrencySlots``), ``leases`` renews
    the claimed jobs' leases (``LeaseKeeper``), ``runner`` fails a job
    that cannot load (``JobRunner``), ``monitor`` says whether an operator
    quieted this process (``IProcessMonitor``), ``queues`` holds the
    queues' settings (``QueueSettings``), ``rates`` the rate limit slots
    (``RateSlots``) and ``now`` tells the time."""

    #: How often a claim skips a factory at its concurrency limit and
    #: claims again.
    rounds = 5

    def __init__(self, name, jobWrites, factories, slots, leases, runner,
                 monitor, now, queues, rates):
        self.name = name
        self.jobWrites = jobWrites
        self.factories = factories
        self.slots = slots
        self.leases = leases
        self.runner = runner
        self.monitor = monitor
        self.now = now
        self.queues = queues
        self.rates = rates

    @property
    def workerId(self):
        # Read at each claim: a forked process has another pid.
        return '%s:%d:%s' % (socket.gethostname(), os.getpid(), self.name)

    def _time(self, callTime):
        return toBSONTime(callTime) if callTime else self.now()

    def _excluded(self, now, queues):
        """The factories and queues a claim at ``now`` leaves out, or None
        when none of ``queues`` may be claimed from."""
        names = set(self.factories.pausedNames())
        excludedQueues = set(self.queues.pausedNames())
        for scope in self.rates.fullScopes(now):
            kind, _, name = scope.partition(':')
            if kind == 'factory':
                names.add(name)
            elif self.queues.rateLimit(name):    # not lifted meanwhile
                excludedQueues.add(name)
        if queues is not None and not set(queues) - excludedQueues:
            return None
        return names, excludedQueues

    def next(self, jobQuery=None, callTime=None, queues=None):
        """The first due job (``pullNextJob``) of ``queues`` (None: of
        any), claimed, or None."""
        if self.monitor.quiet:
            return None      # an operator asked this process to take none
        now = self._time(callTime)
        excluded = self._excluded(now, queues)
        if excluded is None:
            return None
        excluded, excludedQueues = excluded
        for _ in range(self.rounds):
            excluded |= self.slots.fullNames()
            document = self.jobWrites.claimNext(
                now, self.workerId, self.leases.leaseTime, jobQuery,
                excluded, queues, excludedQueues)
            if document is None:
                return None
            if self._takeSlot(document):
                if self._takeRates(document, now):
                    return self._loaded(document, now)
                excludedQueues |= self._fullQueues(now)
                if queues is not None and \
                        not set(queues) - excludedQueues:
                    return None
            excluded.add(document['name'])
        return None

    def many(self, limit, jobQuery=None, callTime=None, queues=None):
        """Up to ``limit`` due jobs of ``queues`` (None: of any) claimed at
        once (``pullNextJobs``), in claim order. Jobs of factories with a
        concurrency limit are not batched: one of them is claimed singly
        beside the batch, with its slot. A job over a rate limit goes back
        to the queue, and so do the later jobs of the batch under that
        limit."""
        if self.monitor.quiet:
            return []        # an operator asked this process to take none
        if limit <= 1:
            job = self.next(jobQuery, callTime, queues)
            return [job] if job is not None else []
        now = self._time(callTime)
        excluded = self._excluded(now, queues)
        if excluded is None:
            return []
        excluded, excludedQueues = excluded
        capped = self.factories.cappedNames()
        excluded |= capped
        documents = self.jobWrites.claimMany(
            now, self.workerId, self.leases.leaseTime, limit, jobQuery,
            excluded, queues, excludedQueues)
        jobs = [job for job in (self._loaded(document, now)
                                for document in documents
                                if self._takeRates(document, now))
                if job is not None]
        if capped and len(documents) < limit:
            onlyCapped = {'name': {'$in': sorted(capped)}}
            job = self.next(
                {'$and': [jobQuery, onlyCapped]} if jobQuery else onlyCapped,
                callTime, queues)
            if job is not None:
                jobs.append(job)
        return jobs

    def _fullQueues(self, now):
        return {scope.partition(':')[2]
                for scope in self.rates.fullScopes(now)
                if scope.startswith('queue:')}

    def _limits(self, document):
        """The rate limits on the claimed job: ``(scope, limit)`` pairs."""
        limits = []
        try:
            limit = self.factories.factory(document['name']).rateLimit
        except KeyError:
            limit = None
        if limit:
            limits.append((factoryScope(document['name']), limit))
        queue = document.get('queue') or DEFAULT_QUEUE
        limit = self.queues.rateLimit(queue)
        if limit:
            limits.append((queueScope(queue), limit))
        return limits

    def _takeRates(self, document, now):
        """Whether the claimed job may start under the rate limits on it:
        a start of each was free at ``now``. If not, the job went back to
        the queue (its concurrency slot released)."""
        limits = self._limits(document)
        if not limits:
            return True
        full = self.rates.fullScopes(now)
        taken = []
        for scope, limit in limits:
            slot = None if scope in full else self.rates.take(
                scope, limit, now, document['_id'])
            if slot is None:
                for each in taken:
                    self.rates.giveBack(each, document['_id'], now)
                if document.get('slot'):
                    self.slots.release(document['slot'], document['claim'])
                self.jobWrites.unclaim(document['_id'], document['claim'])
                return False
            taken.append(slot)
        return True

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
        # Whether jobs wait for it: its end releases them.
        job.hasDependents = bool(document.get(DEPENDENTS))
        # Renewed from the claim on: a claimed job may wait for its
        # thread, or for the jobs before it in its batch.
        self.leases.add(job.__name__, job.claim,
                        expires=document.get('leaseExpires'))
        return job
