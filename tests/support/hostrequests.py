"""What the host-site tests share: counting what happened to the
requests' transactions, and posting many requests from several threads
through a WSGI application (one WebTest client per thread)."""
import collections
import concurrent.futures
import threading

import webtest


class Counts:
    """What happened to the requests, counted across threads.

    ``viewed``: view calls that returned; ``committed``: their
    transactions that committed; ``refused``: those that did not (the
    view had returned, so a participant refused at commit);
    ``retries``: attempts pyramid_retry ran again.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = collections.Counter()

    def add(self, name, n=1):
        with self._lock:
            self._counts[name] += n

    def __getitem__(self, name):
        with self._lock:
            return self._counts[name]

    def asdict(self):
        with self._lock:
            return dict(self._counts)

    def watch(self, txn):
        """Count the view's return and how ``txn`` ends."""
        txn.addAfterCommitHook(
            lambda committed: self.add('committed' if committed
                                       else 'refused'))
        self.add('viewed')


def count_retry(event):
    """pyramid_retry's ``IBeforeRetry`` subscriber, for a registry with
    ``counts``."""
    event.request.registry.counts.add('retries')


def post(app, path, params, testapp=None):
    """POST ``params`` to ``path``; the response, or the exception that
    ended the request (a site that renders no error lets it propagate out
    of the application)."""
    testapp = testapp or webtest.TestApp(app)
    try:
        return testapp.post(path, {key: str(value)
                                   for key, value in params.items()})
    except Exception as e:  # what the request ended with
        return e


def post_all(app, path, forms, threads=4):
    """POST each of ``forms`` to ``path`` from ``threads`` threads, each
    with its own client; a Counter of the outcomes (``'ok'`` or the
    class name of the exception that ended the request)."""
    local = threading.local()

    def one(params):
        if not hasattr(local, 'testapp'):
            local.testapp = webtest.TestApp(app)
        outcome = post(app, path, params, testapp=local.testapp)
        return type(outcome).__name__ if isinstance(outcome, Exception) \
            else 'ok'

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return collections.Counter(pool.map(one, forms))
