"""A failure is always recordable: what an outcome stores is bounded
(``m01.remote.limits``), and a job ends in a state an operator can see
whatever it raised or returned, on every store."""
import bson
import pytest
import transaction
import zope.component.globalregistry
import zope.interface

from m01.remote import interfaces, limits
from m01.remote.job import Job
from m01.remote.processor import RemoteProcessor

#: The input the job quotes in its error message.
QUOTED_INPUT = 'q' * (3 * 1024 * 1024)
#: What one failed attempt may add at most, with ASCII text: its message
#: (in ``errors`` and in its attempt), its traceback (whole, and the end
#: its attempt keeps), the attempt's other fields and a few search terms.
ATTEMPT_BYTES = (2 * limits.MAX_ERROR_TEXT + limits.MAX_TRACEBACK_TEXT +
                 limits.ATTEMPT_TRACEBACK_TEXT + 2048)


class QuotingJob(Job):
    """Fails quoting its whole input, as a validation error might."""

    def __call__(self, remoteProcessor):
        raise ValueError('bad input: %s' % self.input)


class ReturningJob(Job):
    """Returns what its input names."""

    def __call__(self, remoteProcessor):
        return OUTPUTS[self.input]()


class UnreadableError(Exception):

    def __str__(self):
        raise RuntimeError('no text for you')


class RaisingJob(Job):
    """Raises what its input names."""

    def __call__(self, remoteProcessor):
        raise ERRORS[self.input]()


class BadMapping(dict):
    """A dict BSON cannot read: iterating it fails."""

    def __iter__(self):
        raise RuntimeError('cannot iterate')

    def items(self):
        raise RuntimeError('cannot iterate')

    def values(self):
        raise RuntimeError('cannot iterate')


OUTPUTS = {
    'too large': lambda: 'x' * (limits.MAX_OUTPUT + 1),
    'object': object,
    'surrogate': lambda: 'half a pair: \ud800',
    'set': lambda: {'ids': {1, 2}},
    'bad mapping': lambda: BadMapping(a=1),
    'too deep': lambda: _nested(limits.MAX_DEPTH + 1),
    'largest': lambda: 'x' * (limits.MAX_OUTPUT - 64),
}

ERRORS = {
    'unreadable': UnreadableError,
    'surrogate': lambda: RuntimeError('half a pair: \ud800'),
    'exit': lambda: SystemExit(3),
    'empty': lambda: RuntimeError(''),
}


def _nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture
def rp(database):
    processor = RemoteProcessor(database)
    processor.addJobFactory('quoting', QuotingJob({'retryDelay': 0}))
    processor.addJobFactory('returning', ReturningJob({'retryDelay': 0}))
    processor.addJobFactory('raising', RaisingJob({'retryDelay': 0,
                                                   'maxRetries': 1}))
    yield processor
    processor.close()


def stored(rp, jobid):
    return rp.jobsCollection.find_one({'_id': bson.ObjectId(jobid)})


def size(document):
    return len(bson.encode(document))


def runAll(rp):
    """Run and commit due jobs until none is left; how many ran."""
    ran = 0
    while rp.processNextJob():
        transaction.commit()
        ran += 1
    transaction.commit()
    return ran


def test_a_job_quoting_its_3_mb_input_stays_bounded_after_three_attempts(
        rp):
    jobid = rp.addJob('quoting', QUOTED_INPUT)
    transaction.commit()
    added = size(stored(rp, jobid))
    assert runAll(rp) == 3
    document = stored(rp, jobid)
    assert (document['status'], document['retryCounter']) == ('error', 3)
    # It was 31.5 MB: every message, traceback and attempt held the input.
    assert size(document) - added <= 3 * ATTEMPT_BYTES
    assert size(document) < 3.2 * 1024 * 1024
    for message in document['errors']:
        assert len(message) <= limits.MAX_ERROR_TEXT
        assert 'bad input: qqq' in message           # its start is kept
        assert 'characters cut ...]' in message      # and the cut is shown
    for text in document['tracebacks']:
        assert len(text) <= limits.MAX_TRACEBACK_TEXT
        # The frames and the exception's type are kept; its line is cut.
        assert text.startswith('Traceback (most recent call last):')
        assert 'in __call__' in text and 'ValueError: bad input: q' in text
        assert max(map(len, text.splitlines())) <= limits.MAX_TRACEBACK_LINE
    for attempt in document['attempts']:
        assert len(attempt['error']) <= limits.MAX_ERROR_TEXT
        assert len(attempt['traceback']) <= limits.ATTEMPT_TRACEBACK_TEXT
    assert rp.getJobErrors(jobid) == document['errors']


def test_only_the_newest_errors_and_attempts_are_kept(rp):
    jobid = rp.addJob('quoting', 'short')
    transaction.commit()
    job = rp.jobs[jobid]
    job.maxRetries = limits.MAX_ERRORS + 5
    transaction.commit()
    assert runAll(rp) == limits.MAX_ERRORS + 5
    document = stored(rp, jobid)
    assert document['status'] == 'error'
    assert document['retryCounter'] == limits.MAX_ERRORS + 5
    assert len(document['errors']) == len(document['tracebacks']) == \
        limits.MAX_ERRORS
    assert len(document['attempts']) == limits.MAX_ATTEMPTS
    # The newest: the last attempt's error is the last one kept.
    assert document['errors'][-1] == document['attempts'][-1]['error']


@pytest.mark.parametrize('output, says', [
    ('too large', 'at most %d bytes (4 MB) are stored' % limits.MAX_OUTPUT),
    ('object', 'cannot be stored'),
    ('surrogate', 'cannot be stored'),
    ('set', 'cannot be stored'),
    ('bad mapping', 'cannot be stored: RuntimeError: cannot iterate'),
    ('too deep', 'nested more than 64 levels deep'),
])
def test_an_output_that_cannot_be_stored_is_a_failure_saying_so(
        rp, output, says):
    jobid = rp.addJob('returning', output)
    transaction.commit()
    # Once: the same job would return the same output again.
    assert runAll(rp) == 1
    document = stored(rp, jobid)
    assert (document['status'], document['retryCounter']) == ('error', 1)
    assert document['output'] is None
    assert says in document['errors'][-1]
    assert 'OutputNotStored' in document['tracebacks'][-1]
    assert document['attempts'][-1]['outcome'] == 'failed'


def test_the_largest_output_is_stored(rp):
    jobid = rp.addJob('returning', 'largest')
    transaction.commit()
    assert runAll(rp) == 1
    document = stored(rp, jobid)
    assert document['status'] == 'completed'
    assert document['output'] == OUTPUTS['largest']()


@pytest.mark.parametrize('error, says', [
    ('unreadable', 'UnreadableError (its message cannot be read: str() '
                   'raised RuntimeError)'),
    ('surrogate', 'half a pair: \\ud800'),
    ('exit', '] 3'),
    ('empty', '] RuntimeError'),
])
def test_whatever_a_job_raises_its_failure_is_stored(rp, error, says):
    jobid = rp.addJob('raising', error)
    transaction.commit()
    assert runAll(rp) == 1
    document = stored(rp, jobid)
    assert document['status'] == 'error'
    assert document['errors'][-1].endswith(says)
    assert document['tracebacks'][-1].startswith('Traceback')


@zope.interface.implementer(interfaces.IJobErrorMessage)
class FailingMessage:

    def __init__(self, job, error):
        raise KeyError('the adapter is broken')


@zope.interface.implementer(interfaces.IJobErrorMessage)
class OddMessage:

    def __init__(self, job, error):
        self.message = {'not': 'text', 'but': 'x' * 100000}


@pytest.mark.parametrize('adapter, says', [
    (FailingMessage, '] bad input: short'),
    (OddMessage, 'characters cut ...]'),
])
def test_a_site_message_adapter_cannot_keep_a_failure_from_being_stored(
        database, adapter, says):
    registry = zope.component.globalregistry.BaseGlobalComponents('site')
    registry.registerAdapter(adapter, (interfaces.IJob,
                                       zope.interface.Interface),
                             interfaces.IJobErrorMessage)
    rp = RemoteProcessor(database, registry=registry)
    try:
        rp.addJobFactory('quoting', QuotingJob({'maxRetries': 1}))
        jobid = rp.addJob('quoting', 'short')
        transaction.commit()
        assert runAll(rp) == 1
        document = stored(rp, jobid)
    finally:
        rp.close()
    assert document['status'] == 'error'
    message = document['errors'][-1]
    assert isinstance(message, str) and says in message
    assert len(message) <= limits.MAX_ERROR_TEXT
