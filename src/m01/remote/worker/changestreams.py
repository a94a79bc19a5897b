"""Following a collection's change stream, for the idle loops of a process.

A ``ChangeWatcher`` runs one thread per processor and collection while a
loop needs it (``acquire`` / ``release``, as the lease keeper does). It
opens a change stream of the collection, hands each change to its
``onChange`` (``m01.remote.worker.wakeup`` decides whom a change wakes) and
calls ``onOpen`` once the stream is open: the loops then make one claim
round, which finds whatever was committed before the stream began, while
the stream delivers everything committed after.

Where the stream starts: at the server's ``operationTime`` (what a
replica set or a sharded cluster puts in every reply; for a read, the
newest entry of its oplog). mongo-java-server's replies carry no time,
and a stream it is not given one to start at fails; there the stream
starts at this machine's clock, ``START_SLACK`` seconds back (changes
of those seconds are delivered again: a needless wake-up at most).

Where the server has no change streams (a standalone mongod,
mongo-java-server without its oplog, the embedded store) the watcher
says so once (at DEBUG level) and stops: the loops poll every
``waitTime``, as they do anyway between changes. A stream that breaks
is reopened with back-off, logged once per outage: after the last
change it delivered (``start_after`` its resume token) where it has one
and the server still knows it, else from the server's time again.
Every opening is followed by a claim round, so even a server that lost
track of the token (or a clock that ran ahead of the server's) costs a
wait of at most one poll.

An empty ``getMore`` is held by MongoDB for ``AWAIT_MS``, so an idle
stream costs one command a second; on a client whose socket timeout
(``m01.remote.socket_timeout``) is shorter than twice that, for half the
socket timeout, so that the timeout never cuts a getMore that waits.
mongo-java-server answers at once (and reads its whole oplog for each
answer): such a server is asked again only after ``PACE`` seconds, and
only while a loop waits for a change (``needed``): the changes
committed while every loop was busy come with the first answer after.
"""
import contextlib
import logging
import threading
import time

import bson
import pymongo.errors
import zope.interface

from m01.remote.interfaces import IChangeWatcher
from m01.remote.store import isEmbedded, socketTimeoutOf

logger = logging.getLogger('m01.remote.changes')

MODES = ('auto', 'changestream', 'poll')
#: Milliseconds the server may hold an empty getMore.
AWAIT_MS = 1000
#: Seconds between two getMores on a server that does not hold them.
PACE = 0.05
#: Seconds a stream started from this machine's clock starts early.
START_SLACK = 2
#: The longest back-off between two attempts to reopen a stream.
MAX_BACKOFF = 10.0
#: Seconds ``stop`` waits for the thread when no timeout is given.
STOP_TIMEOUT = 5.0

#: Error codes that mean "not now", not "never": the server is electing
#: a primary, shutting down or moving data (pymongo's resumable errors).
TRANSIENT_CODES = frozenset((
    6, 7, 63, 89, 91, 133, 150, 189, 234, 262, 9001, 10107, 11600, 11602,
    13388, 13435, 13436))
#: The server no longer has the changes after a resume token.
HISTORY_LOST_CODES = frozenset((260, 280, 286))


def serverTime(database):
    """The time to start a stream at: the server's ``operationTime`` (or
    ``$clusterTime``), else this machine's clock ``START_SLACK`` seconds
    ago (``bson.Timestamp``)."""
    reply = database.command('ping')
    for value in (reply.get('operationTime'),
                  (reply.get('$clusterTime') or {}).get('clusterTime')):
        if isinstance(value, bson.Timestamp):
            return value
    return bson.Timestamp(max(int(time.time()) - START_SLACK, 1), 0)


def isTransient(error):
    """Whether an error opening or following a stream may pass: a lost
    connection, an election, a shutdown."""
    if isinstance(error, pymongo.errors.ConnectionFailure):
        return True
    if isinstance(error, pymongo.errors.OperationFailure):
        return error.code in TRANSIENT_CODES or \
            error.has_error_label('ResumableChangeStreamError')
    return True


class StreamOutage:
    """Logs a broken stream once, and once when it is open again."""

    def __init__(self, label):
        self.label = label
        self.failures = 0

    def failed(self, error, insisted=False):
        if self.failures == 0:
            if insisted:
                logger.error(
                    '%s: m01.remote.wakeup = changestream, but the change '
                    'stream cannot be opened (%s); retrying with back-off, '
                    'idle loops poll meanwhile', self.label, error)
            else:
                logger.warning(
                    '%s: the change stream broke (%s); reopening it with '
                    'back-off, idle loops poll meanwhile', self.label,
                    error)
        self.failures += 1
        return min(0.5 * 2 ** min(self.failures - 1, 5), MAX_BACKOFF)

    def succeeded(self):
        if self.failures:
            logger.info('%s: the change stream is open again after %d '
                        'failed attempts', self.label, self.failures)
        self.failures = 0


@zope.interface.implementer(IChangeWatcher)
class ChangeWatcher:
    """Follows the change stream of ``collection`` filtered by
    ``pipeline``: ``onChange(change)`` gets each change and answers
    whether it woke the loops at once; ``onOpen()`` is called after each
    opening. ``label`` names it in logs and its thread's name; ``mode``
    is ``m01.remote.wakeup``."""

    def __init__(self, collection, pipeline, onChange, onOpen, label,
                 mode='auto', needed=None):
        if mode not in MODES:
            raise ValueError('mode is one of %s, not %r'
                             % (', '.join(MODES), mode))
        self.collection = collection
        self.pipeline = list(pipeline)
        self.onChange = onChange
        self.onOpen = onOpen
        #: Whether a loop waits for a change now (default: always).
        self.needed = needed or (lambda: True)
        self.label = label
        self.mode = mode
        self.refused = 'm01.remote.wakeup = poll' if mode == 'poll' \
            else None
        self.watching = False
        self.opened = 0
        self.resumed = 0
        self.changes = 0
        self.wakes = 0
        self._lock = threading.Lock()
        self._users = 0
        self._thread = None
        self._stop = None
        self._ending = []

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, self.label)

    def acquire(self):
        with self._lock:
            self._users += 1
            if self.refused is None and isEmbedded(
                    self.collection.database):
                self._refuse('the embedded store has none')
            if self.refused is not None or self._thread is not None:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), daemon=True,
                name='m01.remote-changes-%s' % self.label.replace(' ', '-'))
            self._thread.start()

    def release(self):
        with self._lock:
            self._users = max(self._users - 1, 0)
            if self._users == 0:
                self._stopThread()

    def _stopThread(self):
        # Not joined: the thread ends within AWAIT_MS, and a loop stopping
        # should not wait for it (``stop`` does). A new one may start
        # meanwhile.
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self._ending = [ending for ending in self._ending
                            if ending.is_alive()] + [thread]

    def stop(self, timeout=None):
        with self._lock:
            self._users = 0
            self._stopThread()
            ending, self._ending = self._ending, []
        deadline = time.monotonic() + (
            STOP_TIMEOUT if timeout is None else timeout)
        for thread in ending:
            if thread is not threading.current_thread():
                thread.join(max(deadline - time.monotonic(), 0))

    def _refuse(self, reason):
        # Polling is what ``auto`` chose, not a fault: said at DEBUG, so a
        # processor starting logs at INFO only what the specification's
        # log shows ("Processor 'root-worker' started").
        self.refused = reason
        logger.debug('%s: no change streams (%s); idle loops poll every '
                     'waitTime', self.label, reason)

    # the thread

    def awaitMs(self):
        """Milliseconds the server may hold an empty getMore:
        ``AWAIT_MS``, at most half the client's socket timeout."""
        timeout = socketTimeoutOf(self.collection.database)
        if timeout is None:
            return AWAIT_MS
        return max(min(AWAIT_MS, int(timeout * 500)), 1)

    def _open(self, token):
        options = {'max_await_time_ms': self.awaitMs()}
        if token is not None:
            options['start_after'] = token
        else:
            options['start_at_operation_time'] = serverTime(
                self.collection.database)
        return self.collection.watch(self.pipeline, **options)

    def _run(self, stop):
        outage = StreamOutage(self.label)
        token = None
        while not stop.is_set():
            try:
                stream = self._open(token)
            except pymongo.errors.PyMongoError as error:
                if stop.is_set():
                    return
                if token is not None and \
                        getattr(error, 'code', None) in HISTORY_LOST_CODES:
                    token = None          # start from the server's time
                    continue
                if self.mode == 'auto' and not isTransient(error):
                    with self._lock:
                        self._refuse('the server refused one: %s' % error)
                    return
                stop.wait(outage.failed(error,
                                        insisted=not isTransient(error)))
                continue
            try:
                token = self._follow(stream, token is not None, stop,
                                     outage)
            except Exception as error:
                if stop.is_set():
                    return        # stopped: the client may be closed
                if not isinstance(error, pymongo.errors.PyMongoError):
                    logger.exception('%s: following the change stream '
                                     'failed', self.label)
                token = stream.resume_token or token
                stop.wait(outage.failed(error))
            finally:
                self.watching = False
                with contextlib.suppress(Exception):
                    stream.close()

    def _follow(self, stream, resumed, stop, outage):
        """Hand on the stream's changes until ``stop``; its resume token.
        """
        self.watching = True
        outage.succeeded()
        self._call(self.onOpen)
        # Counted once the loops were woken: a test waiting for the
        # count then knows the claim round was asked for.
        if resumed:
            self.resumed += 1
        else:
            self.opened += 1
        awaited = self.awaitMs() / 1000.0
        while not stop.is_set():
            asked = time.monotonic()
            change = stream.try_next()
            if change is not None:
                self.changes += 1
                if self._call(self.onChange, change):
                    self.wakes += 1
                continue
            answered = time.monotonic() - asked
            if answered < awaited / 2.0:
                stop.wait(PACE - answered)   # it does not hold a getMore
                # Nor is a getMore cheap there: while every loop is busy
                # (a busy loop claims again before it waits), ask nothing;
                # the changes meanwhile come with the next answer.
                while not self.needed() and not stop.wait(PACE):
                    pass
        return stream.resume_token

    def _call(self, function, *args):
        try:
            return function(*args)
        except Exception:
            logger.exception('%s: handling a change failed; watching goes '
                             'on', self.label)
            return False
