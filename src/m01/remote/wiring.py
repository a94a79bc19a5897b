"""The collaborators of one processor, each made once and handed what it
uses: the job write strategy, the containers, key locks, concurrency
slots, retention, outcome counters, wake-ups and change watchers, the
lease keeper, the heartbeat monitor, the worker threads, the job runner
and the claims.

None is handed the processor to call back into. The containers take it
as their ``__parent__`` (a location, for traversal and URLs), and the
worker threads give it to the workers they make, whose constructors
take it, as the specification has them.
"""
from m01.remote.queue.asyncjobs import AsyncJobs
from m01.remote.queue.claims import Claims
from m01.remote.queue.containers import JobFactoryContainer
from m01.remote.queue.counters import OutcomeCounters
from m01.remote.queue.dependencies import Dependencies
from m01.remote.queue.events import SweepEvents
from m01.remote.queue.keys import JobKeys
from m01.remote.queue.leases import EndedJobs, LeaseKeeper
from m01.remote.queue.queues import QueueSettings
from m01.remote.queue.rates import RateSlots
from m01.remote.queue.retention import JobRetention
from m01.remote.queue.runner import JobRunner
from m01.remote.queue.slots import ConcurrencySlots
from m01.remote.scheduler import Scheduler
from m01.remote.store.cluster import forPages, queueDatabase
from m01.remote.store.retried import RETRY_LEASES, RetriedOutcomes
from m01.remote.store.strategy import ServerJobWrites
from m01.remote.worker.heartbeats import ProcessMonitor
from m01.remote.worker.threads import ProcessorThreads
from m01.remote.worker.wakeup import Wakeup, watchJobs, watchScheduler


def wire(processor, database, prefix, leaseTime, wakeup, writeConcern,
         readPreference):
    """Give ``processor`` (its ``name``, ``now``, ``clock`` and
    ``registry`` set) the collaborators of the queue in ``database``,
    whose collections' names start with ``prefix``; see
    ``RemoteProcessor`` for the other arguments."""
    p = processor
    now = p.now
    queue = queueDatabase(database, writeConcern)
    p.factoriesCollection = queue[prefix + 'factories']
    p.jobsCollection = queue[prefix + 'jobs']
    p.schedulerCollection = queue[prefix + 'scheduler']
    p.pageJobsCollection = forPages(p.jobsCollection, readPreference)
    # How job changes are made safe on this server, decided at first
    # use: a processor is made without its server. A write whose answer
    # is lost is retried until the server answers, for some leases.
    p.jobWrites = RetriedOutcomes(ServerJobWrites(queue, prefix),
                                  p.jobsCollection,
                                  retrySeconds=RETRY_LEASES * leaseTime)
    p.jobFactories = JobFactoryContainer(p, p.factoriesCollection,
                                         queue[prefix + 'pauses'])
    p.queueSettings = QueueSettings(queue[prefix + 'queues'])
    p.rates = RateSlots(queue[prefix + 'rates'])
    p.keys = JobKeys(queue[prefix + 'keys'], now, p.jobWrites,
                     p.jobsCollection)
    p.retention = JobRetention(p.jobsCollection, p.factoriesCollection, now)
    p.slots = ConcurrencySlots(queue[prefix + 'slots'], now, p.jobWrites)
    p.counters = OutcomeCounters(queue[prefix + 'counters'], now)
    p.scheduler = Scheduler(p.schedulerCollection, clock=p.clock)
    p.scheduler.__parent__ = p
    p.scheduler.__name__ = 'scheduler'
    # What the idle loops wait on, and what wakes them for other
    # processes' commits.
    p.jobWakeup = Wakeup(now)
    p.schedulerWakeup = Wakeup(now)
    p.jobChanges = watchJobs(p.jobsCollection, p.jobWakeup, p.name, wakeup)
    p.schedulerChanges = watchScheduler(p.schedulerCollection,
                                        p.schedulerWakeup, p.name, wakeup)
    # Releases the jobs waiting for others as those end.
    p.dependencies = Dependencies(p.jobsCollection, now, p.counters, p.keys,
                                  p.jobWakeup, pages=p.pageJobsCollection)
    p.leases = LeaseKeeper(
        p.name, float(leaseTime), p.jobWrites, now,
        recovered=EndedJobs(p.jobsCollection, p.counters, p.jobWakeup,
                            p.dependencies),
        upkeep=(p.slots, p.keys, p.counters, p.dependencies, p.retention))
    # The sweep's events carry the processor, as every event does.
    p.leases.swept = p.dependencies.swept = SweepEvents(p.registry, p)
    p.monitor = ProcessMonitor(queue[prefix + 'workers'],
                               queue[prefix + 'controls'], now, p.name,
                               running=p.leases.running)
    p.leases.upkeep.append(p.monitor)
    p.threads = ProcessorThreads(p, p.monitor, p.counters)
    # An operator asking this process to stop stops both threads.
    p.monitor.onStop = p.threads.stop
    p.runner = JobRunner(p.jobWrites, p.leases, p.registry, now,
                         slots=p.slots, keys=p.keys, counters=p.counters,
                         dependencies=p.dependencies)
    p.asyncJobs = AsyncJobs(p.name, p.leases.holdClaims, now)
    p.runner.asyncJobs = p.asyncJobs
    p.runner.sweepEvents = p.leases.swept
    p.claims = Claims(p.name, p.jobWrites, p.jobFactories, p.slots,
                      p.leases, p.runner, p.monitor, now,
                      p.queueSettings, p.rates)
