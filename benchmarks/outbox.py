"""The outbox (``m01.remote.outbox``) in the SQL host site: what it
guarantees under refused COMMITs and a MongoDB outage, and what it costs
a request.

The host site of the tests (``support.sqlsite``: SQLAlchemy 2 on
PostgreSQL through psycopg 3, zope.sqlalchemy, pyramid_tm's explicit
manager, pyramid_retry with 3 attempts, SERIALIZABLE) takes
``--requests`` order requests from ``--threads`` threads, each inserting
one order and adding one job that names it:

- *cost*: every order commits (a customer of its own, no read); the
  requests per second and the median and 99th percentile latency of a
  request, without the outbox and with it;
- *write skew* and *deferred FK* as in ``sql_exactly_once.py``, with the
  outbox, in one-phase and two-phase mode: the committed orders, the
  jobs stored, orphans, extras and missing;
- *outage*: the store (mongo-java-server keeping its data in an H2 file)
  is stopped as the first request's move begins, after its SQL COMMIT;
  the rest of the requests commit while it is away. Then it is started
  again and the sweep moves the rows left: the rows left, the jobs the
  sweep moved and the seconds it took, and the same counts.

How to run::

    pip install -e '.[testing]'
    python benchmarks/outbox.py
    python benchmarks/outbox.py --requests 400 --threads 8

A throw-away PostgreSQL (``support.postgres``) and mongo-java-servers
(``support.javaserver``) are started for the run.
"""
import argparse
import collections
import concurrent.futures
import contextlib
import logging
import os
import statistics
import sys
import threading
import time

TESTS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'tests')
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

import webtest  # noqa: E402

from support import javaserver, postgres, sqlsite, testserver  # noqa: E402

#: The customer no order may name.
MISSING_CUSTOMER = 0
COLUMNS = ('committed', 'jobs', 'orphans', 'extras', 'missing')


@contextlib.contextmanager
def order_site(pg_uri, mongo_uri, args, **kw):
    with contextlib.ExitStack() as stack:
        sql_uri = stack.enter_context(postgres.scratch_database(pg_uri))
        store = stack.enter_context(testserver.scratch_database(
            mongo_uri.split('?')[0]))
        site = sqlsite.OrderSite(sql_uri, mongo_uri, store.name,
                                 pool_size=args.threads + 4, **kw)
        stack.callback(site.close)
        yield site


def timed_orders(site, orders, threads, read):
    """POST the orders; each request's seconds, and the outcomes."""
    local = threading.local()

    def one(order):
        if not hasattr(local, 'client'):
            local.client = webtest.TestApp(site.app)
        order_id, customer = order
        started = time.perf_counter()
        try:
            local.client.post('/orders', {'id': str(order_id),
                                          'customer': str(customer),
                                          'read': str(int(read))})
            outcome = 'ok'
        except Exception as e:  # what the request ended with
            outcome = type(e).__name__
        return time.perf_counter() - started, outcome

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, orders))
    return ([seconds for seconds, _ in results],
            collections.Counter(outcome for _, outcome in results))


def cost(pg_uri, mongo_uri, args, outbox):
    with order_site(pg_uri, mongo_uri, args, outbox=outbox) as site:
        site.addCustomers(args.requests)
        orders = [(n, n) for n in range(1, args.requests + 1)]
        started = time.perf_counter()
        latencies, outcomes = timed_orders(site, orders, args.threads,
                                           read=False)
        seconds = time.perf_counter() - started
        assert outcomes['ok'] == args.requests, outcomes
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1,
                            int(len(latencies) * 0.99))]
        return ('%-22s %-9s %8.0f %10.1f %8.1f %10s' % (
            'cost', 'outbox' if outbox else 'direct',
            args.requests / seconds,
            statistics.median(latencies) * 1000, p99 * 1000,
            '%d/%d' % (site.tally()['jobs'], args.requests)))


def write_skew(args):
    orders = [(n, n % args.customers + 1)
              for n in range(1, args.requests + 1)]
    return args.customers, orders, True


def deferred_fk(args):
    orders = [(n, MISSING_CUSTOMER if n % 8 == 0 else n)
              for n in range(1, args.requests + 1)]
    return args.requests, orders, False


def refused(pg_uri, mongo_uri, args, scenario, twophase):
    customers, orders, read = scenario(args)
    with order_site(pg_uri, mongo_uri, args, outbox=True,
                    twophase=twophase) as site:
        site.addCustomers(customers)
        _, outcomes = timed_orders(site, orders, args.threads, read)
        return site.tally(), outcomes


class StopOnFirstMove:
    """The outbox's writes: the first move stops the store."""

    def __init__(self, writes, server):
        self.writes = writes
        self.server = server
        self.lock = threading.Lock()

    def insertJobs(self, documents):
        with self.lock:
            if self.server.process is not None:
                self.server.stop()
        return self.writes.insertJobs(documents)


def outage(pg_uri, args):
    server = javaserver.JavaServer(backend='h2')
    try:
        server.start()
        uri = server.uri + '?serverSelectionTimeoutMS=1000'
        customers, orders, read = write_skew(args)
        with order_site(pg_uri, uri, args, outbox=True) as site:
            site.addCustomers(customers)
            outbox = site.processor.outbox
            outbox.jobWrites = StopOnFirstMove(site.processor.jobWrites,
                                               server)
            started = time.perf_counter()
            latencies, outcomes = timed_orders(site, orders, args.threads,
                                               read)
            seconds = time.perf_counter() - started
            left = outbox.backlog()
            server.start()
            outbox.jobWrites = site.processor.jobWrites
            started = time.perf_counter()
            moved = outbox.sweep(grace=0)
            sweep = time.perf_counter() - started
            return (site.tally(), outcomes, left, moved, sweep,
                    args.requests / seconds,
                    statistics.median(latencies) * 1000)
    finally:
        server.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--requests', type=int, default=400)
    parser.add_argument('--threads', type=int, default=8)
    parser.add_argument('--customers', type=int, default=8,
                        help='customers sharing the write-skew requests')
    args = parser.parse_args(argv)
    # The moves that fail while the store is away are logged; so are the
    # connections psycopg 3 cannot reset after a refused PREPARE.
    logging.getLogger('m01.remote').setLevel(logging.ERROR)
    logging.getLogger('sqlalchemy.pool').setLevel(logging.CRITICAL)

    def progress(message):
        print(message, file=sys.stderr, flush=True)

    print('%d requests from %d threads' % (args.requests, args.threads))
    with postgres.postgres_server() as pg_uri, \
            javaserver.java_server(progress=progress) as mongo_uri:
        print('%-22s %-9s %8s %10s %8s %10s' % (
            'request', 'jobs via', 'req/s', 'median ms', 'p99 ms', 'jobs'))
        for outbox in (False, True):
            print(cost(pg_uri, mongo_uri, args, outbox), flush=True)
        print()
        print('%-22s %-9s' % ('with the outbox', 'mode')
              + ''.join('%10s' % c for c in COLUMNS) + '%8s' % 'failed')
        for title, scenario in [('write skew', write_skew),
                                ('deferred FK (1 in 8)', deferred_fk)]:
            for twophase in (False, True):
                tally, outcomes = refused(pg_uri, mongo_uri, args,
                                          scenario, twophase)
                print('%-22s %-9s' % (title, 'two-phase' if twophase
                                      else 'one-phase')
                      + ''.join('%10d' % tally[c] for c in COLUMNS)
                      + '%8d' % (sum(outcomes.values()) - outcomes['ok']),
                      flush=True)
        print()
        (tally, outcomes, left, moved, sweep, rate,
         median) = outage(pg_uri, args)
    print('outage (write skew, one-phase): the store stopped at the first '
          'move; %.0f requests/s (median %.1f ms) while it was away'
          % (rate, median))
    print('  rows left %d, moved by the sweep %d in %.2f s; '
          % (left, moved, sweep)
          + ', '.join('%s %d' % (c, tally[c]) for c in COLUMNS)
          + ', failed %d' % (sum(outcomes.values()) - outcomes['ok']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
