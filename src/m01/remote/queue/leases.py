"""Leases: how a job survives a long run and a dead worker is noticed.

A claimed job carries ``leaseExpires``. While this process runs the job,
the lease keeper renews it; when a worker dies, nobody renews it, and
the keeper of any other process gives the job back to the queue once it
has expired (``recover``).

The keeper renews in a thread of its own, every third of a lease, and
does nothing else there: recovering other processes' jobs, ending timed
out ones and tidying run in a second thread (its sweep). On a slow link
a sweep can take longer than a lease (it reads and writes whole job
documents); renewals waiting behind it let this process's leases expire
while its jobs still ran, and other processes ran them again.

A keeper that has not managed to renew for a lease's length (the server
does not answer it, or cannot be reached) may have lost every lease it
held: other processes take those jobs over. Its workers then claim no
more jobs (``claimable``), and say so, until it renews again.
"""
import datetime
import logging
import threading
import time

import pymongo.errors

from m01.remote.queue.containers import toObjectId
from m01.remote.queue.dependencies import DEPENDENTS, ENDED

logger = logging.getLogger('m01.remote')

#: Seconds to the next round when an upkeep is behind (``behind``).
BEHIND_WAIT = 1.0
#: Seconds between two renewals while they fail (each waits up to the
#: socket timeout for an answer anyway).
RETRY_PAUSE = 0.25


def isTimeout(error):
    """Whether ``error`` is a call that waited for an answer as long as
    its client allows (``socketTimeout``): the server, or the network to
    it, does not answer. A refused or reset connection, or no server to
    send the call to, is not: those are told at once."""
    return isinstance(error, pymongo.errors.NetworkTimeout)


def failure(operation, error):
    """``operation`` (what a loop was doing: "claiming jobs") and what
    became of it, for a log line."""
    if isTimeout(error):
        return '%s timed out (%s)' % (operation, error)
    return '%s failed (%s)' % (operation, error)


class EndedJobs:
    """What follows the jobs a lease keeper recovered or stopped: their
    outcome is counted (``IOutcomeCounters``), and idle workers are woken
    (``IWakeup``), since such a job may run again, and the jobs waiting
    for one that ended for good are released (``dependencies``, a
    ``queue.dependencies.Dependencies``). ``jobs`` is the jobs
    collection."""

    def __init__(self, jobs, counters, wakeup, dependencies=None):
        self.jobs = jobs
        self.counters = counters
        self.wakeup = wakeup
        self.dependencies = dependencies

    def __call__(self, jobids):
        self.wakeup.set()
        documents = list(self.jobs.find(
            {'_id': {'$in': [toObjectId(jobid) for jobid in jobids]}},
            {'name': 1, 'status': 1, 'attempts': 1, DEPENDENTS: 1}))
        self.counters.countEnded(documents)
        if self.dependencies is not None:
            for document in documents:
                if document['status'] in ENDED and \
                        document.get(DEPENDENTS):
                    self.dependencies.endedSafely(document['_id'],
                                                  document['status'])


class LeaseKeeper:
    """Renews the leases of the jobs this process runs, and recovers the
    jobs of workers that stopped renewing theirs.

    ``jobWrites`` makes the changes (``IJobWrites``), ``now`` tells the
    time, ``leaseTime`` is the length of a lease in seconds, and
    ``recovered`` is called with the ids of the jobs it recovered or
    stopped (``EndedJobs``). It also ends the
    running jobs that passed their timeout (when one of this process's
    does, at once), and tidies what ``upkeep`` (``IUpkeep``: key locks,
    concurrency slots) keeps.
    """

    #: Told ``(ended, how)`` of the jobs it ended (``SweepEvents``).
    swept = None

    def __init__(self, name, leaseTime, jobWrites, now, recovered=None,
                 upkeep=()):
        self.name = name
        self.leaseTime = leaseTime
        self.jobWrites = jobWrites
        self.now = now
        self.recovered = recovered
        self.upkeep = list(upkeep)
        self._claims = {}
        self._deadlines = {}
        self._expires = {}
        self._threads = {}
        self._lock = threading.Lock()
        self._users = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        # Set for a renewal now, not at the next interval.
        self._renewSoon = threading.Event()
        self._thread = None
        self._sweeper = None
        # Whether a round (renewing, sweeping or both: ``tick``) is
        # failing, and whether that was said (once until it works again).
        self._failing = {}
        self._told = {}
        #: When (``time.monotonic``) leases were last renewed, and
        #: whether a worker was told that was too long ago.
        self._renewed = time.monotonic()
        self._stalled = False

    @property
    def interval(self):
        return max(self.leaseTime / 3.0, 0.05)

    def holdClaims(self, claims):
        """Fence the attempts ``claims`` (``(oid, claim)`` pairs) of a
        unit of work and renew their leases for another ``leaseTime``
        (``IJobWrites.holdClaims``): the ids of those whose claim was
        lost."""
        until = self.now() + datetime.timedelta(seconds=self.leaseTime)
        return self.jobWrites.holdClaims(claims, until)

    def add(self, jobid, claim, deadline=None, expires=None):
        """Renew the lease of ``jobid`` (claimed as ``claim``) until it is
        discarded; end it as timed out at ``deadline``. The thread calling
        is named as the job's (the one that runs it calls last).

        ``expires`` is when its lease expires as claimed: a claim that
        took a while to reach this process (a batch read back over a slow
        link) has its lease renewed at once, not at the next interval,
        which could come after it expired."""
        now = self.now()
        with self._lock:
            self._claims[jobid] = claim
            self._threads[jobid] = threading.current_thread().name
            self._expires[jobid] = expires or now + datetime.timedelta(
                seconds=self.leaseTime)
            if deadline is not None:
                self._deadlines[jobid] = deadline
            else:
                self._deadlines.pop(jobid, None)
        if deadline is not None:
            self._wake.set()    # the keeper may have to tick earlier
        if expires is not None and (expires - now).total_seconds() < \
                self.leaseTime - self.interval:
            self._renewSoon.set()

    def discard(self, jobid, claim=None):
        """Stop renewing the lease of ``jobid``; with ``claim``, only while
        it is that claim's (the job may have been claimed again since)."""
        with self._lock:
            if claim is None or self._claims.get(jobid) == claim:
                self._claims.pop(jobid, None)
                self._deadlines.pop(jobid, None)
                self._expires.pop(jobid, None)
                self._threads.pop(jobid, None)

    @property
    def claims(self):
        with self._lock:
            return list(self._claims.values())

    def acquire(self):
        """A worker loop starts: make sure the keeper runs."""
        with self._lock:
            self._users += 1
            if self._thread is None or not self._thread.is_alive():
                self._renewed = time.monotonic()
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, daemon=True,
                    name='m01.remote-leases-%s' % self.name)
                self._sweeper = threading.Thread(
                    target=self._sweep, daemon=True,
                    name='m01.remote-sweep-%s' % self.name)
                self._thread.start()
                self._sweeper.start()

    def release(self):
        """A worker loop ended: stop the keeper when it was the last."""
        with self._lock:
            self._users = max(self._users - 1, 0)
            threads = self._threads_() if self._users == 0 else []
            if threads:
                self._stop.set()
                self._wake.set()
                self._renewSoon.set()
                self._thread = self._sweeper = None
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()

    def _threads_(self):
        return [thread for thread in (self._thread, self._sweeper)
                if thread is not None]

    def stop(self, timeout=None):
        """Stop renewing, between two ticks, whoever still uses it.

        For a process about to exit with jobs still running: a tick cut
        short by the exit can leave a job change half written, while a
        job whose lease is not renewed is simply recovered once its
        lease expires.
        """
        with self._lock:
            threads = self._threads_()
            self._thread = self._sweeper = None
            self._users = 0
            self._stop.set()
            self._wake.set()
            self._renewSoon.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            if thread is threading.current_thread():
                continue
            thread.join(None if deadline is None
                        else max(deadline - time.monotonic(), 0))
            if thread.is_alive():
                logger.warning('The lease keeper did not stop within '
                               '%.1f s', timeout)
                return

    def claimable(self):
        """Whether this process's workers may claim jobs: not while the
        keeper runs and has not renewed leases for a lease's length (the
        jobs it holds may be another process's by now, and new claims
        would not be renewed either). Said once in the log."""
        return not self._stalledNow()

    def _stalledNow(self):
        """Whether the keeper runs and has not renewed for a lease's
        length; said once, by whichever thread notices first."""
        with self._lock:
            since = time.monotonic() - self._renewed
            stalled = self._thread is not None and since > self.leaseTime
            told, self._stalled = self._stalled, self._stalled or stalled
        if stalled and not told:
            logger.error('The lease keeper of %s has not renewed its leases '
                         'for %.1f s (leases last %.1f s): its workers take '
                         'no more jobs until it does', self.name, since,
                         self.leaseTime)
        return stalled

    def running(self):
        """``[(jobid, leaseExpires, thread)]`` of the jobs this process
        runs, the expiry as this keeper last set it, and the name of the
        thread running the job: an operator sees which thread a job holds
        (a cancelled one too, until its code returns)."""
        with self._lock:
            return sorted((jobid, expires, self._threads.get(jobid))
                          for jobid, expires in self._expires.items())

    def renew(self):
        until = self.now() + datetime.timedelta(seconds=self.leaseTime)
        with self._lock:
            claims = list(self._claims.items())
        extended = self.jobWrites.extendLeases([c for _, c in claims], until)
        with self._lock:
            for jobid, claim in claims:
                if self._claims.get(jobid) == claim:
                    self._expires[jobid] = until
        if claims:
            self._renewedNow()
        return extended

    def _renewedNow(self):
        """The server answered a renewal (or a whole tick)."""
        with self._lock:
            self._renewed = time.monotonic()
            stalled, self._stalled = self._stalled, False
        if stalled:
            logger.warning('The lease keeper of %s renews its leases again: '
                           'its workers take jobs again', self.name)

    def recover(self, now=None):
        """Requeue (or fail) the jobs whose worker stopped renewing their
        lease; ``[(jobid, newStatus)]``."""
        recovered = self.jobWrites.recoverExpired(now or self.now())
        for jobid, status in recovered:
            logger.warning('Job %s lost its worker; it is now %s.',
                           jobid, status)
        self._announce(recovered, 'lost')
        return recovered

    def stopTimedOut(self, now=None):
        """End the running jobs past their timeout as failed attempts;
        ``[(jobid, newStatus)]``."""
        stopped = self.jobWrites.stopTimedOut(now or self.now())
        for jobid, status in stopped:
            logger.warning('Job %s timed out; it is now %s.', jobid, status)
        self._announce(stopped, 'timed out')
        return stopped

    def _announce(self, ended, how):
        if ended and self.recovered is not None:
            self.recovered([jobid for jobid, _ in ended])
        if ended and self.swept is not None:
            self.swept(ended, how)

    def tick(self, renew=True, sweep=True):
        """Renew our leases, then sweep (recover expired ones, stop
        timed-out jobs and tidy), once; the keeper's threads do one each
        (``renew`` only, ``sweep`` only). The leases count as renewed
        when the renewal was answered, or, with none to renew, when every
        call was."""
        doing = 'renewing leases'
        key = (renew, sweep)
        try:
            if renew:
                self.renew()
            if sweep:
                doing = 'recovering expired leases'
                self.recover()
                doing = 'ending timed-out jobs'
                self.stopTimedOut()
                doing = 'tidying'
                now = self.now()
                for upkeep in self.upkeep:
                    upkeep.tidy(now)
        except Exception as error:
            self._failing[key] = True
            # Said once per outage: by the sweeps, whose calls fail as the
            # renewals' do (a renewer that cannot renew says so when its
            # leases are a lease old, ``_stalledNow``); a renewal that
            # fails otherwise (a bug) is said with its traceback.
            quiet = not sweep and isinstance(
                error, pymongo.errors.ConnectionFailure)
            if quiet or self._told.get(key):
                pass
            elif isinstance(error, pymongo.errors.ConnectionFailure):
                logger.error('Renewing job leases failed: %s; retrying '
                             'every %.1f s', failure(doing, error),
                             self.interval)
            else:
                logger.exception('Renewing job leases failed while %s; '
                                 'retrying every %.1f s', doing,
                                 self.interval)
            self._told[key] = self._told.get(key) or not quiet
            self._stalledNow()
        else:
            # The leases count as renewed when a renewal of them was
            # answered (``renew``), or, with none to renew, when the
            # sweep's calls were.
            if (renew and sweep) or (sweep and not self.claims):
                self._renewedNow()
            self._failing[key] = False
            if self._told.get(key):
                self._told[key] = False
                logger.info('Renewing job leases works again')

    def _nextWait(self):
        """Seconds to the next tick: the interval, or less when a job of
        this process times out before."""
        with self._lock:
            deadlines = list(self._deadlines.values())
        wait = self.interval
        if deadlines:
            untilFirst = (min(deadlines) - self.now()).total_seconds()
            wait = min(wait, max(untilFirst, 0.0) + 0.05)
        if any(getattr(upkeep, 'behind', False) for upkeep in self.upkeep):
            # An upkeep left work for its next round (finished jobs due
            # for removal on a busy site): come back soon.
            wait = min(wait, BEHIND_WAIT)
        return wait

    def _run(self):
        """The renewals: every interval (or at once when a claim asks),
        nothing else."""
        while not self._stop.is_set():
            # Failing, tried again soon: renewed as soon as the network
            # heals, before other processes take its jobs over.
            failing = self._failing.get((True, False))
            self._renewSoon.wait(min(self.interval, RETRY_PAUSE)
                                 if failing else self.interval)
            self._renewSoon.clear()
            if self._stop.is_set():
                return
            self.tick(sweep=False)

    def _sweep(self):
        """The sweeps: every interval, or sooner when a job of this
        process times out before."""
        while not self._stop.is_set():
            self._wake.clear()
            deadline = time.monotonic() + self._nextWait()
            # Woken early by a job with a deadline: compute the wait again.
            while not self._stop.is_set() and \
                    self._wake.wait(max(deadline - time.monotonic(), 0)):
                self._wake.clear()
                deadline = min(deadline,
                               time.monotonic() + self._nextWait())
            if self._stop.is_set():
                return
            self.tick(renew=False)
