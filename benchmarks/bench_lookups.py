"""What a look-up and an update by ``_id`` cost as a collection grows.

For each size, fills a collection with that many small documents, then
times ``find_one({'_id': ...})`` for a document near the start of the
collection and one near its end, and ``update_one`` by ``_id``, and
prints the server's query plan for the look-up (``explain``). On a
server that serves a look-up by ``_id`` from its index the times do not
grow with the collection, nor depend on the document's place in it.

How to run::

    python benchmarks/bench_lookups.py     # a throw-away mongo-java-server
    python benchmarks/bench_lookups.py --uri mongodb://127.0.0.1:27017/
    python benchmarks/bench_lookups.py --sizes 300,3000,30000 --runs 30
"""
import argparse
import itertools
import os
import statistics
import sys
import time

import pymongo.errors

from m01.remote import store

TESTS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'tests')
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from support import javaserver, testserver  # noqa: E402

BATCH = 5000


def timed(call, runs):
    times = []
    for _run in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def plan(database, collection, query):
    """The server's plan for ``find(query)``, as one line."""
    if store.isEmbedded(database):
        return 'none (the embedded store reads its dictionary)'
    try:
        answer = database.command('explain', {'find': collection,
                                              'filter': query})
    except pymongo.errors.OperationFailure as error:
        return 'none (%s)' % error.details.get('errmsg', error)
    planner = answer.get('queryPlanner', {})
    steps = planner.get('Plan') or planner.get('winningPlan') or planner
    return '%s (filter pushdown: %s)' % (
        steps, answer.get('filterPushdown', 'n/a'))


def measure(database, size, runs):
    collection = database['lookups']
    collection.drop()
    for first in range(0, size, BATCH):
        collection.insert_many(
            [{'_id': 'doc%07d' % number, 'version': 0, 'text': 'x' * 200}
             for number in range(first, min(first + BATCH, size))])
    first, last = 'doc%07d' % 0, 'doc%07d' % (size - 1)
    versions = itertools.count(1)
    row = {
        'size': size,
        'find first': timed(lambda: collection.find_one({'_id': first}),
                            runs),
        'find last': timed(lambda: collection.find_one({'_id': last}), runs),
        'update last': timed(lambda: collection.update_one(
            {'_id': last}, {'$set': {'version': next(versions)}}), runs),
        'plan': plan(database, 'lookups', {'_id': last}),
    }
    collection.drop()
    return row


def run(uri, sizes, runs):
    with testserver.scratch_database(uri, 'm01lookups') as database:
        print('%8s %12s %12s %12s   (median of %d, ms)'
              % ('docs', 'find first', 'find last', 'update last', runs))
        for size in sizes:
            row = measure(database, size, runs)
            print('%8d %12.1f %12.1f %12.1f   plan: %s' % (
                row['size'], row['find first'], row['find last'],
                row['update last'], row['plan']), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--uri', help='a mongodb:// URI; default: start a '
                        'throw-away mongo-java-server')
    parser.add_argument('--sizes', default='300,3000,30000',
                        help='collection sizes (default 300,3000,30000)')
    parser.add_argument('--runs', type=int, default=20)
    args = parser.parse_args(argv)
    try:
        sizes = [int(size) for size in args.sizes.split(',')]
    except ValueError:
        parser.error('--sizes takes whole numbers separated by commas')
    if not sizes or min(sizes) < 1 or args.runs < 1:
        parser.error('sizes and --runs must be at least 1')
    if args.uri:
        run(args.uri, sizes, args.runs)
        return 0
    with javaserver.java_server(progress=lambda message: print(
            message, file=sys.stderr, flush=True)) as uri:
        run(uri, sizes, args.runs)
    return 0


if __name__ == '__main__':
    sys.exit(main())
