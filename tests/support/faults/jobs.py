"""The jobs of the fault scenarios (``faults.py``).

Importing this module registers the job classes, so that every process
of a scenario (the worker and scheduler processes load it through
``support.faults.app``) can load their stored jobs.

``RecordedJob`` is how a scenario sees a job run twice. When its work is
done it writes an *execution record* whose ``_id`` is the job id, so the
unique ``_id`` index of the ``executions`` collection refuses a second
record: the ``DuplicateKeyError`` is counted in ``duplicates`` (and
logged), not swallowed, and the job itself completes as usual.

The record is written when the job's transaction commits, just before
the queue stores the outcome, and only while the job is still this
run's (``status`` processing, same ``claim``): a run whose job was taken
over meanwhile (its worker was paused or cut off past its lease) leaves
a ``stale`` entry instead, and the queue refuses its outcome too. A run
cut short (a killed worker, an abort) writes nothing, as a real job's
transactional work would. The record's own writes are retried across a
lost answer, as an idempotent job's would be: a record found after a
lost answer under this run's claim is this run's, not a second one.
"""
import datetime
import logging
import time

import pymongo.errors
from bson import ObjectId

from m01.remote.job import Job

logger = logging.getLogger('m01.remote.faults')

#: The collections of the execution records.
EXECUTIONS = 'executions'
DUPLICATES = 'duplicates'
STALE = 'stale'

#: The longest a job of these scenarios sleeps, whatever its input says.
MAX_SECONDS = 600.0
#: The most bytes its input may add to its output.
MAX_PAD = 1024 * 1024


def _seconds(value):
    """The sleep time an input asks for: a number, or ``{'seconds': n}``.
    """
    if isinstance(value, dict):
        value = value.get('seconds', 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return min(max(float(value), 0.0), MAX_SECONDS)


class RecordedJob(Job):
    """Sleeps as its input says, then records that it ran, once.

    The output names the run (worker and claim), so a scenario can tell
    whose outcome the queue kept. With ``pad`` in its input (a number of
    bytes) the output carries that much more, for a slow link to carry;
    with ``child`` true the job adds a ``record`` job whose input names
    it as ``parent``, through its transaction (a job's own queue write,
    which must happen once as the job's outcome does).
    """

    def __call__(self, remoteProcessor):
        seconds = _seconds(self.input)
        if seconds:
            time.sleep(seconds)
        run = {'job': self.__name__, 'claim': self.claim,
               'worker': remoteProcessor.workerId}
        # The transaction the job runs in: its worker step commits it.
        remoteProcessor.transactionManager.get().addBeforeCommitHook(
            recordExecution, (remoteProcessor.database,
                              remoteProcessor.jobsCollection, run))
        given = self.input if isinstance(self.input, dict) else {}
        if given.get('child'):
            remoteProcessor.addJob('record', {'parent': self.__name__})
        output = {'worker': run['worker'], 'claim': run['claim']}
        pad = given.get('pad')
        if isinstance(pad, int) and 0 < pad <= MAX_PAD:
            output['pad'] = 'x' * pad
        return output


#: How long the record's writes are retried while the server does not
#: answer.
RECORD_RETRY_SECONDS = 120.0


def _retried(call):
    """``call()``'s answer, retried while its answer may have been lost
    (a reset or a silent connection). A server that cannot be reached at
    all (refused, none to select) fails the call at once: nothing was
    sent, and the job's commit fails as its worker logs."""
    deadline = time.monotonic() + RECORD_RETRY_SECONDS
    while True:
        try:
            return call()
        except pymongo.errors.ConnectionFailure as error:
            if time.monotonic() > deadline or _unreachable(error):
                raise
            time.sleep(0.1)  # a pause between two tries, not a race


def _unreachable(error):
    return isinstance(error, pymongo.errors.ServerSelectionTimeoutError) \
        or 'refused' in str(error).lower()


def recordExecution(database, jobs, run):
    """Write the execution record of ``run`` if its job is still its own.
    """
    current = _retried(lambda: jobs.find_one(
        {'_id': ObjectId(run['job'])}, {'status': 1, 'claim': 1}))
    if current is None or current.get('status') != 'processing' or \
            current.get('claim') != run['claim']:
        database[STALE].insert_one(dict(run, at=_now()))
        logger.warning('Job %s was taken over while %s ran it: no record',
                       run['job'], run['worker'])
        return
    record = {'_id': run['job'], 'claim': run['claim'],
              'worker': run['worker'], 'at': _now()}
    uncertain = False

    def insert():
        nonlocal uncertain
        try:
            database[EXECUTIONS].insert_one(dict(record))
        except pymongo.errors.ConnectionFailure:
            uncertain = True
            raise
    try:
        _retried(insert)
    except pymongo.errors.DuplicateKeyError:
        if uncertain:
            stored = _retried(lambda: database[EXECUTIONS].find_one(
                {'_id': run['job']}, {'claim': 1}))
            if stored is not None and stored.get('claim') == run['claim']:
                return      # this run's, its first answer lost
        database[DUPLICATES].insert_one(dict(run, at=_now()))
        logger.error('Job %s ran a second time (in %s)', run['job'],
                     run['worker'])


class PoisonJob(Job):
    """Always fails with an unexpected error naming its attempt, so every
    attempt's message can be told apart."""

    def __call__(self, remoteProcessor):
        raise RuntimeError('poison job %s, attempt %d' % (
            self.__name__, (self.retryCounter or 0) + 1))


class SlowJob(Job):
    """Sleeps ``input`` seconds in steps, then returns them; records
    nothing. For runs that only need a job to be busy."""

    def __call__(self, remoteProcessor):
        seconds = _seconds(self.input)
        time.sleep(seconds)
        return seconds


def _now():
    return datetime.datetime.now(datetime.timezone.utc)
