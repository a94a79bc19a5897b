"""Search: the terms a job is found by, written with it, and searched on
every store (``m01.remote.queue.search``)."""
import pytest
import transaction

from m01.remote import operations, testing
from m01.remote.operations import JobFilter
from m01.remote.queue import search
from support.jobs import echoAndFailProcessor


@pytest.fixture
def rp(database):
    with echoAndFailProcessor(
            database, 30, {'maxRetries': 2, 'retryDelay': 0}) as processor:
        yield processor


def found(rp, q, **filters):
    page = operations.queries(rp).jobs(JobFilter(q=q, **filters))
    return sorted(job.__name__ for job in page.jobs)


def test_words_are_normalised_and_bounded():
    assert search.words('Invoice-42, ÄRGER_x!') == [
        'invoice', '42', 'ärger_x']
    assert search.termsOf({'to': 'Ann@Example.com', 'n': 3,
                                'ok': True, 'x': None}) == [
        'to', 'ann', 'example', 'com', 'n', '3', 'ok', 'x']
    long = 'y' * 100
    assert search.termsOf(long) == ['y' * search.MAX_TERM_LENGTH]
    many = ' '.join('w%d' % n for n in range(500))
    assert len(search.addedTerms('id', many)) == \
        search.MAX_ADDED_TERMS
    # A huge input is read only so far.
    huge = 'a ' * 10 ** 6 + 'needle'
    assert 'needle' not in search.termsOf(huge)
    deep = current = []
    for _ in range(10000):
        current.append([])
        current = current[0]
    assert search.termsOf(deep) == []       # no recursion
    stamped = '[2030-01-01T00:00:00+00:00] Disk full'
    assert search.errorTerms(stamped) == ['disk', 'full']


@pytest.mark.parametrize('text', ['x' * 501,
                                  ' '.join('w%d' % n for n in range(11)),
                                  42])
def test_a_search_too_long_is_refused(text):
    with pytest.raises(ValueError):
        search.queryTerms(text)
    with pytest.raises(ValueError):
        JobFilter.fromParams({'q': text})


def test_jobs_are_found_by_input_output_errors_and_id(rp):
    mail = rp.addJob('echo', {'to': 'ann@example.com', 'invoice': 42})
    other = rp.addJob('echo', {'to': 'bob@example.com'})
    broken = rp.addJob('fail', {'disk': 'sda'})
    transaction.commit()
    assert found(rp, 'ann') == [mail]
    assert found(rp, 'Invoice 42') == [mail]
    assert found(rp, 'example.com') == sorted([mail, other])
    assert found(rp, 'example nobody') == []
    assert found(rp, other) == [other]                  # its id
    assert found(rp, 'example', name='echo', statuses=('queued',)) == \
        sorted([mail, other])
    while rp.processNextJob():
        transaction.commit()
    # The error's words, and those of an output (EchoJob returns input).
    assert found(rp, 'occurred') == [broken]
    assert found(rp, 'error occurred sda') == [broken]
    assert rp.getJobStatus(broken) == 'error'
    stored = rp.jobsCollection.find_one({'name': 'fail'})['terms']
    # Two failures with one message: its words once.
    assert stored.count('occurred') == 1
    assert len(stored) <= search.MAX_TERMS
    assert found(rp, 'ann', statuses=('completed',)) == [mail]


def test_terms_stay_bounded_however_often_a_job_fails(rp):
    rp.addJobFactory('flaky', testing.FatalErrorJob(
        {'maxRetries': 50, 'retryDelay': 0}))
    jobid = rp.addJob('flaky', ' '.join('w%d' % n for n in range(80)),
                      immediate=True)
    for _ in range(5):
        assert rp.processNextJob()
        transaction.commit()
    terms = rp.jobsCollection.find_one({'name': 'flaky'})['terms']
    assert terms[0] == jobid
    assert len(terms) <= search.MAX_TERMS


def test_the_terms_index_is_created(rp):
    assert 'm01_remote_terms' in rp.jobsCollection.index_information()
