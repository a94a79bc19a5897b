"""The network fault scenarios (``faults.py``): a bad network between the
worker processes and the server.

Each ``m01remote worker`` process reaches the server through a fault
proxy of its own (``support.faultproxy``), so that one worker can be cut
off alone; the driver, which produces the jobs and audits them, connects
directly. A producer thread commits ``record`` jobs at a steady rate
from before the fault until every worker took a job after it. Then the
queue is drained, the workers stopped, and every job and its side
effects audited:

- ``lost``: a job not completed exactly once, or a parent whose child
  job (its own queue write) was never stored;
- ``duplicates``: a second execution record of a job (the job ran twice
  and both runs wrote), or a parent with two children (its queue write
  stored twice). A run whose job was taken over after its lease expired
  stores nothing (a ``stale`` entry, not a record) and is not counted;
- ``recovery_s``: from the end of the fault until every worker had
  completed a job claimed after it; every worker must be alive then.

The faults (``--only`` takes their names):

latency
    Every answer of the server 200 +- 50 ms late for the whole run.
partition
    Every worker cut off for 30 s (nothing goes through; what was sent
    is delivered when it heals, as TCP would).
isolated
    One worker cut off for 15 s while it runs long jobs (longer than the
    lease), each of which adds a child job: the others take them over
    once their leases expire.
flapping
    Every worker cut off three times for 2 s.
resets
    Every connection reset for 0.5 s out of every 3 s, for 30 s.
silent
    30 % of the connections stop answering for 45 s.
slowlink
    Every worker's connections carry 4 KB/s each way, the jobs' outputs
    48 KB each.

Each runs with the workers' batch size given (``--batch``) or, by
default, twice: unbatched (batch 1) and batched (batch 10); the result's
name says which (``partition/10``).
"""
import datetime
import threading
import time

import transaction
from bson import ObjectId

from m01.remote.worker import MAX_OUTAGE_WAIT
from support.faultproxy import FaultProxy
from support.faults.audit import Result, audit
from support.faults.harness import (
    LATENCY,
    Run,
    ScenarioTimeout,
    now,
    settingsFor,
    stopAll,
    waitFor,
    waitForCompletion,
    waitServing,
)
from support.faults.jobs import EXECUTIONS

#: The batch sizes a scenario runs with when none is given.
BATCHES = (1, 10)

#: What every network scenario shares: 4 worker processes of 4 threads
#: (leases of 6 s) and a producer of 40 jobs a second, or 2 of 2 and 20
#: for the sizes CI runs; timeouts that fit the lease.
COMMON = {
    'full': dict(workers=4, threads=4, lease=6, retryDelay=1,
                 seconds=0.2, produce=40, socketTimeout=2,
                 connectTimeout=2, timeout=600),
    'short': dict(workers=2, threads=2, lease=3, retryDelay=0.5,
                  seconds=0.15, produce=10, socketTimeout=1,
                  connectTimeout=1.5, timeout=120),
}
SIZES = {
    'full': {
        'latency': dict(latency=0.2, jitter=0.05, duration=30),
        'partition': dict(outage=30),
        'isolated': dict(outage=15, long=25),
        'flapping': dict(times=3, outage=2, gap=5),
        'resets': dict(every=3, lasting=0.5, duration=30),
        'silent': dict(fraction=0.3, outage=45),
        'slowlink': dict(rate=4096, pad=48 * 1024, duration=60,
                         produce=1.5),
    },
    'short': {
        'latency': dict(latency=0.2, jitter=0.05, duration=3),
        'partition': dict(outage=4),
        'isolated': dict(outage=5, long=6),
        'flapping': dict(times=3, outage=1.5, gap=1),
        'resets': dict(every=1.5, lasting=0.3, duration=4.5),
        'silent': dict(fraction=0.3, outage=4),
        'slowlink': dict(rate=8192, pad=4096, duration=4, produce=4),
    },
}
for _kind, _sizes in SIZES.items():
    for _name in _sizes:
        _sizes[_name] = dict(COMMON[_kind], **_sizes[_name])


class Producer(threading.Thread):
    """Commits ``record`` jobs (input ``seconds`` and ``pad``) at about
    ``rate`` a second, directly, until stopped; ``jobids`` holds them."""

    TICK = 0.1

    def __init__(self, processor, rate, seconds, pad=0):
        super().__init__(daemon=True, name='faults-producer')
        self.processor = processor
        self.perTick = max(int(round(rate * self.TICK)), 1)
        self.interval = self.perTick / float(rate)
        self.input = {'seconds': seconds}
        if pad:
            self.input['pad'] = pad
        self.jobids = []
        self.errors = []
        self.number = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.add(self.perTick)
            self._halt.wait(self.interval)

    def add(self, count):
        """Commit ``count`` jobs at once."""
        with self._lock:
            try:
                with transaction.manager:
                    added = [self.processor.addJob(
                        'record', dict(self.input, number=self.number + n))
                        for n in range(count)]
            except Exception as e:  # a scenario problem, not a crash
                self.errors.append('%s: %s' % (type(e).__name__, e))
            else:
                self.jobids += added
                self.number += len(added)

    def stop(self):
        self._halt.set()
        self.join(60)


def executedBy(database, worker, after):
    """When ``worker`` first recorded a run after ``after``, or None."""
    record = database[EXECUTIONS].find_one(
        {'worker': worker, 'at': {'$gt': after}}, sort=[('at', 1)])
    return record['at'] if record else None


def allTaking(run, workers, after):
    """``{label: seconds}`` from ``after`` to each worker's first run
    after it, once every worker has one; else None."""
    firsts = {}
    for process in workers:
        first = executedBy(run.database, run.workerId(process), after)
        if first is None:
            return None
        firsts[process.label] = (first - after).total_seconds()
    return firsts


def countChildren(result, found):
    """A parent whose child was stored twice ran twice; one whose child
    is missing lost its side effect."""
    children = {}
    for job in found.jobs.values():
        parent = (job.get('input') or {}).get('parent') \
            if isinstance(job.get('input'), dict) else None
        if parent:
            children[parent] = children.get(parent, 0) + 1
    twice = missing = 0
    for jobid, job in found.jobs.items():
        given = job.get('input') if isinstance(job.get('input'), dict) \
            else {}
        if not given.get('child'):
            continue
        count = children.get(jobid, 0)
        twice += max(count - 1, 0)
        missing += count == 0 and job['status'] == 'completed'
    result.duplicates += twice
    result.lost += missing
    if twice or missing:
        result.details.update(children_twice=twice, children_missing=missing)


def drain(result, run, jobids, timeout, stall):
    """Wait (bounded) until none of ``jobids`` is queued or processing.
    Jobs still ``processing`` under a lease their worker keeps renewing
    while nothing moves would be a batch stranded by a failed commit (the
    rest of the batch claimed, never run, never given back): counted in
    ``details['stranded']``; that, or anything else that does not move,
    is a problem of the scenario."""
    try:
        waitForCompletion(run, jobids, timeout, stall=stall)
    except ScenarioTimeout as e:
        wanted = [ObjectId(jobid) for jobid in jobids]
        stuck = list(run.database.rjobs.find(
            {'_id': {'$in': wanted}, 'status': {'$in': ['queued',
                                                        'processing']}},
            {'status': 1, 'leaseExpires': 1}))
        renewed = [job for job in stuck if job['status'] == 'processing'
                   and job.get('leaseExpires') and job['leaseExpires'] >
                   now()]
        if renewed:
            result.details['stranded'] = len(renewed)
        result.problems.append(str(e))


# The faults: each injects its own, for its length, and ends it.

def latency(run, processor, proxies, workers, size, result):
    for proxy in proxies:
        proxy.latency(size['latency'], size['jitter'])
    time.sleep(size['duration'])  # the fault's length, not a race
    for proxy in proxies:
        proxy.clear()


def partition(run, processor, proxies, workers, size, result):
    for proxy in proxies:
        proxy.partition()
    time.sleep(size['outage'])  # the fault's length, not a race
    for proxy in proxies:
        proxy.heal()


def isolated(run, processor, proxies, workers, size, result):
    longs = [ObjectId(processor.addJob(
        'record', {'seconds': size['long'], 'child': True, 'kind': 'long'}))
        for _ in range(size['threads'])]
    transaction.commit()
    result.details['long_jobs'] = len(longs)

    def victim():
        # A worker that began long jobs within the last second: they
        # run on well past the cut-off and the lease.
        recent = now() - datetime.timedelta(seconds=1)
        for process, proxy in zip(workers, proxies, strict=True):
            held = [job['_id'] for job in run.database.rjobs.find(
                {'_id': {'$in': longs}, 'status': 'processing',
                 'worker': run.workerId(process), 'picked': {'$gt': recent}},
                {'_id': 1})]
            if held:
                return process, proxy, held
        return None
    process, proxy, held = waitFor(victim, size['timeout'],
                                   'a worker running long jobs',
                                   interval=0.05)
    result.details.update(victim=process.label, victim_long_jobs=len(held))
    proxy.partition()
    time.sleep(size['outage'])  # the fault's length, not a race
    proxy.heal()


def flapping(run, processor, proxies, workers, size, result):
    for number in range(size['times']):
        if number:
            time.sleep(size['gap'])  # between two, not a race
        for proxy in proxies:
            proxy.partition()
        time.sleep(size['outage'])  # the fault's length, not a race
        for proxy in proxies:
            proxy.heal()


def resets(run, processor, proxies, workers, size, result):
    for proxy in proxies:
        proxy.resets(size['every'], size['lasting'])
    time.sleep(size['duration'])  # the fault's length, not a race
    for proxy in proxies:
        proxy.resets(None, None)
    result.details['resets'] = sum(proxy.stats['reset'] for proxy in proxies)


def silent(run, processor, proxies, workers, size, result):
    for proxy in proxies:
        proxy.silence(size['fraction'], size['outage'])
    time.sleep(size['outage'])  # the fault's length, not a race
    result.details['silenced'] = sum(proxy.stats['silenced']
                                     for proxy in proxies)


def slowlink(run, processor, proxies, workers, size, result):
    for proxy in proxies:
        proxy.rate(size['rate'])
    time.sleep(size['duration'])  # the fault's length, not a race
    for proxy in proxies:
        proxy.clear()


FAULTS = {'latency': latency, 'partition': partition, 'isolated': isolated,
          'flapping': flapping, 'resets': resets, 'silent': silent,
          'slowlink': slowlink}


def workerSettings(size):
    """The workers' settings: the scenario's lease, threads and batch,
    and timeouts that fit its link."""
    socketTimeout = size['socketTimeout']
    if size.get('pad'):
        # A batch's outcomes must reach the server within the timeout.
        socketTimeout = max(socketTimeout, 2.0 * size['pad'] *
                            (size.get('batch') or 1) / size['rate'] + 5)
    return settingsFor(size, **{
        'faults.retry_delay': size['retryDelay'],
        'm01.remote.socket_timeout': socketTimeout,
        'm01.remote.connect_timeout': size['connectTimeout'],
        'm01.remote.server_selection_timeout': size['connectTimeout']})


def network(name, env, size):
    """Run the network scenario ``name`` at ``size``; its ``Result``."""
    batch = size.get('batch') or 1
    result = Result('%s/%d' % (name, batch))
    run = Run(env.uri, env.workdir, '%s-%d' % (name, batch),
              **workerSettings(size))
    proxies = []
    producer = None
    try:
        processor = run.processor()
        for number in range(size['workers']):
            proxies.append(FaultProxy(env.uri, 'worker-%d' % number,
                                      seed=number).start())
        workers = [run.start('worker', ini=run.ini(
            'worker-%d' % number, **{'m01.remote.uri': proxy.uri}),
            label='worker-%d' % number)
            for number, proxy in enumerate(proxies)]
        waitServing(workers)
        producer = Producer(processor, size['produce'], size['seconds'],
                            size.get('pad', 0))
        producer.start()
        begun = now()
        waitFor(lambda: allTaking(run, workers, begun), size['timeout'],
                'every worker taking jobs before the fault', interval=0.2)
        # A backlog, so that the fault finds every thread in the middle
        # of a batch (or a job) with more claimed behind it.
        backlog = size['workers'] * size['threads'] * (
            size.get('batch') or 1) * 2
        producer.add(backlog)
        result.details['backlog'] = backlog
        started = time.monotonic()
        FAULTS[name](run, processor, proxies, workers, size, result)
        ended, endedAt = time.monotonic(), now()
        result.details['fault_s'] = round(ended - started, 1)
        # A loop backs off up to MAX_OUTAGE_WAIT; a lease keeper that
        # stopped its workers claiming renews within a lease; a new
        # connection waits for the server's check; a cut-off worker
        # first finishes its long jobs.
        bound = MAX_OUTAGE_WAIT + size['lease'] + 2 * size[
            'connectTimeout'] + size.get('long', 0) + LATENCY
        result.details['bound_s'] = round(bound, 1)
        try:
            firsts = waitFor(lambda: allTaking(run, workers, endedAt),
                             size['timeout'],
                             'every worker taking a job after the fault',
                             interval=0.2)
        except ScenarioTimeout as e:
            result.problems.append(str(e))
        else:
            result.recovery = max(firsts.values())
            result.check(result.recovery <= bound, 'a worker took %.1f s '
                         'to take a job after the fault, over the bound of '
                         '%.1f s' % (result.recovery, bound))
        producer.stop()
        result.problems += producer.errors[:3]
        dead = [process.label for process in workers if not process.alive]
        result.check(not dead, 'did not survive the fault: %s' % dead)
        expected = list(audit(run.database).jobs)
        stall = size['lease'] * 4 / 3.0 + size.get('long', 0) + LATENCY * 2
        drain(result, run, expected, size['timeout'], stall)
        # Children added by the last parents to complete.
        expected = list(audit(run.database).jobs)
        drain(result, run, expected, size['timeout'], stall)
        stopAll(result, [p for p in workers if p.alive], 'worker')
        found = audit(run.database)
        result.counted(found, list(found.jobs))
        countChildren(result, found)
        # Nothing lost, nothing run twice: a run taken over after its
        # lease expired stored nothing and is not counted.
        result.check(result.lost == 0, '%d jobs lost' % result.lost)
        result.check(result.duplicates == 0,
                     '%d jobs run twice' % result.duplicates)
        result.details.update(
            batch=batch, lease_s=size['lease'],
            socket_timeout_s=workerSettings(size)[
                'm01.remote.socket_timeout'],
            stale_runs=len(found.stale),
            workers_alive=len(workers) - len(dead))
    finally:
        if producer is not None and producer.is_alive():
            producer.stop()
        run.close()
        for proxy in proxies:
            proxy.close()
    return result
