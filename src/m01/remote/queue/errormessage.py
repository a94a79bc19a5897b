"""The stored text of a job error, produced by a ZCA multi-adapter.

A site changes the message by registering its own ``(job, error) ->
IJobErrorMessage`` adapter in the registry its processor uses.
"""
import zope.component
import zope.interface

from m01.remote import interfaces
from m01.remote.clock import stamp, utcnow


def formatErrorText(error):
    return str(error) or type(error).__name__


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
    """The message the registry's adapter gives, the default without one.
    """
    adapted = registry.queryMultiAdapter((job, error),
                                         interfaces.IJobErrorMessage)
    if adapted is None:
        adapted = JobErrorMessage(job, error)
    return adapted.message
