"""What an idle loop waits on: a wake-up now, or at a time.

A worker with nothing to claim waits until jobs are committed (in this
process: by the commit; in another: by a change stream), until the
earliest due time it knows of (a job delayed until then, a scheduler item
due then), or until its ``waitTime`` has passed and it polls anyway.

``set()`` wakes every loop waiting now, or the next one to wait if none
is; ``setAt(when)`` does so at ``when``. Only the earliest
``MAX_DUE_TIMES`` due times are kept: the poll finds the jobs of the
others, so memory stays bounded whatever a stream announces.
"""
import bisect
import threading
import time

import zope.interface

from m01.remote.interfaces import IWakeup

#: Due times kept, the earliest ones.
MAX_DUE_TIMES = 1000


@zope.interface.implementer(IWakeup)
class Wakeup:
    """A wake-up for the loops of one processor; ``now`` tells the time
    the due times are compared with (the processor's clock)."""

    def __init__(self, now, maxDueTimes=MAX_DUE_TIMES):
        self.now = now
        self.maxDueTimes = maxDueTimes
        self._condition = threading.Condition()
        # Set and not consumed by a waiter yet.
        self._pending = False
        # Advanced by every wake-up: a waiter returns once it moved.
        self._generation = 0
        self._due = []
        self.waiting = 0

    @property
    def idle(self):
        """Whether a loop waits and nothing woke it yet."""
        with self._condition:
            return self.waiting > 0 and not self._pending

    @property
    def dueTimes(self):
        with self._condition:
            return list(self._due)

    def set(self):
        with self._condition:
            self._wake()

    def _wake(self):
        self._pending = True
        self._generation += 1
        self._condition.notify_all()

    def setAt(self, when):
        if when <= self.now():
            self.set()
            return
        with self._condition:
            if len(self._due) >= self.maxDueTimes and when >= self._due[-1]:
                return
            bisect.insort(self._due, when)
            del self._due[self.maxDueTimes:]
            # A waiter may have to wake earlier than it planned.
            self._condition.notify_all()

    def _fireDue(self):
        """Wake the loops if the earliest due time has come; the seconds
        until it otherwise (None when there is none)."""
        if not self._due:
            return None
        now = self.now()
        if self._due[0] > now:
            return (self._due[0] - now).total_seconds()
        del self._due[:bisect.bisect_right(self._due, now)]
        self._wake()
        return 0.0

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        with self._condition:
            self.waiting += 1
            try:
                generation = self._generation
                while True:
                    untilDue = self._fireDue()
                    if self._pending or self._generation != generation:
                        self._pending = False
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    if untilDue is not None:
                        remaining = min(remaining, untilDue)
                    self._condition.wait(remaining)
            finally:
                self.waiting -= 1
