"""The contracts of m01.remote.

Every implementation in this package is checked against these interfaces
with ``zope.interface.verify.verifyObject`` in the tests, so the docstrings
below are the documentation of record.
"""
import enum

import zope.interface
from zope.interface import Attribute


class JobStatus(str, enum.Enum):
    """The life cycle of a job. Stored as these readable strings."""

    WAITING = 'waiting'
    QUEUED = 'queued'
    PROCESSING = 'processing'
    COMPLETED = 'completed'
    CANCELLED = 'cancelled'
    ERROR = 'error'

    def __str__(self):
        return self.value


WAITING = JobStatus.WAITING.value
QUEUED = JobStatus.QUEUED.value
PROCESSING = JobStatus.PROCESSING.value
COMPLETED = JobStatus.COMPLETED.value
CANCELLED = JobStatus.CANCELLED.value
ERROR = JobStatus.ERROR.value

#: Every status, in the order of the life cycle.
STATI = tuple(status.value for status in JobStatus)

#: The statuses ``removeJobs()`` removes when called without arguments.
REMOVABLE_STATI = (CANCELLED, COMPLETED, ERROR)


class IJob(zope.interface.Interface):
    """A unit of work, either a factory (a template) or a queued job.

    A factory is registered with ``addJobFactory(name, job)``; ``addJob``
    clones it with ``getJob(input)`` into a new job document.
    """

    __name__ = Attribute("The job id (string of its ObjectId) for a job, "
                         "the factory name for a factory.")
    name = Attribute("The name of the factory this job was made from.")
    status = Attribute("One of the JobStatus values.")
    input = Attribute("The job input, anything BSON can store.")
    output = Attribute("The value returned by __call__, once completed.")
    errors = Attribute("The stored error messages (text), the newest "
                       "limits.MAX_ERRORS, each cut at "
                       "limits.MAX_ERROR_TEXT characters.")
    tracebacks = Attribute("The formatted tracebacks, one per error, each "
                           "cut at limits.MAX_TRACEBACK_TEXT characters.")
    retryCounter = Attribute("How many attempts failed so far.")
    maxRetries = Attribute("Attempts allowed before the job ends in error.")
    retryDelay = Attribute("Seconds to wait before a failed job is retried.")
    retryTime = Attribute("The job is not picked before this time (UTC).")
    created = Attribute("When the job was added (UTC).")
    queued = Attribute("When the job was (last) queued (UTC).")
    picked = Attribute("When a worker last claimed the job (UTC).")
    completed = Attribute("When the job reached a final status (UTC).")
    active = Attribute("Inactive jobs are never picked.")
    queue = Attribute("The name of the queue the job is in (``default`` "
                      "unless its factory or addJob names another).")
    rateLimit = Attribute("At most ``[starts, seconds]`` jobs of the "
                          "factory start per period, or None.")
    errorTime = Attribute("When the attempt that just failed ended (UTC): "
                          "set before its error message is adapted.")

    def __call__(remoteProcessor):
        """Do the work and return the output. Raise JobError to fail at once;
        any other exception is retried up to maxRetries."""

    def getJob(input=None):
        """Return a new job cloned from this factory with the given input."""

    def dump():
        """Return the BSON document of this job."""


class IJobErrorMessage(zope.interface.Interface):
    """What a multi-adapter ``(job, error)`` produces: the stored message.

    Register another adapter for ``(IJob, Interface)`` (or a narrower
    pair) to change how error messages are written.
    """

    message = Attribute("The text stored in the job's errors list (cut "
                        "at limits.MAX_ERROR_TEXT characters; anything "
                        "else is stored as its str()).")


class IJobContainer(zope.interface.Interface):
    """Read access to the stored jobs, a mapping of job id to job."""

    def __getitem__(jobid):
        """Return the job or raise KeyError."""

    def get(jobid, default=None):
        """Return the job or default."""

    def keys():
        """All job ids (stored and pending in this transaction)."""

    def values():
        """All jobs (stored and pending in this transaction)."""

    def items():
        """Pairs of (job id, job)."""

    def __len__():
        """The number of jobs."""

    def __contains__(jobid):
        """Whether the job exists."""


class IJobFactoryContainer(zope.interface.Interface):
    """The job factories shared by every process using the database."""

    def __getitem__(name):
        """Return the factory or raise KeyError."""

    def keys():
        """The factory names."""

    def values():
        """The factories."""


class ISchedulerItem(zope.interface.Interface):
    """A scheduler entry that turns into jobs at its call times."""

    __name__ = Attribute("The item id, once added to a scheduler.")
    jobName = Attribute("The job factory name used for addJob.")
    title = Attribute("A short title for the management pages.")
    description = Attribute("A longer description.")
    input = Attribute("The input given to addJob.")
    active = Attribute("Inactive items are never pulled.")
    nextCallTime = Attribute("The next time a job is due (UTC).")
    retryTime = Attribute("Lock: the item is not pulled again before it.")
    retryDelay = Attribute("Seconds the retryTime lock lasts.")

    def getNextCallTime(callTime):
        """Return the stored next call time and, when it is due at
        callTime, store the following one."""

    def dump():
        """Return the BSON document of this item."""


class IDelay(ISchedulerItem):
    """An item that runs every ``delay`` seconds."""

    delay = Attribute("Seconds between two runs.")


class ICron(ISchedulerItem):
    """An item that runs at the times given by cron fields."""

    minute = Attribute("Minutes 0..59, empty for any.")
    hour = Attribute("Hours 0..23, empty for any.")
    dayOfMonth = Attribute("Days 1..31, empty for any.")
    month = Attribute("Months 1..12, empty for any.")
    dayOfWeek = Attribute("Weekdays 0..6, Monday is 0, empty for any.")
    timezone = Attribute("IANA timezone name the fields are read in.")
    dayMatch = Attribute("'all': every restricted field must match (the "
                         "default); 'any': a day matches when its day of "
                         "month or its weekday does (standard cron, set by "
                         "expressions restricting both).")
    expression = Attribute("The five-field cron expression the fields come "
                           "from, or None.")


class IScheduler(zope.interface.Interface):
    """The container of scheduler items, stored in MongoDB."""

    def add(item):
        """Store the item and return its id."""

    def remove(item):
        """Remove the item (or the item with that id)."""

    def values():
        """All items."""

    def __getitem__(itemid):
        """Return the item or raise KeyError."""

    def pullNextSchedulerItem(callTime=None):
        """Lock and return the next due item, or None."""

    def getNextCachedItem(callTime=None):
        """Lock and return the next due item among those added in this
        process, or None."""

    def updateRetryTime(data, callTime):
        """Lock the item described by data (a dump) at callTime with one
        conditional write; return the new retryTime or False."""

    def reScheduleItem(item, callTime=None):
        """Recompute and store the item's next call time."""

    def reScheduleItems(callTime=None):
        """Recompute the next call time of every item."""

    def get(itemid, default=None):
        """Return the item or default."""

    def update(item, **fields):
        """Change fields of an item (or id) with one conditional write and
        return it; a schedule change computes a new next call time.
        Raises ValueError for invalid values, KeyError for a missing item.
        """

    def advanceItem(item, due, callTime=None):
        """Store the next call time following callTime and release the
        lock, if the item is still due at ``due``; return whether it was.
        """

    def ensureIndexes():
        """Create the index the pull query uses (idempotent)."""


class IJobWrites(zope.interface.Interface):
    """How every change of a job's status is made safe on one server.

    Each change restates what must still be true (the status, and for a
    worker's outcome its claim token) and happens only if it still is, so
    two workers never both claim a job and a worker that lost its job
    (lease expired, job cancelled) cannot overwrite the newer state. A
    method returning a bool answers whether the change happened.

    Two strategies implement it (``m01.remote.store.strategy`` picks one): on
    MongoDB, and on any server whose single-document conditional updates
    and ``findAndModify`` are atomic, each change is one conditional
    atomic write (``store.atomic``); on the embedded store the same
    writes, a claim found through an index of its own. Times are the
    caller's "now" (UTC, milliseconds).
    """

    def ensureIndexes():
        """Create what the strategy's queries need; idempotent."""

    def insertJobs(documents):
        """Store new queued job documents in one write; where one of their
        ids exists already, raise ``m01.remote.job.DuplicateJobError``."""

    def claimNext(now, worker, leaseTime, jobQuery=None, excludedNames=(),
                  queues=None, excludedQueues=()):
        """Claim the first due queued job in the claim order (highest
        ``priority``, then longest queued) matching ``jobQuery`` (a
        MongoDB filter on the job's fields), of no factory named in
        ``excludedNames``, in one of ``queues`` (None: any) and in none
        of ``excludedQueues``: mark it ``processing`` with ``worker``, a new
        claim token and a lease of ``leaseTime`` seconds, atomically.
        Return its document as claimed, or None."""

    def claimMany(now, worker, leaseTime, limit, jobQuery=None,
                  excludedNames=(), queues=None, excludedQueues=()):
        """Claim up to ``limit`` due jobs as ``claimNext`` would, in a
        constant number of commands, under one claim token; their
        documents as claimed, in claim order (maybe fewer than were due:
        a job another worker took meanwhile is not claimed again)."""

    def claimJob(oid, now, worker, leaseTime):
        """Claim the job ``oid`` if it is queued and active; its document
        as claimed, or None."""

    def finish(oid, claim, update):
        """Apply an outcome ``update`` (``queue.updates.completeUpdate``,
        ``failureUpdate``) if the job is processing under ``claim``."""

    def finishMany(outcomes):
        """``finish`` each ``(oid, claim, update)`` of ``outcomes``, in one
        command where the server allows; the ids of those refused."""

    def unclaim(oid, claim):
        """Give the job claimed under ``claim``, not started, back to the
        queue in its place."""

    def report(oid, claim, update):
        """Apply a progress or log ``update`` to the job while it is
        processing under ``claim``; False once it is not (cancelled,
        timed out, taken over)."""

    def state(oid):
        """``(status, claim)`` of the job, or None if there is none."""

    def cancel(oid, now):
        """Cancel the job if it is queued or processing, restating which
        (and a running job's claim); a running job's attempt is recorded
        as cancelled."""

    def requeue(oid, now):
        """Queue the job again, retries reset, if it is in ``error`` or
        ``cancelled``."""

    def edit(oid, version, fields):
        """Set ``fields`` on the job if it is still at ``version`` (the
        changes of a job object loaded through the processor)."""

    def extendLeases(claims, until):
        """Extend to ``until`` the lease of every processing job holding
        one of ``claims``; how many were extended."""

    def holdClaims(claims, until):
        """Renew to ``until`` the lease of each job of ``claims`` (``(oid,
        claim)`` pairs) while it is still processing under that claim,
        each one conditional write (one command for all where the server
        allows): the fence a worker passes before it stores what an
        attempt did. The ids of those whose claim no longer holds (the
        job was cancelled, timed out, taken over or removed)."""

    def recoverExpired(now, limit=100):
        """Give up to ``limit`` processing jobs whose lease expired before
        ``now`` back to the queue as failed attempts (or to ``error``
        when their retries are spent), each only if its lease is still
        the expired one; ``[(jobid, newStatus)]``."""

    def stopTimedOut(now, limit=100):
        """End as failed attempts (retried by their rules) up to ``limit``
        processing jobs that ran past their ``timeout``, each only under
        the claim it had; ``[(jobid, newStatus)]``."""

    def delete(oids, stati):
        """Remove each job of ``oids`` that is in one of ``stati`` (which
        never holds ``processing``: a running job is cancelled, not
        removed), each only while it still is; how many were removed."""


class IUpkeep(zope.interface.Interface):
    """Records the queue keeps besides the jobs (key locks, concurrency
    slots) that can outlive what they stood for when a process dies;
    each process's lease keeper tidies them."""

    def tidy(now):
        """Remove what no live job holds any more; how many it removed.
        May do nothing if it tidied recently."""


class IJobDependencies(IUpkeep):
    """Releases the jobs waiting for others as those end
    (``queue.dependencies.Dependencies``): each release one conditional
    write; ``tidy`` makes those a dead process missed."""

    def ensureIndexes():
        """Create the indexes of dependents, workflows and waiting jobs."""

    def statuses(oids):
        """``{oid: status}`` of the stored jobs among ``oids``."""

    def mark(oids):
        """Mark the stored jobs ``oids`` as jobs others depend on
        (``hasDependents``): only their end looks for dependents."""

    def ended(oid, status):
        """The job ``oid`` ended in ``status``, its outcome stored:
        release the jobs waiting for it (and theirs, for a cancel); how
        many were queued or cancelled."""

    def endedSafely(oid, status):
        """``ended``, an error logged and left to ``tidy``."""

    def release(oid, ended, status):
        """The one conditional write releasing the waiting job ``oid``
        from the job ``ended`` (ended in ``status``): the job's status it
        made (queued, cancelled, or waiting when others remain), or None
        when there was nothing to write."""

    def settle(oids):
        """Make the releases the waiting jobs ``oids``, just stored, missed
        while they were not; how many it made."""

    def results(oid):
        """``[{'id', 'status', 'output'}]`` of the jobs ``oid`` depends
        on, in its order."""

    def dependencies(document, limit=100):
        """``([(jobid, name, status)], total)`` of the jobs the job
        ``document`` depends on, the first ``limit``."""

    def dependents(oid, limit=100):
        """``[(jobid, name, status)]`` of the first ``limit`` jobs that
        depend on the job ``oid``."""

    def workflowJobs(workflow, skip=0, limit=50):
        """``[(jobid, name, status)]`` of one page of the jobs of the
        workflow ``workflow``, in the order they were added."""

    def workflowProgress(workflow):
        """``{status: count}`` of the jobs of the workflow ``workflow``."""


class IJobRetention(IUpkeep):
    """Removes finished jobs once their retention period passed, in
    bounded batches, as the lease keeper's upkeep. A period is seconds,
    or None to keep a job for ever."""

    periods = Attribute("``{status: seconds or None}`` for completed, "
                        "error and cancelled: the periods in force where "
                        "a factory has none of its own.")
    batchSize = Attribute("Jobs one removal considers at most.")
    maxBatches = Attribute("Removals one round makes at most.")
    maxSeconds = Attribute("Seconds after which a round starts no other "
                           "removal of a full batch.")
    behind = Attribute("Whether the last round left due jobs: the lease "
                       "keeper comes back within a second.")

    def periodsOf(factory):
        """``{status: seconds or None}``: the periods in force for the
        jobs of ``factory`` (a job factory), its own over ``periods``."""

    def removeDue(now):
        """Remove the finished jobs due for removal at ``now`` (at most
        ``maxBatches`` batches); how many were removed."""


class IRemoteProcessor(zope.interface.Interface):
    """The remote processor: job factories, jobs, scheduler and threads,
    in one MongoDB database (``m01.remote.processor.RemoteProcessor``).

    Jobs added, cancelled or retried join the current transaction of
    ``transactionManager`` unless a call says ``immediate``; their writes
    happen at the commit, after every other participant voted.
    """

    __name__ = Attribute("The processor's name in traversal (None: the "
                         "root).")
    name = Attribute("The processor name, used in thread names, worker ids "
                     "and heartbeats.")
    database = Attribute("The pymongo Database (or the embedded store's) "
                         "the queue lives in, as given: a job's own "
                         "writes use it with the client's write concern.")
    prefix = Attribute("The prefix of the queue's collection names.")
    registry = Attribute("The component registry: error message adapters "
                         "and worker kinds are looked up in it.")
    clock = Attribute("A function returning the time, timezone-aware.")
    now = Attribute("A callable returning the time as the queue stores "
                    "it: UTC, milliseconds (``m01.remote.clock``).")
    transactionManager = Attribute(
        "The transaction manager whose current transaction the jobs "
        "added, cancelled or retried join (``bind`` gives another).")
    pending = Attribute("This processor's share of the transactions of "
                        "``transactionManager`` (``QueueTransaction``).")
    jobs = Attribute("The IJobContainer of this processor.")
    jobFactories = Attribute("The IJobFactoryContainer of this processor.")
    scheduler = Attribute("The IScheduler of this processor.")
    jobsCollection = Attribute("The collection of the jobs.")
    factoriesCollection = Attribute("The collection of the job factories.")
    schedulerCollection = Attribute("The collection of the scheduler "
                                    "items.")
    pageJobsCollection = Attribute("The jobs collection as the pages read "
                                   "it (their read preference).")
    jobWrites = Attribute("The IJobWrites making every change of a job's "
                          "status safe on this server.")
    keys = Attribute("The jobs' key locks (``queue.keys.JobKeys``).")
    dependencies = Attribute(
        "What releases the jobs waiting for others as those end, and reads "
        "dependencies, dependents and workflows for the pages "
        "(``IJobDependencies``).")
    debouncer = Attribute("What moves the queued job holding a key for an "
                          "``addJob`` with ``debounce`` "
                          "(``queue.debounce.Debouncer``).")
    retention = Attribute("The IJobRetention removing finished jobs once "
                          "their retention period passed.")
    slots = Attribute("The factories' concurrency slots "
                      "(``queue.slots.ConcurrencySlots``).")
    queueSettings = Attribute("What is set for the queues: paused, rate "
                              "limits (``queue.queues.QueueSettings``).")
    rates = Attribute("The rate limit slots (``queue.rates.RateSlots``).")
    counters = Attribute("The IOutcomeCounters of this processor.")
    leases = Attribute("The lease keeper renewing the leases of the jobs "
                       "this process runs (``queue.leases.LeaseKeeper``).")
    leaseTime = Attribute("Seconds a claim lasts (renewed while the job "
                          "runs).")
    monitor = Attribute("The IProcessMonitor: this process's heartbeat, "
                        "and an operator's say over it.")
    claims = Attribute("What claims jobs for this process's workers "
                       "(``queue.claims.Claims``).")
    asyncJobs = Attribute("The event loop the attempts of async jobs run "
                          "on while a worker loop runs (``IAsyncJobs``).")
    runner = Attribute("What runs a claimed job and stores its outcome "
                       "(``queue.runner.JobRunner``).")
    threads = Attribute("The job worker and scheduler threads "
                        "(``worker.threads.ProcessorThreads``).")
    workerId = Attribute("What this process's claims name as their "
                         "worker: host, pid and processor name.")
    isProcessing = Attribute("Whether the job worker thread runs.")
    isScheduling = Attribute("Whether the scheduler worker thread runs.")
    jobWorkerFactory = Attribute("The job worker class.")
    jobWorkerArguments = Attribute("Keyword arguments of the job worker.")
    schedulerWorkerFactory = Attribute("The scheduler worker class.")
    schedulerWorkerArguments = Attribute("Keyword arguments of the "
                                         "scheduler worker.")
    jobWakeup = Attribute("The IWakeup the idle job workers wait on.")
    schedulerWakeup = Attribute("The IWakeup the idle scheduler waits on.")
    jobChanges = Attribute("The IChangeWatcher waking idle job workers "
                           "for jobs other processes commit.")
    schedulerChanges = Attribute("The IChangeWatcher waking the idle "
                                 "scheduler for items other processes "
                                 "add or change.")

    def bind(transactionManager, session=None):
        """This processor with its jobs joining the transactions of
        ``transactionManager`` (a request's ``request.tm``, a worker
        loop's own); everything else (threads, leases, caches) is shared.
        The whole transaction design rests on it: a request's jobs are
        stored when its transaction commits, and not when it aborts.
        With ``session`` (an SQLAlchemy session that manager commits),
        the jobs it adds go through the outbox, as rows of that
        session."""

    def ensureIndexes():
        """Create the indexes the queue needs; safe to call repeatedly."""

    def close():
        """Stop both threads and the change watchers and write the
        outcome counters: nothing of this processor uses the client
        afterwards."""

    # job factories

    def addJobFactory(name, job):
        """Store a job factory under name (immediately, for all processes).
        """

    def getJobFactory(name):
        """Return the factory or raise KeyError."""

    def removeJobFactory(name):
        """Remove the factory ``name``; whether there was one."""

    def pauseJobFactory(name):
        """Stop every process from claiming jobs of the factory ``name``
        until it is resumed."""

    def resumeJobFactory(name):
        """Let the jobs of the factory ``name`` be claimed again."""

    # queues

    def pauseQueue(name):
        """Stop every process from claiming jobs of the queue ``name``
        until it is resumed."""

    def resumeQueue(name):
        """Let the jobs of the queue ``name`` be claimed again."""

    def setQueueRateLimit(name, rateLimit):
        """At most ``rateLimit`` (``[starts, seconds]``; None: no limit)
        jobs of the queue ``name`` start per period, across every
        process."""

    # jobs

    def addJob(name, input=None, immediate=False, jobid=None, delay=None,
               at=None, priority=None, timeout=None, key=None,
               onDuplicateKey='return', dependsOn=None, onFailure='cancel',
               queue=None, keyPeriod=None, debounce=None):
        """Queue a job made by the factory ``name`` from ``input`` and
        return its id.

        - ``immediate``: store it now instead of when the current
          transaction commits (and not remove it if that aborts).
        - ``jobid``: the job's id (an ObjectId or its text), for a caller
          that must know it beforehand; ``DuplicateJobError`` when a job
          has it already.
        - ``delay`` (seconds) or ``at`` (a timezone-aware datetime): when
          the job becomes due, not both; default now.
        - ``priority``: a whole number from -1,000,000 to 1,000,000
          (default the factory's, 0): higher is claimed first, then the
          longest queued.
        - ``timeout``: seconds a run may take; past them the attempt
          fails (retried by the job's rules). Default the factory's.
        - ``key``: at most one live (queued or processing) job holds a
          key; a second ``addJob`` with it returns the live job's id
          (``onDuplicateKey``: ``'return'``) or raises
          ``DuplicateJobKeyError`` (``'raise'``).
        - ``dependsOn``: a list of job ids (stored, or added in this
          transaction) the job waits for: it is ``waiting``, never
          claimed, until each of them ended; one already completed counts
          at once. When one ends in error or is cancelled, the job is
          cancelled with a message naming it (``onFailure``:
          ``'cancel'``), or runs all the same (``'run'``).
        - ``queue``: the queue it joins (default the factory's,
          ``default``); workers claim from the queues they serve.
        - ``keyPeriod`` (seconds, with ``key``): the key stays held that
          long after its job ended (completed, in error or cancelled):
          unique for a period. The job is kept at least as long.
        - ``debounce`` (seconds, with ``key``): the job is due that long
          after it was added; adding with its key while it is still
          queued queues no other job but moves its due time to
          ``debounce`` seconds from then and gives it the new input, in
          one conditional write (a burst of adds runs one job, with the
          last input). Not with ``delay`` or ``at``.

        Raises ValueError (before anything is stored) for an unknown
        factory, input BSON cannot store, an unknown job in
        ``dependsOn``, or a bad argument.
        """

    def addChain(jobs, onFailure='cancel'):
        """Add ``jobs`` (each a ``(name, input)`` pair or a dict of
        ``name``, ``input``, ``priority``, ``timeout``, ``delay``, ``at``)
        in the current transaction, each depending on the one before
        (``onFailure`` as for ``addJob``: by default a job that fails
        cancels the rest). Returns ``{'workflow': id, 'jobs': [ids],
        'callback': None}``; the workflow id names them all. All are
        added, or none (ValueError)."""

    def addGroup(jobs, callback=None, onFailure='run'):
        """Add ``jobs`` (as for ``addChain``), independent of each other,
        and a ``callback`` job (one such item) depending on all of them:
        it runs once, after every one of them ended (``onFailure``:
        ``'run'``, whatever they ended in; ``'cancel'``: only if all
        completed), and reads their outputs with
        ``getDependencyResults``. Returns ``{'workflow': id, 'jobs':
        [ids], 'callback': id or None}``. All are added, or none."""

    def getDependencyResults(jobid):
        """``[{'id', 'status', 'output'}]`` of the jobs ``jobid`` depends
        on, in the order given (status None for one removed); KeyError
        for an unknown job."""

    def getJob(jobid):
        """The job object (changes set on it are written at commit);
        KeyError for an unknown id."""

    def getJobDocument(jobid):
        """The job's document as this transaction sees it, or None."""

    def pendingJobDocuments():
        """The documents of the jobs added in the current transaction."""

    def insertJobDocuments(documents):
        """Store new job documents now (``IJobWrites.insertJobs``)."""

    def cancelJob(jobid, immediate=False):
        """Cancel a waiting, queued or processing job (at commit unless
        ``immediate``); ValueError for a job in another status."""

    def retryJob(jobid, immediate=False):
        """Queue a job in error or cancelled again, its retries reset (at
        commit unless ``immediate``); ValueError for another status,
        ``DuplicateJobKeyError`` when another live job holds its key."""

    def removeJob(jobid):
        """Remove the job at once, whatever its status, and free its key;
        whether it was there."""

    def getJobStatus(jobid):
        """Return the job status; KeyError for an unknown id."""

    def getJobResult(jobid):
        """Return the job output (None until completed)."""

    def getJobErrors(jobid):
        """Return the list of error messages (the newest
        ``limits.MAX_ERRORS``)."""

    def removeJobs(stati=None):
        """Remove jobs in the given statuses; return counts per status."""

    # processing

    def pullNextJob(jobQuery=None, callTime=None, queues=None):
        """Claim the next due job (of one of ``queues``; None: of any)
        atomically and return it, or None."""

    def pullNextJobs(limit, jobQuery=None, callTime=None, queues=None):
        """Claim up to ``limit`` due jobs in a constant number of commands
        and return them in claim order (jobs of a factory with a
        concurrency limit one at a time beside the batch)."""

    def processJob(jobid, job=None):
        """Run one job: a queued one is claimed first, a claimed one is
        run under its claim. Returns True when the job ran."""

    def processNextJob(jobQuery=None, callTime=None, queues=None):
        """Claim and run the next job; return True when one ran."""

    def processJobs(jobQuery=None, callTime=None):
        """Run jobs until none is due; return how many ran."""

    def recoverExpiredJobs(callTime=None):
        """Requeue (or fail) the jobs whose worker stopped renewing their
        lease; ``[(jobid, newStatus)]``."""

    # scheduler

    def addScheduler(item):
        """Add a scheduler item; return its id."""

    def scheduleNextJob(callTime=None):
        """Turn the next due scheduler item into a job; return the job id
        or None."""

    def scheduleItemNow(itemid):
        """Add a job of the scheduler item ``itemid`` now, besides its
        schedule; return the job id."""

    # threads

    def startProcessor():
        """Start the job worker thread."""

    def stopProcessor(timeout=None):
        """Stop the job worker gracefully."""

    def startScheduler():
        """Start the scheduler worker thread."""

    def stopScheduler(timeout=None):
        """Stop the scheduler worker gracefully."""

    def wakeWorkers():
        """Wake the idle job workers of this processor."""

    def waitForWork(timeout):
        """Block until job workers are woken (jobs committed, one came
        due), or ``timeout`` seconds; whether they were."""

    def wakeScheduler():
        """Wake the idle scheduler of this processor."""

    def waitForSchedule(timeout):
        """Block until the scheduler is woken (an item added, changed or
        due), or ``timeout`` seconds; whether it was."""

    outbox = Attribute("The IJobOutbox the jobs added in a request go "
                       "through (``bind(manager, session)``), or None: "
                       "they are stored in MongoDB at commit.")

    def useOutbox(outbox):
        """Send the jobs added through a binding with a session through
        ``outbox`` (an IJobOutbox), and sweep it as upkeep."""


class IJobWorker(zope.interface.Interface):
    """A job worker main loop, run in its own thread.

    Worker kinds are named adapters from IRemoteProcessor to IJobWorker.
    """

    remoteProcessor = Attribute("The processor the worker serves.")
    waitTime = Attribute("Seconds to wait when no job is due.")
    running = Attribute("Whether the loop is running.")

    def __call__():
        """Run the main loop until stop() is called."""

    def stop(timeout=None):
        """Ask the loop to end; wait for running jobs up to timeout."""


class ISchedulerWorker(IJobWorker):
    """The loop that turns due scheduler items into jobs."""


class IChildSetup(zope.interface.Interface):
    """How a child process of the ``process`` worker gets the processor
    its jobs are called with.

    Made in the worker, pickled to each child it starts and called there,
    so it holds only what a fresh interpreter needs: never a connection,
    which a child must open itself.
    """

    modules = Attribute("The modules the child imports before its first "
                        "job: those defining the worker's job classes "
                        "(from its registry of job classes, never from "
                        "database content).")

    def __call__():
        """In the child: the ``IRemoteProcessor`` its jobs get, on a
        connection of the child's own to the worker's database."""

    def close():
        """In the child, as it ends: close what ``__call__`` opened."""


class IJobChild(zope.interface.Interface):
    """The worker's handle on one child process, which runs one job at a
    time: the worker sends it a claimed job and receives the job's output
    or error; the worker alone stores the outcome."""

    pid = Attribute("The child's process id, None before it started.")
    jobsRun = Attribute("How many jobs were sent to this child.")
    alive = Attribute("Whether the process runs.")

    def start(timeout):
        """Start the process and wait up to ``timeout`` seconds until it
        is ready for a job; raise ``ChildStartError`` (the child's
        message) if it is not, the process stopped."""

    def send(document):
        """Hand the child the claimed job's ``document`` to run."""

    def wait(timeout):
        """Wait up to ``timeout`` seconds for the job's result: None if
        there is none yet, else a ``ChildResult``. Raise
        ``ChildProcessDied`` when the process ended meanwhile."""

    def terminate(grace):
        """End the process now: SIGTERM, then SIGKILL once ``grace``
        seconds passed; return when it is gone."""

    def close(timeout):
        """Ask an idle child to exit, and terminate it if it has not
        within ``timeout`` seconds."""


class IOutcomeCounters(zope.interface.Interface):
    """How many jobs of each factory ended how, per minute and hour, with
    the seconds they ran (``m01.remote.queue.counters``). Counting an outcome
    costs no command: counts are tallied in memory and written by
    ``flush`` (itself called within seconds), a few upserts for any
    number of jobs."""

    retentionDays = Attribute("Days minute and hour counts are kept.")

    def count(name, outcome, at=None, seconds=None, final=False):
        """Count one ``outcome`` (completed, failed, error, cancelled,
        timedOut, lost) of the factory ``name`` at ``at`` (now), an
        attempt that ran ``seconds``; ``final``: the job ended in error
        with it."""

    def countUpdate(name, update):
        """Count the outcome an outcome update (``queue.updates``' builders)
        stored."""

    def countEnded(documents):
        """Count jobs ended elsewhere, from their documents (``name``,
        ``status``, ``attempts``)."""

    def flush():
        """Write what was counted; how many documents were written."""

    def read(kind, since, until=None, names=None):
        """The stored 'minute' or 'hour' documents in a time range."""

    def totals():
        """``{factory: {counter: amount}}`` since counting began."""


class IProcessMonitor(zope.interface.Interface):
    """The heartbeat of one processor's workers in a process, and an
    operator's control over them (``m01.remote.worker.heartbeats``)."""

    processId = Attribute("The id of the heartbeat: host, pid, processor "
                          "name and a token of this monitor.")
    quiet = Attribute("Whether an operator asked this process to take no "
                      "more jobs (its loops claim none meanwhile).")
    onStop = Attribute("Called once, in a thread of its own, when an "
                       "operator asks the process to stop.")
    origin = Attribute("What runs the workers: 'threads', or the name of "
                       "the m01remote command.")

    def acquire(kind, threads=1):
        """A worker of ``kind`` ('worker', 'scheduler') with ``threads``
        threads starts: beat while any runs."""

    def release(kind):
        """The worker of ``kind`` stopped; the last one stops the beat
        and marks the heartbeat stopped."""

    def beat():
        """Write the heartbeat, read the process's control and obey it.
        """


class IWakeup(zope.interface.Interface):
    """What the idle loops of a processor wait on
    (``m01.remote.worker.wakeup``): woken now, or at a due time, or after
    their timeout."""

    waiting = Attribute("How many loops wait on it now.")
    idle = Attribute("Whether a loop waits on it and nothing woke it yet.")
    dueTimes = Attribute("The due times it will wake the loops at, "
                         "earliest first (a bounded number of them).")

    def set():
        """Wake every loop waiting now, or the next one to wait."""

    def setAt(when):
        """Wake them at ``when`` (a UTC datetime), at once if it has come.
        """

    def wait(timeout):
        """Block until woken, or ``timeout`` seconds; whether woken."""


class IChangeWatcher(zope.interface.Interface):
    """Wakes the idle loops of this process for changes that other
    processes commit, through a change stream of one collection.

    It runs in a thread of its own while a loop needs it (``acquire`` /
    ``release``, counted). Where the server has no change streams it
    gives up and the loops poll; when the stream breaks it is reopened
    with back-off, resumed after the last change it saw where the server
    can, and the loops make one claim round after each opening, so no
    change committed in between is missed.
    """

    mode = Attribute("'auto' (change streams where the server offers "
                     "them), 'changestream' (insist: a refusal is an "
                     "error, retried) or 'poll' (never open one).")
    watching = Attribute("Whether its change stream is open now.")
    refused = Attribute("Why change streams are not used (the server "
                        "refused them, the store has none, the mode is "
                        "'poll'), or None.")
    opened = Attribute("How often its stream was opened from a time.")
    resumed = Attribute("How often it was reopened after its last change."
                        )
    changes = Attribute("How many changes it has received.")
    wakes = Attribute("How many changes woke the loops at once (a change "
                      "due later wakes them at its due time).")

    def acquire():
        """A loop starts: make sure the watcher runs."""

    def release():
        """A loop ended: stop the watcher when it was the last."""

    def stop(timeout=None):
        """Stop watching whoever still uses it; wait for the thread."""


class IJobOutbox(IUpkeep):
    """Jobs added in a request, kept as rows of the site's own SQL
    database until they are in the queue (``m01.remote.outbox``).

    The rows are written in the request's SQL session, so they commit
    or roll back with the site's own rows. Once the transaction has
    committed they are moved into the queue under the job ids fixed when
    the jobs were added, and deleted; what a crash or an unreachable
    MongoDB left behind is moved by ``sweep``, which every process's
    lease keeper runs as its upkeep (``tidy``). Moving a row again
    stores nothing twice: the job keeps its id, and an id the queue has
    already counts as moved.
    """

    table = Attribute("The SQLAlchemy ``Table`` of the rows.")
    batchSize = Attribute("How many rows one sweep transaction moves.")
    grace = Attribute("Seconds a committed row is left to its request's "
                      "own move before a sweep takes it.")

    def sessionOf(request):
        """The SQLAlchemy session of ``request``, which the request's
        transaction manager (``request.tm``) commits."""

    def follow(session, transaction, dataManager):
        """Make the jobs added in ``transaction`` (those the queue's
        ``dataManager`` holds when the commit begins) rows of
        ``session``, and move them into the queue once the transaction
        has committed."""

    def write(session, documents):
        """Write the job ``documents`` as rows of ``session`` (in its
        transaction, not committed here)."""

    def move(documents):
        """Store committed job ``documents`` in the queue under their
        ids, those stored already skipped, and delete their rows; how
        many were stored."""

    def sweep(grace=None):
        """Move the rows committed at least ``grace`` seconds ago
        (default: ``grace``), in transactions of up to ``batchSize`` rows
        that other sweepers skip; how many jobs were stored."""

    def status(oid):
        """The status of the job ``oid`` if it waits in the outbox (as it
        was added), else None."""

    def backlog():
        """How many rows wait to be moved."""


class IJobOutboxFactory(zope.interface.Interface):
    """Makes the outbox of a processor: what ``config.set_remote_outbox``
    registers, and what ``make_remote_processor`` hands its processors
    to (``IRemoteProcessor.useOutbox``)."""

    def __call__(processor):
        """The ``IJobOutbox`` of ``processor``."""


class IJobEvent(zope.interface.Interface):
    """What happened to a job, sent through the processor's registry
    (``registry.notify``): a site subscribes with
    ``config.add_subscriber(handler, IJobFailed)``. A subscriber runs in
    the process where it happened, outside the job's transaction; one
    that raises is logged with the job's id and changes nothing."""

    jobid = Attribute("The job's id (the string of its ObjectId).")
    job = Attribute("The job (``IJob``), or None where the process that "
                    "saw it happen has no job object (a job ended by the "
                    "lease keeper's sweep, or cancelled).")
    processor = Attribute("The ``IRemoteProcessor`` that saw it happen.")


class IJobAdded(IJobEvent):
    """A job was added: sent once the transaction that added it committed
    (at once for ``immediate``)."""


class IJobStarted(IJobEvent):
    """A worker claimed the job and is about to run an attempt."""

    attempt = Attribute("The number of this attempt, from 1.")


class IJobCompleted(IJobEvent):
    """The job's output was stored: it ended completed (an
    ``IJobEnded`` follows)."""

    output = Attribute("What the job returned.")


class IJobFailed(IJobEvent):
    """An attempt failed and the job will be retried: it raised, timed out,
    or lost its worker; its failure was stored."""

    error = Attribute("The exception the attempt raised; for an attempt "
                      "ended by the lease keeper a ``JobTimedOut`` or a "
                      "``JobInterrupted`` (its worker was lost) saying so.")


class IJobEnded(IJobEvent):
    """The job reached a final status, stored: completed, error (its last
    attempt failed, timed out or lost its worker) or cancelled."""

    status = Attribute("``completed``, ``error`` or ``cancelled``.")
    error = Attribute("What ended a job in error (as ``IJobFailed.error``), "
                      "None otherwise.")


class IJobWrappers(zope.interface.Interface):
    """The ordered chain of run wrappers around each job's run, declared
    like Pyramid tweens: each factory is called as ``factory(handler,
    registry)`` and returns a handler ``handler(job, remoteProcessor)``
    that calls the ``handler`` it was given (or not) and returns the
    job's output. The innermost handler calls the job."""

    def add(name, factory, over=None, under=None):
        """Add ``factory`` under ``name``; ``over`` (outside of) and
        ``under`` (inside of) name other wrappers (or ``OUTERMOST`` /
        ``JOB``). Without either, the ones added first are outermost."""

    def names():
        """The wrappers' names, outermost first."""

    def handler(registry):
        """The chain made for ``registry`` (once, until a wrapper is
        added): the handler the runner calls for each attempt."""



class IAsyncJobs(zope.interface.Interface):
    """The event loop of a process on which the attempts of ``async``
    jobs run as tasks, while worker loops use it (``acquire`` /
    ``release``); at most ``limit`` at once."""

    limit = Attribute("How many async attempts run at once at most.")
    running = Attribute("How many async attempts run now.")

    def accepts(job):
        """Whether ``job`` is async and a worker loop runs the loop."""

    def submit(runner, job, remoteProcessor, callTime=None):
        """Run the attempt of the claimed ``job`` as a task, in a
        transaction of its own: ``runner`` (``JobRunner``) sets it up in
        the calling thread (which then waits for a free place) and stores
        its outcome, in a thread of the loop's small pool."""

    def acquire():
        """A worker loop starts using the event loop (started if needed).
        """

    def release(timeout=None):
        """A worker loop stops using it; the last one waits up to
        ``timeout`` for the running attempts, and stops the loop."""
