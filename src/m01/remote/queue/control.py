"""What a running job reaches its worker through: its ``checkpoint``,
``progress`` and ``log`` calls (``JobControl``), which raise
``JobCancelled`` once the job was cancelled, ``JobInterrupted`` once it
is no longer its worker's, and ``JobTimedOut`` past its deadline."""
import datetime
import time

from m01.remote.interfaces import CANCELLED, PROCESSING
from m01.remote.job import JobCancelled, JobInterrupted, JobTimedOut
from m01.remote.queue.updates import (
    TIMED_OUT_MESSAGE,
    logUpdate,
    progressUpdate,
)

#: A checkpoint asks the database whether the job was cancelled at most
#: this often (seconds); in between it only checks the timeout. A job
#: that ran longer without asking has its claim checked when it returns.
CHECK_INTERVAL = 1.0


def deadlineOf(job):
    """When the claimed ``job`` times out, or None."""
    if not job.timeout or job.picked is None:
        return None
    return job.picked + datetime.timedelta(seconds=job.timeout)


class JobControl:
    """What a running job calls through its ``checkpoint``, ``progress``
    and ``log``: the job ``oid`` running under ``claim`` until
    ``deadline`` (or for ever), its state read and written through
    ``jobWrites``."""

    def __init__(self, jobWrites, oid, claim, deadline, timeout, now,
                 checkInterval=None):
        self.jobWrites = jobWrites
        self.oid = oid
        self.claim = claim
        self.deadline = deadline
        self.timeout = timeout
        self.now = now
        self.checkInterval = CHECK_INTERVAL if checkInterval is None \
            else checkInterval
        # When the database last confirmed the claim (``time.monotonic``):
        # the job starts under it.
        self._checked = time.monotonic()

    def _checkDeadline(self):
        if self.deadline is not None and self.now() >= self.deadline:
            raise JobTimedOut(TIMED_OUT_MESSAGE % ('%g' % self.timeout))

    def checkDeadline(self):
        """Raise ``JobTimedOut`` if the job is past its deadline."""
        self._checkDeadline()

    def confirmedRecently(self):
        """Whether the database confirmed the claim less than the check
        interval ago."""
        return time.monotonic() - self._checked < self.checkInterval

    def _stopUnlessOwned(self, state):
        self._checked = time.monotonic()
        if state == (PROCESSING, self.claim):
            return
        if state is not None and state[0] == CANCELLED:
            raise JobCancelled('Job %s was cancelled.' % self.oid)
        raise JobInterrupted(
            'Job %s is no longer this worker\'s (it is %s).'
            % (self.oid, state[0] if state else 'removed'))

    def confirm(self):
        """Ask the database now whether the job is still this worker's;
        raise as a checkpoint does when it is not."""
        self._stopUnlessOwned(self.jobWrites.state(self.oid))

    def checkpoint(self):
        self._checkDeadline()
        if time.monotonic() - self._checked >= self.checkInterval:
            self._stopUnlessOwned(self.jobWrites.state(self.oid))

    def _report(self, update):
        self._checkDeadline()
        if not self.jobWrites.report(self.oid, self.claim, update):
            self._stopUnlessOwned(self.jobWrites.state(self.oid))
        self._checked = time.monotonic()

    def progress(self, fraction, message):
        self._report(progressUpdate(fraction, message, self.now()))

    def log(self, line):
        self._report(logUpdate(line, self.now()))
