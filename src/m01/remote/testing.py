"""Job classes and helpers for tests and the ported specification.

Importing this module registers its job classes, so their stored jobs
can be loaded back in any process that imports it.
"""
import logging
import time

from pyramid.security import Allowed, Denied

from m01.remote.job import Job, JobError
from m01.remote.queue import errormessage

logger = logging.getLogger('m01.remote')

#: Counts TransactionAbortJob runs (the specification's regression test).
testCounter = 0


def setUpJobErrorMessageAdapter(registry=None):
    errormessage.registerJobErrorMessageAdapter(registry)


class EchoJob(Job):
    """Returns its input."""

    def __call__(self, remoteProcessor):
        return self.input


class ErrorJob(Job):
    """Fails at once, without retries."""

    def __call__(self, remoteProcessor):
        raise JobError('An error occurred.')


class FatalErrorJob(Job):
    """Fails with an unexpected error, so it is retried."""

    def __call__(self, remoteProcessor):
        raise RuntimeError('An error occurred.')


class SleepJob(Job):
    """Input ``(seconds, label)``: sleeps, then logs ``Job: <label>``."""

    def __call__(self, remoteProcessor):
        seconds, label = self.input
        time.sleep(seconds)
        logger.info('Job: %s', label)
        return label


class TransactionAbortJob(Job):
    """Aborts the transaction it runs in."""

    fields = ('counter',)
    counter = 0

    def __call__(self, remoteProcessor):
        global testCounter
        testCounter += 1
        logger.info('Job: %s', self.input)
        remoteProcessor.transactionManager.abort()


class LogCapture(logging.Handler):
    """Collects log records and prints them as the specification shows:

        m01.remote INFO
          Processor 'root-worker' started
    """

    def __init__(self, name='m01.remote', level=logging.INFO):
        super().__init__(level)
        self.name = name
        self.records = []
        self.logger = logging.getLogger(name)

    def install(self):
        self.logger.addHandler(self)
        self._oldLevel = self.logger.level
        self.logger.setLevel(self.level)
        return self

    def uninstall(self):
        self.logger.removeHandler(self)
        self.logger.setLevel(self._oldLevel)

    def emit(self, record):
        self.records.append(record)

    def clear(self):
        self.records = []

    def __str__(self):
        return '\n'.join(
            '%s %s\n  %s' % (record.name, record.levelname,
                             record.getMessage())
            for record in self.records)


def waitForJobs(remoteProcessor, jobids, stati=('completed', 'error'),
                timeout=30.0, interval=0.01):
    """Poll until every job has one of ``stati``; raise after timeout.

    A bounded wait for a condition, for tests and examples, instead of
    sleeping for a guessed time.
    """
    deadline = time.monotonic() + timeout
    while True:
        current = {jobid: remoteProcessor.getJobStatus(jobid)
                   for jobid in jobids}
        if all(status in stati for status in current.values()):
            return current
        if time.monotonic() > deadline:
            raise AssertionError('Jobs not done after %.1f s: %r'
                                 % (timeout, current))
        time.sleep(interval)


class RemoteUserPolicy:
    """A Pyramid security policy for test sites: a request with
    ``REMOTE_USER`` in its environment is authenticated as that user and
    granted ``permission`` (every permission when it is None)."""

    def __init__(self, permission=None):
        self.permission = permission

    def identity(self, request):
        return request.environ.get('REMOTE_USER')

    def authenticated_userid(self, request):
        return self.identity(request)

    def permits(self, request, context, permission):
        if self.identity(request) is None:
            return Denied('anonymous')
        if self.permission is not None and permission != self.permission:
            return Denied('not granted %r' % permission)
        return Allowed('granted')

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []
