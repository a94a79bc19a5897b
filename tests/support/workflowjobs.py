"""Job classes for the dependency and workflow tests, importable by a
worker process (importing this module registers them).

Each run writes a record to the ``calls`` collection at once (not
through the transaction), so a test counts the runs of every job.
"""
import threading
import time

from m01.remote.job import Job


class StepJob(Job):
    """Records its run and returns its input."""

    def __call__(self, remoteProcessor):
        remoteProcessor.database.calls.insert_one(
            {'job': self.__name__, 'input': self.input})
        return self.input


class GatherJob(Job):
    """A group's callback: records its run with what the jobs it depends
    on ended in, and returns the sum of their outputs."""

    def __call__(self, remoteProcessor):
        results = remoteProcessor.getDependencyResults(self.__name__)
        ended = [result['status'] for result in results]
        remoteProcessor.database.calls.insert_one(
            {'job': self.__name__, 'input': self.input, 'gather': True,
             'statuses': ended})
        return sum(result['output'] or 0 for result in results)


class SyncedStepJob(Job):
    """Input ``{'number': n, 'until': t}``: records its run, waits until
    the time ``t`` (seconds since the epoch; so that the members of a
    group end at the same moment), returns ``n``."""

    def __call__(self, remoteProcessor):
        remoteProcessor.database.calls.insert_one(
            {'job': self.__name__, 'input': self.input})
        pause = self.input['until'] - time.time()
        if pause > 0:
            threading.Event().wait(pause)
        return self.input['number']
