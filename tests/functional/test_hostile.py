"""The pages under hostile input, on both stores: every bad request is a
4xx, nothing stored changes, and the answer stays small.

The test site is built as in ``test_views``; the login, logout and
``came_from`` cases are in ``test_demo``.
"""
import pytest
import transaction
import webtest

from m01.remote.scheduler import Cron, Delay
from m01.remote.views.security import SECURITY_HEADERS
from test_views import Site, fieldError, flash, makeApp

#: No page or error may be larger, whatever is stored.
MAX_PAGE = 2 * 1024 * 1024
MISSING = '0123456789abcdef01234567'


@pytest.fixture
def site(store_uri, database):
    wsgi = makeApp(store_uri, database.name)
    site = Site(wsgi)
    yield site
    site.rp.stopProcessor(5)
    site.rp.stopScheduler(5)


def stored(rp):
    """Everything the processor stores, to compare before and after."""
    return {name: sorted(collection.find(), key=lambda d: str(d['_id']))
            for name, collection in (
                ('factories', rp.factoriesCollection),
                ('jobs', rp.jobsCollection),
                ('scheduler', rp.scheduler.collection))}


def bounded(response):
    assert len(response.body) < MAX_PAGE
    return response


@pytest.fixture
def ids(site):
    """A queued job, a Delay and a Cron item."""
    jobid, = site.addJobs('echo', [{'a': 1}])
    delay = site.rp.addScheduler(Delay({'jobName': 'echo', 'delay': 60,
                                        'title': 'Delay'}))
    cron = site.rp.addScheduler(Cron.fromExpression(
        '*/5 * * * *', jobName='echo', title='Cron'))
    return {'job': jobid, 'delay': delay, 'cron': cron}


# security headers

@pytest.mark.parametrize('url, status', [
    ('/remote/', 200), ('/remote/jobs', 200), ('/remote/nothing', 404),
    ('/remote/jobs?page=x', 400), ('/remote/jobs/%ff', 400)])
def test_every_response_under_the_route_has_the_security_headers(
        site, url, status):
    response = site.app.get(url, status=status)
    for name, value in SECURITY_HEADERS:
        assert response.headers[name] == value
    assert "frame-ancestors 'none'" in \
        response.headers['Content-Security-Policy']


def test_redirects_and_refusals_have_them_too(site):
    response = site.post('/remote/start-scheduler')
    assert response.headers['X-Frame-Options'] == 'DENY'
    site.rp.stopScheduler(5)
    response = site.anonymous.get('/remote/', status=403)
    assert response.headers['X-Frame-Options'] == 'DENY'


def test_the_site_outside_the_route_is_left_alone(store_uri, database):
    from pyramid.config import Configurator
    from pyramid.response import Response

    wsgi = makeApp(store_uri, database.name)
    config = Configurator(registry=wsgi.registry)
    config.add_route('home', '/home')
    config.add_view(lambda request: Response('home'), route_name='home')
    config.commit()
    app = webtest.TestApp(config.make_wsgi_app())
    response = app.get('/home')
    for name, _value in SECURITY_HEADERS:
        assert name not in response.headers
    # Its own undecodable URLs stay its own business.
    with pytest.raises(UnicodeDecodeError):
        app.get('/home%ff')


# malformed requests

@pytest.mark.parametrize('url', [
    '/remote/jobs/%ff', '/remote/%ff', '/remote%ff', '/remote/jobs?name=%ff',
    '/remote/jobs?page=%ff', '/remote/jobs?%ff=1',
    '/remote/scheduler/%c3%28/edit'])
def test_undecodable_urls_are_bad_requests(site, ids, url):
    before = stored(site.rp)
    page = bounded(site.app.get(url, status=400))
    assert 'not valid UTF-8' in page.text
    # In the pages' layout.
    assert page.html.find('nav') is not None
    # WebTest's cookie jar cannot read such a URL: no cookie then (the
    # URL is refused before the token would be read).
    cookieless = webtest.TestApp(site.wsgi,
                                 extra_environ={'REMOTE_USER': 'admin'})
    bounded(cookieless.post(url, {'name': 'echo'}, status=400))
    assert stored(site.rp) == before


def test_an_undecodable_form_is_a_bad_request(site, ids):
    before = stored(site.rp)
    body = ('name=echo&input=%ff&csrf_token=' + site.token()).encode()
    bounded(site.app.post('/remote/jobs/add', body, status=400,
                          content_type='application/x-www-form-urlencoded'))
    assert stored(site.rp) == before


def test_a_body_too_large_is_refused_unread(site, monkeypatch):
    from m01.remote.views import security
    monkeypatch.setattr(security, 'MAX_REQUEST_BODY', 1000)
    page = site.post('/remote/jobs/add', {'name': 'echo',
                                          'input': '1' * 2000}, status=413)
    assert 'at most 1000 are read' in page.text
    assert len(site.rp.jobs) == 0


def inLayout(page, status):
    """Whether an error page is in the pages' layout: their navigation,
    stylesheet and script, its status as the heading."""
    nav = page.html.find('nav', attrs={'aria-label': 'Sections'})
    return (nav is not None and len(nav.find_all('a')) >= 6
            and page.html.find('link', rel='stylesheet') is not None
            and page.html.find('script', src=True) is not None
            and page.html.find('h1').get_text().startswith(str(status)))


@pytest.mark.parametrize('method, path, status', [
    ('GET', 'nothing', 404),
    ('GET', 'jobs/%s' % MISSING, 404),
    ('GET', 'jobs/not-an-id', 404),
    ('GET', 'jobs/{job}/nothing', 404),
    ('GET', 'jobs/{job}/start', 404),
    ('GET', 'scheduler/%s' % MISSING, 404),
    ('GET', 'scheduler/{cron}/nothing/more', 404),
    ('GET', 'factories/gone', 404),
    ('GET', 'static/m01remote.css', 404),
    ('GET', 'jobs?page=x', 400),
    ('GET', 'jobs?status=bogus', 400),
    ('GET', 'jobs?name=' + 'n' * 201, 400),
    ('GET', 'jobs/bulk?action=delete&status=processing&all=yes', 400),
    ('GET', '?span=year', 400),
    ('GET', 'jobs/%ff', 400),                    # not UTF-8
    ('POST', 'jobs/add', 400),                   # no CSRF token
    ('POST', 'scheduler/{cron}/delete', 400),    # no CSRF token
    ('POST', 'scheduler/pause-all', 400),        # no CSRF token
])
def test_every_error_page_under_the_route_keeps_the_layout(
        site, ids, method, path, status):
    url = '/remote/' + path.format(**ids)
    if method == 'GET':
        page = site.app.get(url, status=status)
    else:
        page = site.app.post(url, {'name': 'echo'}, status=status)
    assert inLayout(bounded(page), status), url


def test_an_error_page_shown_to_anyone_is_styled(site):
    page = site.anonymous.get('/remote/jobs/%ff', status=400)
    assert inLayout(page, 400)
    # Its stylesheet needs no permission.
    site.anonymous.get(page.html.find('link', rel='stylesheet')['href'],
                       status=200)


def test_refused_bodies_keep_the_layout(site, monkeypatch):
    from m01.remote.views import security
    monkeypatch.setattr(security, 'MAX_REQUEST_BODY', 1000)
    page = site.post('/remote/jobs/add', {'input': '1' * 2000}, status=413)
    assert inLayout(page, 413)
    page = site.app.post('/remote/jobs/add', b'x', status=400,
                         content_type='multipart/form-data')
    assert inLayout(page, 400)


# permission before lookup

@pytest.mark.parametrize('path', [
    'jobs/{job}', 'jobs/%s' % MISSING, 'jobs/not-an-id',
    'jobs/{job}/cancel', 'jobs/%s/cancel' % MISSING,
    'jobs/{job}/input.json', 'jobs/%s/input.json' % MISSING,
    'scheduler/{delay}', 'scheduler/%s' % MISSING,
    'scheduler/{cron}/edit', 'scheduler/%s/edit' % MISSING,
    'scheduler/{delay}/run', 'scheduler/nope/run', 'factories/echo',
    'factories/gone'])
def test_anonymous_answers_do_not_depend_on_what_exists(site, ids, path):
    url = '/remote/' + path.format(**ids)
    before = stored(site.rp)
    site.anonymous.get(url, status=403)
    site.anonymous.post(url, {'active': '0'}, status=403)
    assert stored(site.rp) == before


def test_anonymous_lookups_never_reach_the_store(site, ids, monkeypatch):
    def unreachable(*args, **kw):
        raise AssertionError('looked up for an anonymous request')
    monkeypatch.setattr(type(site.rp), 'getJobDocument', unreachable)
    monkeypatch.setattr(type(site.rp.scheduler), '__getitem__', unreachable)
    site.anonymous.get('/remote/jobs/%s' % ids['job'], status=403)
    site.anonymous.get('/remote/scheduler/%s' % ids['delay'], status=403)


# JSON: depth and size, on every form that takes it

ABYSS = 5000


def deepText(depth):
    return '[' * depth + '0' + ']' * depth


def nestedObjects(depth, leaf=0):
    for _level in range(depth):
        leaf = {'a': leaf}
    return leaf


@pytest.mark.parametrize('depth', [65, 500, ABYSS])
def test_add_job_refuses_json_nested_too_deep(site, ids, depth):
    before = stored(site.rp)
    page = bounded(site.post('/remote/jobs/add', {
        'name': 'echo', 'input': deepText(depth)}, status=400))
    assert 'nested more than 64 levels deep' in fieldError(page, 'input')
    assert stored(site.rp) == before


def test_the_job_of_the_issue_is_refused_at_once(site, ids):
    # 400 KB: an array 300 deep around 200,000 zeros.
    text = '[' * 300 + ','.join(['0'] * 200000) + ']' * 300
    before = stored(site.rp)
    page = bounded(site.post('/remote/jobs/add', {'name': 'echo',
                                                  'input': text},
                             status=400))
    assert 'nested more than 64 levels deep' in fieldError(page, 'input')
    assert stored(site.rp) == before


@pytest.mark.parametrize('kind, fields', [
    ('delay', {'delay': '60'}), ('cron', {'expression': '* * * * *'})])
@pytest.mark.parametrize('depth', [65, 500, ABYSS])
def test_scheduler_forms_refuse_json_nested_too_deep(site, ids, kind,
                                                     fields, depth):
    before = stored(site.rp)
    for url in ('/remote/scheduler/add-%s' % kind,
                '/remote/scheduler/%s/edit' % ids[kind]):
        page = bounded(site.post(url, dict(fields, jobName='echo',
                                           input=deepText(depth)),
                                 status=400))
        assert 'nested more than 64 levels deep' in fieldError(page,
                                                               'input')
    assert stored(site.rp) == before


def test_scheduler_input_has_the_16_mb_limit(site, ids):
    before = stored(site.rp)
    text = '"%s"' % ('x' * (16 * 1024 * 1024))
    page = bounded(site.post('/remote/scheduler/add-delay', {
        'jobName': 'echo', 'delay': '60', 'input': text}, status=400))
    assert 'at most 16777216' in fieldError(page, 'input')
    # Too long to be shown again.
    assert page.forms['scheduler-item']['input'].value == ''
    assert stored(site.rp) == before


def test_scheduler_input_that_bson_cannot_store(site, ids, monkeypatch):
    # Text within its limit, a value larger than a job's (made small).
    from m01.remote import limits
    monkeypatch.setattr(limits, 'MAX_JOB_DOCUMENT', 1024 * 1024)
    before = stored(site.rp)
    page = bounded(site.post('/remote/scheduler/add-delay', {
        'jobName': 'echo', 'delay': '60',
        'input': '"%s"' % ('x' * 1024 * 1024)}, status=400))
    assert 'a job document must stay under' in fieldError(page, 'input')
    assert stored(site.rp) == before


# cron ranges, lists and time zones

@pytest.mark.parametrize('fields, field, message', [
    ({'minute': '0-10000000'}, 'minute', 'out of range 0..59'),
    ({'minute': '0-%d' % 10 ** 12}, 'minute', 'out of range 0..59'),
    ({'minute': '0-30000000'}, 'minute', 'out of range 0..59'),
    ({'hour': '5-%d' % 10 ** 12}, 'hour', 'out of range 0..23'),
    ({'minute': ','.join(['1'] * 101)}, 'minute',
     'has 201 characters; at most 200'),
    ({'expression': '0-%d * * * *' % 10 ** 12}, 'expression',
     'out of range 0..59'),
    ({'expression': ' '.join(['*/1'] * 300)}, 'expression',
     'has 1199 characters'),
    ({'timezone': 'America'}, 'timezone', 'not a known IANA timezone'),
    ({'timezone': 'x' * 5000}, 'timezone', 'not a known IANA timezone'),
    ({'timezone': '../../etc/passwd'}, 'timezone', 'not a known IANA'),
    ({'timezone': 'Europe/\x00Zurich'}, 'timezone', 'not a known IANA'),
])
def test_cron_forms_refuse_values_past_the_limits(site, ids, fields, field,
                                                  message):
    before = stored(site.rp)
    for url in ('/remote/scheduler/add-cron',
                '/remote/scheduler/%s/edit' % ids['cron']):
        page = bounded(site.post(url, dict(fields, jobName='echo'),
                                 status=400))
        assert message in fieldError(page, field)
        assert len(fieldError(page, field)) < 300
    assert stored(site.rp) == before


# text fields and flash messages

TITLE = 't' * 5000


@pytest.mark.parametrize('kind, fields', [
    ('delay', {'delay': '60'}), ('cron', {'expression': '* * * * *'})])
def test_a_5000_character_title_is_refused_beside_the_field(site, ids,
                                                           kind, fields):
    before = stored(site.rp)
    for url in ('/remote/scheduler/add-%s' % kind,
                '/remote/scheduler/%s/edit' % ids[kind]):
        page = bounded(site.post(url, dict(fields, jobName='echo',
                                           title=TITLE), status=400))
        assert fieldError(page, 'title') == \
            'title has 5000 characters; at most 200 are accepted.'
    for name, value in (('description', 'd' * 5000),
                        ('jobName', 'j' * 5000)):
        page = bounded(site.post('/remote/scheduler/add-%s' % kind, dict(
            fields, **dict({'jobName': 'echo'}, **{name: value})),
            status=400))
        assert len(fieldError(page, name)) < 300
    assert stored(site.rp) == before


def sessionCookie(site):
    return site.app.cookies.get('session', '')


@pytest.mark.parametrize('action', ['toggle', 'run', 'delete'])
def test_every_scheduler_action_on_a_long_title_fits_its_message(
        site, action):
    itemid = site.rp.addScheduler(Delay({'jobName': 'echo', 'delay': 60,
                                         'title': 'é' * 200}))
    page = site.post('/remote/scheduler/%s/%s' % (itemid, action),
                     {'active': '0'}).follow()
    message, = flash(page)
    assert 'é' * 79 + '…' in message and 'é' * 80 not in message
    assert len(sessionCookie(site)) < 4000


def test_unread_flash_messages_never_overflow_the_session(site):
    for number in range(50):
        itemid = site.rp.addScheduler(Delay({
            'jobName': 'echo', 'delay': 60, 'title': 'é' * 200}))
        site.post('/remote/scheduler/%s/toggle' % itemid, {'active': '0'})
        assert len(sessionCookie(site)) < 4000, number
    messages = flash(site.app.get('/remote/'))
    assert 1 <= len(messages) < 50
    assert messages[-1].endswith('… is now inactive.')


def test_a_factory_filter_longer_than_any_name_is_a_bad_request(site):
    page = bounded(site.app.get('/remote/jobs', {'name': 'n' * 201},
                                status=400))
    assert 'a job factory name has at most 200' in page.text
    page = site.app.get('/remote/scheduler/add-delay',
                        {'jobName': 'n' * 201})
    assert 'n' * 201 not in page.text


def test_messages_quote_long_names_shortened(site):
    page = bounded(site.post('/remote/jobs/add', {'name': 'n' * 5000,
                                                  'input': ''},
                             status=400))
    assert len(fieldError(page, 'name')) < 120


# bounded pages and downloads

def test_a_huge_job_has_a_small_page_and_downloads_whole(site):
    # Formatted as the page used to, its input and output take 2.4 MB
    # each.
    value = nestedObjects(60, [0] * 20000)
    jobid, = site.addJobs('echo', [value])
    site.process()
    page = bounded(site.app.get('/remote/jobs/%s' % jobid))
    assert len(page.body) < 300 * 1024
    for name in ('input', 'output'):
        shown = page.html.find(id='job-%s' % name).get_text()
        assert 60 * 1024 < len(shown) <= 64 * 1024
        assert 'Only the first' in page.html.find(
            id='job-%s-download' % name).get_text()
        download = page.click(href='%s.json' % name, index=0)
        assert download.content_type == 'application/json'
        assert download.headers['Content-Disposition'] == \
            'attachment; filename="job-%s-%s.json"' % (jobid, name)
        assert download.json == value


def test_a_small_job_is_shown_whole(site):
    jobid, = site.addJobs('echo', [{'a': 1}])
    page = site.app.get('/remote/jobs/%s' % jobid)
    assert 'Only the first' not in page.text
    assert site.app.get('/remote/jobs/%s/input.json' % jobid).json == \
        {'a': 1}
    assert site.app.get('/remote/jobs/%s/output.json' % jobid).json is None


def test_many_long_errors_have_a_small_page(site):
    jobid, = site.addJobs('echo', [None])
    errors = ['<error %d>' % i + 'e' * 100000 for i in range(50)]
    site.rp.jobsCollection.update_one({}, {'$set': {
        'status': 'error', 'errors': errors,
        'tracebacks': ['t' * 100000] * 50}})
    page = bounded(site.app.get('/remote/jobs/%s' % jobid))
    assert len(page.body) < 300 * 1024
    items = page.html.find(id='job-errors').find_all('li', recursive=False)
    assert len(items) == 10
    # Newest first, numbered as stored; the page leads with the latest.
    assert page.html.find(id='job-errors')['start'] == '50'
    assert page.html.find(id='job-errors').has_attr('reversed')
    assert '<error 49>' in items[0].get_text()
    assert '<error 40>' in items[-1].get_text()
    assert page.html.find(id='failure-message').get_text().startswith(
        '<error 49>')
    assert 'The latest 10 of 50 errors are shown.' in ' '.join(
        page.html.find(id='job-errors-download').get_text().split())
    download = site.app.get('/remote/jobs/%s/errors.json' % jobid).json
    assert [error['error'] for error in download] == errors
    overview = bounded(site.app.get('/remote/'))
    assert len(overview.body) < 100 * 1024


def test_a_long_scheduler_input_is_kept_when_edited(site):
    value = nestedObjects(10, ['x' * 1000] * 100)
    itemid = site.rp.addScheduler(Delay({'jobName': 'echo', 'delay': 60,
                                         'input': value}))
    page = bounded(site.app.get('/remote/scheduler/%s/edit' % itemid))
    assert len(page.body) < 100 * 1024
    form = page.forms['scheduler-item']
    assert form['input'].value == ''
    assert site.app.get(
        '/remote/scheduler/%s/input.json' % itemid).json == value
    form['delay'] = '90'
    form.submit().follow()
    item = site.rp.scheduler[itemid]
    assert (item.delay, item.input) == (90, value)
    page = site.app.get('/remote/scheduler/%s/edit' % itemid)
    form = page.forms['scheduler-item']
    form['input'] = '{"new": 1}'
    form.submit().follow()
    assert site.rp.scheduler[itemid].input == {'new': 1}


# deleting a processing job

def test_a_processing_job_cannot_be_deleted_from_its_page(site):
    jobid, = site.addJobs('echo', [None])
    site.rp.pullNextJob()
    transaction.commit()
    assert site.rp.getJobStatus(jobid) == 'processing'
    page = site.app.get('/remote/jobs/%s' % jobid)
    assert 'delete' not in page.forms
    page = site.app.get('/remote/jobs/%s/delete' % jobid)
    assert 'cancel it before deleting it' in page.text
    assert 'confirm-form' not in page.forms
    before = stored(site.rp)
    page = site.post('/remote/jobs/%s/delete' % jobid).follow()
    assert flash(page, 'error') == [
        'Job %s is processing; cancel it before deleting it.' % jobid]
    assert stored(site.rp) == before


@pytest.mark.parametrize('content_type', [
    'multipart/form-data', 'multipart/form-data; boundary=',
    'multipart/form-data; boundary=x'])
def test_a_form_that_cannot_be_parsed_is_a_bad_request(site, ids,
                                                       content_type):
    # Found by the fuzz test: a multipart body without its boundary. Sent
    # as it is (WebTest would write a proper one).
    import webob
    token = site.token()
    before = stored(site.rp)
    request = webob.Request.blank(
        '/remote/jobs/add', method='POST', body=b'csrf_token=' +
        token.encode(), environ={'REMOTE_USER': 'admin'})
    request.headers['Content-Type'] = content_type
    request.headers['Cookie'] = '; '.join(
        '%s=%s' % item for item in site.app.cookies.items())
    response = bounded(request.get_response(site.wsgi))
    assert response.status_int == 400
    # An empty multipart form has no token.
    assert 'The form cannot be read.' in response.text or \
        'Invalid token' in response.text
    assert stored(site.rp) == before
