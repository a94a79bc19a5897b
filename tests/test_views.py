"""Functional tests of the management pages, through WebTest, on both
stores.

The test site is what a host application provides: a session (flash
messages, CSRF tokens) and a security policy granting the pages'
permission to any authenticated user (``REMOTE_USER`` here).
"""
import datetime
import re

import bson
import pytest
import transaction
import webtest
from pyramid.config import Configurator
from pyramid.session import SignedCookieSessionFactory

from m01.remote import testing
from m01.remote.interfaces import IRemoteProcessor

PERMISSION = 'm01.remote.manage'
JOB_LINK = re.compile(r'/remote/jobs/([0-9a-f]{24})"')
UTC = datetime.timezone.utc


def makeApp(uri, databaseName, policy=None, **settings):
    settings = dict({'m01.remote.uri': uri,
                     'm01.remote.database': databaseName}, **settings)
    config = Configurator(settings=settings)
    config.set_session_factory(SignedCookieSessionFactory('not secret'))
    config.set_security_policy(policy or testing.RemoteUserPolicy(PERMISSION))
    config.include('m01.remote')
    config.add_remote_job_factory('echo', testing.EchoJob)
    config.add_remote_job_factory('error', testing.ErrorJob)
    config.add_remote_job_factory('fatal', testing.FatalErrorJob,
                                  maxRetries=2, retryDelay=0)
    return config.make_wsgi_app()


class Site:
    """The logged-in browser, the anonymous one and the processor."""

    def __init__(self, wsgi):
        self.wsgi = wsgi
        self.app = webtest.TestApp(wsgi,
                                   extra_environ={'REMOTE_USER': 'admin'})
        self.anonymous = webtest.TestApp(wsgi)
        self.rp = wsgi.registry.getUtility(IRemoteProcessor)

    def addJobs(self, name, inputs):
        jobids = [self.rp.addJob(name, input) for input in inputs]
        transaction.commit()
        return jobids

    def process(self):
        count = self.rp.processJobs()
        transaction.commit()
        return count

    def token(self):
        page = self.app.get('/remote/')
        return page.html.find('input', {'name': 'csrf_token'})['value']

    def post(self, url, params=None, status=303, token=True):
        params = dict(params or {})
        if token:
            params['csrf_token'] = self.token()
        return self.app.post(url, params, status=status)


@pytest.fixture
def site(store_uri, database):
    wsgi = makeApp(store_uri, database.name)
    yield Site(wsgi)
    rp = wsgi.registry.getUtility(IRemoteProcessor)
    rp.stopProcessor(5)
    rp.stopScheduler(5)


def text(node):
    """The text of an element, its white space collapsed."""
    return ' '.join(node.get_text(' ').split())


def flash(page, queue='success'):
    return [text(div) for div in page.html.select('.flash-%s' % queue)]


def jobIds(page):
    table = page.html.find('table', id='jobs')
    if table is None:
        return []
    return JOB_LINK.findall(str(table))


def fieldError(page, name):
    """The error text shown beside the form field ``name``."""
    field = page.html.find(attrs={'name': name}).find_parent(
        'div', class_='field')
    error = field.find('div', class_='error')
    return text(error) if error else None


# access

PAGES = ('/remote/', '/remote/jobs', '/remote/jobs/add',
         '/remote/factories', '/remote/workers', '/remote/scheduler',
         '/remote/scheduler/add-delay', '/remote/scheduler/add-cron')


@pytest.mark.parametrize('url', PAGES)
def test_every_page_renders_for_the_manager(site, url):
    page = site.app.get(url)
    assert page.content_type == 'text/html'
    assert page.html.find('h1').get_text(strip=True)


@pytest.mark.parametrize('url', PAGES)
def test_anonymous_is_refused_every_page(site, url):
    site.anonymous.get(url, status=403)


def test_anonymous_is_refused_every_action(site):
    jobid, = site.addJobs('echo', [None])
    for url in ('/remote/start-processor', '/remote/stop-processor',
                '/remote/start-scheduler', '/remote/stop-scheduler',
                '/remote/jobs/add', '/remote/jobs/remove',
                '/remote/jobs/%s/cancel' % jobid,
                '/remote/jobs/%s/retry' % jobid,
                '/remote/jobs/%s/delete' % jobid,
                '/remote/scheduler/add-delay', '/remote/scheduler/add-cron'):
        site.anonymous.post(url, {'name': 'echo', 'status': 'queued'},
                            status=403)
    assert site.rp.getJobStatus(jobid) == 'queued'
    assert not site.rp.isProcessing


def test_a_user_without_the_permission_is_refused(store_uri, database):
    wsgi = makeApp(store_uri, database.name,
                   policy=testing.RemoteUserPolicy('another.permission'))
    webtest.TestApp(wsgi, extra_environ={'REMOTE_USER': 'x'}).get(
        '/remote/', status=403)


def test_the_configured_permission_is_required(store_uri, database):
    wsgi = makeApp(store_uri, database.name,
                   policy=testing.RemoteUserPolicy('queue.admin'),
                   **{'m01.remote.permission': 'queue.admin'})
    webtest.TestApp(wsgi, extra_environ={'REMOTE_USER': 'x'}).get(
        '/remote/jobs', status=200)


def test_every_action_needs_the_csrf_token(site):
    jobid, = site.addJobs('echo', [None])
    errorid, = site.addJobs('error', [None])
    site.process()
    for url, params in (
            ('/remote/start-processor', {}),
            ('/remote/start-scheduler', {}),
            ('/remote/jobs/add', {'name': 'echo', 'input': '1'}),
            ('/remote/jobs/remove', {'status': 'completed'}),
            ('/remote/jobs/%s/retry' % errorid, {}),
            ('/remote/jobs/%s/delete' % jobid, {}),
            ('/remote/scheduler/add-delay',
             {'jobName': 'echo', 'delay': '60'}),
            ('/remote/scheduler/add-cron',
             {'jobName': 'echo', 'expression': '* * * * *'})):
        site.post(url, params, status=400, token=False)
        site.post(url, dict(params, csrf_token='forged'), status=400,
                  token=False)
    assert not site.rp.isProcessing and not site.rp.isScheduling
    assert site.rp.getJobStatus(jobid) == 'completed'
    assert site.rp.getJobStatus(errorid) == 'error'
    assert len(site.rp.jobs) == 2
    assert list(site.rp.scheduler.values()) == []


def test_actions_are_not_done_on_get(site):
    jobid, = site.addJobs('echo', [None])
    site.app.get('/remote/start-processor', status=404)
    site.app.get('/remote/jobs/%s/cancel' % jobid, status=404)
    site.app.get('/remote/jobs/%s/delete' % jobid, status=404)
    assert site.rp.getJobStatus(jobid) == 'queued'
    assert not site.rp.isProcessing


# overview

def test_overview_counts_jobs_and_lists_latest_errors(site):
    site.addJobs('echo', [1, 2])
    errorid, = site.addJobs('error', [None])
    site.process()
    site.addJobs('echo', [3])
    page = site.app.get('/remote/')
    counts = {row.find('span').get_text(strip=True):
              row.find('td', class_='num').get_text(strip=True)
              for row in page.html.select('table tr') if row.find('span')
              and row.find('td', class_='num')}
    assert counts == {'queued': '1', 'processing': '0', 'completed': '2',
                      'cancelled': '0', 'error': '1'}
    assert '/remote/jobs?status=error' in page.text
    errors = page.html.find('h2', string='Latest errors').find_next('table')
    assert errorid in str(errors)
    assert 'An error occurred.' in errors.get_text()


def test_overview_without_errors(site):
    page = site.app.get('/remote/')
    assert 'No job has failed.' in page.text


def test_start_and_stop_the_processor_and_the_scheduler(site):
    page = site.app.get('/remote/')
    page = page.forms['start-processor'].submit().follow()
    assert flash(page) == ['The job processor started.']
    assert site.rp.isProcessing
    page = page.forms['start-scheduler'].submit().follow()
    assert flash(page) == ['The scheduler started.']
    assert site.rp.isScheduling
    assert 'stop-processor' in page.forms and 'stop-scheduler' in page.forms
    page = page.forms['stop-processor'].submit().follow()
    assert flash(page) == ['The job processor stopped.']
    assert not site.rp.isProcessing
    page = page.forms['stop-scheduler'].submit().follow()
    assert not site.rp.isScheduling
    assert 'start-processor' in page.forms and 'start-scheduler' in page.forms


# job list

def test_jobs_are_paged_on_the_server(site, monkeypatch):
    jobids = site.addJobs('echo', range(120))
    container = type(site.rp.jobs)
    for name in ('values', 'keys', 'items', '__iter__', '_documents'):
        # A page that loaded every job would call one of these.
        monkeypatch.setattr(container, name, _forbidden)
    page = site.app.get('/remote/jobs')
    newest = list(reversed(jobids))
    assert jobIds(page) == newest[:50]
    assert 'Jobs 1–50 of 120, page 1 of 3' in text(
        page.html.find(class_='pager'))
    page = page.click('next ›')
    assert jobIds(page) == newest[50:100]
    page = page.click('last »')
    assert jobIds(page) == newest[100:]
    assert 'page 3 of 3' in page.text
    assert page.html.find('a', rel='next') is None


def _forbidden(*args, **kw):
    raise AssertionError('the jobs page must not load every job')


@pytest.mark.parametrize('page, shown', [
    ('-1', 1), ('0', 1), ('2', 2), ('99999999999', 3),
    (str(10 ** 40), 3), ('', 1)])
def test_page_numbers_out_of_range_are_clamped(site, page, shown):
    site.addJobs('echo', range(101))
    result = site.app.get('/remote/jobs', {'page': page})
    assert 'page %d of 3' % shown in result.text
    assert len(jobIds(result)) == (1 if shown == 3 else 50)


@pytest.mark.parametrize('params', [
    {'page': 'abc'}, {'page': '1.5'}, {'status': 'nonsense'},
    {'sort': 'name'}, {'order': 'sideways'}])
def test_malformed_list_parameters_are_bad_requests(site, params):
    site.app.get('/remote/jobs', params, status=400)


def test_an_empty_job_list(site):
    page = site.app.get('/remote/jobs', {'page': '7'})
    assert 'No jobs match.' in page.text
    assert jobIds(page) == []


def test_filter_jobs_by_status_and_factory(site):
    echo = site.addJobs('echo', [1, 2])
    error, = site.addJobs('error', [None])
    site.process()
    queued, = site.addJobs('echo', [3])
    page = site.app.get('/remote/jobs')
    form = page.forms['filters']
    form['status'] = 'completed'
    page = form.submit()
    assert sorted(jobIds(page)) == sorted(echo)
    assert set(jobIds(site.app.get('/remote/jobs', {'name': 'error'}))) \
        == {error}
    assert jobIds(site.app.get('/remote/jobs', {
        'status': 'queued', 'name': 'echo'})) == [queued]
    assert jobIds(site.app.get('/remote/jobs', {'name': 'gone'})) == []


def test_sort_jobs_by_created_queued_and_completed(site):
    clock = Clock()
    site.rp.clock = clock
    first, second, third = [site.addJobs('echo', [i])[0] for i in range(3)]
    for jobid in (third, first, second):
        site.rp.processJob(jobid)
        transaction.commit()

    def order(sort, direction):
        return jobIds(site.app.get('/remote/jobs', {
            'sort': sort, 'order': direction}))

    assert order('created', 'desc') == [third, second, first]
    assert order('created', 'asc') == [first, second, third]
    assert order('queued', 'asc') == [first, second, third]
    assert order('completed', 'desc') == [second, first, third]
    assert order('completed', 'asc') == [third, first, second]


class Clock:
    """A clock one second further at each reading."""

    def __init__(self):
        self.now = datetime.datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self):
        self.now += datetime.timedelta(seconds=1)
        return self.now


# removing jobs

def test_remove_the_jobs_of_the_filter_after_confirmation(site):
    site.addJobs('echo', [1, 2])
    site.addJobs('error', [None])
    site.process()
    queued = site.addJobs('echo', [3, 4])
    page = site.app.get('/remote/jobs', {'status': 'completed'})
    confirm = page.forms['remove'].submit()
    assert confirm.status_int == 200
    assert 'This removes 2 jobs' in confirm.text
    assert len(site.rp.jobs) == 5    # nothing removed before confirming
    page = confirm.forms['confirm-remove'].submit().follow()
    assert flash(page) == ['Removed 2 jobs.']
    # Back on the list as it was filtered.
    assert page.request.GET.get('status') == 'completed'
    assert site.rp.jobs.countByStatus()['error'] == 1
    assert sorted(site.rp.jobs.keys()) == sorted(
        queued + [site.rp.jobs.query(status='error')[1][0].__name__])


def test_remove_honours_the_factory_filter(site):
    echo = site.addJobs('echo', [1, 2])
    error = site.addJobs('error', [None])
    confirm = site.app.get('/remote/jobs', {'name': 'echo'}).forms[
        'remove'].submit()
    assert 'This removes 2 jobs' in confirm.text
    confirm.forms['confirm-remove'].submit().follow()
    assert sorted(site.rp.jobs.keys()) == error
    assert not set(echo) & set(site.rp.jobs.keys())


def test_remove_without_a_filter_leaves_processing_jobs(site):
    jobid, = site.addJobs('echo', [1])
    running, = site.addJobs('echo', [2])
    site.process()
    # As a worker's claim leaves it: the page must not remove it.
    site.rp.jobsCollection.update_one({'_id': bson.ObjectId(running)},
                                      {'$set': {'status': 'processing'}})
    confirm = site.app.get('/remote/jobs/remove')
    assert 'This removes 1 jobs' in confirm.text
    page = confirm.forms['confirm-remove'].submit().follow()
    assert flash(page) == ['Removed 1 jobs.']
    assert site.rp.jobs.keys() == [running]


def test_search_jobs_by_their_input(site):
    ann, bob = site.addJobs('echo', [{'to': 'ann@example.com'},
                                     {'to': 'bob@example.com'}])
    page = site.app.get('/remote/jobs')
    form = page.forms['filters']
    form['q'] = 'ANN'
    page = form.submit()
    assert jobIds(page) == [ann]
    assert page.forms['filters']['q'].value == 'ANN'
    assert jobIds(site.app.get('/remote/jobs', {'q': bob})) == [bob]
    assert jobIds(site.app.get('/remote/jobs', {'q': 'example'})) == [bob,
                                                                      ann]
    site.app.get('/remote/jobs', {'q': 'x' * 501}, status=400)
    # The search is kept by the pager and the bulk forms.
    bulk = site.app.get('/remote/jobs', {'q': 'ann'}).forms['bulk']
    assert bulk['q'].value == 'ann'


def test_bulk_actions_on_selected_jobs_after_confirmation(site):
    jobids = site.addJobs('echo', [1, 2, 3])
    page = site.app.get('/remote/jobs')
    form = page.forms['bulk']
    form['action'] = 'cancel'
    for box in form.fields['job']:
        if box._value in jobids[:2]:
            box.checked = True
    confirm = form.submit()
    assert text(confirm.html.find(id='bulk-count')) == \
        'This will cancel 2 jobs.'
    assert site.rp.jobs.countByStatus()['cancelled'] == 0
    page = confirm.forms['confirm-bulk'].submit().follow()
    assert flash(page) == ['Cancelled: 2 jobs.']
    assert [site.rp.getJobStatus(j) for j in jobids] == [
        'cancelled', 'cancelled', 'queued']


def test_bulk_actions_on_all_that_match(site):
    site.addJobs('echo', [1, 2])
    fail = site.addJobs('error', [None, None])
    site.process()
    form = site.app.get('/remote/jobs', {'status': 'error'}).forms['bulk']
    form['action'] = 'retry'
    form['all'] = '1'
    confirm = form.submit()
    assert 'This will retry 2 jobs.' in text(confirm.html)
    page = confirm.forms['confirm-bulk'].submit().follow()
    assert flash(page) == ['Queued again: 2 jobs.']
    assert [site.rp.getJobStatus(j) for j in fail] == ['queued', 'queued']
    # Jobs the action does not fit are not counted.
    confirm = site.app.get('/remote/jobs/bulk', {'action': 'retry',
                                                 'all': '1'})
    assert 'This will retry 0 jobs.' in text(confirm.html)
    assert 'confirm-bulk' in confirm.forms
    assert not confirm.html.find('button', class_='danger')


@pytest.mark.parametrize('params', [
    {'action': 'explode', 'all': '1'},
    {'action': 'cancel', 'job': 'not an id'},
    {'action': 'cancel', 'all': '1', 'status': 'nonsense'},
])
def test_bad_bulk_requests_are_refused(site, params):
    jobid, = site.addJobs('echo', [1])
    site.app.get('/remote/jobs/bulk', params, status=400)
    site.post('/remote/jobs/bulk', params, status=400)
    assert site.rp.getJobStatus(jobid) == 'queued'


def test_bulk_actions_need_the_token_and_the_permission(site):
    jobid, = site.addJobs('echo', [1])
    params = {'action': 'cancel', 'job': jobid}
    site.post('/remote/jobs/bulk', params, token=False, status=400)
    site.anonymous.post('/remote/jobs/bulk', params, status=403)
    assert site.rp.getJobStatus(jobid) == 'queued'


@pytest.mark.parametrize('status', ['processing', 'nonsense'])
def test_remove_refuses_other_statuses(site, status):
    site.app.get('/remote/jobs/remove', {'status': status}, status=400)
    site.post('/remote/jobs/remove', {'status': status}, status=400)


# job detail and actions

def test_job_detail_shows_everything(site):
    jobid, = site.addJobs('echo', [{'to': 'a@example.org'}])
    site.process()
    page = site.app.get('/remote/jobs/%s' % jobid)
    job = site.rp.jobs[jobid]
    content = text(page.html)
    assert 'Job %s' % jobid in page.html.find('h1').get_text()
    assert 'Factory echo' in content
    assert 'Status completed' in content
    assert '0 of 3 used' in content
    for label, value in (('Created', job.created), ('Queued', job.queued),
                         ('Picked', job.picked),
                         ('Completed', job.completed)):
        assert '%s %s' % (label, value.strftime('%Y-%m-%d %H:%M:%S UTC')) \
            in content
    assert '"to": "a@example.org"' in page.html.find(id='job-input').text
    assert '"to": "a@example.org"' in page.html.find(id='job-output').text
    assert 'cancel' not in page.forms and 'retry' not in page.forms
    assert 'delete' in page.forms


def test_job_detail_shows_each_error_with_its_traceback(site):
    jobid, = site.addJobs('fatal', [None])
    site.process()
    site.rp.jobsCollection.update_one({}, {'$set': {
        'retryTime': datetime.datetime(2000, 1, 1, tzinfo=UTC)}})
    site.process()
    job = site.rp.jobs[jobid]
    assert job.status == 'error' and len(job.errors) == 2
    page = site.app.get('/remote/jobs/%s' % jobid)
    items = page.html.find(id='job-errors').find_all('li')
    assert len(items) == 2
    for item, message in zip(items, job.errors, strict=True):
        assert message in item.get_text()
        assert 'RuntimeError: An error occurred.' in item.find('pre').text
    assert '2 of 2 used' in text(page.html)
    assert 'retry' in page.forms and 'cancel' not in page.forms


def test_cancel_retry_and_delete_a_job(site):
    jobid, = site.addJobs('echo', ['x'])
    page = site.app.get('/remote/jobs/%s' % jobid)
    assert 'retry' not in page.forms
    page = page.forms['cancel'].submit().follow()
    assert flash(page) == ['Job cancelled.']
    assert site.rp.getJobStatus(jobid) == 'cancelled'
    assert 'cancel' not in page.forms
    page = page.forms['retry'].submit().follow()
    assert flash(page) == ['Job queued again.']
    assert site.rp.getJobStatus(jobid) == 'queued'
    page = page.forms['delete'].submit()
    assert page.location.endswith('/remote/jobs')
    assert flash(page.follow()) == ['Job %s deleted.' % jobid]
    assert jobid not in site.rp.jobs
    site.app.get('/remote/jobs/%s' % jobid, status=404)


def test_an_action_on_a_job_that_changed_meanwhile_says_why(site):
    jobid, = site.addJobs('echo', ['x'])
    page = site.app.get('/remote/jobs/%s' % jobid)
    site.process()    # completed while the page was open
    page = page.forms['cancel'].submit().follow()
    assert flash(page) == []
    assert 'only queued or processing jobs can be cancelled' in \
        flash(page, 'error')[0]
    assert site.rp.getJobStatus(jobid) == 'completed'
    page = site.post('/remote/jobs/%s/retry' % jobid).follow()
    assert 'can be retried' in flash(page, 'error')[0]


@pytest.mark.parametrize('path', [
    '0123456789abcdef01234567', 'not-an-id', '%3Cscript%3E',
    '0123456789abcdef01234567/cancel', 'zzzz/delete'])
def test_unknown_and_malformed_job_ids_are_not_found(site, path):
    site.addJobs('echo', [None])
    site.app.get('/remote/jobs/%s' % path, status=404)
    if '/' in path:
        site.post('/remote/jobs/%s' % path, status=404)


def test_other_unknown_urls_are_not_found(site):
    for url in ('/remote/nothing', '/remote/factories/echo',
                '/remote/scheduler/0123456789abcdef01234567',
                '/remote/scheduler/not-an-id/edit'):
        site.app.get(url, status=404)


def test_user_content_is_escaped(site):
    script = '<script>alert("x")</script>'
    jobid, = site.addJobs('echo', [{'html': script}])
    page = site.app.get('/remote/jobs/%s' % jobid)
    assert script not in page.text
    assert '&lt;script&gt;alert(' in page.text
    assert page.html.find('script') is None
    page = site.app.get('/remote/jobs', {'name': script})
    assert script not in page.text
    assert page.html.find('script') is None


# adding a job

def test_add_a_job(site):
    page = site.app.get('/remote/jobs/add')
    form = page.forms['add-job']
    form['name'] = 'echo'
    form['input'] = '{"to": ["a", "b"], "n": 1}'
    result = form.submit()
    jobid = result.location.rsplit('/', 1)[1]
    page = result.follow()
    assert flash(page) == ['Job %s added.' % jobid]
    assert site.rp.getJobStatus(jobid) == 'queued'
    assert site.rp.jobs[jobid].input == {'to': ['a', 'b'], 'n': 1}


def test_add_a_job_without_input(site):
    page = site.app.get('/remote/jobs/add', {'name': 'echo'})
    result = page.forms['add-job'].submit()
    jobid = result.location.rsplit('/', 1)[1]
    assert site.rp.jobs[jobid].input is None


def test_the_factories_page_links_to_adding_a_job(site):
    page = site.app.get('/remote/factories').click(
        href=r'/jobs/add\?name=echo')
    assert page.forms['add-job']['name'].value == 'echo'


@pytest.mark.parametrize('name, text, field, message', [
    ('echo', '{"a": ', 'input', 'Not valid JSON'),
    ('echo', "{'a': 1}", 'input', 'Not valid JSON'),
    ('echo', '{"n": 100000000000000000000000}', 'input',
     'cannot be stored'),
    ('', '1', 'name', 'Choose a job factory.'),
])
def test_add_job_errors_are_shown_beside_the_field(site, name, text, field,
                                                   message):
    page = site.app.get('/remote/jobs/add')
    form = page.forms['add-job']
    form['name'] = name
    form['input'] = text
    page = form.submit(status=400)
    assert message in fieldError(page, field)
    assert page.forms['add-job']['input'].value == text
    assert page.forms['add-job']['name'].value == name
    assert len(site.rp.jobs) == 0


def test_add_job_with_an_unknown_factory(site):
    page = site.post('/remote/jobs/add', {'name': '<b>gone</b>',
                                          'input': ''}, status=400)
    assert "There is no job factory '<b>gone</b>'." == fieldError(
        page, 'name')
    assert '<b>gone</b>' not in page.text


def test_typed_input_is_kept_escaped(site):
    text = '</textarea><script>alert(1)</script>'
    page = site.post('/remote/jobs/add', {'name': 'echo', 'input': text},
                     status=400)
    assert page.html.find('script') is None
    assert page.forms['add-job']['input'].value == text


# factories

def test_factories_show_names_classes_and_defaults(site):
    page = site.app.get('/remote/factories')
    rows = page.html.find('tbody').find_all('tr')
    names = [row.find('strong').text for row in rows]
    assert names == ['echo', 'error', 'fatal']
    fatal = text(rows[2])
    assert 'm01.remote.testing.FatalErrorJob' in fatal
    assert 'Fails with an unexpected error, so it is retried.' in fatal
    assert 'maxRetries 2' in fatal and 'retryDelay 0' in fatal
    assert 'input null' in fatal


def test_pause_and_resume_a_factory(site):
    jobid, = site.addJobs('echo', ['waits'])
    page = site.app.get('/remote/factories')
    form = [f for f in page.forms.values()
            if f.action.endswith('/factories/echo/pause')][0]
    page = form.submit().follow()
    assert flash(page) == ['Job factory echo paused: its jobs wait.']
    assert page.html.find(id='paused-echo')
    assert site.rp.jobFactories.isPaused('echo')
    assert site.process() == 0
    form = [f for f in page.forms.values()
            if f.action.endswith('/factories/echo/resume')][0]
    page = form.submit().follow()
    assert flash(page) == ['Job factory echo resumed.']
    assert not page.html.find(id='paused-echo')
    assert site.process() == 1
    site.post('/remote/factories/missing/pause', status=404)
    site.post('/remote/factories/echo/pause', token=False, status=400)
    site.anonymous.post('/remote/factories/echo/pause', status=403)


# workers

def test_the_workers_page_lists_processes_and_controls_them(site):
    page = site.app.get('/remote/workers')
    assert text(page.html.find(id='workers-alive')) == '0 processes alive.'
    site.rp.monitor.acquire('worker', threads=2)
    try:
        site.rp.monitor.beat()
        page = site.app.get('/remote/workers')
        row = page.html.find('table', id='workers').find('tbody').find('tr')
        assert site.rp.monitor.processId in text(row)
        assert 'running' in text(row) and 'worker (2)' in text(row)
        assert text(site.app.get('/remote/').html.find(
            id='workers-summary')).startswith('1 processes alive')
        form = [f for f in page.forms.values()
                if f.get('action').value == 'quiet'][0]
        page = form.submit().follow()
        assert flash(page)[0].startswith(
            'Process %s takes no more jobs' % site.rp.monitor.processId)
        site.rp.monitor.beat()
        assert site.rp.monitor.quiet
        site.post('/remote/control-worker',
                  {'process': site.rp.monitor.processId,
                   'action': 'explode'}, status=400)
        page = site.post('/remote/control-worker',
                         {'process': 'nobody', 'action': 'stop'}).follow()
        assert flash(page, 'error') == ['There is no process nobody.']
        site.post('/remote/control-worker',
                  {'process': site.rp.monitor.processId,
                   'action': 'stop'}, token=False, status=400)
        site.anonymous.post('/remote/control-worker', status=403)
    finally:
        site.rp.monitor.release('worker')


# scheduler

def schedulerRows(page):
    table = page.html.find('table', id='scheduler-items')
    return table.find('tbody').find_all('tr') if table else []


def nextCall(row):
    return text(row.find(class_='next-call'))


def test_add_a_delay_item(site):
    page = site.app.get('/remote/scheduler').click(href='add-delay')
    form = page.forms['scheduler-item']
    assert form['active'].checked
    form['jobName'] = 'echo'
    form['title'] = 'Every minute'
    form['delay'] = '60'
    form['input'] = '{"ping": true}'
    page = form.submit().follow()
    assert flash(page) == ['Scheduler item Every minute added.']
    item, = site.rp.scheduler.values()
    assert (item.jobName, item.delay, item.input, item.active) == \
        ('echo', 60, {'ping': True}, True)
    row, = schedulerRows(page)
    assert 'every 60 s' in text(row)
    assert nextCall(row) == item.nextCallTime.strftime(
        '%Y-%m-%d %H:%M:%S UTC')


def test_add_a_cron_item_from_fields(site):
    page = site.app.get('/remote/scheduler/add-cron')
    form = page.forms['scheduler-item']
    form['jobName'] = 'echo'
    form['minute'] = '0, 30'
    form['hour'] = '8-10'
    form['dayOfWeek'] = '0-4'
    page = form.submit().follow()
    item, = site.rp.scheduler.values()
    assert (item.minute, item.hour, item.dayOfWeek, item.timezone) == \
        ([0, 30], [8, 9, 10], [0, 1, 2, 3, 4], 'UTC')
    row, = schedulerRows(page)
    assert 'minute 0,30; hour 8–10; weekday Mon–Fri (UTC)' in text(row)
    assert item.nextCallTime.minute in (0, 30)
    assert nextCall(row).endswith(':00 UTC')


def test_add_a_cron_item_from_an_expression_in_a_time_zone(site):
    page = site.app.get('/remote/scheduler/add-cron')
    form = page.forms['scheduler-item']
    form['jobName'] = 'echo'
    form['title'] = 'Nightly'
    form['expression'] = '30 2 * * *'
    form['timezone'] = 'Europe/Zurich'
    page = form.submit().follow()
    item, = site.rp.scheduler.values()
    assert (item.expression, item.timezone, item.minute, item.hour) == \
        ('30 2 * * *', 'Europe/Zurich', [30], [2])
    row, = schedulerRows(page)
    assert '30 2 * * * (Europe/Zurich)' in text(row)
    local = item.nextCallTime.astimezone(
        __import__('zoneinfo').ZoneInfo('Europe/Zurich'))
    assert (local.hour, local.minute) == (2, 30)
    assert nextCall(row) == item.nextCallTime.strftime(
        '%Y-%m-%d %H:%M:%S UTC')


@pytest.mark.parametrize('kind, values, field, message', [
    ('delay', {'delay': ''}, 'delay', 'Enter the seconds between two runs.'),
    ('delay', {'delay': 'soon'}, 'delay', 'Enter a whole number of seconds.'),
    ('delay', {'delay': '0'}, 'delay', 'delay must be a positive integer'),
    ('delay', {'delay': '5', 'jobName': ''}, 'jobName',
     'Choose a job factory.'),
    ('delay', {'delay': '5', 'jobName': 'gone'}, 'jobName',
     "There is no job factory 'gone'."),
    ('delay', {'delay': '5', 'input': '{nope'}, 'input', 'Not valid JSON'),
    ('delay', {'delay': '5', 'retryDelay': '0'}, 'retryDelay',
     'retryDelay must be a positive integer'),
    ('cron', {'minute': '61'}, 'minute', 'out of range'),
    ('cron', {'hour': 'noon'}, 'hour', "'noon' is neither"),
    ('cron', {'dayOfMonth': '9-2'}, 'dayOfMonth', 'is not a range'),
    ('cron', {'dayOfMonth': '31', 'month': '2'}, 'dayOfMonth',
     'never fire'),
    ('cron', {'expression': '* * *'}, 'expression', ''),
    ('cron', {'expression': '99 * * * *'}, 'expression', 'out of range'),
    ('cron', {'expression': '0 * * * *', 'minute': '5'}, 'expression',
     'conflicts with expression'),
    ('cron', {'timezone': 'Mars/Olympus_Mons'}, 'timezone',
     'not a known IANA timezone'),
])
def test_scheduler_form_errors_are_shown_beside_the_field(
        site, kind, values, field, message):
    page = site.app.get('/remote/scheduler/add-%s' % kind)
    form = page.forms['scheduler-item']
    form['jobName'] = 'echo'
    form['title'] = 'kept <title>'
    for name, value in values.items():
        form[name].force_value(value)
    page = form.submit(status=400)
    error = fieldError(page, field)
    assert error and message in error
    # Every other field shows no error, and what was typed is kept.
    assert len(page.html.select('.field .error')) == 1
    form = page.forms['scheduler-item']
    assert form['title'].value == 'kept <title>'
    for name, value in values.items():
        assert form[name].value == value
    assert list(site.rp.scheduler.values()) == []


def addItems(site):
    from m01.remote.scheduler import Cron, Delay
    delay = site.rp.addScheduler(Delay({
        'jobName': 'echo', 'title': '<script>x</script>', 'delay': 60,
        'input': {'from': 'delay'}}))
    cron = site.rp.addScheduler(Cron.fromExpression(
        '*/5 * * * *', jobName='echo', title='Five'))
    return delay, cron


def test_scheduler_lists_every_item_escaped(site):
    delay, cron = addItems(site)
    page = site.app.get('/remote/scheduler')
    rows = schedulerRows(page)
    assert sorted(row['id'] for row in rows) == sorted(
        ['item-' + delay, 'item-' + cron])
    assert page.html.find('script') is None
    assert '&lt;script&gt;x&lt;/script&gt;' in page.text
    for row in rows:
        assert re.match(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$', nextCall(row))


def test_deactivate_and_activate_an_item(site):
    delay, cron = addItems(site)
    page = site.app.get('/remote/scheduler')
    form = page.forms[_formIndex(page, delay, 'toggle')]
    page = form.submit().follow()
    item = site.rp.scheduler[delay]
    assert not item.active and item.nextCallTime is None
    row = page.html.find(id='item-' + delay)
    assert nextCall(row) == '–' and 'inactive' in text(row)
    assert flash(page) == ['<script>x</script> is now inactive.']
    # The same (stale) form again does not flip it back.
    form.submit().follow()
    assert not site.rp.scheduler[delay].active
    page = site.app.get('/remote/scheduler')
    page.forms[_formIndex(page, delay, 'toggle')].submit().follow()
    item = site.rp.scheduler[delay]
    assert item.active and item.nextCallTime is not None


def _formIndex(page, itemid, action):
    for index, form in page.forms.items():
        if isinstance(index, int) and form.action.endswith(
                '/scheduler/%s/%s' % (itemid, action)):
            return index
    raise AssertionError('no %s form for %s' % (action, itemid))


def test_edit_a_delay_item(site):
    delay, cron = addItems(site)
    page = site.app.get('/remote/scheduler/%s' % delay)
    form = page.forms['scheduler-item']
    assert form['delay'].value == '60'
    assert form['input'].value.replace(' ', '').replace('\n', '') == \
        '{"from":"delay"}'
    form['delay'] = '90'
    form['title'] = 'Ninety'
    page = form.submit().follow()
    assert flash(page) == ['Scheduler item Ninety saved.']
    item = site.rp.scheduler[delay]
    assert (item.delay, item.title, item.input) == \
        (90, 'Ninety', {'from': 'delay'})


def test_edit_a_cron_item_from_expression_to_fields(site):
    delay, cron = addItems(site)
    page = site.app.get('/remote/scheduler/%s/edit' % cron)
    form = page.forms['scheduler-item']
    assert form['expression'].value == '*/5 * * * *'
    assert form['minute'].value == ''
    form['expression'] = ''
    form['minute'] = '15'
    form['timezone'] = 'America/New_York'
    form.submit().follow()
    item = site.rp.scheduler[cron]
    assert (item.expression, item.minute, item.timezone) == \
        (None, [15], 'America/New_York')
    page = site.app.get('/remote/scheduler/%s/edit' % cron)
    form = page.forms['scheduler-item']
    form['expression'] = '0 12 * * *'
    form['minute'] = ''
    form.submit().follow()
    item = site.rp.scheduler[cron]
    assert (item.expression, item.minute, item.hour) == \
        ('0 12 * * *', [0], [12])


def test_edit_errors_are_shown_beside_the_field(site):
    delay, cron = addItems(site)
    page = site.app.get('/remote/scheduler/%s/edit' % delay)
    form = page.forms['scheduler-item']
    form['delay'] = '-5'
    page = form.submit(status=400)
    assert 'delay must be a positive integer' in fieldError(page, 'delay')
    assert site.rp.scheduler[delay].delay == 60


def test_run_an_item_now(site):
    delay, cron = addItems(site)
    page = site.app.get('/remote/scheduler')
    result = page.forms[_formIndex(page, delay, 'run')].submit()
    jobid = result.location.rsplit('/', 1)[1]
    page = result.follow()
    assert flash(page) == ['Job %s added from <script>x</script>.' % jobid]
    job = site.rp.jobs[jobid]
    assert (job.name, job.status, job.input) == \
        ('echo', 'queued', {'from': 'delay'})


def test_run_an_item_whose_factory_is_gone(site):
    from m01.remote.scheduler import Delay
    itemid = site.rp.addScheduler(Delay({'jobName': 'removed',
                                         'delay': 60}))
    page = site.post('/remote/scheduler/%s/run' % itemid).follow()
    assert "Unknown job factory 'removed'" in flash(page, 'error')[0]
    assert len(site.rp.jobs) == 0
    # Its edit form still shows the name, and says what is wrong.
    page = site.app.get('/remote/scheduler/%s/edit' % itemid)
    page = page.forms['scheduler-item'].submit(status=400)
    assert fieldError(page, 'jobName') == "There is no job factory 'removed'."


def test_delete_an_item(site):
    delay, cron = addItems(site)
    page = site.app.get('/remote/scheduler')
    page = page.forms[_formIndex(page, cron, 'delete')].submit().follow()
    assert flash(page) == ['Scheduler item Five deleted.']
    assert [item.__name__ for item in site.rp.scheduler.values()] == [delay]
    site.app.get('/remote/scheduler/%s/edit' % cron, status=404)
    site.post('/remote/scheduler/%s/delete' % cron, status=404)


@pytest.mark.parametrize('action', ['toggle', 'run', 'delete', 'edit'])
def test_actions_on_unknown_or_malformed_items_are_not_found(site, action):
    for itemid in ('0123456789abcdef01234567', 'nope', '1'):
        site.post('/remote/scheduler/%s/%s' % (itemid, action),
                  {'active': '1'}, status=404)
    assert len(site.rp.jobs) == 0


def test_scheduler_actions_need_the_csrf_token(site):
    delay, cron = addItems(site)
    for action in ('toggle', 'run', 'delete', 'edit'):
        site.post('/remote/scheduler/%s/%s' % (delay, action),
                  {'active': '0', 'jobName': 'echo', 'delay': '5'},
                  status=400, token=False)
        site.anonymous.post('/remote/scheduler/%s/%s' % (delay, action),
                            {'active': '0'}, status=403)
    item = site.rp.scheduler[delay]
    assert item.active and item.delay == 60
    assert len(site.rp.jobs) == 0
