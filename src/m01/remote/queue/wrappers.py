"""Run wrappers: what surrounds each attempt's run, declared like Pyramid
tweens (``config.add_job_wrapper(factory, over=..., under=...)``).

Each factory is called once per registry as ``factory(handler,
registry)`` and returns a handler ``handler(job, remoteProcessor)`` that
returns the job's output (usually by calling ``handler``); the chain's
innermost handler calls the job (``callJob``: an ``async def __call__``
is run to its end there, on a loop of its own). A wrapper opens a
database session, sets a tenant, or starts a span around the run, in
the process that runs the job (a ``process`` worker's child).

Without ``over`` or ``under`` the wrappers added first are outermost;
``over`` names the wrappers it goes outside of, ``under`` those it goes
inside of (or ``OUTERMOST``, ``JOB``).
"""
import asyncio
import inspect
import threading

import zope.interface
from pyramid.util import TopologicalSorter

from m01.remote.interfaces import IJobWrappers
from m01.remote.job import JobTimedOut
from m01.remote.queue.updates import TIMED_OUT_MESSAGE

#: The outside of every wrapper, and the job itself inside every one.
OUTERMOST = 'm01.remote.outermost'
JOB = 'm01.remote.job'


def isAsyncJob(job):
    """Whether ``job``'s ``__call__`` is a coroutine function."""
    return inspect.iscoroutinefunction(type(job).__call__)


def callJob(job, remoteProcessor):
    """The innermost handler: call the job. A coroutine it returns is
    returned as it is on a running event loop (the worker's, which
    awaits it), else run to its end on a loop of this call's own, cut at
    the job's deadline."""
    output = job(remoteProcessor)
    if inspect.iscoroutine(output) and not _onLoop():
        output = asyncio.run(_untilDeadline(job, output))
    return output


def _onLoop():
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _untilDeadline(job, coroutine):
    control = job._control
    seconds = None
    if control is not None and control.deadline is not None:
        seconds = max((control.deadline - control.now()).total_seconds(), 0)
    try:
        return await asyncio.wait_for(coroutine, seconds)
    except asyncio.TimeoutError:
        raise JobTimedOut(TIMED_OUT_MESSAGE % ('%g' % job.timeout))


@zope.interface.implementer(IJobWrappers)
class JobWrappers:
    """The wrappers of a registry, ordered as they were declared."""

    def __init__(self):
        self._sorter = TopologicalSorter(default_before=JOB,
                                         default_after=None,
                                         first=OUTERMOST, last=JOB)
        self._lock = threading.Lock()
        self._handler = None

    def add(self, name, factory, over=None, under=None):
        with self._lock:
            self._sorter.add(name, factory, after=under, before=over)
            self._handler = None

    def _ordered(self):
        return [(name, factory) for name, factory in self._sorter.sorted()
                if name not in (OUTERMOST, JOB)]

    def names(self):
        with self._lock:
            return [name for name, _ in self._ordered()]

    def handler(self, registry):
        with self._lock:
            if self._handler is None:
                handler = callJob
                for _, factory in reversed(self._ordered()):
                    handler = factory(handler, registry)
                self._handler = handler
            return self._handler


def runHandler(registry):
    """The handler an attempt is run by in ``registry``: its wrappers'
    chain, or ``callJob`` alone."""
    wrappers = registry.queryUtility(IJobWrappers)
    return callJob if wrappers is None else wrappers.handler(registry)
