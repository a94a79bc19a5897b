"""What the ``process`` worker costs: the start of a child, and no-op
jobs through two children, beside the multi-thread worker with two
threads on the same server.

- *Child start*: a ``JobChild`` started and closed ``--starts`` times
  (spawn, ``StoreChildSetup``: the interpreter, the job modules, a
  connection and a processor), the seconds until it was ready, and the
  resident memory of a ready child (Linux).
- *Throughput*: ``--jobs`` no-op jobs (``m01.remote.testing.EchoJob``)
  added in one transaction, then processed; jobs per second from the
  first claim to the last completion, as the jobs store them, so the
  children's start is not counted.

How to run (a throw-away mongo-java-server, Java 17 and Maven; or a
server of yours)::

    python benchmarks/bench_process.py
    python benchmarks/bench_process.py --jobs 2000 --uri mongodb://127.0.0.1:27017/
"""
import argparse
import contextlib
import os
import statistics
import sys
import time

import transaction

from m01.remote import testing
from m01.remote.processes.children import JobChild
from m01.remote.processes.childsetup import StoreChildSetup
from m01.remote.processes.worker import ProcessJobWorker
from m01.remote.processor import RemoteProcessor
from m01.remote.worker import MultiJobWorker

TESTS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'tests')
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from support import testserver  # noqa: E402


def residentMegabytes(pid):
    """The resident memory of process ``pid`` in MB, None off Linux."""
    try:
        with open('/proc/%d/status' % pid) as status:
            for line in status:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def childStarts(uri, database, starts):
    setup = StoreChildSetup(uri, database, modules=['m01.remote.testing'])
    seconds, memory = [], []
    for _ in range(starts):
        child = JobChild(setup)
        started = time.perf_counter()
        child.start(60)
        seconds.append(time.perf_counter() - started)
        memory.append(residentMegabytes(child.pid))
        child.close(10)
    return seconds, memory


def throughput(database, worker, arguments, jobs, timeout):
    """Jobs per second of ``jobs`` no-op jobs through ``worker``."""
    name = 'bench%d' % time.monotonic_ns()
    manager = transaction.TransactionManager()
    rp = RemoteProcessor(database, name='bench', prefix=name,
                         jobWorkerFactory=worker,
                         jobWorkerArguments=arguments,
                         transactionManager=manager)
    rp.ensureIndexes()
    rp.addJobFactory('noop', testing.EchoJob())
    with manager:
        for _ in range(jobs):
            rp.addJob('noop')
    rp.startProcessor()
    try:
        deadline = time.monotonic() + timeout
        while rp.jobsCollection.count_documents({'status': 'completed'}) \
                < jobs:
            if time.monotonic() > deadline:
                raise SystemExit('%s: not done within %g s' % (
                    worker.__name__, timeout))
            time.sleep(0.1)
    finally:
        rp.stopProcessor(30)
    times = list(rp.jobsCollection.aggregate([{'$group': {
        '_id': None, 'first': {'$min': '$picked'},
        'last': {'$max': '$completed'}}}]))[0]
    for suffix in ('jobs', 'factories', 'scheduler', 'pauses', 'keys',
                   'slots'):
        database.drop_collection(name + suffix)
    elapsed = (times['last'] - times['first']).total_seconds()
    return elapsed, jobs / elapsed


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
    parser.add_argument('--jobs', type=int, default=1000)
    parser.add_argument('--starts', type=int, default=10)
    parser.add_argument('--uri', default=None,
                        help='a server of yours (default: a throw-away '
                             'mongo-java-server)')
    parser.add_argument('--timeout', type=float, default=600)
    args = parser.parse_args(argv)
    with serverUri(args.uri) as (uri, label), \
            testserver.scratch_database(uri) as database:
        print('On %s, %d CPUs, Python %s' % (
            label, os.cpu_count() or 1, sys.version.split()[0]))
        seconds, memory = childStarts(uri, database.name, args.starts)
        memory = [value for value in memory if value is not None]
        print('Child start (spawn, StoreChildSetup): median %.2f s, max '
              '%.2f s over %d starts; %s resident when ready' % (
                  statistics.median(seconds), max(seconds), len(seconds),
                  '%.0f MB' % statistics.median(memory) if memory
                  else 'memory n/a'))
        rows = [('Process worker, 2 children', ProcessJobWorker,
                 {'waitTime': 0.05, 'maxProcesses': 2}),
                ('Multi-thread worker, 2 threads', MultiJobWorker,
                 {'waitTime': 0.05, 'maxThreads': 2})]
        for label, worker, arguments in rows:
            elapsed, rate = throughput(database, worker, arguments,
                                       args.jobs, args.timeout)
            print('%s: %d no-op jobs in %.1f s, %.0f jobs/s' % (
                label, args.jobs, elapsed, rate))


if __name__ == '__main__':
    main()
