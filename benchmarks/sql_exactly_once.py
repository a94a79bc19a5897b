"""Exactly once beside the site's own database: concurrent requests whose
COMMIT the site's database refuses, and what the queue stored for them.

The SQL host site of the tests (``support.sqlsite``: SQLAlchemy 2 on
PostgreSQL through psycopg 3, ``zope.sqlalchemy.register(session,
transaction_manager=request.tm)``, pyramid_tm's explicit manager,
pyramid_retry with 3 attempts, SERIALIZABLE) takes ``--requests``
concurrent order requests from ``--threads`` threads, each inserting one
order and adding one job that names it, in one-phase and two-phase mode:

- *write skew*: each request reads its customer's orders, then inserts
  one (``--customers`` customers share the requests), which PostgreSQL
  refuses at COMMIT when two orders of one customer overlap;
- *deferred FK*: one request in 8 orders for a customer that does not
  exist; the foreign key is checked at COMMIT (each request has a
  customer of its own and inserts without reading).

The ZODB host site (``support.zodbsite``: pyramid_zodbconn, FileStorage)
takes as many requests that all change one persistent object, which
conflict (ConflictError at commit, retried).

For each it prints the committed orders (changes), the jobs stored, the
jobs for orders that never committed (orphans), the jobs beyond the first
for a committed order (extras), the committed orders without a job
(missing) and the requests that failed after their attempts.
``--legacy-sort-key`` gives the queue's data manager the sort key of
earlier releases (``'~m01.remote:<n>'``, which sorts before
zope.sqlalchemy's ``'~sqlalchemy:<n>'``), to compare.

How to run::

    pip install -e '.[testing]'
    python benchmarks/sql_exactly_once.py
    python benchmarks/sql_exactly_once.py --legacy-sort-key
    python benchmarks/sql_exactly_once.py --requests 400 --threads 8

A throw-away PostgreSQL (``support.postgres``) and mongo-java-server
(``support.javaserver``) are started for the run.
"""
import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time

TESTS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'tests')
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from m01.remote.queue.transaction import QueueDataManager  # noqa: E402
from support import (  # noqa: E402
    javaserver,
    postgres,
    sqlsite,
    testserver,
    zodbsite,
)

#: The customer no order may name.
MISSING_CUSTOMER = 0
COLUMNS = ('committed', 'jobs', 'orphans', 'extras', 'missing')


def legacy_sort_key(self):
    return '~m01.remote:%d' % id(self)


def write_skew(args):
    """Customers, orders and whether each request reads the customer's
    orders first."""
    orders = [(n, n % args.customers + 1)
              for n in range(1, args.requests + 1)]
    return args.customers, orders, True


def deferred_fk(args):
    orders = [(n, MISSING_CUSTOMER if n % 8 == 0 else n)
              for n in range(1, args.requests + 1)]
    return args.requests, orders, False


SQL_SCENARIOS = [('write skew', write_skew),
                 ('deferred FK (1 in 8)', deferred_fk)]


def run_sql(pg_uri, mongo_uri, scenario, twophase, args):
    customers, orders, read = scenario(args)
    with contextlib.ExitStack() as stack:
        sql_uri = stack.enter_context(postgres.scratch_database(pg_uri))
        store = stack.enter_context(testserver.scratch_database(mongo_uri))
        site = sqlsite.OrderSite(sql_uri, mongo_uri, store.name,
                                 twophase=twophase,
                                 pool_size=args.threads + 2)
        stack.callback(site.close)
        site.addCustomers(customers)
        started = time.perf_counter()
        outcomes = site.placeOrders(orders, threads=args.threads,
                                    read=read)
        seconds = time.perf_counter() - started
        return site.tally(), outcomes, site.counts.asdict(), seconds


def run_zodb(mongo_uri, args):
    with contextlib.ExitStack() as stack:
        directory = stack.enter_context(tempfile.TemporaryDirectory())
        store = stack.enter_context(testserver.scratch_database(mongo_uri))
        site = zodbsite.LedgerSite(directory, mongo_uri, store.name,
                                   pool_size=args.threads + 2)
        stack.callback(site.close)
        started = time.perf_counter()
        outcomes = site.postChanges(range(1, args.requests + 1),
                                    threads=args.threads)
        seconds = time.perf_counter() - started
        return site.tally(), outcomes, site.counts.asdict(), seconds


def row(title, mode, tally, outcomes, counts, seconds):
    failed = sum(outcomes.values()) - outcomes['ok']
    return ('%-22s %-9s' % (title, mode)
            + ''.join('%10d' % tally[c] for c in COLUMNS)
            + '%8d%9d%9d%8.1f' % (failed, counts.get('refused', 0),
                                  counts.get('retries', 0), seconds))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--requests', type=int, default=400)
    parser.add_argument('--threads', type=int, default=8)
    parser.add_argument('--customers', type=int, default=8,
                        help='customers sharing the write-skew requests')
    parser.add_argument('--legacy-sort-key', action='store_true',
                        help="the queue's sort key of earlier releases")
    args = parser.parse_args(argv)
    if args.legacy_sort_key:
        QueueDataManager.sortKey = legacy_sort_key
    # SQLAlchemy's pool logs each connection psycopg 3 cannot reset after
    # a refused PREPARE (two-phase mode); the table counts them as
    # failed requests.
    logging.getLogger('sqlalchemy.pool').setLevel(logging.CRITICAL)

    def progress(message):
        print(message, file=sys.stderr, flush=True)

    print('%d requests from %d threads, sort key %s'
          % (args.requests, args.threads,
             "'~m01.remote:<n>' (legacy)" if args.legacy_sort_key
             else 'U+10FFFF m01.remote:<n>'))
    print('%-22s %-9s' % ('request', 'mode')
          + ''.join('%10s' % c for c in COLUMNS)
          + '%8s%9s%9s%8s' % ('failed', 'refused', 'retries', 'sec'))
    with postgres.postgres_server() as pg_uri, \
            javaserver.java_server(progress=progress) as mongo_uri:
        for title, scenario in SQL_SCENARIOS:
            for twophase in (False, True):
                print(row(title, 'two-phase' if twophase else 'one-phase',
                          *run_sql(pg_uri, mongo_uri, scenario, twophase,
                                   args)), flush=True)
        print(row('conflicts (ZODB)', 'two-phase',
                  *run_zodb(mongo_uri, args)), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
