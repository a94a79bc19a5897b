"""Lifecycle events: what the processor tells its registry's subscribers
about a job (``IJobAdded``, ``IJobStarted``, ``IJobCompleted``,
``IJobFailed``, ``IJobEnded``).

An event is sent in the process where it happened, once the change was
stored: after the commit of the transaction that added the job,
cancelled it or stored the attempt's outcome (at once for an immediate
change, or a sweep of the lease keeper). Each subscriber is called on
its own: one that raises is logged with the job's id, and the others,
the job and the worker carry on. With no subscriber for an event's
interface, nothing is made.
"""
import logging

import zope.interface
from zope.interface import providedBy

from m01.remote.interfaces import (
    CANCELLED,
    COMPLETED,
    ERROR,
    QUEUED,
    IJobAdded,
    IJobCompleted,
    IJobEnded,
    IJobFailed,
    IJobStarted,
)
from m01.remote.job import JobInterrupted, JobTimedOut

logger = logging.getLogger('m01.remote')


class JobEvent:

    def __init__(self, processor, jobid, job=None, **fields):
        self.processor = processor
        self.jobid = str(jobid)
        self.job = job
        for name, value in fields.items():
            setattr(self, name, value)

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, self.jobid)


@zope.interface.implementer(IJobAdded)
class JobAdded(JobEvent):
    pass


@zope.interface.implementer(IJobStarted)
class JobStarted(JobEvent):
    attempt = None


@zope.interface.implementer(IJobCompleted)
class JobCompleted(JobEvent):
    output = None


@zope.interface.implementer(IJobFailed)
class JobFailed(JobEvent):
    error = None


@zope.interface.implementer(IJobEnded)
class JobEnded(JobEvent):
    status = None
    error = None


def wanted(registry, interface):
    """Whether ``registry`` has a subscriber for events of
    ``interface``."""
    return bool(registry.adapters.subscriptions((interface,), None))


def notify(registry, event):
    """Call each subscriber of ``event`` in ``registry``; log what one
    raises, with the job's id, and go on."""
    for handler in registry.adapters.subscriptions((providedBy(event),),
                                                   None):
        try:
            handler(event)
        except Exception:
            logger.exception('A subscriber to %s of job %s failed; the job '
                             'is not affected', type(event).__name__,
                             event.jobid)


def afterCommit(registry, manager, event):
    """Send ``event`` once the current transaction of ``manager`` commits
    (at once without a manager)."""
    if manager is None:
        notify(registry, event)
        return
    manager.get().addAfterCommitHook(
        lambda committed: committed and notify(registry, event))


def added(registry, processor, job, document, manager=None):
    """``IJobAdded`` for the ``job`` of ``document`` once the transaction
    of ``manager`` commits (at once without one)."""
    if wanted(registry, IJobAdded):
        job.__name__ = str(document['_id'])
        afterCommit(registry, manager,
                    JobAdded(processor, document['_id'], job))


def cancelled(registry, processor, jobid, write, manager=None):
    """The cancelling ``write``, sending ``IJobEnded`` (cancelled) once it
    did and the transaction of ``manager`` committed."""

    def cancel():
        done = write()
        if done and wanted(registry, IJobEnded):
            afterCommit(registry, manager, JobEnded(
                processor, jobid, status=CANCELLED))
        return done
    return cancel


class AttemptEvents:
    """The events of one attempt of ``job`` run with ``processor``."""

    def __init__(self, registry, processor, job):
        self.registry = registry
        self.processor = processor
        self.job = job

    def started(self):
        if wanted(self.registry, IJobStarted):
            notify(self.registry, JobStarted(
                self.processor, self.job.__name__, self.job,
                attempt=self.job.retryCounter + 1))

    def stored(self, update, error=None):
        """The attempt's outcome ``update`` was stored."""
        fields = update['$set']
        outcome(self.registry, self.processor, self.job.__name__,
                fields['status'], error, self.job, fields.get('output'))


def outcome(registry, processor, jobid, status, error=None, job=None,
            output=None):
    """The events of an attempt whose outcome left the job ``status``."""
    if status == COMPLETED:
        if wanted(registry, IJobCompleted):
            notify(registry, JobCompleted(processor, jobid, job,
                                          output=output))
    elif status == QUEUED:
        if wanted(registry, IJobFailed):
            notify(registry, JobFailed(processor, jobid, job, error=error))
        return
    if wanted(registry, IJobEnded):
        notify(registry, JobEnded(processor, jobid, job, status=status,
                                  error=error if status == ERROR else None))


class SweepEvents:
    """The events of the attempts ended without a job object, told as
    ``[(jobid, status)]`` with what ended them: ``'timed out'`` or
    ``'lost'`` (the lease keeper's sweeps), or the error itself (a job
    whose class this process lacks)."""

    def __init__(self, registry, processor):
        self.registry = registry
        self.processor = processor

    def __call__(self, ended, how):
        for jobid, status in ended:
            if isinstance(how, BaseException):
                error = how
            elif how == 'timed out':
                error = JobTimedOut('Job %s timed out.' % jobid)
            else:
                error = JobInterrupted('Job %s lost its worker.' % jobid)
            outcome(self.registry, self.processor, jobid, status, error)
