"""The pages under hostile input, on both stores: every bad request is a
4xx, nothing stored changes, and the answer stays small.

The test site is built as in ``test_views``; the login, logout and
``came_from`` cases are in ``test_demo``.
"""
import pytest
import webtest

from m01.remote.scheduler import Cron, Delay
from m01.remote.views.security import SECURITY_HEADERS
from test_views import Site, makeApp

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


def test_error_pages_keep_the_layout(site):
    for url, status in (('/remote/nothing', 404), ('/remote/jobs?page=x',
                                                   400)):
        page = bounded(site.app.get(url, status=status))
        assert page.html.find('nav') is not None
        assert page.html.find('h1').get_text().startswith(str(status))


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
