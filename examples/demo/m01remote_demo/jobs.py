"""The jobs of the demo site.

Importing this module makes their stored jobs loadable (see
``m01.remote.job``): the demo application imports it, and so does an
``m01remote worker`` process started for the demo's ini file.
"""
import logging
import time

from m01.remote.job import Job, JobError

logger = logging.getLogger('m01remote_demo')

#: The longest a SleepJob sleeps, whatever its input says.
MAX_SLEEP = 300.0
#: The most steps a StepsJob takes.
MAX_STEPS = 600


class EchoJob(Job):
    """Returns its input."""

    def __call__(self, remoteProcessor):
        logger.info('EchoJob %s: %r', self.__name__, self.input)
        return self.input


class SleepJob(Job):
    """Sleeps ``input`` seconds (default 1) and returns them.

    Handy to watch a job in status ``processing`` and a worker finishing
    its running jobs when it is stopped.
    """

    def __call__(self, remoteProcessor):
        seconds = 1.0 if self.input is None else self.input
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
                or not 0 <= seconds <= MAX_SLEEP:
            raise JobError('SleepJob input must be a number of seconds '
                           'between 0 and %g, not %r' % (MAX_SLEEP, seconds))
        time.sleep(seconds)
        logger.info('SleepJob %s slept %s s', self.__name__, seconds)
        return seconds


class FailingJob(Job):
    """Always fails with an unexpected error, so it is retried until it
    runs out of retries and ends in status ``error``."""

    def __call__(self, remoteProcessor):
        raise RuntimeError('FailingJob always fails (input %r)'
                           % (self.input,))


class StepsJob(Job):
    """Works through ``input`` steps (default 10) of half a second each,
    reporting its progress and logging a line at each: a job to watch on
    its page, and to cancel half-way (it stops at its next step)."""

    def __call__(self, remoteProcessor):
        steps = 10 if self.input is None else self.input
        if isinstance(steps, bool) or not isinstance(steps, int) \
                or not 1 <= steps <= MAX_STEPS:
            raise JobError('StepsJob input must be a number of steps '
                           'from 1 to %d, not %r' % (MAX_STEPS, steps))
        for step in range(1, steps + 1):
            time.sleep(0.5)
            self.log('Step %d of %d done.' % (step, steps))
            self.progress(step / steps, '%d of %d steps' % (step, steps))
        return steps
