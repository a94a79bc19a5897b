"""Whether a worker's memory and its database calls stay flat as
completed jobs accumulate.

    python benchmarks/bench_growth.py [--jobs 100000] [--batch 1000]
        [--window 10000] [--store mongojava,embedded] [--oplog]
        [--kind simple|multi] [--retention SECONDS] [--tracemalloc]
        [--json PATH]

A worker runs ``--jobs`` no-op jobs, enqueued by this process in
transactions of ``--batch`` whenever fewer than two batches are queued,
so the queue stays short while the completed jobs pile up: none is
removed within the default retention (a day), unless ``--retention``
sets how long the worker keeps a completed job (seconds), which its
lease keeper's upkeep then removes (``queue.retention``). Printed per
store:

* the worker process's resident memory (``VmRSS`` of ``/proc``) after
  1,000, 10,000 and 100,000 jobs (and after the first job, as the
  baseline);
* per window of ``--window`` jobs, the median time of a claim
  (``IJobWrites.claimNext``), of an outcome (``finishMany`` of one job,
  inside the commit) and of a lease renewal (``extendLeases``, the lease
  keeper's update; the no-op jobs end before a keeper's tick would see
  them, so a thread of the worker times the same update every 0.5 s
  with a claim no job holds), and the jobs stored at its end.

Stores: ``mongojava`` is a throw-away mongo-java-server, the worker a
process of its own (``bench_growth.py --worker``, ``SimpleJobWorker`` or
``MultiJobWorker``). It runs without its oplog unless ``--oplog``: with
one, every change stream answer reads the whole oplog, which grows by a
few entries per job. mongo-java-server builds unique indexes only: its
outcomes are served by the queue's unique index of ``_id`` and claim
token, but its claims (a sorted query) and renewals read the whole jobs
collection: they slow down as it grows, where MongoDB serves them from
the queue's indexes. ``embedded`` is the in-memory
store, the worker a thread of this process, whose memory then holds
every stored job as well.

``--tracemalloc`` makes the worker process (``mongojava``) print the 15
lines of code whose allocations grew most between the first window and
the end; tracing slows it down and adds to its memory, so its figures
are then not the ones to compare.
"""
import argparse
import contextlib
import datetime
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (str(HERE), str(HERE.parent / 'tests')):
    if path not in sys.path:
        sys.path.insert(0, path)

import bench_jobs  # noqa: E402
import transaction  # noqa: E402

from m01.remote import store  # noqa: E402
from m01.remote.processor import RemoteProcessor  # noqa: E402
from m01.remote.worker import MultiJobWorker, SimpleJobWorker  # noqa: E402
from support import javaserver, testserver  # noqa: E402

CHECKPOINTS = (1, 1_000, 10_000, 100_000)
RENEW_EVERY = 0.5
STATUS_INTERVAL = 0.5
WAIT_TIME = 1.0
#: A claim token no job holds: the renewal timed matches nothing.
PROBE_CLAIM = 'bench-growth-probe'


def say(message):
    print(message, file=sys.stderr, flush=True)


def rssKiB(pid='self'):
    with open('/proc/%s/status' % pid) as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return None


class Timings:
    """The worker's timed calls, per window of ``window`` finished jobs,
    and its memory at the checkpoints."""

    def __init__(self, window, pid='self', stored=None):
        self.window = window
        self.pid = pid
        #: Counts the stored jobs, at the end of each window.
        self.stored = stored
        self._lock = threading.Lock()
        self.done = 0
        self.current = {'claim': [], 'outcome': [], 'renewal': []}
        self.windows = []
        self.rss = {}

    def add(self, kind, seconds):
        with self._lock:
            self.current[kind].append(seconds * 1000.0)

    def finished(self):
        with self._lock:
            self.done += 1
            done = self.done
            if done in CHECKPOINTS:
                self.rss[done] = rssKiB(self.pid)
            if done % self.window == 0:
                self.windows.append(self._close(done))

    def _close(self, done):
        figures = {'jobs': done}
        for kind, values in self.current.items():
            figures[kind + '_ms'] = statistics.median(values) \
                if values else None
            figures[kind + '_n'] = len(values)
        self.current = {kind: [] for kind in self.current}
        if self.stored is not None:
            figures['stored'] = self.stored()
        return figures

    def figures(self):
        with self._lock:
            return {'done': self.done, 'windows': list(self.windows),
                    'rss_kib': dict(self.rss)}


def instrument(rp, timings):
    """Time the claims, outcomes and renewals of ``rp``'s job writes."""
    writes = rp.jobWrites

    def timed(kind, method, stored=None):
        def call(*args, **kw):
            started = time.perf_counter()
            result = method(*args, **kw)
            timings.add(kind, time.perf_counter() - started)
            for _ in range(stored(args, result) if stored else 0):
                timings.finished()
            return result
        return call
    # Instance attributes: every binding of the processor shares them. A
    # commit stores its outcomes with finishMany (one, unbatched); finish
    # is what a direct call uses.
    writes.claimNext = timed('claim', writes.claimNext)
    writes.finish = timed('outcome', writes.finish,
                          stored=lambda args, done: int(bool(done)))
    writes.finishMany = timed(
        'outcome', writes.finishMany,
        stored=lambda args, refused: len(args[0]) - len(refused))
    writes.extendLeases = timed('renewal', writes.extendLeases)


def renewalProbe(rp, stopped):
    """Time the lease keeper's update every RENEW_EVERY seconds."""
    def run():
        while not stopped.wait(RENEW_EVERY):
            with contextlib.suppress(Exception):
                rp.jobWrites.extendLeases(
                    [PROBE_CLAIM],
                    rp.now() + datetime.timedelta(seconds=60))
    thread = threading.Thread(target=run, daemon=True,
                              name='bench-renewal-probe')
    thread.start()
    return thread


def keep(rp, retention):
    """Keep ``rp``'s completed jobs ``retention`` seconds (None: the
    default), and count its stored jobs at each window's end."""
    if retention is not None:
        rp.retention.periods = dict(rp.retention.periods,
                                    completed=retention)
    return lambda: rp.jobsCollection.estimated_document_count()


def makeWorker(rp, kind, threads):
    if kind == 'multi':
        return MultiJobWorker(rp, waitTime=WAIT_TIME, maxThreads=threads)
    return SimpleJobWorker(rp, waitTime=WAIT_TIME)


class InProcessWorker:
    """The worker as a thread of this process (the embedded store)."""

    def __init__(self, rp, kind, threads, window, retention=None):
        self.timings = Timings(window, stored=keep(rp, retention))
        instrument(rp, self.timings)
        self.stopped = threading.Event()
        renewalProbe(rp, self.stopped)
        self.worker = makeWorker(rp, kind, threads)
        self.thread = threading.Thread(target=self.worker, daemon=True,
                                       name='bench-growth-worker')
        self.thread.start()

    def figures(self):
        return self.timings.figures()

    def check(self):
        if not self.thread.is_alive():
            raise RuntimeError('the worker thread ended')

    def stop(self):
        self.stopped.set()
        self.worker.stop(60)
        self.thread.join(60)
        return self.figures()


class WorkerProcess:
    """The worker as a process of its own (``--worker``)."""

    def __init__(self, uri, database, kind, threads, window, trace,
                 retention=None):
        command = [sys.executable, str(Path(__file__).resolve()),
                   '--worker', uri, database, '--kind', kind,
                   '--threads', str(threads), '--window', str(window)]
        if retention is not None:
            command += ['--retention', str(retention)]
        if trace:
            command.append('--tracemalloc')
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE,
                                     stdin=subprocess.PIPE, text=True)
        self.latest = {'done': 0}
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.latest = json.loads(line)

    def figures(self):
        return self.latest

    def check(self):
        if self.proc.poll() is not None:
            raise RuntimeError('the worker process exited with status %s'
                               % self.proc.returncode)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.reader.join(10)
        return self.latest


def setUp(db):
    rp = RemoteProcessor(db, name='bench-growth-producer')
    rp.ensureIndexes()
    rp.addJobFactory('noop', bench_jobs.NoopJob())
    return rp


def drive(rp, worker, jobs, batch, timeout):
    """Enqueue ``jobs`` in batches, never more than two batches ahead of
    the worker, until it finished them all."""
    added = 0
    deadline = time.monotonic() + timeout
    lastSaid = 0
    while True:
        done = worker.figures().get('done', 0)
        if done >= jobs:
            return done
        worker.check()
        if time.monotonic() > deadline:
            raise RuntimeError('%d of %d jobs in %.0f s'
                               % (done, jobs, timeout))
        if added < jobs and added - done < 2 * batch:
            for number in range(min(batch, jobs - added)):
                rp.addJob('noop', added + number)
            transaction.commit()
            added = min(added + batch, jobs)
            continue
        if done - lastSaid >= 10 * batch:
            lastSaid = done
            say('  %d jobs done' % done)
        time.sleep(0.05)


def runStore(key, args):
    say('[%s] %d jobs, batches of %d' % (key, args.jobs, args.batch))
    started = time.monotonic()
    if key == 'embedded':
        client = store.connect('mongomock://')
        db = client['m01growth']
        rp = setUp(db)
        worker = InProcessWorker(RemoteProcessor(db, name='bench-growth'),
                                 args.kind, args.threads, args.window,
                                 args.retention)
        try:
            drive(rp, worker, args.jobs, args.batch, args.timeout)
        finally:
            figures = worker.stop()
        figures['server'] = None
    else:
        with javaserver.java_server(oplog=args.oplog, progress=say) as uri:
            client = store.connect(uri)
            name = testserver.unique_database_name('m01growth')
            rp = setUp(client[name])
            worker = WorkerProcess(uri, name, args.kind, args.threads,
                                   args.window, args.tracemalloc,
                                   args.retention)
            try:
                drive(rp, worker, args.jobs, args.batch, args.timeout)
            finally:
                figures = worker.stop()
                client.drop_database(name)
                client.close()
        figures['server'] = 'mongo-java-server %s, oplog %s' % (
            javaserver.library_version(), 'on' if args.oplog else 'off')
    figures['store'] = key
    figures['retention'] = args.retention
    figures['seconds'] = time.monotonic() - started
    return figures


def formatFigures(figures):
    lines = ['%s: %s jobs in %.0f s%s' % (
        figures['store'], '{:,}'.format(figures.get('done', 0)),
        figures['seconds'],
        ' (%s)' % figures['server'] if figures.get('server') else '')]
    rss = {int(k): v for k, v in (figures.get('rss_kib') or {}).items()}
    lines.append('  RSS of the worker%s: %s' % (
        ' (this process, the store included)'
        if figures['store'] == 'embedded' else ' process',
        ', '.join('%s MiB after %s job%s' % (
            '%.1f' % (rss[n] / 1024.0), '{:,}'.format(n),
            '' if n == 1 else 's') for n in sorted(rss))))
    if figures.get('retention') is not None:
        lines.append('  completed jobs kept %g s' % figures['retention'])
    lines.append('  %-12s %12s %14s %14s %12s' % (
        'jobs', 'claim ms', 'outcome ms', 'renewal ms', 'stored'))
    for window in figures.get('windows') or []:
        lines.append('  %-12s %12s %14s %14s %12s' % (
            '{:,}'.format(window['jobs']), _ms(window['claim_ms']),
            _ms(window['outcome_ms']), _ms(window['renewal_ms']),
            '{:,}'.format(window['stored']) if 'stored' in window
            else '-'))
    if figures.get('tracemalloc'):
        lines.append('  allocations grown most since the first window:')
        lines += ['    ' + line for line in figures['tracemalloc']]
    return '\n'.join(lines)


def _ms(value):
    return '-' if value is None else '%.2f' % value


# the worker process


def workerMain(args):
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    parent = os.getppid()
    if args.tracemalloc:
        tracemalloc.start(5)
    client = store.connect(args.uri)
    rp = RemoteProcessor(client[args.database], name='bench-growth')
    timings = Timings(args.window, stored=keep(rp, args.retention))
    instrument(rp, timings)
    probeStopped = threading.Event()
    renewalProbe(rp, probeStopped)
    worker = makeWorker(rp, args.kind, args.threads)
    thread = threading.Thread(target=worker, daemon=True,
                              name='bench-growth-worker')
    thread.start()
    first = None
    try:
        while not stopping.wait(STATUS_INTERVAL):
            if os.getppid() != parent:
                break       # the driver is gone
            if args.tracemalloc and first is None and timings.windows:
                gc.collect()
                first = tracemalloc.take_snapshot()
            _print(timings.figures())
    finally:
        probeStopped.set()
        worker.stop(60)
        thread.join(60)
        figures = timings.figures()
        if first is not None:
            gc.collect()
            grown = tracemalloc.take_snapshot().compare_to(first, 'lineno')
            figures['tracemalloc'] = [str(stat) for stat in grown[:15]]
        _print(dict(figures, final=True))
        client.close()
    return 0


def _print(figures):
    sys.stdout.write(json.dumps(figures) + '\n')
    sys.stdout.flush()


def parseArgs(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--jobs', type=int, default=100_000)
    parser.add_argument('--batch', type=int, default=1000,
                        help='jobs per enqueue transaction')
    parser.add_argument('--window', type=int, default=10_000,
                        help='jobs per window of median times')
    parser.add_argument('--store', default='mongojava,embedded')
    parser.add_argument('--oplog', action='store_true',
                        help="run mongo-java-server with its oplog")
    parser.add_argument('--kind', choices=('simple', 'multi'),
                        default='simple')
    parser.add_argument('--threads', type=int, default=4)
    parser.add_argument('--retention', type=float, default=None,
                        help='seconds a completed job is kept (default: '
                        'the default retention, a day)')
    parser.add_argument('--timeout', type=float, default=4 * 3600)
    parser.add_argument('--tracemalloc', action='store_true')
    parser.add_argument('--json', metavar='PATH')
    parser.add_argument('--worker', nargs=2, metavar=('URI', 'DATABASE'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.uri, args.database = args.worker
    args.stores = [s.strip() for s in args.store.split(',') if s.strip()]
    unknown = set(args.stores) - {'mongojava', 'embedded'}
    if unknown:
        parser.error('--store: unknown %s' % ', '.join(sorted(unknown)))
    return args


def main(argv=None):
    args = parseArgs(argv)
    if args.worker:
        return workerMain(args)
    load = os.getloadavg()
    results = []
    for key in args.stores:
        figures = runStore(key, args)
        results.append(figures)
        print(formatFigures(figures), flush=True)
    print('load average %s at the start, %s at the end (%s CPUs)' % (
        ' '.join('%.1f' % v for v in load),
        ' '.join('%.1f' % v for v in os.getloadavg()), os.cpu_count()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
