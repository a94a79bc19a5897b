"""Why a queued job waits, and which thread runs a job: what a page says
of a job besides its status.

``Capacity`` holds what decides whether a due job is claimed now, read
once per page in a few commands (``QueueQueries.capacity``): the paused
factories, the factories with a concurrency limit and how many of their
slots are taken, the worker threads of the processes alive and how many
of them run a job, and which process and thread runs each job the
heartbeats list (a job cancelled before it reached a checkpoint too:
its thread runs it until its code returns).

``reasons(job, capacity, now)`` is a pure function of it: every reason
a queued job is not running yet, the one to act on first first, each a
dict ``{'reason': code, ...figures}``:

``inactive``
    the job is inactive (never claimed while it is);
``later``
    it is due later (``due``; ``retry`` when it waits to be retried);
``paused``
    its factory is paused (``factory``);
``capped``
    its factory runs as many jobs as its concurrency limit allows
    (``factory``, ``limit``, ``running``);
``queue paused``
    its queue is paused (``queue``);
``rate``
    its factory's or its queue's rate limit is used up for now
    (``kind``: ``factory`` or ``queue``, ``name``, ``starts``,
    ``seconds``, ``used``);
``no worker``
    no process alive runs a job worker;
``quiet``
    every process alive that runs a job worker was asked to take no
    more jobs, or is stopping (``quiet``: how many);
``busy``
    every worker thread of the processes taking jobs runs a job
    (``busy``, ``threads``).

An empty list: nothing holds it, a free thread claims it next (in claim
order: ``position`` says how many due jobs go first).
"""
import dataclasses

from m01.remote.interfaces import QUEUED
from m01.remote.queue.containers import toObjectId

INACTIVE = 'inactive'
LATER = 'later'
PAUSED = 'paused'
CAPPED = 'capped'
QUEUE_PAUSED = 'queue paused'
RATE = 'rate'
NO_WORKER = 'no worker'
QUIET = 'quiet'
BUSY = 'busy'

#: The states of a process whose threads take jobs, and of one alive.
TAKING = ('running',)
ALIVE = ('running', 'quiet', 'stopping')
#: Due jobs counted before a job, at most (the count is then "more").
MAX_POSITION = 10000


@dataclasses.dataclass(frozen=True)
class Capacity:
    """What decides whether a due job is claimed now."""

    #: The names of the paused factories.
    paused: frozenset = frozenset()
    #: ``{factory: (limit, running)}`` of the factories with a
    #: concurrency limit.
    caps: dict = dataclasses.field(default_factory=dict)
    #: Processes alive running a job worker and taking jobs.
    workers: int = 0
    #: Processes alive running a job worker that take no jobs (quiet or
    #: stopping).
    quiet: int = 0
    #: The worker threads of the processes taking jobs, and how many of
    #: them run a job.
    threads: int = 0
    busy: int = 0
    #: ``{jobid: {'process', 'host', 'pid', 'thread', 'state'}}``: which
    #: process alive (and thread) runs each job its heartbeat lists.
    holders: dict = dataclasses.field(default_factory=dict)
    #: The names of the paused queues.
    pausedQueues: frozenset = frozenset()
    #: ``{(kind, name): (starts, seconds, used)}`` of the rate limits
    #: (``kind``: ``factory`` or ``queue``) used up for now.
    spent: dict = dataclasses.field(default_factory=dict)


def capacityOf(workers, paused, caps, pausedQueues=(), spent=None):
    """The ``Capacity`` of the processes ``workers`` (as
    ``QueueQueries.workers`` lists them), the ``paused`` factory names,
    the ``caps`` (``{factory: (limit, running)}``), the paused queues'
    names and the rate limits ``spent`` (see ``Capacity``)."""
    taking = quiet = threads = busy = 0
    holders = {}
    for worker in workers:
        if worker.get('state') not in ALIVE:
            continue
        jobs = [entry for entry in worker.get('jobs') or ()
                if isinstance(entry, dict) and entry.get('job')]
        for entry in jobs:
            holders[str(entry['job'])] = {
                'process': worker.get('id'), 'host': worker.get('host'),
                'pid': worker.get('pid'), 'thread': entry.get('thread'),
                'state': worker.get('state')}
        if 'worker' not in (worker.get('kinds') or ()):
            continue
        if worker['state'] in TAKING:
            taking += 1
            threads += (worker.get('threads') or {}).get('worker', 0) or 0
            busy += len(jobs)
        else:
            quiet += 1
    return Capacity(paused=frozenset(paused), caps=dict(caps),
                    workers=taking, quiet=quiet, threads=threads,
                    busy=busy, holders=holders,
                    pausedQueues=frozenset(pausedQueues),
                    spent=dict(spent or {}))


def reasons(job, capacity, now):
    """Why the queued ``job`` is not running yet: a list of reasons (see
    the module), empty when nothing holds it; None for a job that is not
    queued."""
    if job.status != QUEUED:
        return None
    found = []
    if not job.active:
        found.append({'reason': INACTIVE})
    due = job.retryTime
    if due is not None and due > now:
        found.append({'reason': LATER, 'due': due,
                      'retry': bool(job.retryCounter)})
    if job.name in capacity.paused:
        found.append({'reason': PAUSED, 'factory': job.name})
    limit, running = capacity.caps.get(job.name, (None, 0))
    if limit and running >= limit:
        found.append({'reason': CAPPED, 'factory': job.name,
                      'limit': limit, 'running': running})
    queue = getattr(job, 'queue', None)
    if queue in capacity.pausedQueues:
        found.append({'reason': QUEUE_PAUSED, 'queue': queue})
    for kind, name in (('factory', job.name), ('queue', queue)):
        if (kind, name) in capacity.spent:
            starts, seconds, used = capacity.spent[kind, name]
            found.append({'reason': RATE, 'kind': kind, 'name': name,
                          'starts': starts, 'seconds': seconds,
                          'used': used})
    if not capacity.workers:
        if capacity.quiet:
            found.append({'reason': QUIET, 'quiet': capacity.quiet})
        else:
            found.append({'reason': NO_WORKER})
    elif capacity.busy >= capacity.threads:
        found.append({'reason': BUSY, 'busy': capacity.busy,
                      'threads': capacity.threads})
    return found


def aheadQuery(job, capacity, now):
    """The due jobs a free thread claims before the queued ``job`` (in
    the claim order: priority, then queued time, then id), its paused
    factories' left out."""
    priority = job.priority or 0
    oid = toObjectId(job.__name__)
    before = [{'priority': {'$gt': priority}},
              {'priority': priority, 'queued': {'$lt': job.queued}},
              {'priority': priority, 'queued': job.queued,
               '_id': {'$lt': oid}}]
    query = {'status': QUEUED, 'active': True, 'retryTime': {'$lte': now},
             '$or': before}
    if capacity.paused:
        query['name'] = {'$nin': sorted(capacity.paused)}
    if capacity.pausedQueues:
        query['queue'] = {'$nin': sorted(capacity.pausedQueues)}
    return query
