"""Counting commands and finished jobs, and a worker process for
``bench_queue.py``.

The workers are m01.remote's own ``SimpleJobWorker`` and
``MultiJobWorker``; the subclasses here only note, after the real method
returned, that a job was processed and committed, when, and how many
database commands this process had sent by then.

Commands are counted with pymongo's command monitoring on a real server.
The embedded store sends no commands: there the calls of collection
methods (``find_one_and_update``, ``insert_many``, ...) on its serialised
collection proxies are counted instead, which is what each command would
have been.

As a process (the driver starts it, ``PYTHONPATH`` holding this
directory)::

    python bench_worker.py URI DATABASE --kind simple|multi [--threads 4]
        [--wakeup auto|changestream|poll]

it runs one worker until SIGTERM and prints a JSON line with its figures
every 0.2 s, and a last one (``"final": true``) once the worker stopped;
with ``--wakeup changestream``, only once its change stream is open.
"""
import argparse
import collections
import json
import os
import signal
import sys
import threading
import time

import bench_jobs
import pymongo.monitoring

from m01.remote import store
from m01.remote.processor import RemoteProcessor
from m01.remote.store.embedded.client import SerializedCollection
from m01.remote.worker import MultiJobWorker, SimpleJobWorker

#: Collection methods that are one command each on a real server.
DATABASE_METHODS = frozenset((
    'aggregate', 'bulk_write', 'count_documents', 'create_index',
    'delete_many', 'delete_one', 'distinct', 'estimated_document_count',
    'find', 'find_one', 'find_one_and_delete', 'find_one_and_replace',
    'find_one_and_update', 'insert_many', 'insert_one', 'replace_one',
    'update_many', 'update_one'))

#: Threads whose commands do not depend on the jobs: the lease keeper,
#: the change stream watchers and the heartbeat.
BACKGROUND_THREADS = ('m01.remote-leases-', 'm01.remote-changes-',
                      'm01.remote-heartbeat-')
#: The collection of the outcome counters (its name, after the prefix).
COUNTERS = 'counters'
STATUS_INTERVAL = 0.2
#: A worker process never outlives this, whatever happens to the driver.
MAX_LIFETIME = 4 * 3600
#: Seconds a worker with --wakeup changestream waits for its stream.
STREAM_BOUND = 60


class CommandCounter(pymongo.monitoring.CommandListener):
    """Commands sent by this process, in total and by thread name;
    ``background`` counts the lease keeper's, the watchers' and the
    heartbeat's, ``counters`` those writing the outcome counters (their
    collection's name ends in ``counters``), ``idle`` those of claims that
    found no job (``countApart``).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.total = 0
        self.background = 0
        self.counters = 0
        self.idle = 0
        self.byThread = collections.Counter()
        self.byName = collections.Counter()

    def count(self, name, collection=None):
        thread = threading.current_thread().name
        with self._lock:
            self.total += 1
            self.background += thread.startswith(BACKGROUND_THREADS)
            self.counters += str(collection).endswith(COUNTERS)
            self.byThread[thread] += 1
            self.byName[name] += 1

    def started(self, event):
        self.count(event.command_name,
                   event.command.get(event.command_name))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass

    def sentBy(self, thread):
        with self._lock:
            return self.byThread[thread]

    def addIdle(self, commands):
        with self._lock:
            self.idle += commands

    def addBackground(self, commands):
        with self._lock:
            self.background += commands

    def snapshot(self):
        with self._lock:
            return (self.total, collections.Counter(self.byThread),
                    collections.Counter(self.byName))


counter = CommandCounter()
_embeddedCounting = False


def countEmbeddedCalls():
    """Count collection method calls on the embedded store (once)."""
    global _embeddedCounting
    if _embeddedCounting:
        return
    _embeddedCounting = True
    original = SerializedCollection.__getattr__

    def __getattr__(self, name):
        value = original(self, name)
        if name not in DATABASE_METHODS:
            return value

        def counted(*args, **kw):
            counter.count(name, self.name)
            return value(*args, **kw)
        return counted

    SerializedCollection.__getattr__ = __getattr__
    # The embedded claim: one find_one_and_update on a server.
    claimFirst = SerializedCollection.claimFirst

    def countedClaimFirst(self, *args, **kw):
        counter.count('find_one_and_update')
        return claimFirst(self, *args, **kw)
    SerializedCollection.claimFirst = countedClaimFirst
    # A batch: the three commands of a batched claim on a server, and one
    # bulk write for the outcomes.
    claimMany = SerializedCollection.claimMany
    updateEach = SerializedCollection.updateEach

    def countedClaimMany(self, *args, **kw):
        for name in ('find', 'bulk_write', 'find'):
            counter.count(name)
        return claimMany(self, *args, **kw)

    def countedUpdateEach(self, *args, **kw):
        counter.count('bulk_write')
        return updateEach(self, *args, **kw)
    SerializedCollection.claimMany = countedClaimMany
    SerializedCollection.updateEach = countedUpdateEach


def countApart(rp):
    """Count apart the commands of ``rp``'s that are no cost of a job:
    its claims that find no job (a worker's threads poll while the last
    jobs run) as ``idle``, and its reads of the paused and the capped
    factories (once every few seconds, whatever the number of jobs) with
    the ``background``. (Instance attributes: every binding of ``rp``
    shares them.)"""
    if vars(rp).get('_countedApart'):
        return
    rp._countedApart = True

    def counted(method, add, apart=lambda result: True):
        def call(*args, **kw):
            thread = threading.current_thread().name
            before = counter.sentBy(thread)
            result = method(*args, **kw)
            if apart(result):
                add(counter.sentBy(thread) - before)
            return result
        return call
    empty = lambda pulled: not pulled  # noqa: E731
    rp.pullNextJob = counted(rp.pullNextJob, counter.addIdle, empty)
    rp.pullNextJobs = counted(rp.pullNextJobs, counter.addIdle, empty)
    factories = rp.jobFactories
    factories.pausedNames = counted(factories.pausedNames,
                                    counter.addBackground)
    factories.cappedNames = counted(factories.cappedNames,
                                    counter.addBackground)


def connect(uri):
    """A client whose commands ``counter`` counts."""
    if uri.startswith(store.EMBEDDED_SCHEME + ':'):
        countEmbeddedCalls()
        return store.connect(uri)
    return store.connect(uri, event_listeners=[counter])


class Tally:
    """Jobs processed (and committed) by the workers of this process."""

    def __init__(self):
        self._lock = threading.Lock()
        self.started = time.time()
        self.commandsAtStart = counter.total
        self.backgroundAtStart = counter.background
        self.countersAtStart = counter.counters
        self.countersAtLast = None
        self.idleAtStart = counter.idle
        self.idleAtLast = None
        self.done = 0
        self.last = None
        self.commandsAtLast = None
        self.backgroundAtLast = None

    def jobDone(self, count=1):
        now = time.time()
        with self._lock:
            self.done += count
            self.last = now
            self.commandsAtLast = counter.total
            self.backgroundAtLast = counter.background
            self.countersAtLast = counter.counters
            self.idleAtLast = counter.idle

    def figures(self):
        with self._lock:
            return {'done': self.done, 'first': bench_jobs.progress.first,
                    'last': self.last, 'started': self.started,
                    'commandsAtStart': self.commandsAtStart,
                    'commandsAtLast': self.commandsAtLast,
                    'backgroundAtStart': self.backgroundAtStart,
                    'backgroundAtLast': self.backgroundAtLast,
                    'countersAtStart': self.countersAtStart,
                    'countersAtLast': self.countersAtLast,
                    'idleAtStart': self.idleAtStart,
                    'idleAtLast': self.idleAtLast,
                    'counters': counter.counters,
                    'commands': counter.total}


class CountingSimpleWorker(SimpleJobWorker):

    def __init__(self, remoteProcessor, tally, **arguments):
        super().__init__(remoteProcessor, **arguments)
        self.tally = tally

    def doProcessNextJob(self):
        # One job claimed singly (a batch is counted by runBatch).
        processed = super().doProcessNextJob()
        if processed and self.batchSize == 1:
            self.tally.jobDone()
        return processed

    step = doProcessNextJob

    def runBatch(self, jobs, handBackAt=None, sizer=None):
        handedBack = super().runBatch(jobs, handBackAt, sizer)
        self.tally.jobDone(len(jobs) - handedBack)
        return handedBack


class CountingMultiWorker(MultiJobWorker):

    def __init__(self, remoteProcessor, tally, **arguments):
        super().__init__(remoteProcessor, **arguments)
        self.tally = tally

    def doProcessJob(self, jobid):
        super().doProcessJob(jobid)
        self.tally.jobDone()

    def runBatch(self, jobs, handBackAt=None, sizer=None):
        handedBack = super().runBatch(jobs, handBackAt, sizer)
        self.tally.jobDone(len(jobs) - handedBack)
        return handedBack


def makeWorker(rp, kind, tally, threads=4, waitTime=1.0, batch=None):
    """A counted worker; ``batch`` None (or 0) leaves its batches to it,
    as the default settings do."""
    batch = batch or None
    if kind == 'simple':
        return CountingSimpleWorker(rp, tally, waitTime=waitTime,
                                    batchSize=batch)
    if kind == 'multi':
        return CountingMultiWorker(rp, tally, waitTime=waitTime,
                                   maxThreads=threads, batchSize=batch)
    raise ValueError('unknown worker kind %r' % (kind,))


class RunningWorker:
    """A worker in a thread of its own, counted from its start."""

    def __init__(self, rp, kind, threads=4, waitTime=1.0, name=None,
                 batch=None):
        bench_jobs.progress.reset()
        countApart(rp)
        self.tally = Tally()
        self.worker = makeWorker(rp, kind, self.tally, threads, waitTime,
                                 batch)
        self.thread = threading.Thread(
            target=self.worker, daemon=True,
            name=name or '%s-worker' % rp.name)
        self.thread.start()

    def stop(self, timeout=60.0):
        self.worker.stop(timeout)
        self.thread.join(timeout)
        return not self.thread.is_alive()


def _print(figures):
    sys.stdout.write(json.dumps(figures) + '\n')
    sys.stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('uri')
    parser.add_argument('database')
    parser.add_argument('--kind', choices=('simple', 'multi'),
                        default='simple')
    parser.add_argument('--threads', type=int, default=4)
    parser.add_argument('--wait-time', type=float, default=1.0)
    parser.add_argument('--batch', type=int, default=0,
                        help='jobs claimed at once per idle thread (0, the '
                        'default: sized by the worker)')
    parser.add_argument('--name', default='bench-%d' % os.getpid())
    parser.add_argument('--wakeup', default='auto',
                        choices=('auto', 'changestream', 'poll'))
    args = parser.parse_args(argv)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    parent = os.getppid()

    client = connect(args.uri)
    rp = RemoteProcessor(client[args.database], name=args.name,
                         wakeup=args.wakeup)
    # What a process asks once as it starts (which kind of server this
    # is) is no cost of a job: asked before the counting starts.
    assert rp.jobWrites.strategy is not None
    running = RunningWorker(rp, args.kind, args.threads, args.wait_time,
                            batch=args.batch)
    if args.wakeup == 'changestream':
        # Say nothing until the stream is open: a job committed before
        # would be found by the claim round that follows the opening,
        # and timed as if the stream had announced it.
        ready = time.monotonic() + STREAM_BOUND
        while not (rp.jobChanges.opened and rp.jobWakeup.idle):
            if time.monotonic() > ready:
                running.stop()
                client.close()
                print('bench_worker: no change stream within %d s'
                      % STREAM_BOUND, file=sys.stderr)
                return 1
            time.sleep(0.01)
    deadline = time.monotonic() + MAX_LIFETIME
    try:
        while not stopping.wait(STATUS_INTERVAL):
            if os.getppid() != parent or time.monotonic() > deadline:
                break  # the driver is gone: do not run on alone
            _print(running.tally.figures())
    finally:
        stopped = running.stop()
        # What the outcome counters still hold is written at a stop.
        rp.counters.flush()
        _print(dict(running.tally.figures(), final=True, stopped=stopped))
        client.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
