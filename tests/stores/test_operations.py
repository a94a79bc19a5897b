"""The operator's layer (``m01.remote.operations``) on every store: the
reads and the changes the pages, the API and the commands share."""
import bson
import pytest
import transaction
from zope.interface.verify import verifyObject

from m01.remote import operations
from m01.remote.operations import JobFilter
from m01.remote.operations.interfaces import (
    IJobFilter,
    IQueueActions,
    IQueueQueries,
)
from m01.remote.scheduler import Delay
from support.jobs import echoAndFailProcessor

MISSING = '0123456789abcdef01234567'


@pytest.fixture
def rp(database):
    with echoAndFailProcessor(database, 30, {'maxRetries': 1}) as processor:
        yield processor


def add(rp, name, inputs, **options):
    jobids = [rp.addJob(name, value, **options) for value in inputs]
    transaction.commit()
    return jobids


def claim(rp, jobid):
    """Leave the job ``jobid`` as a worker's claim does."""
    document = rp.jobWrites.claimJob(bson.ObjectId(jobid), rp.now(), 'w', 30)
    assert document is not None


def test_the_layer_provides_its_interfaces(rp):
    verifyObject(IQueueQueries, operations.queries(rp))
    verifyObject(IQueueActions, operations.actions(rp))
    verifyObject(IJobFilter, JobFilter())


# filters

def test_a_filter_reads_request_parameters():
    selected = JobFilter.fromParams({'status': ['error', 'queued'],
                                     'name': 'echo'})
    assert selected.statuses == ('queued', 'error')     # life-cycle order
    assert selected.query() == {'status': {'$in': ['queued', 'error']},
                                'name': 'echo'}
    assert selected.params() == {'status': ['queued', 'error'],
                                 'name': 'echo'}
    assert JobFilter.fromParams({}).query() == {}
    assert JobFilter.fromParams({'status': '', 'name': ''}) == JobFilter()
    assert JobFilter('queued').query() == {'status': 'queued'}


@pytest.mark.parametrize('params, named', [
    ({'status': 'nonsense'}, 'nonsense'),
    ({'name': 'x' * 201}, 'name'),
    ({'status': ['queued', {'$ne': 1}]}, r"\{'\$ne': 1\}"),
    ({'stauts': 'error'}, 'stauts'),
    ({'status': 'error', 'page': '2'}, 'page'),
    ({'name': ['echo', 'fail']}, 'name is given 2 times'),
    ({'q': '!!!'}, 'q has no word'),
    ({'q': ['a', 'b']}, 'q is given 2 times'),
    ({'name': 'a\udcffb'}, 'name is not UTF-8'),
])
def test_a_bad_filter_is_a_value_error_naming_it(params, named):
    with pytest.raises(ValueError, match=named):
        JobFilter.fromParams(params)


def test_a_filter_takes_the_parameters_its_caller_names():
    params = {'status': 'error', 'sort': 'created', 'csrf_token': 'x'}
    assert JobFilter.fromParams(params, ('sort', 'csrf_token')) == \
        JobFilter('error')
    with pytest.raises(ValueError, match="Unknown parameter 'csrf_token'"):
        JobFilter.fromParams(params, ('sort',))


#: Filters of the JSON API that were read as "any job", and what the
#: error says.
MISTYPED = [
    ({'stauts': 'error'}, "Unknown filter key 'stauts'"),
    ({'name': 0}, 'filter.name must be non-empty text, not 0'),
    ({'name': False}, 'filter.name must be non-empty text, not False'),
    ({'name': ''}, "filter.name must be non-empty text, not ''"),
    ({'name': None}, 'filter.name must be non-empty text, not None'),
    ({'status': [None]}, 'status must be one of .*, not None'),
    ({'status': []}, 'filter.status is an empty list'),
    ({'status': None}, 'filter.status must be a status .*, not None'),
    ({'status': 'error', 'q': 0}, 'filter.q must be non-empty text, not 0'),
    ({'q': ' '}, "filter.q must be non-empty text, not ' '"),
    ({'q': '!?'}, "q has no word to search for: '!\\?'"),
]


@pytest.mark.parametrize('value, message', MISTYPED)
def test_a_mistyped_json_filter_is_a_value_error_naming_it(value, message):
    with pytest.raises(ValueError, match=message):
        JobFilter.fromJSON(value)


@pytest.mark.parametrize('arguments, message', [
    ({'name': ''}, "name must be a job factory name, not ''"),
    ({'name': 0}, 'name must be text, not 0'),
    ({'q': 0}, 'q must be text, not 0'),
    ({'statuses': [None]}, 'status must be one of .*, not None'),
    ({'statuses': 3}, 'status must be a status or a list of them, not 3'),
])
def test_a_mistyped_filter_is_refused_when_made(arguments, message):
    with pytest.raises(ValueError, match=message):
        JobFilter(**arguments)


def test_a_json_filter_reads_what_it_is_given():
    assert JobFilter.fromJSON({}) == JobFilter()
    assert JobFilter.fromJSON({'status': 'error', 'name': 'echo',
                               'q': ' ann '}) == \
        JobFilter(('error',), 'echo', 'ann')
    assert JobFilter.fromJSON({'status': ['error', 'queued']}).statuses == \
        ('queued', 'error')


# reads

def test_jobs_are_filtered_sorted_and_paged(rp):
    echo = add(rp, 'echo', range(5))
    fail = add(rp, 'fail', [None])
    queries = operations.queries(rp)
    page = queries.jobs(JobFilter(name='echo'), 'created', False, 2, 2)
    assert [job.__name__ for job in page.jobs] == echo[2:4]
    assert (page.page, page.pages, page.total) == (2, 3, 5)
    assert (page.first, page.last) == (3, 4)
    last = queries.jobs(JobFilter(name='echo'), page=9, pageSize=2)
    assert last.page == 3 and [j.__name__ for j in last.jobs] == echo[:1]
    assert [j.__name__ for j in queries.jobs(
        JobFilter(name='fail')).jobs] == fail
    assert queries.countByStatus(JobFilter(name='fail'))['queued'] == 1
    for bad in ({'sort': 'input'}, {'page': 0}, {'pageSize': 201},
                {'pageSize': True}):
        with pytest.raises(ValueError):
            queries.jobs(**bad)



@pytest.mark.parametrize('page, size, rows, total', [
    (1, 10, 5, 5),      # one page, not full: its rows are the total
    (3, 2, 1, 5),       # the last page, short: those before and its own
    (2, 2, 2, 5),       # a full page: counted
    (1, 5, 5, 5),       # full to the last row: counted
    (9, 2, 1, 5),       # past the end: the last page
])
def test_a_pages_total_is_exact_whether_counted_or_not(rp, page, size,
                                                       rows, total):
    add(rp, 'echo', range(5))
    add(rp, 'fail', range(3))
    shown = operations.queries(rp).jobs(JobFilter(name='echo'), page=page,
                                        pageSize=size)
    assert (len(shown.jobs), shown.total) == (rows, total)
    assert shown.pages == -(-total // size)

def test_a_job_and_unknown_ids(rp):
    jobid, = add(rp, 'echo', ['x'])
    queries = operations.queries(rp)
    assert queries.job(jobid).input == 'x'
    for bad in ('0123456789abcdef01234567', 'zzz'):
        with pytest.raises(KeyError):
            queries.job(bad)


def test_factories_say_which_are_paused(rp):
    actions = operations.actions(rp)
    actions.pauseFactory('fail')
    infos = {info.name: info for info in operations.queries(rp).factories()}
    assert sorted(infos) == ['echo', 'fail']
    assert infos['fail'].paused and not infos['echo'].paused
    assert infos['fail'].className == 'm01.remote.testing.FatalErrorJob'
    assert ('maxRetries', 1) in infos['fail'].defaults
    actions.resumeFactory('fail')
    assert not operations.queries(rp).factory('fail').paused
    with pytest.raises(KeyError):
        actions.pauseFactory('missing')
    with pytest.raises(KeyError):
        actions.resumeFactory('missing')


def test_scheduler_items_are_paged_active_first(rp):
    actions = operations.actions(rp)
    ids = [actions.addSchedulerItem(Delay({'jobName': 'echo',
                                           'delay': 60 * (n + 1)}))
           for n in range(3)]
    actions.setSchedulerItemActive(ids[0], False)
    total, items = operations.queries(rp).schedulerItems(1, 2)
    assert total == 3
    assert [item.__name__ for item in items] == ids[1:]
    total, items = operations.queries(rp).schedulerItems(2, 2)
    assert [item.__name__ for item in items] == ids[:1]
    jobid = actions.runSchedulerItem(ids[1])
    assert rp.getJobStatus(jobid) == 'queued'
    actions.deleteSchedulerItem(ids[1])
    assert len(rp.scheduler) == 2
    with pytest.raises(ValueError):
        operations.queries(rp).schedulerItems(1, 501)


# changes

def test_a_job_is_added_in_the_transaction(rp):
    jobid = operations.actions(rp).addJob('echo', 'later')
    assert rp.getJobStatus(jobid) == 'queued'     # seen before the commit
    assert rp.jobsCollection.count_documents({}) == 0
    transaction.commit()
    assert rp.jobsCollection.count_documents({}) == 1
    with pytest.raises(ValueError):
        operations.actions(rp).addJob('missing')


def test_one_job_is_cancelled_retried_and_deleted(rp):
    jobid, = add(rp, 'echo', ['x'], key='only')
    actions = operations.actions(rp)
    with pytest.raises(ValueError):
        actions.retryJob(jobid)
    actions.cancelJob(jobid)
    assert rp.getJobStatus(jobid) == 'cancelled'
    actions.retryJob(jobid)
    claim(rp, jobid)
    with pytest.raises(ValueError, match='processing; cancel it'):
        actions.deleteJob(jobid)
    assert rp.getJobStatus(jobid) == 'processing'
    actions.cancelJob(jobid)
    actions.deleteJob(jobid)
    with pytest.raises(KeyError):
        actions.deleteJob(jobid)
    # Its key is free again at once.
    again = rp.addJob('echo', 'y', key='only', immediate=True)
    assert again != jobid


def test_a_bulk_delete_honours_the_filter_and_leaves_running_jobs(rp):
    echo = add(rp, 'echo', range(4))
    fail = add(rp, 'fail', [None])
    claim(rp, echo[0])
    actions = operations.actions(rp)
    assert actions.countBulk('delete', JobFilter(name='echo')) == 3
    result = actions.bulk('delete', JobFilter(name='echo'))
    assert (result.done, result.refused, result.more) == (3, 0, False)
    assert sorted(rp.jobs.keys()) == sorted([echo[0]] + fail)
    assert actions.bulk('delete', JobFilter('processing')).done == 0


def test_a_bulk_action_is_bounded_and_says_more_are_left(rp):
    jobids = add(rp, 'echo', range(7))
    actions = operations.actions(rp)
    result = actions.bulk('cancel', JobFilter('queued'), limit=3)
    assert (result.done, result.more) == (3, True)
    assert rp.jobs.countByStatus()['cancelled'] == 3
    result = actions.bulk('cancel', limit=10, all=True)
    assert (result.done, result.more) == (4, False)
    result = actions.bulk('retry', jobids=jobids[:2])
    assert result.done == 2
    assert [rp.getJobStatus(j) for j in jobids[:3]] == [
        'queued', 'queued', 'cancelled']


def test_a_bulk_action_counts_the_jobs_that_changed_meanwhile(rp):
    jobids = add(rp, 'echo', range(3))
    actions = operations.actions(rp)
    claim(rp, jobids[1])
    # A selection names any job; only those the action fits change.
    result = actions.bulk('retry', jobids=jobids)
    assert (result.done, result.refused) == (0, 0)
    result = actions.bulk('delete', jobids=jobids)
    assert (result.done, result.refused) == (2, 0)
    assert rp.jobs.keys() == [jobids[1]]


@pytest.mark.parametrize('arguments', [
    {'action': 'explode', 'all': True},
    {'action': 'cancel', 'jobids': ['not an id']},
    {'action': 'cancel', 'jobids': [str(bson.ObjectId())] * 501},
    {'action': 'cancel', 'jobids': [None]},
    {'action': 'cancel', 'jobids': [b'abcdefghijkl']},
    {'action': 'cancel', 'jobids': 'abc'},
    {'action': 'cancel', 'all': 1},
    {'action': 'cancel', 'jobFilter': {'status': 'queued'}},
    {'action': 'cancel', 'all': True, 'limit': 0},
])
def test_a_bad_bulk_action_changes_nothing(rp, arguments):
    add(rp, 'echo', [1])
    with pytest.raises(ValueError):
        operations.actions(rp).bulk(**arguments)
    assert rp.jobs.countByStatus()['queued'] == 1


@pytest.fixture
def everyStatus(rp):
    """Jobs in every status: ``{status: jobid}``."""
    queued, completed, cancelled, processing = add(rp, 'echo', range(4))
    failed, = add(rp, 'fail', [None])
    rp.processJob(completed)
    rp.processJob(failed)
    transaction.commit()
    operations.actions(rp).cancelJob(cancelled)
    claim(rp, processing)
    jobs = {'queued': queued, 'completed': completed, 'error': failed,
            'cancelled': cancelled, 'processing': processing}
    assert {status: rp.getJobStatus(jobid)
            for status, jobid in jobs.items()} == {
        status: status for status in jobs}
    return jobs


def stored(rp):
    return sorted((str(document['_id']), document['status']) for document
                  in rp.jobsCollection.find({}, {'status': 1}))


@pytest.mark.parametrize('value, message', MISTYPED)
def test_a_mistyped_bulk_filter_changes_no_job(rp, everyStatus, value,
                                               message):
    before = stored(rp)
    for action in ('delete', 'cancel', 'retry'):
        with pytest.raises(ValueError, match=message):
            operations.BulkRequest.fromJSON({'action': action,
                                             'filter': value})
    assert stored(rp) == before


@pytest.mark.parametrize('arguments', [
    {}, {'jobFilter': None}, {'jobFilter': JobFilter()},
    {'jobFilter': JobFilter(q='  ')}, {'jobids': [None]},
    {'jobids': [], 'all': True},
])
def test_a_bulk_action_naming_no_job_is_refused(rp, everyStatus,
                                                 arguments):
    before = stored(rp)
    actions = operations.actions(rp)
    for action in ('delete', 'cancel', 'retry'):
        with pytest.raises(ValueError):
            actions.bulk(action, **arguments)
        with pytest.raises(ValueError):
            actions.countBulk(action, **arguments)
    assert stored(rp) == before


def test_every_job_only_when_told_all(rp, everyStatus):
    actions = operations.actions(rp)
    with pytest.raises(ValueError, match='or all to mean every job'):
        actions.bulk('delete')
    assert actions.countBulk('delete', all=True) == 4
    result = actions.bulk('delete', all=True)
    assert (result.done, result.refused, result.more) == (4, 0, False)
    assert rp.jobs.keys() == [everyStatus['processing']]


def test_all_with_a_filter_is_all_that_match(rp, everyStatus):
    actions = operations.actions(rp)
    result = actions.bulk('delete', JobFilter(name='fail'), all=True)
    assert result.done == 1
    assert everyStatus['error'] not in rp.jobs.keys()
    assert len(rp.jobs) == 4


def test_ids_and_a_filter_are_the_selected_jobs_that_match(rp,
                                                           everyStatus):
    actions = operations.actions(rp)
    jobids = list(everyStatus.values())
    assert actions.countBulk('delete', JobFilter('error'), jobids) == 1
    result = actions.bulk('delete', JobFilter(name='echo'), jobids[:2])
    assert result.done == 2
    assert sorted(rp.jobs.keys()) == sorted(jobids[2:])
    # An empty selection is no job, whatever the filter.
    assert actions.bulk('delete', JobFilter(), []).done == 0
    assert len(rp.jobs) == 3


@pytest.mark.parametrize('params, message', [
    ({'action': 'delete'}, 'or all to mean every job'),
    ({'action': 'delete', 'stauts': 'error'}, "Unknown parameter 'stauts'"),
    ({'action': 'delete', 'all': 'yes'}, "all is true or false .*'yes'"),
    ({'action': 'delete', 'all': ''}, 'all is true or false, not empty'),
    ({'action': 'delete', 'all': ['1', '1']}, 'all is given 2 times'),
    ({'action': 'delete', 'job': ''}, "'' is not a job id"),
    ({'action': 'delete', 'all': '1', 'job': MISSING}, 'not both'),
    ({'action': ['delete', 'retry'], 'all': '1'}, 'action is given 2'),
    ({'all': '1'}, "action must be one of .*, not ''"),
])
def test_a_bulk_form_is_read_strictly(params, message):
    with pytest.raises(ValueError, match=message):
        operations.BulkRequest.fromParams(params)


def test_a_bulk_form_is_read():
    request = operations.BulkRequest.fromParams(
        {'action': 'retry', 'status': 'error', 'all': 'true', 'sort': 'x'},
        others=('sort',))
    assert (request.action, request.jobFilter, request.jobids,
            request.all) == ('retry', JobFilter('error'), None, True)
    assert request.params() == [('action', 'retry'), ('status', 'error'),
                                ('all', '1')]
    # A list's form: its filter is the list's; no row and no all is no
    # job.
    request = operations.BulkRequest.fromParams(
        {'action': 'retry', 'status': 'error'}, chosen=True)
    assert request.jobids == () and request.jobFilter == JobFilter('error')
    request = operations.BulkRequest.fromParams(
        {'action': 'cancel', 'job': [MISSING.upper()], 'all': '0'})
    assert request.jobids == (bson.ObjectId(MISSING),) and not request.all
    assert request.params() == [('action', 'cancel'), ('job', MISSING)]


def test_threads_are_switched(rp):
    actions = operations.actions(rp)
    actions.switchThreads('worker', True)
    assert operations.queries(rp).threads() == {'worker': True,
                                                'scheduler': False}
    actions.switchThreads('worker', False)
    assert not rp.isProcessing
    with pytest.raises(ValueError):
        actions.switchThreads('everything', True)
