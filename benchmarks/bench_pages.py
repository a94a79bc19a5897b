"""How fast the operator's surface answers with a large queue.

Fills a database on a real MongoDB-wire server with 100,000 jobs (most
completed, some in error, some still queued), eight days of outcome
counters for two factories and a few heartbeats, then times through
WebTest the overview, the jobs page (and its filters), a search, the
JSON API's jobs and stats (hour, day, week) and the metrics: the whole
request, from routing to the rendered answer, against the server.
Prints the median, fastest and slowest of ``--runs`` renderings of each,
and of the median rendering how many database commands it sent and how
long the server took to answer them (the rest is ours: routing, loading
the jobs, the template). The target is a median under 300 ms for the
overview, the jobs page, the search and the stats (hour): the script
prints each target and whether it was met, and the load average before
and after the run.

How to run::

    pip install -e '.[testing]'
    python benchmarks/bench_pages.py           # a throw-away mongo-java-server
    python benchmarks/bench_pages.py --uri mongodb://127.0.0.1:27017/
    python benchmarks/bench_pages.py --uri mongomock:// --jobs 10000
    python benchmarks/bench_pages.py --runs 5 --pages jobs,overview

Without ``--uri`` a mongo-java-server is started for the run (and built
first, once, if needed: see ``support.javaserver``). The database is
uniquely named and dropped at the end.
"""
import argparse
import contextlib
import datetime
import os
import statistics
import sys
import time

import pymongo.monitoring
import transaction
import webtest
from pyramid.config import Configurator
from pyramid.session import SignedCookieSessionFactory

from m01.remote import testing
from m01.remote.interfaces import IRemoteProcessor

TESTS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'tests')
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from support import javaserver, testserver  # noqa: E402

TARGET_MS = 300.0
#: The pages whose median must stay under ``TARGET_MS``.
TARGETS = ('overview', 'jobs', 'search', 'stats')
BATCH = 5000


def makeApp(uri, databaseName):
    config = Configurator(settings={'m01.remote.uri': uri,
                                    'm01.remote.database': databaseName,
                                    'm01.remote.metrics': 'public'})
    config.set_session_factory(SignedCookieSessionFactory('benchmark'))
    config.set_security_policy(testing.RemoteUserPolicy())
    config.include('m01.remote')
    config.add_remote_job_factory('echo', testing.EchoJob)
    config.add_remote_job_factory('error', testing.ErrorJob)
    return config.make_wsgi_app()


def fill(rp, count):
    """Add ``count`` jobs through ``addJob`` with realistic statuses: 80 %
    completed, 5 % in error, the rest queued.

    The statuses are set on the documents before their transaction
    commits, in the insert: no update over many jobs follows it.
    """
    started = time.perf_counter()
    completed = int(count * 0.80)
    now = datetime.datetime.now(datetime.timezone.utc)
    for first in range(0, count, BATCH):
        for number in range(first, min(first + BATCH, count)):
            rp.addJob('error' if number % 20 == 0 else 'echo',
                      {'number': number, 'text': 'job %d' % number})
        for document in rp.pendingJobDocuments():
            if document['name'] == 'error':
                document.update(
                    status='error', completed=now, retryCounter=1,
                    errors=['[%s] An error occurred.' % now.isoformat()],
                    tracebacks=['Traceback (most recent call last):\n...'])
            elif document['input']['number'] < completed:
                document.update(status='completed', completed=now,
                                output={'ok': True})
        transaction.commit()
    fillCounters(rp, now)
    fillHeartbeats(rp, now)
    return time.perf_counter() - started


def fillCounters(rp, now, days=8, factories=('echo', 'error')):
    """Outcome counters of ``days`` of work, every minute, as workers
    write them (a minute and an hour document per factory)."""
    collection = rp.counters.collection
    start = now.replace(second=0, microsecond=0) - datetime.timedelta(
        days=days)
    documents = []
    for minute in range(days * 1440):
        at = start + datetime.timedelta(minutes=minute)
        for name in factories:
            documents.append({'_id': 'm|%s|%s' % (at.isoformat(), name),
                              'kind': 'minute', 'at': at, 'factory': name,
                              'completed': 50, 'failed': 1, 'error': 0,
                              'cancelled': 0, 'timedOut': 0, 'lost': 0,
                              'seconds': 12.5, 'runs': 51})
            if at.minute == 0:
                documents.append(dict(
                    documents[-1], _id='h|%s|%s' % (at.isoformat(), name),
                    kind='hour', completed=3000, failed=60, runs=3060,
                    seconds=750.0))
        if len(documents) >= BATCH:
            collection.insert_many(documents)
            documents = []
    if documents:
        collection.insert_many(documents)


def fillHeartbeats(rp, now, count=4):
    rp.monitor.beats.insert_many([
        {'_id': 'bench-host:%d:root:x' % number, 'host': 'bench-host',
         'pid': number, 'processor': 'root', 'origin': 'm01remote worker',
         'kinds': ['worker'], 'threads': {'worker': 4}, 'jobs': [],
         'started': now, 'seen': now, 'quiet': False, 'stopping': False,
         'stopped': None} for number in range(count)])


class CommandTimer(pymongo.monitoring.CommandListener):
    """Counts the commands sent and adds up the server's answer times."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.commands = 0
        self.seconds = 0.0

    def started(self, event):
        pass

    def succeeded(self, event):
        self.commands += 1
        self.seconds += event.duration_micros / 1e6

    def failed(self, event):
        self.succeeded(event)


def timePage(app, url, runs, timer):
    """(total ms, server ms, commands) of each of ``runs`` renderings."""
    app.get(url)    # compile the templates, warm the caches
    rows = []
    for _run in range(runs):
        timer.reset()
        started = time.perf_counter()
        app.get(url)
        rows.append(((time.perf_counter() - started) * 1000,
                     timer.seconds * 1000, timer.commands))
    return rows


def pages(jobs):
    """(key, title, URL) of each page timed."""
    lastPage = (jobs + 49) // 50
    return [
        ('overview', 'overview', '/remote/'),
        ('jobs', 'jobs page 1 (default)', '/remote/jobs'),
        ('search', 'jobs, q=job 4242', '/remote/jobs?q=job+4242'),
        ('stats', 'api/stats?window=hour', '/remote/api/stats'),
        ('statsday', 'api/stats?window=day',
         '/remote/api/stats?window=day'),
        ('statsweek', 'api/stats?window=week',
         '/remote/api/stats?window=week'),
        ('apijobs', 'api/jobs (default)', '/remote/api/jobs'),
        ('metrics', 'metrics', '/remote/metrics'),
        ('page2', 'jobs page 2', '/remote/jobs?page=2'),
        ('error', 'jobs, status=error', '/remote/jobs?status=error'),
        ('echo', 'jobs, factory=echo', '/remote/jobs?name=echo'),
        ('completed', 'jobs, sort=completed', '/remote/jobs?sort=completed'),
        ('last', 'jobs, last page (%d)' % lastPage,
         '/remote/jobs?page=%d' % lastPage),
    ]


PAGE_KEYS = [key for key, _title, _url in pages(1)]


def run(uri, jobs, runs, keys=PAGE_KEYS):
    timer = CommandTimer()
    # Registered before any client is made, so the site's client has it.
    pymongo.monitoring.register(timer)
    with testserver.scratch_database(uri, 'm01bench') as database:
        wsgi = makeApp(uri, database.name)
        rp = wsgi.registry.getUtility(IRemoteProcessor)
        seconds = fill(rp, jobs)
        counts = rp.jobs.countByStatus()
        print('filled %d jobs in %.1f s: %s' % (
            jobs, seconds, ', '.join('%s %d' % item
                                     for item in counts.items() if item[1])))
        app = webtest.TestApp(wsgi, extra_environ={'REMOTE_USER': 'bench'})
        print('%-28s %9s %9s %9s %9s %5s   (%d runs, ms)'
              % ('page', 'median', 'min', 'max', 'server', 'cmds', runs),
              flush=True)
        results = {}
        for key, title, url in pages(jobs):
            if key not in keys:
                continue
            rows = sorted(timePage(app, url, runs, timer))
            times = [row[0] for row in rows]
            # The server's share of the median rendering (the lower one
            # of an even number of runs).
            _total, server, commands = rows[(len(rows) - 1) // 2]
            results[key] = statistics.median(times)
            # The embedded store sends no commands: no server share.
            print('%-28s %9.1f %9.1f %9.1f %9s %5s' % (
                title, statistics.median(times), min(times), max(times),
                '%.1f' % server if commands else '-',
                commands if commands else '-'), flush=True)
        met = []
        for key in TARGETS:
            if key in results:
                met.append(results[key] < TARGET_MS)
                print('target: %s median under %.0f ms: %.1f ms, %s' % (
                    key, TARGET_MS, results[key],
                    'met' if met[-1] else 'NOT MET'))
        if met:
            print('%d of %d targets met' % (sum(met), len(met)))
        return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--uri', help='a mongodb:// URI (or mongomock://);'
                        ' default: start a throw-away server')
    parser.add_argument('--jobs', type=int, default=100000)
    parser.add_argument('--runs', type=int, default=21,
                        help='renderings per page (default 21)')
    parser.add_argument('--pages', default=','.join(PAGE_KEYS),
                        help='the pages to time, of: %s (default: all)'
                        % ', '.join(PAGE_KEYS))
    args = parser.parse_args(argv)
    keys = [key.strip() for key in args.pages.split(',') if key.strip()]
    unknown = sorted(set(keys) - set(PAGE_KEYS))
    if unknown:
        parser.error('unknown page(s) %s' % ', '.join(unknown))
    # The machine's load says how far the figures can be trusted.
    print('load average %.2f %.2f %.2f before' % os.getloadavg())
    with serverUri(args.uri) as uri:
        run(uri, args.jobs, args.runs, keys)
    print('load average %.2f %.2f %.2f after' % os.getloadavg())
    return 0


@contextlib.contextmanager
def serverUri(uri):
    if uri:
        yield uri
        return
    with javaserver.java_server(progress=lambda message: print(
            message, file=sys.stderr, flush=True)) as started:
        print('mongo-java-server at %s' % started, flush=True)
        yield started


if __name__ == '__main__':
    sys.exit(main())
