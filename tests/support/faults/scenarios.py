"""No job lost, none done twice: fault scenarios on a real server.

    python benchmarks/faults.py                   # the full sizes
    python benchmarks/faults.py --short           # the sizes CI runs
    python benchmarks/faults.py --only crash,outage --uri mongodb://...
    python benchmarks/faults.py --only load --jobs 2000
    python benchmarks/faults.py --only partition --batch 10

Without ``--uri`` a throw-away server is started: mongo-java-server with
its H2 backend (conditional writes are atomic there, the path a MongoDB
deployment takes, and the data outlives a restart). The outage
scenario needs that server, since it stops and restarts it, and is
skipped with ``--uri``. Each scenario uses a database of its own,
dropped at the end, and processes it starts as a
site would: ``m01remote worker`` and ``m01remote scheduler`` with an ini
file of the ``support.faults.app`` application (and ``python -m
support.faults.worker produce`` for the producers). Every process is
stopped at the end, also on errors; every wait is bounded.

Each scenario prints one line::

    load      jobs=2012 completed=2012 duplicates=0 lost=0 recovery_s=- ...

``jobs`` the jobs (or cases) of the scenario, ``completed`` those that
completed exactly once (status ``completed`` and one execution record),
``duplicates`` second executions (see ``fault_jobs``), ``lost`` jobs not
completed at the end of the scenario's bound, ``recovery_s`` the
scenario's recovery time (below), then details: ``stuck`` says why jobs
stopped moving (``fault_audit.stuckJobs``), ``reruns_after_lost_outcome``
how many duplicates were a job run again because its first run lost it
while storing its outcome. Problems (a broken promise or bound) follow
on lines starting with ``!``; the exit status is 1 when there is any.

The scenarios (``--only`` takes their names):

load
    2 producer processes commit jobs in batches of 100 while 4 worker
    processes (4 threads each) and 2 scheduler processes (2 Delay items)
    run. Every producer's job and every scheduled job completes once.
    The full size is 20,000 jobs; ``--jobs`` sets another.
crash
    3 worker processes run jobs of a few seconds. One is killed
    (SIGKILL) while it runs jobs: ``recovery_s`` is the time until the
    others completed all of them (bound: lease + lease/3 + retry delay
    + the job's own time + 10 s of server latency). Then another is
    paused (SIGSTOP) while it runs jobs, and resumed (SIGCONT) once the
    others completed them: its runs must not change their outcome.
outage
    The server is stopped for 10 s while workers and schedulers run, and
    started again on the same port and data. Every process survives and
    logs the outage once per loop; ``recovery_s`` is the time from the
    restart to the next job completed; every job completes.
scheduler
    3 scheduler processes, 3 Delay items due every second for 60 s: one
    job per occurrence. Each job's due time is recovered from its id
    (ids are derived from item and due time) and the dues of an item
    must form one unbroken chain, one occurrence apart.
badinput
    Bad input through the Python API and the management pages (WebTest):
    each gets a clear error or a 4xx page, never a 500, and the stored
    documents are unchanged (``fault_badinput``).
poison
    A job that always raises, queued before others, on a one-thread
    worker: it ends in ``error`` after ``maxRetries`` attempts with every
    message kept, and the jobs behind it run during its retry delays.
graceful
    A worker process (stop timeout S) is sent SIGTERM while it runs four
    jobs, one of them longer than S: the short ones finish, the process
    exits within S (+2 s), and the long one is handed back to another
    worker when its lease expires (bound: S + lease + lease/3 + 10 s).
latency, partition, isolated, flapping, resets, silent, slowlink
    A bad network between the worker processes and the server, each
    worker behind a fault proxy of its own: see
    ``support.faults.network``. Each runs unbatched and batched (two
    lines, ``partition/1`` and ``partition/10``) unless ``--batch`` is
    given.
"""
import argparse
import dataclasses
import functools
import json
import signal
import sys
import tempfile
import time

from support.faults import network
from support.faults.audit import Result
from support.faults.harness import LATENCY, Environment
from support.faults.processes import crash, graceful, outage
from support.faults.queue import load, poison, scheduler
from support.javaserver import JavaServer

__all__ = ['LATENCY', 'SIZES', 'Environment', 'Result', 'runScenario']

SIZES = {
    'full': {
        'load': dict(producers=2, jobs=20000, batch=100, workers=4,
                     threads=4, schedulers=2, items=2, delay=2,
                     timeout=3600),
        'crash': dict(workers=3, threads=4, lease=10, seconds=3,
                      retryDelay=1, timeout=300),
        'outage': dict(workers=2, threads=4, schedulers=2, jobs=200,
                       seconds=0.2, outage=10, lease=30, timeout=600),
        'scheduler': dict(schedulers=3, items=3, delay=1, window=60,
                          timeout=300),
        'badinput': dict(),
        'poison': dict(poisons=2, jobs=40, retryDelay=10, maxRetries=3,
                       timeout=300),
        'graceful': dict(threads=4, stopTimeout=10, lease=10, seconds=3,
                         queued=12, timeout=300),
    },
    'short': {
        'load': dict(producers=2, jobs=100, batch=25, workers=2,
                     threads=2, schedulers=1, items=1, delay=2,
                     timeout=240),
        'crash': dict(workers=3, threads=2, lease=2, seconds=2,
                      retryDelay=0.5, timeout=120),
        # Longer than the client's 5 s server selection timeout: a
        # shorter outage only delays the calls, nothing fails.
        'outage': dict(workers=1, threads=2, schedulers=1, jobs=30,
                       seconds=0.1, outage=7, lease=10, timeout=180),
        'scheduler': dict(schedulers=3, items=2, delay=1, window=10,
                          timeout=120),
        'badinput': dict(),
        'poison': dict(poisons=1, jobs=8, retryDelay=3, maxRetries=3,
                       timeout=120),
        'graceful': dict(threads=3, stopTimeout=3, lease=3, seconds=1.5,
                         queued=3, timeout=120),
    },
}


def badinput(env, size):
    from support.faults import badinput as fault_badinput
    return fault_badinput.run(env, Result('badinput'))


for _kind in SIZES:
    SIZES[_kind].update(network.SIZES[_kind])

SCENARIOS = {'load': load, 'crash': crash, 'outage': outage,
             'scheduler': scheduler, 'badinput': badinput, 'poison': poison,
             'graceful': graceful}
#: The network scenarios (``support.faults.network``): each runs
#: unbatched and batched unless a batch size is given.
NETWORK = tuple(network.FAULTS)
for _name in NETWORK:
    SCENARIOS[_name] = functools.partial(network.network, _name)


def runScenario(name, env, short=False, **overrides):
    """Run one scenario; its ``Result`` (a failure is a problem, not an
    exception)."""
    size = dict(SIZES['short' if short else 'full'][name], **overrides)
    started = time.monotonic()
    try:
        result = SCENARIOS[name](env, size)
    except Exception as e:
        result = Result(name if name not in NETWORK else '%s/%d' % (
            name, size.get('batch') or 1))
        result.problems.append('%s: %s' % (type(e).__name__, e))
    if not result.skipped:
        result.details['scenario_s'] = round(time.monotonic() - started, 1)
    return result


def restartableServer(kind='mongojava', progress=None):
    """A throw-away server that keeps its data across a stop and a start
    (the outage scenario restarts it), not started yet."""
    if kind != 'mongojava':
        raise ValueError('no throw-away server %r' % (kind,))
    return JavaServer(backend='h2', progress=progress)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='faults.py', description=__doc__.split('\n\n')[0])
    parser.add_argument('--short', action='store_true',
                        help='the small sizes CI runs')
    parser.add_argument('--only', default=','.join(SCENARIOS),
                        help='comma-separated scenarios (default: all)')
    parser.add_argument('--uri', help='a MongoDB-wire server to use '
                        'instead (the outage scenario is skipped then)')
    parser.add_argument('--jobs', type=int,
                        help='the load scenario\'s number of jobs')
    parser.add_argument('--batch', type=int,
                        help='the workers\' batch size '
                        '(m01.remote.worker.batch_size; default 1)')
    parser.add_argument('--json', help='also write the results here')
    parser.add_argument('--keep-logs', action='store_true',
                        help='keep the ini files and process logs')
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(',') if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error('unknown scenario(s) %s; choose from %s'
                     % (', '.join(unknown), ', '.join(SCENARIOS)))
    workdir = tempfile.mkdtemp(prefix='m01-faults-')
    server = None
    results = []
    # SIGTERM ends the run as Ctrl-C does: through the finally blocks
    # that stop every process and server it started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    try:
        if args.uri:
            uri = args.uri
        else:
            server = restartableServer(progress=lambda message: print(
                message, file=sys.stderr, flush=True))
            uri = server.start()
        env = Environment(uri, workdir, server)
        for name in names:
            overrides = {}
            if name == 'load' and args.jobs:
                overrides['jobs'] = args.jobs
            batches = [args.batch]
            if name in NETWORK and not args.batch:
                batches = network.BATCHES
            for batch in batches:
                if batch:
                    overrides['batch'] = batch
                result = runScenario(name, env, args.short, **overrides)
                results.append(result)
                print(result.line(), flush=True)
                for problem in result.problems:
                    print('! %s' % problem, flush=True)
    finally:
        if server is not None:
            server.close()
        if args.keep_logs:
            print('logs in %s' % workdir, file=sys.stderr)
        else:
            import shutil
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        with open(args.json, 'w') as out:
            json.dump([dataclasses.asdict(r) for r in results], out,
                      indent=2, default=str)
    return 1 if any(r.problems for r in results) else 0


if __name__ == '__main__':
    sys.exit(main())
