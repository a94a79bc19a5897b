"""Async jobs through one worker process: ``--jobs`` jobs, each awaiting
``--seconds`` of ``asyncio.sleep`` (I/O it waits for), added in one
transaction and run by one worker process (a ``simple`` worker: one
claiming thread), with ``m01.remote.worker.async_limit`` at ``--limit``;
then the same claiming ``--batch`` jobs at once
(``m01.remote.worker.batch_size``).

Each row prints the wall time from the worker's first claim to the last
completion (as the jobs store them, so the process's start is not
counted), and the most threads the worker process had at once (sampled
every 0.1 s). The second row runs the same jobs with ``--limit 0``
(each async job run to its end in the claiming thread, on a loop of its
own call: the one-loop-per-thread way) through a ``multi`` worker of 4
threads, on ``--jobs-threaded`` jobs only, since it takes a second per
job per thread.

How to run (a throw-away mongo-java-server, Java 17 and Maven; or a
server of yours)::

    python benchmarks/bench_async.py
    python benchmarks/bench_async.py --jobs 500 --limit 500
"""
import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time

import transaction

from m01.remote import store
from m01.remote.job import Job
from m01.remote.processor import RemoteProcessor
from m01.remote.worker import MultiJobWorker, SimpleJobWorker

TESTS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'tests')
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from support import testserver  # noqa: E402


class SleepingJob(Job):
    """Awaits ``input`` seconds of sleep."""

    async def __call__(self, remoteProcessor):
        await asyncio.sleep(self.input)
        return self.input


def serve(uri, database, kind, limit, jobs, batch):
    """In the worker process: run one worker until ``jobs`` jobs are
    completed; print a JSON line with the most threads seen."""
    client = store.connect(uri)
    rp = RemoteProcessor(client[database], wakeup='poll')
    rp.asyncJobs.limit = limit
    if kind == 'multi':
        rp.jobWorkerFactory = MultiJobWorker
        rp.jobWorkerArguments = {'waitTime': 0.05, 'maxThreads': 4}
    else:
        rp.jobWorkerFactory = SimpleJobWorker
        rp.jobWorkerArguments = {'waitTime': 0.05, 'batchSize': batch}
    most = threading.active_count()
    rp.startProcessor()
    try:
        while rp.jobsCollection.count_documents(
                {'status': 'completed'}) < jobs:
            most = max(most, threading.active_count())
            time.sleep(0.1)
    finally:
        rp.stopProcessor(timeout=30)
        rp.close()
    print(json.dumps({'threads': most}), flush=True)


def run(uri, database, kind, limit, jobs, seconds, timeout, batch=1):
    rp = RemoteProcessor(database, wakeup='poll')
    rp.jobsCollection.drop()
    rp.addJobFactory('sleep', SleepingJob({'maxRetries': 1}))
    for _ in range(jobs):
        rp.addJob('sleep', seconds)
    transaction.commit()
    rp.close()
    worker = subprocess.run(
        [sys.executable, __file__, '--serve', uri, database.name, kind,
         str(limit), str(jobs), str(batch)], capture_output=True, text=True,
        timeout=timeout, check=True)
    threads = json.loads(worker.stdout.strip().splitlines()[-1])['threads']
    times = list(database[rp.prefix + 'jobs'].aggregate([{'$group': {
        '_id': None, 'first': {'$min': '$picked'},
        'last': {'$max': '$completed'}, 'done': {'$sum': 1}}}]))[0]
    return (times['last'] - times['first']).total_seconds(), threads


@contextlib.contextmanager
def serverUri(uri):
    if uri:
        yield uri, 'the server at %s' % uri
        return
    from support.javaserver import java_server
    with java_server() as started:
        yield started, 'a throw-away mongo-java-server'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--jobs', type=int, default=500)
    parser.add_argument('--jobs-threaded', type=int, default=20)
    parser.add_argument('--seconds', type=float, default=1.0)
    parser.add_argument('--limit', type=int, default=500)
    parser.add_argument('--batch', type=int, default=100)
    parser.add_argument('--uri', default=None,
                        help='a server of yours (default: a throw-away '
                             'mongo-java-server)')
    parser.add_argument('--timeout', type=float, default=600)
    parser.add_argument('--serve', nargs=6, default=None,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        uri, database, kind, limit, jobs, batch = args.serve
        serve(uri, database, kind, int(limit), int(jobs), int(batch))
        return
    with serverUri(args.uri) as (uri, label), \
            testserver.scratch_database(uri) as database:
        print('On %s, %d CPUs, Python %s, load average %.2f' % (
            label, os.cpu_count() or 1, sys.version.split()[0],
            os.getloadavg()[0]))
        print('%-52s %6s %9s %8s' % ('One worker process', 'jobs', 'wall',
                                     'threads'))
        for title, kind, limit, jobs, batch in (
                ('simple worker, one event loop, async_limit %d'
                 % args.limit, 'simple', args.limit, args.jobs, 1),
                ('the same, claiming %d at once (batch_size)' % args.batch,
                 'simple', args.limit, args.jobs, args.batch),
                ('multi worker, 4 threads, a loop per call (limit 0)',
                 'multi', 0, args.jobs_threaded, 1)):
            wall, threads = run(uri, database, kind, limit, jobs,
                                args.seconds, args.timeout, batch)
            print('%-52s %6d %8.2fs %8d' % (title, jobs, wall, threads))


if __name__ == '__main__':
    main()
