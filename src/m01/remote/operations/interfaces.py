"""The contracts of the operator's layer: what the pages, the JSON API,
the command line and the metrics ask of the queue.

Every implementation is checked against these interfaces with
``zope.interface.verify.verifyObject`` in the tests.
"""
import zope.interface
from zope.interface import Attribute


class IJobFilter(zope.interface.Interface):
    """Which jobs a listing, a count or a bulk action is about."""

    statuses = Attribute("The statuses of the jobs (any of them); empty "
                         "for every status.")
    name = Attribute("The job factory name, or None for every factory.")
    q = Attribute("The search text ('' for none): words or values of the "
                  "jobs' input, output and errors, or a job id.")

    def query():
        """The MongoDB filter of the jobs."""

    def params():
        """The filter as query parameters (only those set)."""

    def terms():
        """The normalised words ``q`` asks for."""

    def without(statuses):
        """``(filter, any)``: this filter less the jobs in ``statuses``,
        and whether it still matches some status."""

    def isEmpty():
        """Whether the filter matches every job (no status, factory or
        search given)."""


class IQueueQueries(zope.interface.Interface):
    """What an operator reads: bounded, each answer a few commands.

    Adapts a processor (``IRemoteProcessor``); job ids unknown or
    malformed raise ``KeyError``, bad arguments ``ValueError``.
    """

    processor = Attribute("The processor read.")

    def countByStatus(jobFilter=None):
        """``{status: count}`` of every status, of the jobs matching
        ``jobFilter`` (all by default), in one pass."""

    def jobs(jobFilter=None, sort='created', descending=True, page=1,
             pageSize=50):
        """One page of the matching jobs (a ``JobPage``): a page past the
        last is the last; ``pageSize`` at most ``MAX_PAGE_SIZE``."""

    def job(jobid):
        """The job (an ``IJob``); KeyError if there is none."""

    def jobsById(jobids):
        """``{jobid: job}`` of the jobs of ``jobids`` (at most
        ``MAX_LOOKUP``) that are stored, in one query; ids that are
        malformed or unknown are left out."""

    def latestFailures(limit=10):
        """The jobs that failed most recently, newest first."""

    def relations(jobid, limit=100):
        """``{'dependsOn': [(jobid, name, status)], 'dependsOnTotal',
        'dependents': [...], 'workflow', 'onFailure'}`` of the job (the
        first ``limit`` of each list); KeyError if there is none."""

    def workflow(workflowid, page=1, pageSize=50):
        """``{'workflow', 'progress': {status: count}, 'total', 'jobs':
        [(jobid, name, status)], 'page', 'pages', 'pageSize'}``, the jobs
        of a chain or group in the order they were added, one page;
        KeyError when it has none."""

    def factories():
        """Every job factory as a ``FactoryInfo``, by name."""

    def factoryNames():
        """The names of the job factories, sorted."""

    def factory(name):
        """The factory ``name`` as a ``FactoryInfo``; KeyError if none."""

    def queues():
        """Every queue a job, a factory or a setting names (``default``
        always), by name, as a ``QueueInfo``: paused or not, its rate
        limit and its use, its jobs by status, its factories."""

    def schedulerItems(page=1, pageSize=100, active=None):
        """``(total, items)``: one page of the scheduler items (only the
        active or the inactive ones, given ``active``), the active ones
        first, by next call time."""

    def delayLastRuns(items):
        """``{itemid: (callTime, jobid)}`` of the Delay items of
        ``items`` whose last run's job is found: the call before their
        next one (``delay`` seconds before it) and the job the scheduler
        added for it."""

    def workers(limit=200):
        """The processes that beat, most recently seen first: each its
        heartbeat (host, pid, processor, origin, kinds, threads, jobs
        with their lease expiry, started, seen) with its ``id``, its
        ``state`` ('running', 'quiet', 'stopping', 'stopped', 'gone') and
        the ``control`` an operator sent it."""

    def capacity():
        """What decides whether a due job is claimed now
        (``waits.Capacity``): the paused factories and queues, each
        concurrency limit and how many of its slots are taken, the rate
        limits used up, the worker threads of the processes alive and how
        many run a job, and which process and thread runs each job their
        heartbeats list."""

    def waitReasons(job, capacity=None):
        """Why the queued ``job`` is not running yet, the reason to act
        on first first (``waits.reasons``: inactive, due later, its
        factory paused or at its concurrency limit, its queue paused, a
        rate limit used up, no worker, every worker quiet, every thread
        busy); ``[]`` when nothing holds it;
        None for a job that is not queued."""

    def position(job, capacity=None):
        """How many due jobs are claimed before the queued ``job``
        (at most ``waits.MAX_POSITION``); None for a job that is not
        queued."""

    def countsByFactory():
        """``{factory: {status: count}}`` of every job, in one
        aggregation."""

    def backlog():
        """``{factory: (due, queued)}``: how many of its jobs are due now
        and the queued time of the oldest of them (its age is the
        factory's latency)."""

    def outcomes(window='hour'):
        """``(buckets, perFactory)`` of the outcome counters
        (``IOutcomeCounters``) over the window ('hour', 'day', 'week'):
        its buckets, oldest first, each ``{'at': start, <counter>: n,
        ..., 'failures': n}`` summed over the factories, and the
        window's sums per factory."""

    def outcomeTotals():
        """``{factory: {counter: amount}}`` since counting began."""

    def worker(processId):
        """The process ``processId`` (a heartbeat's id) as ``workers``
        lists it; KeyError if it never beat (or was pruned)."""

    def stats(window='hour', latest=10):
        """The charts' figures: per bucket of the window ('hour', 'day',
        'week') the outcomes counted (``IOutcomeCounters``), per factory
        its job counts, due jobs, latency (age of the oldest due job) and
        mean run time, the workers alive, the latest failures."""

    def threads():
        """``{'worker': bool, 'scheduler': bool}``: this process's."""

    def overview():
        """The overview page's data: counts per status, the processor's
        threads, the latest failures, the workers."""


class IQueueActions(zope.interface.Interface):
    """What an operator changes. Each change of a job is one conditional
    write (``IJobWrites``) made at once, so the answer says what
    happened; adding a job joins the processor's transaction.

    Unknown ids raise ``KeyError``; a change the job's status does not
    allow raises ``ValueError`` with the reason; nothing is changed then.
    """

    processor = Attribute("The processor changed.")

    def addJob(name, input=None, **options):
        """Queue a job (``IRemoteProcessor.addJob``'s options) in the
        current transaction; its id."""

    def addWorkflow(kind, jobs, callback=None, onFailure=None):
        """Add a ``'chain'`` or a ``'group'`` (``IRemoteProcessor``'s
        ``addChain``, ``addGroup``) in the current transaction; what
        they return."""

    def cancelJob(jobid):
        """Cancel a waiting, queued or processing job."""

    def retryJob(jobid):
        """Queue a job in error or cancelled again."""

    def deleteJob(jobid):
        """Remove a job that is not processing (cancel that first)."""

    def countBulk(action, jobFilter=None, jobids=None, all=False):
        """How many jobs ``bulk(action, ...)`` would change now."""

    def bulk(action, jobFilter=None, jobids=None, limit=None, all=False):
        """Apply ``action`` ('cancel', 'retry', 'delete') to the jobs with
        ``jobids`` (at most ``MAX_SELECTED``) that match ``jobFilter``,
        or to those matching ``jobFilter``, to at most ``limit`` of them
        (the action's bound per request); a ``BulkResult``. Without ids
        and with no filter, or an empty one, ``all`` must be true (every
        job is then meant): ValueError otherwise, as for a malformed id
        or an unknown action, before anything is changed."""

    def pauseFactory(name):
        """Stop every process from claiming the factory's jobs."""

    def resumeFactory(name):
        """Let the factory's jobs be claimed again."""

    def pauseQueue(name):
        """Stop every process from claiming the queue's jobs; ValueError
        for a name no queue can have."""

    def resumeQueue(name):
        """Let the queue's jobs be claimed again."""

    def setQueueRateLimit(name, rateLimit):
        """At most ``rateLimit`` (``[starts, seconds]``, None: no limit)
        of the queue's jobs start per period; ValueError for a bad one.
        """

    def setSchedulerItemActive(itemid, active):
        """Activate or deactivate a scheduler item; the item."""

    def setAllSchedulerItemsActive(active):
        """Activate (``active`` true) or deactivate every scheduler item
        that is not so yet, each through the scheduler's update; how many
        were changed."""

    def runSchedulerItem(itemid):
        """Add the item's job now; its id."""

    def deleteSchedulerItem(itemid):
        """Remove a scheduler item."""

    def addSchedulerItem(item):
        """Store a new scheduler item; its id."""

    def updateSchedulerItem(itemid, **fields):
        """Change fields of a scheduler item (validated); the item."""

    def controlWorker(processId, action):
        """Ask a process (a heartbeat's id) to 'quiet' (claim no more
        jobs), 'resume' or 'stop' (gracefully, as on SIGTERM); it obeys
        at its next heartbeat. KeyError for an unknown process."""

    def switchThreads(kind, running, timeout=None):
        """Start (``running`` true) or stop this process's ``'worker'``
        or ``'scheduler'`` thread."""
