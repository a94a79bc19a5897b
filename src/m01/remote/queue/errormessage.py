"""The stored text of a job error, produced by a ZCA multi-adapter.

A site changes the message by registering its own ``(job, error) ->
IJobErrorMessage`` adapter in the registry its processor uses.
"""
import logging

import zope.component
import zope.interface

from m01.remote import interfaces
from m01.remote.clock import stamp, utcnow

logger = logging.getLogger('m01.remote')


def formatErrorText(error):
    """The text of ``error``: its ``str``, its type's name when that is
    empty, or a note saying ``str`` raised (the failure is stored all the
    same)."""
    try:
        text = str(error)
    except Exception as failure:
        return '%s (its message cannot be read: str() raised %s)' % (
            type(error).__name__, type(failure).__name__)
    return text or type(error).__name__


@zope.interface.implementer(interfaces.IJobErrorMessage)
@zope.component.adapter(interfaces.IJob, zope.interface.Interface)
class JobErrorMessage:
    """``[<ISO-8601 UTC timestamp>] <message>``, as the specification.

    The timestamp is the job's ``errorTime`` (the processor's clock at the
    failure), or now."""

    def __init__(self, job, error):
        self.job = job
        self.error = error
        self.message = stamp(formatErrorText(error),
                             getattr(job, 'errorTime', None) or utcnow())


def registerJobErrorMessageAdapter(registry=None):
    registry = registry or zope.component.getGlobalSiteManager()
    registry.registerAdapter(JobErrorMessage)


def getJobErrorMessage(registry, job, error):
    """The message the registry's adapter gives, the default without one
    or when the adapter fails: a failure is stored whatever its message
    adapter does."""
    try:
        adapted = registry.queryMultiAdapter((job, error),
                                             interfaces.IJobErrorMessage)
        if adapted is not None:
            return adapted.message
    except Exception:
        logger.exception('The error message adapter failed for job %s; '
                         'its default message is stored',
                         getattr(job, '__name__', None))
    return JobErrorMessage(job, error).message
