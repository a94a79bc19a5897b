"""How fast the queue is, and what it costs the database.

Measures, on each store, then runs the same no-op workload through RQ,
Huey and Celery (``peers.py``) on this machine in the same run::

    python benchmarks/bench_queue.py [--jobs N]
        [--store embedded,mongojava] [--uri URI]
        [--parts enqueue,process,latency,scheduler,idle]
        [--peers/--no-peers] [--json PATH]

Stores (``--store``, default ``embedded,mongojava``): ``embedded`` is
``mongomock://`` (in-memory, one process); ``mongojava`` is a throw-away
mongo-java-server (real TCP, conditional writes atomic: the path a
MongoDB deployment takes). ``--uri`` adds the server it names (a real
MongoDB, say), as ``mongodb``.

What is measured (each row in a fresh database, dropped afterwards):

* Enqueue: ``--jobs`` jobs added with ``addJob``, committed one per
  transaction and in transactions of 100: jobs per second, and commands
  per enqueued job.
* Processing: jobs enqueued beforehand (no worker running), then one
  ``SimpleJobWorker`` or one ``MultiJobWorker`` (``--threads``) per
  process, in 1 and in 2 processes, each with the default settings
  (batches sized by the worker), with single claims (``batchSize = 1``)
  and with batches of ``--batch``; on a server three throw-away rows
  first warm it up: jobs per second from the first job's
  start to the last job's committed outcome (as ``peers.py`` does from the
  first start to the last end), and commands per processed job from the
  workers' start to that last commit; those of the lease keeper and the
  heartbeat, which depend on time, not on jobs, are counted apart
  (``lease_commands``), as are those of claims that found no job while
  the last jobs ran (``idle_commands``) and the writes of the outcome
  counters (``counter_commands``, until the workers stopped and wrote
  what they still counted). The
  embedded store cannot be shared by two processes, so it has no
  2-process rows; its 1-process workers run in the driver's process. The
  change stream watchers' commands, which also depend on time, are
  counted with the lease keeper's. One more row processes jobs that
  each hold a key (``addJob(..., key=...)``) and a concurrency slot of
  their factory, with a simple worker in 1 process: what taking and
  releasing them costs.
* Latency, from just before ``addJob`` to the job's start, median and
  99th percentile of ``--latency-samples`` single jobs, each added 50 ms
  after the previous one started: a worker in the same process, woken by
  the commit at once; a worker in another process woken by its change
  stream (``m01.remote.wakeup = changestream``; servers that offer them
  only); and a worker that is not woken and polls every ``waitTime`` (1
  s, the default; ``wakeup = poll``): in another process on a server, in
  another processor of the same process on the embedded store. For the
  other-process workers a random 0 to ``waitTime`` s is added to the
  pause, or every job would arrive at the same moment of a poll cycle.
* Scheduler: ``--cron-items`` Cron items, all due, turned into jobs by a
  processor that did not add them: occurrences per second and commands per
  occurrence.
* Idle cost: commands per second of an idle worker (its lease keeper
  and its change stream watcher included) and of an idle scheduler (its
  watcher included), over ``--idle-seconds``.

Commands are counted with pymongo's command monitoring. The embedded store
sends none: there the collection method calls are counted (``calls``),
each being what one command would be on a server (``bench_worker.py``).

Every row is bounded by ``--row-timeout`` seconds; a processing row that
runs out of time is reported with the rate it reached (``partial``).
``--process-jobs`` sets the number of jobs of the processing rows per
store (``embedded=N,mongojava=N,mongodb=N``); the table shows
it in column ``N``.
"""
import argparse
import contextlib
import datetime
import json
import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The benchmarks' modules, and the tests' support package.
for path in (str(HERE), str(HERE.parent / 'tests')):
    if path not in sys.path:
        sys.path.insert(0, path)

import bench_jobs  # noqa: E402
import bench_worker  # noqa: E402
import bson  # noqa: E402
import peers  # noqa: E402
import transaction  # noqa: E402
from bench_worker import counter  # noqa: E402

from m01.remote.processor import RemoteProcessor  # noqa: E402
from m01.remote.scheduler import Cron  # noqa: E402
from m01.remote.worker import SchedulerWorker, SimpleJobWorker  # noqa: E402
from support import javaserver, testserver  # noqa: E402

UTC = datetime.timezone.utc
DEFAULT_JOBS = 10_000
#: Jobs per processing row, per store: both stores read their whole jobs
#: collection for some calls (see docs/benchmarks.rst, "The queue"), so
#: 10,000 jobs would take far beyond --row-timeout there.
DEFAULT_PROCESS_JOBS = {'embedded': 1000, 'mongojava': 1000,
                        'mongodb': 1000}
STORES = ('embedded', 'mongojava')
#: The rows' kinds (``--parts``).
PARTS = ('enqueue', 'process', 'latency', 'scheduler', 'idle')
DEFAULT_ROW_TIMEOUT = 600.0
ENQUEUE_BATCH = 100
LATENCY_WARMUP = 3
LATENCY_GAP = 0.05
POLL = 0.005
WAIT_TIME = 1.0

TARGETS = {
    'commands_per_processed_job': 2.0,
    'commands_per_processed_job_batched': 0.5,
    'default_settings_huey_ratio': 1.5,
    'commands_per_enqueued_job_tx100': 0.05,
    'same_process_latency_median_ms': 20.0,
    'streams_latency_median_ms': 50.0,
    'streams_latency_p99_ms': 200.0,
}


def say(message):
    print(message, file=sys.stderr, flush=True)


class RowTimeout(Exception):
    """A row ran out of time; ``partial`` holds what it measured."""

    def __init__(self, message, partial=None):
        super().__init__(message)
        self.partial = partial


# stores


class Store:
    """Where the rows run: the embedded store or a MongoDB-wire server."""

    def __init__(self, key, uri):
        self.key = key
        self.uri = uri
        self.embedded = uri.startswith('mongomock:')
        self.unit = 'calls' if self.embedded else 'cmds'
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = bench_worker.connect(self.uri)
        return self._client

    @contextlib.contextmanager
    def fresh(self):
        """A new, empty database, dropped at the end: ``(name, db)``."""
        name = testserver.unique_database_name('m01bench')
        if self.embedded:
            client = bench_worker.connect(self.uri)  # a new in-memory store
            try:
                yield name, client[name]
            finally:
                transaction.abort()
                client.close()
            return
        try:
            yield name, self.client[name]
        finally:
            transaction.abort()
            self.client.drop_database(name)

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None


#: The job factories a row may use: a no-op, the latency job, and a no-op
#: of a factory with a concurrency limit (its jobs take and release a
#: slot).
FACTORIES = {'noop': lambda: bench_jobs.NoopJob(),
             'stamp': lambda: bench_jobs.StampJob(),
             'capped': lambda: bench_jobs.NoopJob({'concurrency': 2})}


def processor(db, name='bench', factories=('noop',)):
    rp = RemoteProcessor(db, name=name)
    rp.ensureIndexes()
    for factory in factories:
        rp.addJobFactory(factory, FACTORIES[factory]())
    return rp


def enqueue(rp, jobs, perTransaction, factory='noop', deadline=None,
            keyed=False):
    """Add ``jobs`` jobs, committing every ``perTransaction``; the number
    added (less than ``jobs`` when the deadline passed). ``keyed``: each
    with a key of its own, released when it ends."""
    for number in range(jobs):
        rp.addJob(factory, number,
                  key='job-%d' % number if keyed else None)
        if (number + 1) % perTransaction == 0 or number + 1 == jobs:
            transaction.commit()
            if deadline is not None and time.monotonic() > deadline:
                return number + 1
    return jobs


def row(store, key, what, n, **figures):
    result = {'store': store.key, 'key': key, 'what': what, 'n': n,
              'per_s': None, 'commands': None, 'commands_unit': None,
              'latency_ms': None, 'seconds': None, 'note': None,
              'error': None}
    result.update(figures)
    return result


# enqueue


def benchEnqueue(store, jobs, perTransaction, timeout):
    what = 'enqueue, %s per transaction' % (
        '1 job' if perTransaction == 1 else '%d jobs' % perTransaction)
    with store.fresh() as (_, db):
        rp = processor(db)
        before = counter.total
        started = time.perf_counter()
        added = enqueue(rp, jobs, perTransaction,
                        deadline=time.monotonic() + timeout)
        seconds = time.perf_counter() - started
        commands = counter.total - before
    result = row(store, 'enqueue_tx%d' % perTransaction, what, jobs,
                 per_s=added / seconds, seconds=seconds,
                 commands=commands / added,
                 commands_unit='%s/job' % store.unit)
    if added < jobs:
        result['note'] = 'partial: %d of %d jobs in %.0f s' % (
            added, jobs, seconds)
    return result


# processing


class WorkerProcesses:
    """Worker processes (``bench_worker.py``) and their latest figures."""

    def __init__(self, store, database, kind, count, threads, waitTime,
                 batch=None, wakeup='auto'):
        env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=os.pathsep
                   .join(p for p in (str(HERE), os.environ.get(
                       'PYTHONPATH', '')) if p))
        self.procs = []
        self.latest = []
        self._readers = []
        for number in range(count):
            command = [sys.executable, str(HERE / 'bench_worker.py'),
                       store.uri, database, '--kind', kind,
                       '--threads', str(threads),
                       '--batch', str(batch or 0),
                       '--wait-time', str(waitTime),
                       '--name', 'bench-%d' % number, '--wakeup', wakeup]
            proc = subprocess.Popen(command, stdout=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, env=env,
                                    text=True)
            self.procs.append(proc)
            self.latest.append({})
            reader = threading.Thread(target=self._read,
                                      args=(number, proc), daemon=True)
            reader.start()
            self._readers.append(reader)

    def _read(self, number, proc):
        for line in proc.stdout:
            with contextlib.suppress(ValueError):
                self.latest[number] = json.loads(line)

    def done(self):
        return sum(figures.get('done', 0) for figures in self.latest)

    def waitReady(self, timeout):
        """Until every process said something (its worker runs; with
        ``--wakeup changestream``, its stream is open)."""
        deadline = time.monotonic() + timeout
        while not all(self.latest):
            self.check()
            if time.monotonic() > deadline:
                raise RowTimeout('the worker processes did not start')
            time.sleep(POLL)

    def check(self):
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError('a worker process exited with status %s'
                                   % proc.returncode)

    def stop(self, grace=60.0):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for reader in self._readers:
            reader.join(10)
        return self.latest


def _processingFigures(tallies, jobs):
    done = sum(t['done'] for t in tallies)
    firsts = [t['first'] for t in tallies if t.get('first')]
    lasts = [t['last'] for t in tallies if t.get('last')]
    counted = [t for t in tallies if t.get('commandsAtLast') is not None]
    commands = sum(t['commandsAtLast'] - t['commandsAtStart']
                   for t in counted)
    background = sum(t['backgroundAtLast'] - t['backgroundAtStart']
                     for t in counted)
    # The outcome counters' writes until the last job, and all of them
    # (a stopping worker writes what it still counted).
    countersUntilLast = sum((t.get('countersAtLast') or 0) -
                            t.get('countersAtStart', 0) for t in counted)
    counters = sum(t.get('counters', 0) - t.get('countersAtStart', 0)
                   for t in counted)
    idle = sum((t.get('idleAtLast') or 0) - t.get('idleAtStart', 0)
               for t in counted)
    seconds = max(lasts) - min(firsts) if firsts and lasts else None
    return {'done': done, 'seconds': seconds,
            'per_s': done / seconds if seconds else None,
            'commands': (commands - background - countersUntilLast - idle)
            / done if done else None,
            'lease_commands': background / done if done else None,
            'idle_commands': idle / done if done else None,
            'counter_commands': counters / done if done else None}


def benchProcess(store, jobs, kind, processes, threads, timeout,
                 batch=None, keyed=False):
    what = 'process, %s%s, %d process%s, %s' % (
        'keyed jobs of a capped factory, ' if keyed else '',
        'simple worker' if kind == 'simple'
        else 'multi-thread worker x%d' % threads,
        processes, '' if processes == 1 else 'es',
        'default settings' if batch is None else 'single claims'
        if batch == 1 else 'batches of %d' % batch)
    key = processKey(kind, processes, batch, keyed)
    if store.embedded and processes > 1:
        return row(store, key, what, jobs, note=(
            'not possible: the embedded store lives in one process'))
    with store.fresh() as (name, db):
        factory = 'capped' if keyed else 'noop'
        rp = processor(db, factories=(factory,))
        enqueue(rp, jobs, ENQUEUE_BATCH, factory, keyed=keyed)
        deadline = time.monotonic() + timeout
        partial = None
        if store.embedded:
            running = bench_worker.RunningWorker(rp, kind, threads,
                                                 WAIT_TIME, batch=batch)
            try:
                while running.tally.done < jobs:
                    if time.monotonic() > deadline:
                        partial = True
                        break
                    time.sleep(0.05)
            finally:
                running.stop()
                rp.counters.flush()
            tallies = [running.tally.figures()]
        else:
            workers = WorkerProcesses(store, name, kind, processes,
                                      threads, WAIT_TIME, batch)
            try:
                while workers.done() < jobs:
                    workers.check()
                    if time.monotonic() > deadline:
                        partial = True
                        break
                    time.sleep(0.05)
            finally:
                tallies = workers.stop()
        completed = rp.jobsCollection.count_documents(
            {'status': 'completed'})
    figures = _processingFigures(tallies, jobs)
    result = row(store, key, what, jobs, per_s=figures['per_s'],
                 seconds=figures['seconds'], commands=figures['commands'],
                 commands_unit='%s/job' % store.unit,
                 lease_commands=figures['lease_commands'],
                 idle_commands=figures['idle_commands'],
                 counter_commands=figures['counter_commands'],
                 processed=figures['done'], completed=completed)
    if partial:
        result['note'] = 'partial: %d of %d jobs in %.0f s' % (
            figures['done'], jobs, timeout)
    elif figures['done'] != jobs or completed != jobs:
        result['error'] = ('%d runs for %d jobs, %d completed'
                           % (figures['done'], jobs, completed))
    return result


# latency


def _percentile(values, pct):
    ordered = sorted(values)
    rank = max(1, -(-pct * len(ordered) // 100))
    return ordered[int(rank) - 1]


def _latencyFigures(values):
    return {'median': statistics.median(values),
            'p99': _percentile(values, 99)}


def _sample(rp, samples, timeout, waitForStart, jitter=0.0):
    deadline = time.monotonic() + timeout
    rhythm = random.Random(samples)
    values = []
    for number in range(LATENCY_WARMUP + samples):
        if time.monotonic() > deadline:
            raise RowTimeout('latency: %d samples in %.0f s'
                             % (len(values), timeout),
                             _latencyFigures(values) if values else None)
        enqueued = time.time()
        jobid = rp.addJob('stamp')
        transaction.commit()
        started = waitForStart(jobid, deadline)
        if number >= LATENCY_WARMUP:
            values.append((started - enqueued) * 1000.0)
        time.sleep(LATENCY_GAP + rhythm.uniform(0.0, jitter))
    return values


def _startedHere(jobid, deadline):
    while True:
        try:
            ranid, started = bench_jobs.STARTS.get(
                timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise RowTimeout('latency: job %s did not start' % jobid)
        if ranid == jobid:
            return started


def _drainStarts():
    with contextlib.suppress(queue.Empty):
        while True:
            bench_jobs.STARTS.get_nowait()


def benchLatencySameProcess(store, samples, timeout):
    what = 'latency, same process (woken at once)'
    with store.fresh() as (_, db):
        rp = processor(db, factories=('stamp',))
        _drainStarts()
        running = bench_worker.RunningWorker(rp, 'simple',
                                             waitTime=WAIT_TIME)
        try:
            values = _sample(rp, samples, timeout, _startedHere)
        finally:
            running.stop()
    return row(store, 'latency_same_process', what, samples,
               latency_ms=_latencyFigures(values))


def benchLatencyPolling(store, samples, timeout):
    return _latencyElsewhere(store, samples, timeout, 'poll')


def benchLatencyStreams(store, samples, timeout):
    return _latencyElsewhere(store, samples, timeout, 'changestream')


def _latencyElsewhere(store, samples, timeout, wakeup):
    key = {'poll': 'latency_polling', 'changestream': 'latency_streams'}[
        wakeup]
    with store.fresh() as (name, db):
        rp = processor(db, factories=('stamp',))
        _drainStarts()
        if wakeup == 'changestream' and store.embedded:
            return row(store, key, 'latency, another process, change '
                       'streams', samples, note='not possible: the store '
                       'has no change streams')
        if store.embedded:
            what = ('latency, another processor polling every %g s '
                    '(same process: embedded store)' % WAIT_TIME)
            other = RemoteProcessor(db, name='bench-other', wakeup='poll')
            running = bench_worker.RunningWorker(other, 'simple',
                                                 waitTime=WAIT_TIME)
            try:
                values = _sample(rp, samples, timeout, _startedHere,
                                 WAIT_TIME)
            finally:
                running.stop()
        else:
            what = ('latency, another process polling every %g s'
                    % WAIT_TIME) if wakeup == 'poll' else (
                'latency, another process, change streams (polling '
                'every %g s too)' % WAIT_TIME)
            workers = WorkerProcesses(store, name, 'simple', 1, 1,
                                      WAIT_TIME, wakeup=wakeup)
            workers.waitReady(timeout)

            def startedThere(jobid, deadline):
                oid = bson.ObjectId(jobid)
                while time.monotonic() < deadline:
                    workers.check()
                    document = rp.jobsCollection.find_one(
                        {'_id': oid}, {'status': 1, 'output': 1})
                    if document and document.get('status') == 'completed':
                        return document['output']
                    time.sleep(POLL)
                raise RowTimeout('latency: job %s did not run' % jobid)
            try:
                values = _sample(rp, samples, timeout, startedThere,
                                 WAIT_TIME)
            finally:
                workers.stop()
    return row(store, key, what, samples,
               latency_ms=_latencyFigures(values))


# scheduler and idle cost


def benchScheduler(store, items, timeout):
    what = 'scheduler, %d Cron items due at once' % items
    with store.fresh() as (_, db):
        setup = processor(db, name='bench-setup')
        due = datetime.datetime.now(UTC) - datetime.timedelta(minutes=1)
        for number in range(items):
            setup.addScheduler(Cron({'jobName': 'noop', 'input': number,
                                     'nextCallTime': due}))
        # Another processor: nothing of the items is cached there.
        rp = RemoteProcessor(db, name='bench-scheduler')
        deadline = time.monotonic() + timeout
        before = counter.total
        started = time.perf_counter()
        made = 0
        while made < items + 10 and time.monotonic() < deadline:
            if rp.scheduleNextJob() is None:
                break
            made += 1
        seconds = time.perf_counter() - started
        commands = counter.total - before
        jobs = rp.jobsCollection.count_documents({})
    result = row(store, 'scheduler', what, items, per_s=made / seconds,
                 seconds=seconds, commands=commands / made if made else None,
                 commands_unit='%s/occurrence' % store.unit, jobs=jobs)
    if made < items:
        result['note'] = 'partial: %d of %d in %.0f s' % (made, items,
                                                          seconds)
    if jobs != made:
        result['error'] = '%d occurrences made %d jobs' % (made, jobs)
    return result


def benchIdle(store, seconds):
    with store.fresh() as (_, db):
        rp = processor(db, name='bench-idle')
        worker = SimpleJobWorker(rp, waitTime=WAIT_TIME)
        scheduler = SchedulerWorker(rp, waitTime=WAIT_TIME)
        threads = [threading.Thread(target=worker, name='idle-worker',
                                    daemon=True),
                   threading.Thread(target=scheduler, name='idle-scheduler',
                                    daemon=True)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)  # past the first claims and lookups
            _, before, _ = counter.snapshot()
            time.sleep(seconds)
            _, after, _ = counter.snapshot()
        finally:
            worker.stop()
            scheduler.stop()
            for thread in threads:
                thread.join(30)
    diff = after - before
    workerCommands = diff['idle-worker'] + diff[
        'm01.remote-leases-bench-idle'] + diff[
        'm01.remote-changes-bench-idle-%s' % rp.jobsCollection.name]
    schedulerCommands = diff['idle-scheduler'] + diff[
        'm01.remote-changes-bench-idle-%s' % rp.schedulerCollection.name]
    return [
        row(store, 'idle_worker', 'idle worker (waitTime %g s, lease '
            'keeper and change stream included)' % WAIT_TIME, None,
            seconds=seconds, commands=workerCommands / seconds,
            commands_unit='%s/s' % store.unit),
        row(store, 'idle_scheduler', 'idle scheduler (waitTime %g s, '
            'change stream included)' % WAIT_TIME, None, seconds=seconds,
            commands=schedulerCommands / seconds,
            commands_unit='%s/s' % store.unit),
    ]


def guarded(function, store, key, what, n, *args):
    """Run one row; a failure or timeout becomes a row with an error."""
    try:
        return function(store, *args)
    except RowTimeout as e:
        result = row(store, key, what, n, error=str(e))
        if e.partial:
            result['latency_ms'] = e.partial
        return result
    except Exception as e:  # any failure is reported, the run goes on
        transaction.abort()
        return row(store, key, what, n, error='%s: %s'
                   % (type(e).__name__, e))


def processKey(kind, processes, batch=None, keyed=False):
    """A processing row's key: ``process_multi_1p`` with the default
    settings (batches sized by the worker), ``..._single`` claiming one
    job at a time (``batchSize = 1``), ``..._b50`` in batches of 50."""
    key = '%s_%s_%dp' % ('keyed' if keyed else 'process', kind, processes)
    if batch is None:
        return key
    return key + ('_single' if batch == 1 else '_b%d' % batch)


def runStore(store, args, processJobs):
    rows = []

    def add(result):
        for one in result if isinstance(result, list) else [result]:
            rows.append(one)
            say('[%s] %s' % (store.key, _line(one)))

    parts = args.parts
    if 'enqueue' in parts:
        for perTransaction in (1, ENQUEUE_BATCH):
            add(guarded(benchEnqueue, store, 'enqueue_tx%d' % perTransaction,
                        'enqueue', args.jobs, args.jobs, perTransaction,
                        args.row_timeout))
    if 'process' in parts and not store.embedded:
        # Throw-away rows first: a fresh mongo-java-server's JVM runs its
        # first thousands of commands several times slower, which would
        # count against whichever rows came first.
        say('[%s] warming the server up' % store.key)
        for kind in ('multi', 'simple', 'multi'):
            guarded(benchProcess, store, 'warm-up', 'process', processJobs,
                    processJobs, kind, 1, args.threads, args.row_timeout,
                    None)
    for processes in (1, 2) if 'process' in parts else ():
        # The default settings (batches sized by the worker), single
        # claims, batches of --batch.
        kinds = [('simple', None), ('multi', None), ('simple', 1),
                 ('multi', 1)]
        if args.batch > 1:
            kinds += [('simple', args.batch), ('multi', args.batch)]
        for kind, batch in kinds:
            add(guarded(benchProcess, store, processKey(
                kind, processes, batch), 'process', processJobs,
                processJobs, kind, processes, args.threads,
                args.row_timeout, batch))
    if 'process' in parts:
        # A key to release and a concurrency slot to take and release,
        # each job.
        add(guarded(benchProcess, store, processKey('simple', 1,
                                                    keyed=True),
                    'process', processJobs, processJobs, 'simple', 1,
                    args.threads, args.row_timeout, None, True))
    if 'latency' in parts:
        add(guarded(benchLatencySameProcess, store, 'latency_same_process',
                    'latency, same process', args.latency_samples,
                    args.latency_samples, args.row_timeout))
        add(guarded(benchLatencyStreams, store, 'latency_streams',
                    'latency, change streams', args.latency_samples,
                    args.latency_samples, args.row_timeout))
        add(guarded(benchLatencyPolling, store, 'latency_polling',
                    'latency, polling', args.latency_samples,
                    args.latency_samples, args.row_timeout))
    if 'scheduler' in parts:
        add(guarded(benchScheduler, store, 'scheduler', 'scheduler',
                    args.cron_items, args.cron_items, args.row_timeout))
    if 'idle' in parts:
        add(guarded(benchIdle, store, 'idle', 'idle cost', None,
                    args.idle_seconds))
    return rows


# reporting


def _num(value, digits=0):
    return '-' if value is None else '{:,.{}f}'.format(value, digits)


def _line(r):
    latency = r.get('latency_ms') or {}
    parts = [r['what'], 'N=%s' % _num(r['n']) if r['n'] else '',
             '%s/s' % _num(r['per_s'], 1) if r['per_s'] else '',
             '%s %s' % (_num(r['commands'], 2), r['commands_unit'])
             if r['commands'] is not None else '',
             'median %s ms p99 %s ms' % (_num(latency.get('median'), 1),
                                        _num(latency.get('p99'), 1))
             if latency else '', r['note'] or '',
             'ERROR %s' % r['error'] if r['error'] else '']
    return '  '.join(p for p in parts if p)


def formatTable(rows):
    header = ('store', 'measurement', 'N', 'per s', 'commands',
              'median ms', 'p99 ms')
    body = []
    notes = []
    for r in rows:
        latency = r.get('latency_ms') or {}
        commands = ('-' if r['commands'] is None else '%s %s' % (
            _num(r['commands'], 3 if r['commands'] < 1 else 2),
            r['commands_unit']))
        if r.get('lease_commands'):
            commands += ' +%.3f lease' % r['lease_commands']
        if r.get('idle_commands'):
            commands += ' +%.3f idle' % r['idle_commands']
        if r.get('counter_commands') is not None:
            commands += ' +%.4f counters' % r['counter_commands']
        body.append((r['store'], r['what'], _num(r['n']),
                     _num(r['per_s'], 1), commands,
                     _num(latency.get('median'), 1),
                     _num(latency.get('p99'), 1)))
        for text in (r['note'], r['error'] and 'ERROR ' + r['error']):
            if text:
                notes.append('%s / %s: %s' % (r['store'], r['what'], text))
    return _render(header, body, numeric={2, 3, 5, 6}) + (
        '\n' + '\n'.join(notes) if notes else '')


def _render(header, body, numeric):
    widths = [max(len(str(c)) for c in column)
              for column in zip(header, *body, strict=True)]

    def line(cells):
        pairs = enumerate(zip(cells, widths, strict=True))
        return '  '.join(
            str(c).rjust(w) if i in numeric else str(c).ljust(w)
            for i, (c, w) in pairs).rstrip()
    return '\n'.join([line(header), line('-' * w for w in widths)] +
                     [line(cells) for cells in body])


def _find(rows, store, key):
    for r in rows:
        if r['store'] == store and r['key'] == key:
            return r
    return None


def comparison(rows, peerRows, stores):
    """Our throughput and latency divided by each peer's."""
    result = []
    for peer in peerRows:
        entry = {'peer': peer['name'], 'variant': peer['variant'],
                 'process_per_s': peer['process_per_s'],
                 'latency_median_ms': (peer['latency_ms'] or {}).get(
                     'median')}
        for store in stores:
            ours = _fastestMulti(rows, store) or {}
            polling = _find(rows, store, 'latency_polling') or {}
            streams = _find(rows, store, 'latency_streams') or {}
            same = _find(rows, store, 'latency_same_process') or {}
            entry[store] = {
                'throughput_ratio': _ratio(ours.get('per_s'),
                                           peer['process_per_s']),
                'latency_polling_ratio': _ratio(
                    (polling.get('latency_ms') or {}).get('median'),
                    entry['latency_median_ms']),
                'latency_streams_ratio': _ratio(
                    (streams.get('latency_ms') or {}).get('median'),
                    entry['latency_median_ms']),
                'latency_same_process_ratio': _ratio(
                    (same.get('latency_ms') or {}).get('median'),
                    entry['latency_median_ms']),
            }
        result.append(entry)
    return result


def _fastestMulti(rows, store):
    """Our multi-thread worker's row in one process, batched or not,
    whichever processed more jobs a second."""
    candidates = [r for r in rows if r['store'] == store and r['per_s']
                  and r['key'].startswith('process_multi_1p')]
    return max(candidates, key=lambda r: r['per_s'], default=None)


def _ratio(ours, theirs):
    return ours / theirs if ours and theirs else None


def formatComparison(entries, stores):
    header = ['peer', 'variant', 'jobs/s', 'median ms']
    for store in stores:
        header += ['%s jobs/s ratio' % store, '%s latency ratio' % store]
    body = []
    for e in entries:
        cells = [e['peer'], e['variant'], _num(e['process_per_s']),
                 _num(e['latency_median_ms'], 1)]
        for store in stores:
            cells += [_num(e[store]['throughput_ratio'], 3),
                      '%s / %s / %s' % (
                          _num(e[store]['latency_same_process_ratio'], 2),
                          _num(e[store]['latency_streams_ratio'], 1),
                          _num(e[store]['latency_polling_ratio'], 1))]
        body.append(cells)
    return _render(header, body, numeric=set(range(2, len(header))))


def targets(rows, peerRows, stores):
    """Each target, per store, with the measured value and whether met."""
    result = []
    rq = [p for p in peerRows if p['name'] == 'RQ' and p['process_per_s']]
    huey = [p for p in peerRows
            if p['name'] == 'Huey' and p['process_per_s']]
    for store in stores:
        for r in rows:
            if r['store'] == store and r['key'].startswith('process_') \
                    and r['commands'] is not None:
                batched = '_single' not in r['key'] and \
                    not r['key'].startswith('keyed')
                limit = TARGETS['commands_per_processed_job_batched'
                                if batched else 'commands_per_processed_job']
                result.append(_target(
                    store, '%s: at most %g commands per processed job'
                    % (r['what'], limit), r['commands'],
                    # At the precision printed: a worker's last claims
                    # find the queue empty (2.0002 is 2 commands a job).
                    round(r['commands'], 3) <= limit))
        tx100 = _find(rows, store, 'enqueue_tx100')
        if tx100 and tx100['commands'] is not None:
            result.append(_target(
                store, 'at most 0.05 commands per enqueued job (100 per '
                'transaction)', tx100['commands'], tx100['commands'] <=
                TARGETS['commands_per_enqueued_job_tx100']))
        multi = _fastestMulti(rows, store)
        for peer in rq:
            if multi and multi['per_s']:
                result.append(_target(
                    store, 'multi-thread worker at least as fast as RQ %s '
                    '(%s jobs/s)' % (peer['variant'],
                                     _num(peer['process_per_s'])),
                    multi['per_s'], multi['per_s'] >= peer['process_per_s']))
        for peer in huey:
            if multi and multi['per_s']:
                ratio = multi['per_s'] / peer['process_per_s']
                result.append(_target(
                    store, 'multi-thread worker (%s) at least as fast as '
                    'Huey %s (%s jobs/s; ours %s): ratio' % (
                        multi['what'], peer['variant'],
                        _num(peer['process_per_s']), _num(multi['per_s'])),
                    ratio, ratio >= 1.0))
        for key in ('process_simple_1p', 'process_multi_1p'):
            default = _find(rows, store, key)
            for peer in huey:
                if default and default['per_s']:
                    ratio = default['per_s'] / peer['process_per_s']
                    result.append(_target(
                        store, '%s at least %g times as fast as Huey %s '
                        '(%s jobs/s; ours %s): ratio' % (
                            default['what'],
                            TARGETS['default_settings_huey_ratio'],
                            peer['variant'], _num(peer['process_per_s']),
                            _num(default['per_s'])),
                        ratio,
                        ratio >= TARGETS['default_settings_huey_ratio']))
        streams = _find(rows, store, 'latency_streams')
        if streams and streams['latency_ms']:
            latency = streams['latency_ms']
            result.append(_target(
                store, 'another process woken by its change stream: '
                'median under %g ms' % TARGETS['streams_latency_median_ms'],
                latency['median'],
                latency['median'] < TARGETS['streams_latency_median_ms']))
            result.append(_target(
                store, 'another process woken by its change stream: '
                '99th percentile under %g ms'
                % TARGETS['streams_latency_p99_ms'], latency['p99'],
                latency['p99'] < TARGETS['streams_latency_p99_ms']))
        same = _find(rows, store, 'latency_same_process')
        if same and same['latency_ms']:
            median = same['latency_ms']['median']
            result.append(_target(
                store, 'same-process latency median under 20 ms', median,
                median < TARGETS['same_process_latency_median_ms']))
    return result


def _target(store, what, value, met):
    return {'store': store, 'target': what, 'value': value, 'met': met}


def formatTargets(entries):
    return '\n'.join('%-6s %-8s %s: %s' % (
        'met' if e['met'] else 'MISSED', e['store'], e['target'],
        _num(e['value'], 3 if e['value'] < 10 else 1)) for e in entries)


# the command


def _processJobs(text, jobs):
    chosen = {key: min(value, jobs)
              for key, value in DEFAULT_PROCESS_JOBS.items()}
    for part in filter(None, (text or '').split(',')):
        key, _, value = part.partition('=')
        if key not in chosen:
            raise SystemExit('--process-jobs: unknown store %r' % key)
        chosen[key] = int(value)
    return chosen


def parseArgs(argv):
    parser = argparse.ArgumentParser(
        description='Throughput, latency and database cost of m01.remote, '
        'beside RQ, Huey and Celery.')
    parser.add_argument('--jobs', type=int, default=DEFAULT_JOBS,
                        help='jobs enqueued (and given to the peers); '
                        'default %(default)s')
    parser.add_argument('--process-jobs', metavar='STORE=N,...',
                        help='jobs per processing row (default: %s, at '
                        'most --jobs)' % ','.join(
                            '%s=%d' % item
                            for item in DEFAULT_PROCESS_JOBS.items()))
    parser.add_argument('--store', default='embedded,mongojava',
                        help='comma-separated stores of %s (default '
                        '%%(default)s)' % ', '.join(STORES))
    parser.add_argument('--uri', help='also measure the MongoDB-wire '
                        'server at this URI')
    parser.add_argument('--peers', action=argparse.BooleanOptionalAction,
                        default=True, help='also run RQ, Huey and Celery')
    parser.add_argument('--threads', type=int, default=4)
    parser.add_argument('--batch', type=int, default=50,
                        help='the batch size of the batched processing '
                        'rows (1: none); default %(default)s')
    parser.add_argument('--parts', default=','.join(PARTS),
                        help='comma-separated rows to measure of %s '
                        '(default all)' % ', '.join(PARTS))
    parser.add_argument('--latency-samples', type=int, default=200)
    parser.add_argument('--cron-items', type=int, default=1000)
    parser.add_argument('--idle-seconds', type=float, default=40.0)
    parser.add_argument('--row-timeout', type=float,
                        default=DEFAULT_ROW_TIMEOUT)
    parser.add_argument('--json', metavar='PATH',
                        help='also write the figures as JSON')
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.latency_samples < 1 or args.cron_items < 1:
        parser.error('--jobs, --latency-samples and --cron-items must be '
                     'at least 1')
    args.stores = [name.strip() for name in args.store.split(',')
                   if name.strip()]
    unknown = sorted(set(args.stores) - set(STORES))
    if unknown:
        parser.error('--store: unknown store(s) %s; choose from %s'
                     % (', '.join(unknown), ', '.join(STORES)))
    args.parts = {name.strip() for name in args.parts.split(',')
                  if name.strip()}
    if args.parts - set(PARTS):
        parser.error('--parts: unknown part(s) %s; choose from %s' % (
            ', '.join(sorted(args.parts - set(PARTS))), ', '.join(PARTS)))
    args.processJobs = _processJobs(args.process_jobs, args.jobs)
    return args


@contextlib.contextmanager
def serverStore(key, uri=None):
    """The server store ``key``: a throw-away one started for the run, or
    the server at ``uri``."""
    if uri is not None:
        store = Store(key, uri)
        try:
            yield store
        finally:
            store.close()
        return
    say('starting %s' % key)
    with javaserver.java_server(oplog=True, progress=say) as started:
        store = Store(key, started)
        try:
            yield store
        finally:
            store.close()


def main(argv=None):
    args = parseArgs(argv)
    machine = peers.machine_info()
    started = datetime.datetime.now(UTC)
    rows, stores = [], []
    if 'embedded' in args.stores:
        store = Store('embedded', 'mongomock://')
        stores.append(store.key)
        rows += runStore(store, args, args.processJobs['embedded'])
    servers = [(key, None) for key in args.stores if key != 'embedded']
    if args.uri:
        servers.append(('mongodb', args.uri))
    machine['servers'] = {}
    for key, uri in servers:
        with serverStore(key, uri) as store:
            server = store.client.server_info()
            machine['servers'][store.key] = {
                name: server.get(name) for name in ('version',)}
            stores.append(store.key)
            rows += runStore(store, args,
                             args.processJobs.get(store.key, args.jobs))
    peerRows = []
    if args.peers:
        machine['loadavg_before_peers'] = list(os.getloadavg())
        peerRows = peers.run_peers(args.jobs, args.latency_samples,
                                   workers_threads=args.threads, log=say)
    machine['loadavg_1_5_15_at_end'] = list(os.getloadavg())
    compared = comparison(rows, peerRows, stores)
    checked = targets(rows, peerRows, stores)

    print('m01.remote queue benchmark, %s, %s CPUs, load average %s at '
          'start, %s at end' % (
              started.strftime('%Y-%m-%d %H:%M UTC'), machine['cpu_count'],
              ' '.join('%.1f' % v for v in machine['loadavg_1_5_15']),
              ' '.join('%.1f' % v for v in machine[
                  'loadavg_1_5_15_at_end'])))
    print('commands: pymongo command events on a server; collection '
          'method calls (calls) on the embedded store\n')
    print(formatTable(rows))
    if peerRows:
        print('\nPeers (%d jobs, %d latency samples, %d workers):\n'
              % (args.jobs, args.latency_samples, args.threads))
        print(peers.format_table(peerRows))
        print('\nOurs divided by theirs: throughput of our multi-thread '
              'worker (x%d, 1 process); latency median same process / '
              'change streams / polling (above 1: we are slower):\n'
              % args.threads)
        print(formatComparison(compared, stores))
    print('\nTargets:\n')
    print(formatTargets(checked))
    if args.json:
        report = {'date': started.isoformat(timespec='seconds'),
                  'machine': machine, 'arguments': {
                      'jobs': args.jobs, 'process_jobs': args.processJobs,
                      'threads': args.threads,
                      'latency_samples': args.latency_samples,
                      'cron_items': args.cron_items,
                      'idle_seconds': args.idle_seconds,
                      'row_timeout': args.row_timeout,
                      'wait_time': WAIT_TIME},
                  'rows': rows, 'peers': peerRows, 'comparison': compared,
                  'targets': checked}
        Path(args.json).write_text(json.dumps(report, indent=2,
                                              default=str) + '\n')
    return 1 if any(r['error'] for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
