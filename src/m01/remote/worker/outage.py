"""Telling an unreachable database once, and once when it is back."""
import logging
import threading

from m01.remote.queue.leases import isTimeout

logger = logging.getLogger('m01.remote')

#: The longest back-off while the database is unreachable.
MAX_OUTAGE_WAIT = 10.0


class OutageTracker:
    """Logs an unreachable database once, and once when it is back.

    Shared by a worker's loop and its pool threads, hence the lock.
    """

    def __init__(self, label):
        self.label = label
        self.failures = 0
        self._lock = threading.Lock()

    def failed(self, error, operation='a database call'):
        """``operation`` (what was being done: "claiming jobs") failed
        with ``error``; the seconds to wait before trying again."""
        with self._lock:
            if self.failures == 0 and isTimeout(error):
                logger.error('%s: the database does not answer: %s timed '
                             'out (%s); retrying with back-off',
                             self.label, operation, error)
            elif self.failures == 0:
                logger.error('%s: the database cannot be reached while %s '
                             '(%s); retrying with back-off', self.label,
                             operation, error)
            self.failures += 1
            failures = self.failures
        return min(0.5 * 2 ** min(failures - 1, 5), MAX_OUTAGE_WAIT)

    def succeeded(self):
        with self._lock:
            if self.failures:
                logger.info('%s: the database is reachable again after %d '
                            'failed attempts', self.label, self.failures)
            self.failures = 0
