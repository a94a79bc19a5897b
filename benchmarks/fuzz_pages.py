"""Random and hostile requests to the management pages, as many as asked.

The long run of ``tests/functional/test_fuzz.py``: the same sites (the
test site or the demo, on the embedded store, seeded with jobs in every
status and scheduler items) and the same hypothesis strategy
(``support.pagefuzz``). Every request is sent and recorded, whatever it
answers; at the end the script prints how many it sent, the statuses
seen, the slowest requests, the largest answer and every 5xx or answer
over 2 MB, and exits 1 if there was any.

How to run::

    pip install -e '.[testing]'
    python benchmarks/fuzz_pages.py                   # 20,000 requests
    python benchmarks/fuzz_pages.py --requests 100000 --seed 7
    python benchmarks/fuzz_pages.py --site demo
"""
import argparse
import collections
import gc
import os
import sys
import time

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (os.path.join(ROOT, 'tests'), os.path.join(ROOT, 'examples',
                                                       'demo')):
    if path not in sys.path:
        sys.path.insert(0, path)

from support.pagefuzz import (  # noqa: E402
    MAX_RESPONSE,
    DemoFuzzSite,
    FuzzSite,
)

SITES = {'test': FuzzSite, 'demo': DemoFuzzSite}


def run(count, seed_value, kind='test'):
    site = SITES[kind]()
    sent = []

    @seed(seed_value)
    @settings(max_examples=count, deadline=None, database=None,
              phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def fuzz(data):
        # Drawn with the site's token of the moment (the demo renews it).
        request = data.draw(site.strategy())
        try:
            sent.append(site.send(request))
        except Exception as error:  # a crash is a 5xx as a server says
            sent.append(None)
            print('ERROR %s: %r' % (request, error), file=sys.stderr)

    started = time.perf_counter()
    gc.callbacks.append(PAUSES)
    try:
        fuzz()
    finally:
        gc.callbacks.remove(PAUSES)
        site.close()
    return sent, time.perf_counter() - started


class Pauses:
    """The longest garbage collection of this process: the slowest
    requests are those it interrupted (hypothesis and the embedded store
    make a large heap), not slow handlers."""

    def __init__(self):
        self.longest = 0.0
        self._started = None

    def __call__(self, phase, info):
        if phase == 'start':
            self._started = time.perf_counter()
        elif self._started is not None:
            self.longest = max(self.longest,
                               time.perf_counter() - self._started)


PAUSES = Pauses()


def report(sent, seconds):
    answered = [record for record in sent if record is not None]
    crashed = len(sent) - len(answered)
    statuses = collections.Counter(record.status for record in answered)
    errors = [record for record in answered if record.status >= 500]
    large = [record for record in answered if record.size > MAX_RESPONSE]
    times = sorted(record.seconds for record in answered)
    print('requests sent      %d in %.1f s' % (len(sent), seconds))
    print('statuses           %s' % ', '.join(
        '%d: %d' % item for item in sorted(statuses.items())))
    if times:
        print('median / p99 / max %.1f / %.1f / %.1f ms' % (
            1000 * times[len(times) // 2],
            1000 * times[min(len(times) - 1, int(len(times) * 0.99))],
            1000 * times[-1]))
    print('longest gc pause   %.1f ms' % (1000 * PAUSES.longest))
    print('slowest:')
    for record in sorted(answered, key=lambda r: -r.seconds)[:5]:
        print('  %7.1f ms  %d  %s' % (1000 * record.seconds, record.status,
                                      record.request))
    if answered:
        largest = max(answered, key=lambda r: r.size)
        print('largest answer     %d bytes (%d %s)' % (
            largest.size, largest.status, largest.request))
    print('5xx                %d' % (len(errors) + crashed))
    print('over %d bytes  %d' % (MAX_RESPONSE, len(large)))
    for record in errors + large:
        print('  %d %d bytes  %s' % (record.status, record.size,
                                     record.request))
    return not (errors or large or crashed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--requests', type=int, default=20000,
                        help='how many requests to send (default 20000)')
    parser.add_argument('--seed', type=int, default=0,
                        help='the random seed (default 0)')
    parser.add_argument('--site', choices=sorted(SITES), default='test',
                        help='the test site (REMOTE_USER logs in) or the '
                        'demo site (its login form; its own pages too)')
    args = parser.parse_args(argv)
    sent, seconds = run(args.requests, args.seed, args.site)
    return 0 if report(sent, seconds) else 1


if __name__ == '__main__':
    sys.exit(main())
