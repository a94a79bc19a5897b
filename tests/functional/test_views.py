"""Functional tests of the management pages, through WebTest, on both
stores.

The test site is what a host application provides: a session (flash
messages, CSRF tokens) and a security policy granting the pages'
permission to any authenticated user (``REMOTE_USER`` here).
"""
import datetime
import re

import pytest
import transaction
import webtest
from pyramid.config import Configurator
from pyramid.session import SignedCookieSessionFactory

from m01.remote import testing
from m01.remote.interfaces import IRemoteProcessor
from m01.remote.views import formatting

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


def shownTime(node):
    """The exact time a time element in ``node`` shows (in its tooltip),
    or its text when it holds none."""
    time = node.find('time')
    return time['title'] if time else text(node)


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
         '/remote/factories', '/remote/scheduler',
         '/remote/scheduler/add-delay', '/remote/scheduler/add-cron',
         '/remote/workers')


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
                '/remote/jobs/add', '/remote/jobs/bulk',
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
            ('/remote/jobs/bulk', {'action': 'delete',
                                   'status': 'completed', 'all': '1'}),
            ('/remote/jobs/%s/retry' % errorid, {}),
            ('/remote/factories/echo/pause', {}),
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
    assert not site.rp.jobFactories.isPaused('echo')


def test_actions_are_not_done_on_get(site):
    jobid, = site.addJobs('echo', [None])
    site.app.get('/remote/start-processor', status=404)
    # These GETs are confirmation pages.
    for action in ('cancel', 'delete'):
        site.app.get('/remote/jobs/%s/%s' % (jobid, action), status=200)
    site.app.get('/remote/factories/echo/pause', status=200)
    assert site.rp.getJobStatus(jobid) == 'queued'
    assert not site.rp.jobFactories.isPaused('echo')
    assert not site.rp.isProcessing
    site.rp.startScheduler()
    site.app.get('/remote/stop-scheduler', status=200)
    assert site.rp.isScheduling
    site.rp.stopScheduler(5)


def confirm(page):
    """Follow a form asking for a confirmation (a GET form) to its page,
    check the page, and submit its form."""
    page = page.form.submit() if hasattr(page, 'form') else page.submit()
    assert page.status_int == 200
    assert page.html.find(attrs={'data-confirm-form': True}) is not None
    cancel = page.html.find(attrs={'data-confirm-cancel': True})
    assert cancel is not None and cancel['href']
    return page.forms['confirm-form'].submit()


# confirmations

def test_deleting_a_job_asks_first(site):
    jobid, = site.addJobs('echo', ['x'])
    page = site.app.get('/remote/jobs/%s' % jobid)
    form = page.forms['delete']
    assert form.method.lower() == 'get'
    assert 'data-confirm' in str(page.html.find(id='delete').attrs)
    question = form.submit()
    assert 'Delete job echo (%s) for good?' % jobid in text(question.html)
    assert jobid in site.rp.jobs
    # Back leads back to the job.
    assert question.click('Back').request.path.endswith(jobid)
    confirm(form).follow()
    assert jobid not in site.rp.jobs


def test_stopping_a_thread_asks_first(site):
    site.rp.startProcessor()
    site.rp.startScheduler()
    page = site.app.get('/remote/stop-scheduler')
    assert 'Stop the scheduler thread of this web process?' in \
        text(page.html)
    assert site.rp.isScheduling
    site.rp.stopProcessor(5)
    site.rp.stopScheduler(5)
    page = site.app.get('/remote/stop-processor')
    assert 'is not running' in text(page.html)
    assert page.html.find(id='confirm-form') is None


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
    assert counts == {'waiting': '0', 'queued': '1', 'processing': '0',
                      'completed': '2', 'cancelled': '0', 'error': '1'}
    assert '/remote/jobs?status=error' in page.text
    errors = page.html.find(id='latest-errors')
    assert errorid in str(errors)
    assert text(errors.find(class_='last-error')).endswith(
        'An error occurred.')
    assert errors.find(class_='last-error').find('time') is not None


@pytest.fixture
def noData(monkeypatch):
    """The pages with a source that has no data (a site's own may lack
    some)."""
    from m01.remote.views.common import BaseView
    from support.samplesources import NoDataSources
    monkeypatch.setattr(BaseView, 'sources', NoDataSources())


def test_the_overview_says_what_a_source_lacks(site, noData):
    page = site.app.get('/remote/')
    for id in ('queue-note', 'workers-note', 'activity-note'):
        assert text(page.html.find(id=id)).startswith('No data yet'), id
    assert page.html.find('svg') is None
    # The threads are this web process's, and say so.
    local = page.html.find(id='this-process')
    assert "This web process's threads" in text(local)
    assert 'not running here' in text(local)
    assert 'm01remote worker' in text(local)
    assert 'Start here' in text(local)


def test_the_overview_of_an_idle_queue(site):
    page = site.app.get('/remote/')
    assert page.html.find(class_='note') is None
    assert text(page.html.find(id='queue-due')) == '0'
    assert text(page.html.find(id='queue-latency')) == '–'
    assert text(page.html.find(id='workers-alive')) == '0'
    chart = page.html.find(id='activity-chart')
    assert chart.find('svg') is not None
    assert chart.find('svg').find('rect') is None
    assert 'No attempt completed or failed then.' in text(chart)
    rows = page.html.find(id='factory-stats').select('tbody tr')
    assert [text(row.find('td')) for row in rows] == ['echo', 'error',
                                                      'fatal']


def test_the_overview_with_the_queues_figures(site):
    site.addJobs('echo', [1, 2])
    site.addJobs('error', [None])
    site.process()
    site.rp.counters.flush()
    site.addJobs('echo', [3])
    site.rp.addJob('echo', 4, delay=3600)
    transaction.commit()
    site.rp.pauseJobFactory('error')
    page = site.app.get('/remote/')
    assert text(page.html.find(id='queue-due')) == '1'
    assert page.html.find(id='queue-latency').get_text(strip=True) != '–'
    assert text(page.html.find(id='queue').find_all('dd')[2]) == '1'
    svg = page.html.find(id='activity-chart').find('svg')
    assert svg.find('rect') is not None
    assert ': 2 completed, 1 failed;' in svg.find('desc').get_text()
    rows = {text(row.find('td')).split()[0]: row for row in
            page.html.find(id='factory-stats').select('tbody tr')}
    echo = [text(td) for td in rows['echo'].find_all('td')]
    assert echo[1:5] == ['2', '0', '2', '0']       # queued .. error
    assert echo[5] != '–'                          # its mean run time
    assert 'paused' in text(rows['error'])
    assert 'last hour' in text(page.html.find(id='factory-stats')
                               .find('thead'))



# live pages: the markers the script (m01remote.js) relies on

def liveParts(page):
    """``{id: element}`` of the parts the script swaps in: each has an
    id, found once on the page, by which it finds its old self."""
    parts = page.html.find_all(attrs={'data-part': True})
    ids = [part.get('id') for part in parts]
    assert ids and all(ids) and len(set(ids)) == len(ids), ids
    return dict(zip(ids, parts, strict=True))


def liveSeconds(page):
    marker = page.html.find(attrs={'data-live': True})
    return marker['data-live'] if marker is not None else None


def insidePart(node):
    return node.find_parent(attrs={'data-part': True}) is not None


def fetched(site, path):
    """The page as the script fetches it."""
    return site.app.get(path, headers={'X-Requested-With': 'm01remote'})


def statusCounts(page):
    return {text(row.find('span')): text(row.find(class_='num'))
            for row in page.html.find(id='job-counts').find_all('tr')[:-1]}


def test_the_overview_refreshes_its_figures(site):
    site.addJobs('echo', [1, 2])
    site.process()
    page = site.app.get('/remote/')
    assert liveSeconds(page) == '10'
    assert page.html.find(id='live-status') is not None
    assert page.html.find(id='live-toggle') is not None
    parts = liveParts(page)
    for part, inner in (('jobs-card', 'job-counts'), ('queue', 'queue-due'),
                        ('workers-summary', 'workers-alive'),
                        ('activity', 'activity-chart'),
                        ('factory-stats', None), ('latest-failures', None),
                        ('this-process', 'thread-processor')):
        assert part in parts, part
        assert inner is None or parts[part].find(id=inner) is not None, \
            inner
    # The jobs are counted once, per factory: the status counts add up.
    assert statusCounts(page)['completed'] == '2'
    site.addJobs('echo', [3, 4, 5])
    site.addJobs('error', [None])
    site.process()
    site.rp.counters.flush()
    again = fetched(site, '/remote/')
    assert set(liveParts(again)) == set(parts)
    counts = statusCounts(again)
    assert (counts['completed'], counts['error']) == ('5', '1')
    assert text(again.html.find(id='job-counts').find_all('tr')[-1]) \
        == 'all 6'
    assert ': 5 completed, 1 failed;' in again.html.find(
        id='activity-chart').find('desc').get_text()


def test_the_overview_counts_the_jobs_itself_for_a_source_without_counts(
        site, sample):
    site.addJobs('echo', [1, 2, 3])
    page = site.app.get('/remote/')
    assert 'counts' not in sample.queue(site.rp, site.rp.now())
    assert statusCounts(page)['queued'] == '3'


def test_the_jobs_list_refreshes_its_rows_but_not_its_filters(site):
    page = site.app.get('/remote/jobs')
    assert liveSeconds(page) == '10'
    # Empty, the list has its part all the same: the rows a refresh
    # brings have a place to go.
    assert 'No jobs match.' in text(liveParts(page)['jobs-list'])
    jobids = site.addJobs('echo', ['one', 'two'])
    page = fetched(site, '/remote/jobs')
    parts = liveParts(page)
    assert set(parts) == {'jobs-list'}
    assert sorted(jobIds(page)) == sorted(jobids)
    listed = parts['jobs-list']
    # The counts, the row checkboxes and "all that match" are swapped;
    # the script waits while one of them is ticked (a changed field of a
    # part) or a form field has the focus.
    assert 'of 2' in text(listed.find(class_='pager'))
    boxes = listed.find_all('input', attrs={'data-row': True})
    assert sorted(box['value'] for box in boxes) == sorted(jobids)
    assert all(box['form'] == 'bulk' for box in boxes)
    assert listed.find('input', attrs={'data-select-all': True})
    assert listed.find('input', attrs={'name': 'all'})
    # What the reader types or picks in the filters is never replaced.
    assert not insidePart(page.html.find(id='filters'))


def test_the_workers_page_refreshes_its_processes(site):
    page = site.app.get('/remote/workers')
    assert liveSeconds(page) == '5'
    assert 'No process has reported yet.' in text(
        liveParts(page)['workers-part'])
    monitor = site.rp.monitor
    monitor.acquire('worker', threads=2)
    try:
        monitor.beat()
        page = fetched(site, '/remote/workers')
    finally:
        monitor.release('worker')
    parts = liveParts(page)
    assert set(parts) == {'workers-part', 'local-threads'}
    assert parts['workers-part'].find(
        id='process-' + monitor.processId) is not None


def test_a_job_page_says_why_its_updates_stopped(site):
    jobid, = site.addJobs('echo', [None])
    page = site.app.get('/remote/jobs/%s' % jobid)
    marker = page.html.find(attrs={'data-live': True})
    assert marker['data-live-stopped'] == \
        'Updated; the job is no longer running, so updates stopped.'


def test_the_script_knows_the_markers_of_the_pages(site):
    jobid, = site.addJobs('echo', [None])
    page = site.app.get('/remote/jobs')
    pages = page.text + site.app.get('/remote/jobs/%s' % jobid).text
    script = site.app.get(page.html.find('script')['src']).text
    for marker in ('data-live', 'data-live-stopped', 'data-part',
                   'live-status', 'live-toggle', 'data-row',
                   'data-select-all', 'data-selected-count',
                   'data-confirm'):
        assert marker in script, marker
        assert marker in pages, marker

@pytest.fixture
def sample(monkeypatch):
    from m01.remote.views.common import BaseView
    from support.samplesources import SampleSources
    sources = SampleSources(quietUrl='/remote/quiet-me')
    monkeypatch.setattr(BaseView, 'sources', sources)
    return sources


def test_the_overview_with_the_back_ends_data(site, sample):
    page = site.app.get('/remote/')
    assert text(page.html.find(id='queue-due')) == '12'
    assert text(page.html.find(id='queue-latency')) == '1 min 35 s'
    assert text(page.html.find(id='workers-alive')) == '2'
    svg = page.html.find(id='activity-chart').find('svg')
    assert svg['role'] == 'img'
    assert svg.find('title').get_text() == \
        'Attempts completed and failed, last hour'
    assert svg.find('desc').get_text().startswith('Attempts from ')
    bars = svg.find_all('rect')
    assert len(bars) > 60 and all(bar.find('title') for bar in bars)
    assert 'failures' in ' '.join(' '.join(bar['class']) for bar in bars)
    # Another span, by a link (no script needed).
    spans = page.html.find(class_='ranges')
    assert text(spans.find('strong')) == 'Last hour'
    page = site.app.get(spans.find('a', string='Last week')['href'])
    assert 'last week' in page.html.find('svg').find('title').get_text()
    assert len(page.html.find('svg').find_all('rect')) > 168
    site.app.get('/remote/', {'span': 'year'}, status=400)
    rows = page.html.find(id='factory-stats').select('tbody tr')
    assert [text(row.find('td')) for row in rows] == [
        'echo', 'sleep paused at most 2']
    assert text(rows[0].find_all('td')[-1]) == '42 ms'


def test_the_workers_page_says_what_a_source_lacks(site, noData):
    page = site.app.get('/remote/workers')
    assert text(page.html.find(id='workers-note')).startswith('No data yet')
    assert page.html.find(id='processes') is None


def test_the_workers_page_without_heartbeats(site):
    page = site.app.get('/remote/workers')
    assert page.html.find(id='workers-note') is None
    assert 'No process has reported yet.' in text(page.html)
    assert page.html.find(id='processes') is None
    assert 'Job worker thread: not running' in text(
        page.html.find(id='local-threads'))
    assert page.html.find('a', attrs={'aria-current': 'page'}).get_text() \
        == 'Workers'
    site.anonymous.get('/remote/workers', status=403)


def test_the_workers_page_with_the_back_ends_data(site, sample):
    page = site.app.get('/remote/workers')
    rows = page.html.find(id='processes').select('tbody > tr')
    assert [row['id'] for row in rows] == [
        'process-web-1:4242:root:1f2e3d4c', 'process-web-2:77:root:5a6b7c8d',
        'process-web-1:4100:root:9e8f7a6b']
    running, quiet, gone = rows
    assert 'gone' in gone['class'] and 'gone' in text(gone)
    assert text(quiet.find(class_='status')) == 'quiet'
    assert '1 of 4 busy' in text(running)
    assert 'm01remote worker' in text(running)
    job = running.find('td', attrs={'data-label': 'Running jobs'})
    assert job.find('a')['href'].endswith('/remote/jobs/' + sample.jobid)
    assert 'lease until in 30 s' in text(job)
    # Buttons only where the back end offers the action, and not for a
    # process that is gone; each leads to a confirmation first.
    links = running.find_all('a', class_='button')
    assert [(text(a), a['href']) for a in links] == [
        ('Quiet…', '/remote/quiet-me'), ('Stop…', '/remote/quiet-me')]
    assert all(a.has_attr('data-confirm') for a in links)
    assert quiet.find('a', class_='button') is None
    assert gone.find('a', class_='button') is None
    assert '2 alive, 1 gone.' in text(page.html)


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
    page = confirm(page.forms['stop-processor']).follow()
    assert flash(page) == ['The job processor stopped.']
    assert not site.rp.isProcessing
    page = confirm(page.forms['stop-scheduler']).follow()
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
    # A pager above the list and one below it, with the pages' numbers.
    for pager in ('pager-top', 'pager-bottom'):
        assert text(page.html.find(id=pager)) == \
            'Jobs 1–50 of 120 1 2 3 next ›'
    page = page.click('next ›', index=0)
    assert jobIds(page) == newest[50:100]
    assert text(page.html.find(id='pager-top').find(
        attrs={'aria-current': 'page'})) == '2'
    page = page.click('3', href='page=3', index=0)
    assert jobIds(page) == newest[100:]
    assert 'Jobs 101–120 of 120' in text(page.html.find(id='pager-top'))
    assert page.html.find('a', rel='next') is None


def _forbidden(*args, **kw):
    raise AssertionError('the jobs page must not load every job')


def test_a_row_says_what_the_job_is_and_how_it_went(site):
    echoid, = site.addJobs('echo', [{'to': 'ann@example.org'}])
    errorid, = site.addJobs('error', [None])
    site.process()
    keyed = site.rp.addJob('echo', 'x' * 500, key='invoice-42', priority=5,
                           delay=3600)
    transaction.commit()
    page = site.app.get('/remote/jobs')
    rows = {row['id']: row for row in page.html.select('#jobs tbody tr')}
    echo = rows['job-' + echoid]
    assert text(echo.find(class_='job-title')) == 'echo'
    assert text(echo.find(class_='job-id')) == '…' + echoid[-6:]
    assert echo.find(class_='job-id')['title'] == echoid
    assert text(echo.find(class_='preview')) == '{"to": "ann@example.org"}'
    assert echo.find(class_='last-error') is None
    ran = text(echo.find('td', attrs={'data-label': 'Ran'}))
    assert ran.endswith(' ms') or ran.endswith(' s'), ran
    created = echo.find('td', attrs={'data-label': 'Created'})
    assert shownTime(created) == formatting.exact(
        site.rp.jobs[echoid].created)
    error = rows['job-' + errorid]
    assert 'error' in text(error.find(class_='status'))
    assert text(error.find(class_='last-error')).endswith(
        'An error occurred.')
    assert error.find(class_='last-error').find('time') is not None
    keyedRow = rows['job-' + keyed]
    assert [text(tag) for tag in keyedRow.select('.tag')] == [
        'priority +5', 'key invoice-42']
    assert len(text(keyedRow.find(class_='preview'))) <= 80
    assert text(keyedRow.find(class_='status')).startswith('queued')
    assert 'due in 59 min' in text(keyedRow) or 'due in 1 h' in \
        text(keyedRow)
    assert text(keyedRow.find('td', attrs={'data-label': 'Ran'})) == '–'
    # Sorted by completed time, the column says so.
    page = site.app.get('/remote/jobs', {'sort': 'completed'})
    assert page.html.select('#jobs thead th')[-2].get_text() == 'Completed'


def test_search_and_bulk_selection(site):
    jobids = site.addJobs('echo', [1, 2, 3])
    page = site.app.get('/remote/jobs', {'q': 'needle <b>',
                                         'status': 'queued'})
    assert page.html.find(id='filter-q')['value'] == 'needle <b>'
    assert jobIds(page) == []               # nothing matches the search
    page = site.app.get('/remote/jobs', {'status': 'queued'})
    boxes = page.html.find_all('input', attrs={'name': 'job'})
    assert sorted(box['value'] for box in boxes) == sorted(jobids)
    assert all(box['form'] == 'bulk' for box in boxes)
    form = page.html.find(id='bulk')
    assert form.find(attrs={'data-select-all': True}).find_parent(
        'label')['class'] == ['js-only']
    assert 'All 3 jobs that match this filter' in text(form)
    hidden = {field['name']: field['value'] for field in
              form.find_all('input', type='hidden')}
    assert hidden == {'status': 'queued', 'sort': 'created',
                      'order': 'desc'}
    assert [(button['formaction'].rsplit('/', 1)[1], button['value'],
             text(button)) for button in form.find_all('button')] == [
        ('bulk', 'cancel', 'Cancel…'), ('bulk', 'retry', 'Retry…'),
        ('bulk', 'delete', 'Delete…')]


def test_no_search_or_bulk_selection_where_a_source_offers_none(
        site, noData):
    site.addJobs('echo', [1])
    page = site.app.get('/remote/jobs', {'status': 'queued'})
    assert page.html.find(type='checkbox', attrs={'name': 'job'}) is None
    assert page.html.find(type='search') is None
    assert 'bulk' not in page.forms


@pytest.mark.parametrize('page, shown', [
    ('-1', 1), ('0', 1), ('2', 2), ('99999999999', 3),
    (str(10 ** 40), 3), ('', 1)])
def test_page_numbers_out_of_range_are_clamped(site, page, shown):
    site.addJobs('echo', range(101))
    result = site.app.get('/remote/jobs', {'page': page})
    assert text(result.html.find(id='pager-top').find(
        attrs={'aria-current': 'page'})) == str(shown)
    assert len(jobIds(result)) == (1 if shown == 3 else 50)
    # A page past the last says so.
    past = result.html.find(id='past-the-end')
    if page.isdigit() and int(page) > 3:
        assert 'the list has 3 pages. This is the last.' in text(past)
    else:
        assert past is None


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
    site.rp.now.clock = clock
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
    # The search is kept by the pager and the bulk form.
    page = site.app.get('/remote/jobs', {'q': 'ann'})
    assert page.forms['bulk']['q'].value == 'ann'


def bulkRequest(site, page, action, jobids=(), all=False):
    """What the jobs page's bulk form sends with the button of
    ``action``: its hidden fields, the rows ``jobids`` checked (they are
    outside the form, joined to it by their ``form`` attribute, which
    WebTest does not follow) or its "all" box."""
    form = page.html.find(id='bulk')
    button = form.find('button', attrs={'value': action})
    params = [(field['name'], field['value'])
              for field in form.find_all('input', type='hidden')]
    boxes = [box['value'] for box in page.html.find_all(
        'input', attrs={'name': 'job', 'form': 'bulk'})]
    assert set(jobids) <= set(boxes)
    params += [('job', jobid) for jobid in jobids]
    if all:
        params.append(('all', form.find('input', attrs={'name': 'all'})
                       ['value']))
    params.append((button['name'], button['value']))
    return site.app.get(button['formaction'], params)


def test_bulk_actions_on_selected_jobs_after_confirmation(site):
    jobids = site.addJobs('echo', [1, 2, 3])
    page = site.app.get('/remote/jobs')
    question = bulkRequest(site, page, 'cancel', jobids[:2])
    assert text(question.html.find(id='confirm').find('p')) == \
        'Cancel 2 jobs?'
    assert site.rp.jobs.countByStatus()['cancelled'] == 0
    page = question.forms['confirm-form'].submit().follow()
    assert flash(page) == ['Cancelled: 2 jobs.']
    assert [site.rp.getJobStatus(j) for j in jobids] == [
        'cancelled', 'cancelled', 'queued']
    # Nothing chosen: the page asks for a choice and does nothing.
    question = bulkRequest(site, page, 'cancel')
    assert 'Choose the jobs to cancel' in text(question.html)
    assert 'confirm-form' not in question.forms


def test_bulk_actions_on_all_that_match(site):
    site.addJobs('echo', [1, 2])
    fail = site.addJobs('error', [None, None])
    site.process()
    page = site.app.get('/remote/jobs', {'status': 'error'})
    question = bulkRequest(site, page, 'retry', all=True)
    assert 'Retry 2 jobs?' in text(question.html)
    rows = [[text(cell) for cell in row.find_all(['th', 'td'])]
            for row in question.html.find(id='confirm').find_all('tr')]
    assert rows == [['Jobs', 'all that match'], ['Status', 'error']]
    page = question.forms['confirm-form'].submit().follow()
    assert flash(page) == ['Queued again: 2 jobs.']
    assert [site.rp.getJobStatus(j) for j in fail] == ['queued', 'queued']
    # Jobs the action does not fit are not counted: nothing to confirm.
    question = site.app.get('/remote/jobs/bulk', {'action': 'retry',
                                                  'all': '1'})
    assert 'None of the jobs chosen (all that match) can be queued ' \
        'again' in text(question.html)
    assert 'confirm-form' not in question.forms
    # A delete is red, the others are not.
    question = site.app.get('/remote/jobs/bulk', {'action': 'delete',
                                                  'all': '1'})
    assert 'Delete 4 jobs?' in text(question.html)
    assert question.html.find('button', class_='danger')


def storedJobs(rp):
    return sorted((str(document['_id']), document['status']) for document
                  in rp.jobsCollection.find({}, {'status': 1}))


@pytest.mark.parametrize('path, params, named', [
    ('jobs', {'stauts': 'error'}, "'stauts'"),
    ('jobs', {'status': 'error', 'all': '1'}, "'all'"),
    ('jobs', {'name': ['echo', 'error']}, 'name is given 2 times'),
    ('jobs', {'q': '%%'}, 'q has no word'),
    ('jobs/bulk', {'action': 'delete', 'all': '1', 'stauts': 'error'},
     "'stauts'"),
    ('jobs/bulk', {'action': 'delete', 'all': '1', 'page': '2'}, "'page'"),
    ('jobs/bulk', {'action': 'delete', 'all': 'on'}, 'all is true or'),
    ('jobs/bulk', {'action': 'delete', 'job': 'nonsense'},
     "'nonsense' is not a job id"),
    ('jobs/bulk', {'action': 'remove', 'all': '1'}, 'action must be one'),
])
def test_a_mistyped_list_or_form_is_a_400_naming_it(site, path, params,
                                                    named):
    site.addJobs('echo', [1, 2])
    site.addJobs('error', [None])
    site.process()
    before = storedJobs(site.rp)
    page = site.app.get('/remote/' + path, params, status=400)
    assert named in text(page.html.find('main'))
    if path != 'jobs':
        page = site.post('/remote/' + path, params, status=400)
        assert named in text(page.html.find('main'))
    assert storedJobs(site.rp) == before


def test_the_pages_own_parameters_are_accepted(site):
    jobid, = site.addJobs('echo', [1])
    site.app.get('/remote/jobs', {'status': 'queued', 'name': 'echo',
                                  'q': '', 'sort': 'queued',
                                  'order': 'asc', 'page': '1'})
    question = site.app.get('/remote/jobs/bulk', {
        'action': 'cancel', 'status': 'queued', 'sort': 'created',
        'order': 'desc', 'all': '1', 'job': jobid})
    assert 'Cancel 1 jobs?' in text(question.html)
    question.forms['confirm-form'].submit().follow()
    assert site.rp.getJobStatus(jobid) == 'cancelled'


# job detail and actions

def test_job_detail_shows_everything(site):
    jobid, = site.addJobs('echo', [{'to': 'a@example.org'}])
    site.process()
    page = site.app.get('/remote/jobs/%s' % jobid)
    job = site.rp.jobs[jobid]
    content = text(page.html)
    assert text(page.html.find('h1')) == 'echo job %s' % jobid
    assert page.html.find('title').get_text().startswith(
        'echo – job %s' % jobid)
    assert 'Factory echo' in content
    assert 'Status completed' in content
    assert 'Attempts 0 failed, of at most 3 attempts' in content
    for label, value in (('Created', job.created), ('Queued', job.queued),
                         ('Started', job.picked),
                         ('Ended', job.completed)):
        assert shownTimes(page)[label] == value.strftime(
            '%Y-%m-%d %H:%M:%S UTC')
    assert '"to": "a@example.org"' in page.html.find(id='job-input').text
    assert '"to": "a@example.org"' in page.html.find(id='job-output').text
    assert 'cancel' not in page.forms and 'retry' not in page.forms
    assert 'delete' in page.forms


def shownTimes(page):
    """The exact times of a job's page by their labels."""
    return {text(dt): shownTime(dt.find_next_sibling('dd'))
            for dt in page.html.select('dl.fields dt')}


def test_a_failed_job_leads_with_its_latest_failure(site):
    jobid, = site.addJobs('fatal', [None])
    site.process()
    site.rp.jobsCollection.update_one({}, {'$set': {
        'retryTime': datetime.datetime(2000, 1, 1, tzinfo=UTC)}})
    site.process()
    job = site.rp.jobs[jobid]
    assert job.status == 'error' and len(job.errors) == 2
    page = site.app.get('/remote/jobs/%s' % jobid)
    # The failure first, its traceback open.
    failure = page.html.find(id='job-failure')
    assert text(failure).startswith('Failed')
    assert text(failure.find(id='failure-message')) == 'An error occurred.'
    assert 'Attempt 2, failed after' in text(failure)
    assert 'Its retries are spent' in text(failure)
    assert failure.find('details').has_attr('open')
    assert 'RuntimeError: An error occurred.' in failure.find('pre').text
    assert page.text.index('id="job-failure"') < \
        page.text.index('id="job-summary"')
    # Every error, newest first, numbered as stored; the latest open.
    items = page.html.find(id='job-errors').find_all('li', recursive=False)
    assert len(items) == 2
    assert page.html.find(id='job-errors')['start'] == '2'
    for item, message in zip(items, reversed(job.errors), strict=True):
        when, message = formatting.splitStamp(message)
        assert message in item.get_text()
        assert shownTime(item) == formatting.exact(when)
        assert 'RuntimeError: An error occurred.' in item.find('pre').text
    # The page leads with the latest: it is not open twice.
    assert [item.find('details').has_attr('open') for item in items] == [
        False, False]
    assert 'Attempts 2 failed, of at most 2 attempts' in text(page.html)
    assert 'retry' in page.forms and 'cancel' not in page.forms
    # The job ended: the page does not refresh itself.
    assert page.html.find(attrs={'data-live': True}) is None


def test_the_attempts_of_a_job_newest_first(site):
    jobid, = site.addJobs('fatal', [None])
    site.process()
    job = site.rp.jobs[jobid]
    page = site.app.get('/remote/jobs/%s' % jobid)
    # Queued again after a failure: the page says when it is retried.
    assert 'It is retried' in text(page.html.find(id='job-failure'))
    attempts = page.html.find(id='attempts').find_all('li',
                                                      recursive=False)
    assert len(attempts) == 1
    attempt = attempts[0]
    assert 'outcome-failed' in attempt['class']
    summary = text(attempt.find('summary'))
    assert summary.startswith('failed Attempt 1, started')
    assert ', took ' in summary
    record = job.attempts[0]
    assert record['worker'] in text(attempt)
    assert record['thread'] is None or record['thread'] in text(attempt)
    assert 'An error occurred.' in text(attempt)
    assert attempt.find('details').has_attr('open')
    # Now it runs: a running attempt on top, the page refreshes itself.
    site.rp.jobsCollection.update_one({}, {'$set': {
        'retryTime': datetime.datetime(2000, 1, 1, tzinfo=UTC)}})
    assert site.rp.pullNextJob().__name__ == jobid
    transaction.commit()
    page = site.app.get('/remote/jobs/%s' % jobid)
    attempts = page.html.find(id='attempts').find_all('li',
                                                      recursive=False)
    assert [text(a.find(class_='status')) for a in attempts] == [
        'running', 'failed']
    assert 'running for' in text(attempts[0].find('summary'))
    assert 'Lease until' in text(attempts[0])
    assert page.html.find(attrs={'data-live': True})['data-live'] == '3'
    assert 'next checkpoint' in text(page.html.find(id='cancel-help'))
    assert page.html.find(id='job-failure').find('div') is None


def test_a_cancelled_job_after_a_failure_opens_its_latest_error(site):
    jobid, = site.addJobs('fatal', [None])
    site.process()
    site.rp.cancelJob(jobid, immediate=True)
    page = site.app.get('/remote/jobs/%s' % jobid)
    assert page.html.find(id='job-failure').find('div') is None
    item = page.html.find(id='job-errors').find('li')
    assert item.find('details').has_attr('open')


def test_a_page_the_script_fetches_keeps_the_flash_messages(site):
    jobid, = site.addJobs('echo', [None])
    site.post('/remote/jobs/%s/cancel' % jobid)
    fetched = site.app.get('/remote/jobs/%s' % jobid,
                           headers={'X-Requested-With': 'm01remote'})
    assert flash(fetched) == []
    assert flash(site.app.get('/remote/jobs/%s' % jobid)) == [
        'Job cancelled.']


def test_a_running_job_shows_its_progress_and_log(site):
    jobid, = site.addJobs('echo', [None])
    site.rp.pullNextJob()
    transaction.commit()
    now = site.rp.now()
    site.rp.jobsCollection.update_one({}, {'$set': {
        'progress': {'fraction': 0.4, 'message': '4 of <10> files',
                     'at': now},
        'log': ['[%s] line %d' % (now.isoformat(timespec='seconds'), i)
                for i in range(3)] + ['no stamp <b>']}})
    page = site.app.get('/remote/jobs/%s' % jobid)
    bar = page.html.find(id='progress-bar')
    assert (bar.name, bar['value'], bar['max']) == ('progress', '40', '100')
    assert text(page.html.find(id='progress-message')) == '4 of <10> files'
    lines = page.html.find(id='log-lines').find_all('li')
    # The newest last, each with its time as every time is shown.
    assert [line.find_all('span')[-1].get_text() for line in lines] == [
        'line 0', 'line 1', 'line 2', 'no stamp <b>']
    assert [shownTime(line) for line in lines[:3]] == [
        formatting.exact(now.replace(microsecond=0))] * 3
    # Every part the script swaps has an id.
    parts = page.html.find_all(attrs={'data-part': True})
    assert len(parts) >= 7 and all(part.get('id') for part in parts)


def test_cancel_retry_and_delete_a_job(site):
    jobid, = site.addJobs('echo', ['x'])
    page = site.app.get('/remote/jobs/%s' % jobid)
    assert 'retry' not in page.forms
    # Each asks first, as a delete does.
    page = confirm(page.forms['cancel']).follow()
    assert flash(page) == ['Job cancelled.']
    assert site.rp.getJobStatus(jobid) == 'cancelled'
    assert 'cancel' not in page.forms
    page = confirm(page.forms['retry']).follow()
    assert flash(page) == ['Job queued again.']
    assert site.rp.getJobStatus(jobid) == 'queued'
    page = confirm(page.forms['delete'])
    assert page.location.endswith('/remote/jobs')
    assert flash(page.follow()) == ['Job %s deleted.' % jobid]
    assert jobid not in site.rp.jobs
    site.app.get('/remote/jobs/%s' % jobid, status=404)


def test_an_action_on_a_job_that_changed_meanwhile_says_why(site):
    jobid, = site.addJobs('echo', ['x'])
    page = site.app.get('/remote/jobs/%s' % jobid)
    question = page.forms['cancel'].submit()
    site.process()    # completed while the question was open
    page = question.forms['confirm-form'].submit().follow()
    assert flash(page) == []
    assert 'only waiting, queued or processing jobs can be cancelled' in \
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
    assert onlyOurScript(page)
    page = site.app.get('/remote/jobs', {'name': script})
    assert script not in page.text
    assert onlyOurScript(page)


def onlyOurScript(page):
    """Whether the page's one script is the add-on's own file."""
    scripts = page.html.find_all('script')
    return len(scripts) == 1 and not scripts[0].string and \
        '/remote/m01remote.js?v=' in scripts[0]['src']


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
    assert onlyOurScript(page)
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
    page = confirm(form).follow()
    assert flash(page) == ['Job factory echo paused: its jobs wait.']
    assert page.html.find(id='paused-echo')
    assert site.rp.jobFactories.isPaused('echo')
    assert site.process() == 0
    form = [f for f in page.forms.values()
            if f.action.endswith('/factories/echo/resume')][0]
    page = confirm(form).follow()
    assert flash(page) == ['Job factory echo resumed.']
    assert not page.html.find(id='paused-echo')
    assert site.process() == 1
    site.post('/remote/factories/missing/pause', status=404)
    site.post('/remote/factories/echo/pause', token=False, status=400)
    site.anonymous.post('/remote/factories/echo/pause', status=403)


# workers

def buttonLinks(node):
    return {text(a): a['href'] for a in node.find_all('a', class_='button')}


def test_the_workers_page_lists_processes_and_controls_them(site):
    monitor = site.rp.monitor
    page = site.app.get('/remote/workers')
    assert page.html.find(id='processes') is None
    monitor.acquire('worker', threads=2)
    try:
        monitor.beat()
        page = site.app.get('/remote/workers')
        row = page.html.find(id='process-' + monitor.processId)
        assert text(row.find(class_='tag')) == 'worker'
        assert 'running' in text(row.find(class_='status'))
        assert '0 of 2 busy' in text(row)
        assert 'threads started in the process' in text(row)
        assert text(site.app.get('/remote/').html.find(
            id='workers-alive')) == '1'
        # Quiet, after a confirmation.
        links = buttonLinks(row)
        assert sorted(links) == ['Quiet…', 'Stop…']
        question = site.app.get(links['Quiet…'])
        assert 'Let process %s take no more jobs?' % monitor.processId in \
            text(question.html)
        assert not monitor.quiet
        page = question.forms['confirm-form'].submit().follow()
        assert flash(page)[0].startswith(
            'Process %s takes no more jobs' % monitor.processId)
        monitor.beat()
        assert monitor.quiet
        # A quiet process is resumed, not quieted again.
        row = site.app.get('/remote/workers').html.find(
            id='process-' + monitor.processId)
        assert text(row.find(class_='status')) == 'quiet'
        links = buttonLinks(row)
        assert sorted(links) == ['Resume…', 'Stop…']
        question = site.app.get(links['Resume…'].replace('resume', 'quiet'))
        assert 'there is nothing to quiet' in text(question.html)
        assert 'confirm-form' not in question.forms
        site.app.get(links['Resume…']).forms['confirm-form'].submit()
        monitor.beat()
        assert not monitor.quiet
        # Bad or unknown requests.
        for method in (site.app.get, site.post):
            method('/remote/control-worker',
                   {'process': monitor.processId, 'action': 'explode'},
                   status=400)
        question = site.app.get('/remote/control-worker',
                                {'process': 'nobody', 'action': 'stop'})
        assert 'There is no process nobody.' in text(question.html)
        page = site.post('/remote/control-worker',
                         {'process': 'nobody', 'action': 'stop'}).follow()
        assert flash(page, 'error') == ['There is no process nobody.']
        site.post('/remote/control-worker',
                  {'process': monitor.processId,
                   'action': 'stop'}, token=False, status=400)
        site.anonymous.post('/remote/control-worker', status=403)
        site.anonymous.get('/remote/control-worker', status=403)
    finally:
        monitor.release('worker')
    # Stopped, it is greyed and offers nothing; counted as stopped, not
    # as gone (it said goodbye).
    page = site.app.get('/remote/workers')
    row = page.html.find(id='process-' + monitor.processId)
    assert 'gone' in row['class'] and 'stopped' in text(row)
    assert row.find('a', class_='button') is None
    assert text(page.html.find(id='processes-summary')) == \
        '0 alive, 1 stopped.'


# scheduler

def schedulerRows(page):
    table = page.html.find('table', id='scheduler-items')
    return table.find('tbody').find_all('tr', recursive=False) \
        if table else []


def nextCall(row):
    return shownTime(row.find(class_='next-call'))


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
    assert 'every minute, counted from its last run' in text(row)
    assert nextCall(row) == item.nextCallTime.strftime(
        '%Y-%m-%d %H:%M:%S UTC')


def test_add_a_cron_item_from_fields(site):
    page = site.app.get('/remote/scheduler/add-cron')
    form = page.forms['scheduler-item']
    form['jobName'] = 'echo'
    form['minute'] = '0, 30'
    form['hour'] = '8-10'
    # The weekdays are ticked by name: no numbering to get wrong.
    for box in form.fields['dayOfWeek']:
        box.checked = box._value in ('Mon', 'Tue', 'Wed', 'Thu', 'Fri')
    page = form.submit().follow()
    item, = site.rp.scheduler.values()
    assert (item.minute, item.hour, item.dayOfWeek, item.timezone) == \
        ([0, 30], [8, 9, 10], [0, 1, 2, 3, 4], 'UTC')
    row, = schedulerRows(page)
    assert 'every 30 minutes from 08:00 to 10:59, Monday to Friday, in UTC' \
        in text(row)
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
    assert 'every day at 02:30, in Europe/Zurich' in text(row)
    assert text(row.find(title='Cron expression')) == '30 2 * * *'
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
    assert onlyOurScript(page)
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


def test_the_scheduler_says_when_items_run(site):
    from m01.remote.scheduler import Cron
    itemid = site.rp.addScheduler(Cron.fromExpression(
        '*/15 9-17 * * MON-FRI', jobName='echo', title='Office',
        timezone='Europe/Zurich'))
    page = site.app.get('/remote/scheduler')
    row, = schedulerRows(page)
    assert 'every 15 minutes from 09:00 to 17:59, Monday to Friday, in ' \
        'Europe/Zurich' in text(row)
    runs = row.find(id='runs-' + itemid)
    assert not runs.has_attr('open')
    assert len(runs.find('tbody').find_all('tr')) == 5
    # The item just saved shows its runs.
    page = site.app.get('/remote/scheduler', {'shown': itemid})
    assert page.html.find(id='runs-' + itemid).has_attr('open')
    # Its page too, local and in UTC.
    page = site.app.get('/remote/scheduler/%s' % itemid)
    card = page.html.find(id='item-schedule')
    assert text(card.find(id='item-words')).startswith('every 15 minutes')
    cells = card.find('tbody').find('tr').find_all('td')
    item = site.rp.scheduler[itemid]
    local = item.nextCallTime.astimezone(
        __import__('zoneinfo').ZoneInfo('Europe/Zurich'))
    assert text(cells[0]).startswith(local.strftime('%a %-d %b, %H:%M'))
    assert text(cells[1]) == item.nextCallTime.strftime('%H:%M')
    assert shownTime(cells[2]) == formatting.exact(item.nextCallTime)


def test_a_daylight_saving_day_is_noted(site, monkeypatch):
    from m01.remote.scheduler import Cron
    site.rp.now.clock = lambda: datetime.datetime(2026, 3, 27, 12, tzinfo=UTC)
    site.rp.scheduler.clock = site.rp.now.clock
    itemid = site.rp.addScheduler(Cron.fromExpression(
        '30 2 * * *', jobName='echo', timezone='Europe/Zurich'))
    page = site.app.get('/remote/scheduler/%s' % itemid)
    notes = [text(note) for note in page.html.select('#item-schedule .dst')]
    assert len(notes) == 1
    assert notes[0].startswith('The clocks change this day (UTC+01:00 to '
                               'UTC+02:00). Local times from 02:00 to 02:59 '
                               'do not exist')


def test_the_last_run_links_to_its_job(site):
    from m01.remote.scheduler import Cron, Delay
    cron = site.rp.addScheduler(Cron.fromExpression(
        '*/5 * * * *', jobName='echo', title='Five'))
    due = site.rp.scheduler[cron].nextCallTime
    row = site.app.get('/remote/scheduler').html.find(id='item-' + cron)
    last = row.find('td', attrs={'data-label': 'Last run'})
    assert 'no job for that run' in text(last)
    jobid = site.rp.scheduleNextJob(callTime=due)
    assert jobid is not None
    transaction.commit()
    delay = site.rp.addScheduler(Delay({'jobName': 'echo', 'delay': 60}))
    page = site.app.get('/remote/scheduler')
    last = page.html.find(id='item-' + cron).find(
        'td', attrs={'data-label': 'Last run'})
    assert shownTime(last) == formatting.exact(due)
    assert last.find('a')['href'].endswith('/remote/jobs/' + jobid)
    assert text(last.find(class_='status')) == 'queued'
    # A Delay item that has not run says so.
    last = page.html.find(id='item-' + delay).find(
        'td', attrs={'data-label': 'Last run'})
    assert text(last) == 'no run since it was added or changed'


def test_pause_all_and_resume_all_ask_first(site):
    delay, cron = addItems(site)
    page = site.app.get('/remote/scheduler')
    assert 'resume-all' not in page.forms
    question = page.forms['pause-all'].submit()
    assert 'Deactivate all 2 active scheduler items?' in text(question.html)
    assert all(item.active for item in site.rp.scheduler.values())
    page = confirm(page.forms['pause-all']).follow()
    assert flash(page) == ['2 scheduler items deactivated.']
    assert not any(item.active for item in site.rp.scheduler.values())
    assert all(item.nextCallTime is None
               for item in site.rp.scheduler.values())
    assert 'pause-all' not in page.forms
    page = site.app.get('/remote/scheduler/pause-all')
    assert 'No scheduler item is active.' in text(page.html)
    page = site.app.get('/remote/scheduler')
    page = confirm(page.forms['resume-all']).follow()
    assert flash(page) == ['2 scheduler items activated.']
    assert all(item.active and item.nextCallTime is not None
               for item in site.rp.scheduler.values())
    site.post('/remote/scheduler/pause-all', token=False, status=400)
    site.anonymous.post('/remote/scheduler/pause-all', status=403)
    assert all(item.active for item in site.rp.scheduler.values())


def test_the_cron_form_helps_with_weekdays_and_time_zones(site):
    page = site.app.get('/remote/scheduler/add-cron')
    expression = text(page.html.find(id='expression-help'))
    assert '0 (or 7) is Sunday, 1 Monday' in expression
    # The weekdays are ticked by their names: the expression's numbering
    # is the only one the form shows.
    weekdays = page.html.find(id='item-dayOfWeek')
    assert [box['value'] for box in weekdays.find_all('input')] == [
        'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun']
    assert 'Monday is 0' not in text(page.html)
    assert 'counts from Monday' not in text(page.html)
    assert page.html.find(id='item-timezone')['list'] == 'timezones'
    zones = [option['value'] for option in
             page.html.find(id='timezones').find_all('option')]
    assert 'Europe/Zurich' in zones and 'America/New_York' in zones
    assert not [zone for zone in zones if zone.startswith('posix')]
    assert site.app.get('/remote/scheduler/add-delay').html.find(
        id='timezones') is None


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
    question = page.forms[_formIndex(page, cron, 'delete')].submit()
    assert 'Delete the scheduler item Five for good?' in \
        text(question.html)
    assert len(site.rp.scheduler.values()) == 2
    page = confirm(page.forms[_formIndex(page, cron, 'delete')]).follow()
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


# the stylesheet and the script

@pytest.mark.parametrize('name, type', [('m01remote.css', 'text/css'),
                                        ('m01remote.js', 'text/javascript')])
def test_the_stylesheet_and_the_script_are_served_to_anyone(site, name,
                                                            type):
    page = site.app.get('/remote/')
    link = page.html.find(href=re.compile(name)) or \
        page.html.find(src=re.compile(name))
    url = link.get('href') or link.get('src')
    response = site.anonymous.get(url)
    assert response.content_type == type
    assert response.headers['Cache-Control'].startswith('public')
    # Without the digest (an older page's link), nothing is cached.
    response = site.anonymous.get('/remote/' + name)
    assert response.headers['Cache-Control'] == 'no-store'
    assert response.body
    site.anonymous.post('/remote/' + name, status=404)


def test_no_page_has_inline_styles_or_scripts(site):
    jobid, = site.addJobs('echo', [None])
    for url in PAGES + ('/remote/jobs/%s' % jobid, '/remote/nothing'):
        page = site.app.get(url, status='*')
        assert page.html.find(style=True) is None, url
        assert page.html.find('style') is None, url
        assert onlyOurScript(page), url
    csp = page.headers['Content-Security-Policy']
    assert "script-src 'self'" in csp and 'unsafe-inline' not in csp
