"""A site subscribing to every job event, for the tests of events in
``m01remote worker`` processes and their children.

Each subscriber writes ``{'event', 'jobid', 'pid', 'at'}`` to the ``events``
collection of the queue's database, through the event's processor, so
a test in another process reads which process saw what; so does its
run wrapper (``wrapped``), in the process that runs the job. Its
factories:
``echo``, ``fatal`` (two attempts, each failing), ``spawner`` (adds
an ``echo`` job with its own input) and ``async`` (awaits, returns its
input).
"""
import asyncio
import os
import time

from pyramid.config import Configurator

from m01.remote.interfaces import (
    IJobAdded,
    IJobCompleted,
    IJobEnded,
    IJobFailed,
    IJobStarted,
)
from m01.remote.job import Job
from m01.remote.testing import EchoJob, FatalErrorJob

EVENTS = (IJobAdded, IJobStarted, IJobCompleted, IJobFailed, IJobEnded)


class AsyncEchoJob(Job):
    """Awaits, then returns its input."""

    async def __call__(self, remoteProcessor):
        await asyncio.sleep(0.01)
        return self.input


class SpawnerJob(Job):
    """Adds an ``echo`` job with its input, in its transaction."""

    def __call__(self, remoteProcessor):
        return remoteProcessor.addJob('echo', self.input)


def recorder(interface):
    def record(event):
        event.processor.database.events.insert_one({
            'event': interface.__name__, 'jobid': event.jobid,
            'pid': os.getpid(), 'at': time.time_ns(),
            'status': getattr(event, 'status', None)})
    return record


def noting_wrapper(handler, registry):
    def wrapped(job, remoteProcessor):
        remoteProcessor.database.events.insert_one({
            'event': 'wrapped', 'jobid': job.__name__, 'pid': os.getpid(),
            'at': time.time_ns(), 'status': None})
        return handler(job, remoteProcessor)
    return wrapped


def main(global_config, **settings):
    config = Configurator(settings=settings)
    config.include('m01.remote')
    config.add_remote_job_factory('echo', EchoJob)
    config.add_remote_job_factory('fatal', FatalErrorJob, maxRetries=2,
                                  retryDelay=0)
    config.add_remote_job_factory('spawner', SpawnerJob)
    config.add_remote_job_factory('async', AsyncEchoJob)
    config.add_job_wrapper(noting_wrapper)
    for interface in EVENTS:
        config.add_subscriber(recorder(interface), interface)
    return config.make_wsgi_app()
