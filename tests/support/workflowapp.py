"""The application of the workflow process tests
(``tests/processes/test_workflows.py``): m01.remote with the job
factories of ``support.workflowjobs``.

Its fault hook, for the tests only: with ``workflows.die_after_releases
= N``, the process exits at once (``os._exit``, as SIGKILL would end it)
the N-th time a job's outcome was stored and the jobs waiting for it
are about to be released: between a member's outcome and its release.
"""
import os
import threading

from pyramid.config import Configurator

from m01.remote.queue.dependencies import Dependencies
from support import workflowjobs

#: The exit status of a process the fault hook ended.
DIED = 86


def dieBeforeRelease(after):
    """Make this process exit before the ``after``-th release."""
    release = Dependencies.endedSafely
    lock = threading.Lock()
    count = [0]

    def endedSafely(self, oid, status):
        with lock:
            count[0] += 1
            if count[0] >= after:
                os._exit(DIED)
        return release(self, oid, status)
    Dependencies.endedSafely = endedSafely


def main(global_config, **settings):
    after = settings.pop('workflows.die_after_releases', None)
    if after:
        dieBeforeRelease(int(after))
    config = Configurator(settings=settings)
    config.include('m01.remote')
    config.add_remote_job_factory('step', workflowjobs.SyncedStepJob)
    config.add_remote_job_factory('gather', workflowjobs.GatherJob)
    return config.make_wsgi_app()
