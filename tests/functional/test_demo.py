"""The demo site (``pserve development.ini``): welcome page, login, the
pages behind it, its jobs and scheduler items."""
import configparser
import os

import m01remote_demo as demo
import pytest
import transaction
from pyramid.exceptions import ConfigurationError
from webtest import TestApp

from m01.remote import stop_threads
from m01.remote.interfaces import IRemoteProcessor

HERE = os.path.dirname(__file__)
SETTINGS = {
    'm01.remote.uri': 'mongomock://',
    'demo.user': 'admin',
    'demo.password': 's3cret',
    'demo.secret': 'test-secret',
}


@pytest.fixture
def app():
    wsgi = demo.main({}, **SETTINGS)
    yield TestApp(wsgi)
    transaction.abort()
    stop_threads(wsgi.registry.getUtility(IRemoteProcessor), timeout=5)


def login(app, password='s3cret', came_from='/remote', status=303):
    form = app.get('/login', {'came_from': came_from}).forms[0]
    form['login'] = 'admin'
    form['password'] = password
    return form.submit(status=status)


def test_anonymous_welcome_page(app):
    response = app.get('/', status=200)
    assert 'The management pages' in response.text
    assert 'http://localhost/remote' in response.text
    assert 'Log in' in response.text


def test_the_pages_need_a_login(app):
    response = app.get('/remote', status=303)
    assert response.location == \
        'http://localhost/login?came_from=%2Fremote'


def test_a_long_url_is_not_kept_for_after_the_login(app):
    response = app.get('/remote/jobs', {'name': 'x' * 5000}, status=303)
    assert response.location == \
        'http://localhost/login?came_from=%2Fremote%2Fjobs'
    response = app.get('/remote/jobs/' + 'x' * 5000, status=303)
    assert response.location == 'http://localhost/login'


def test_login_opens_the_pages(app):
    response = login(app, came_from='/remote/jobs')
    assert response.location == 'http://localhost/remote/jobs'
    assert app.get('/remote', status=200)
    assert 'Logged in as admin' in app.get('/').text


def test_the_pages_show_the_user_and_log_out(app):
    login(app)
    page = app.get('/remote/')
    assert page.html.find(id='user').find(
        class_='user-name').get_text(strip=True) == 'admin'
    logout = page.forms['logout']
    assert logout.action == '/logout'
    assert logout.submit(status=303).location == 'http://localhost/'
    app.get('/remote', status=303)


@pytest.mark.parametrize('path', ['/', '/login'])
def test_the_demos_pages_have_the_pages_look(app, path):
    page = app.get(path)
    assert page.html.find('meta', attrs={'name': 'viewport'})[
        'content'] == 'width=device-width, initial-scale=1'
    assert page.html.find('link', rel='stylesheet')['href'].endswith(
        '/remote/m01remote.css')
    assert page.html.find('header').find(class_='brand')
    if path == '/login':
        hint = page.html.find(id='login-hint').get_text(' ', strip=True)
        assert 'admin / admin with development.ini' in ' '.join(hint.split())
        assert page.html.find(id='login')['class'] == ['card']
        assert [label.get_text(strip=True) for label in
                page.html.find_all('label')] == ['User', 'Password']


def test_a_wrong_password_is_refused(app):
    response = login(app, password='guess', status=400)
    assert 'Wrong user or password.' in response.text
    app.get('/remote', status=303)


def test_a_login_without_csrf_token_is_refused(app):
    app.post('/login', {'login': 'admin', 'password': 's3cret'},
             status=400)
    app.get('/remote', status=303)


def test_login_never_redirects_to_another_site(app):
    response = login(app, came_from='//evil.example.com/')
    assert response.location == 'http://localhost/remote'


def test_logout(app):
    login(app)
    form = app.get('/').forms[0]
    assert form.action == 'http://localhost/logout'
    form.submit(status=303)
    app.get('/remote', status=303)


def test_a_saved_ticket_stops_working_at_logout(app):
    login(app)
    saved = app.cookies['auth_tkt']
    app.get('/remote', status=200)
    app.get('/').forms[0].submit(status=303)
    app.set_cookie('auth_tkt', saved)
    response = app.get('/remote', status=303)
    assert response.location.startswith('http://localhost/login')
    # Logging in again gives a ticket that works.
    login(app)
    app.get('/remote', status=200)


def test_the_ticket_expires(app, monkeypatch):
    import time

    from pyramid.interfaces import ISecurityPolicy
    login(app)
    helper = app.app.registry.getUtility(ISecurityPolicy).helpers[False]
    assert (helper.timeout, helper.reissue_time) == (
        demo.LOGIN_TIMEOUT, demo.LOGIN_REISSUE)
    monkeypatch.setattr(helper, 'now', time.time() + demo.LOGIN_TIMEOUT
                        + 1)
    app.get('/remote', status=303)


def csrfCookie(app):
    return app.cookies.get('csrf_token')


def test_the_csrf_token_is_renewed_at_login_and_logout(app):
    app.get('/login')
    before = csrfCookie(app)
    login(app)
    after_login = csrfCookie(app)
    assert before and after_login and after_login != before
    app.get('/').forms[0].submit(status=303)
    assert csrfCookie(app) not in (None, before, after_login)
    # A form shown before the login cannot be replayed.
    app.post('/logout', {'csrf_token': before}, status=400)


@pytest.mark.parametrize('came_from', [
    '/remote\r\nSet-Cookie: x=1', '/remote\n', '/remote\x00x',
    '/\\evil.example.com/', '//evil.example.com', 'http://evil.example.com',
    '/remote/é', '/' + 'x' * 5000, ' /remote'])
def test_unsafe_came_from_falls_back_to_the_pages(app, came_from):
    response = login(app, came_from=came_from)
    assert response.location == 'http://localhost/remote'
    # Posted as it is, not through the form's hidden field.
    app.get('/').forms[0].submit(status=303)
    response = app.post('/login', {
        'login': 'admin', 'password': 's3cret', 'came_from': came_from,
        'csrf_token': csrfCookie(app)}, status=303)
    assert response.location == 'http://localhost/remote'


def test_a_local_came_from_is_followed(app):
    response = login(app, came_from='/remote/jobs?status=error&page=2')
    assert response.location == \
        'http://localhost/remote/jobs?status=error&page=2'


def test_anonymous_answers_do_not_tell_what_exists(app):
    from m01.remote.scheduler import Delay
    rp = app.app.registry.getUtility(IRemoteProcessor)
    jobid = rp.addJob('echo', 'hi', immediate=True)
    itemid = rp.addScheduler(Delay({'jobName': 'echo', 'delay': 60}))
    missing = '0123456789abcdef01234567'
    for known, path in ((jobid, '/remote/jobs/%s'),
                        (jobid, '/remote/jobs/%s/cancel'),
                        (itemid, '/remote/scheduler/%s/edit')):
        found = app.get(path % known, status=303)
        assert found.location.startswith('http://localhost/login')
        lost = app.get(path % missing, status=303)
        assert lost.location == found.location.replace(known, missing)
        app.post(path % known, status=303)
        app.post(path % missing, status=303)
    assert rp.getJobStatus(jobid) == 'queued'


@pytest.mark.parametrize('url', ['/%ff', '/login%ff', '/remote/jobs/%ff',
                                 '/login?came_from=%ff'])
def test_undecodable_urls_are_bad_requests(app, url):
    app.get(url, status=400)


def unparsable_form(path, cookies=None):
    import webob
    request = webob.Request.blank(path, method='POST', body=b'login=x')
    request.headers['Content-Type'] = 'multipart/form-data'
    if cookies:
        request.headers['Cookie'] = '; '.join(
            '%s=%s' % item for item in cookies.items())
    return request


@pytest.mark.parametrize('path', ['/login', '/logout'])
def test_a_form_that_cannot_be_parsed_is_a_bad_request(app, path):
    assert unparsable_form(path).get_response(app.app).status_int == 400


def test_a_signed_in_form_that_cannot_be_parsed_is_a_bad_request(app):
    login(app)
    request = unparsable_form('/remote/jobs/add', app.cookies)
    assert request.get_response(app.app).status_int == 400


def test_an_anonymous_form_under_the_route_is_never_parsed(app,
                                                           monkeypatch):
    # Refused for its permission (the login) before its body is read.
    import webob.request
    parsed = []
    monkeypatch.setattr(webob.request.BaseRequest, 'POST', property(
        lambda self: parsed.append(self.path) or webob.multidict.NoVars()))
    response = unparsable_form('/remote/jobs/add').get_response(app.app)
    assert response.status_int == 303
    assert '/login' in response.location
    assert parsed == []


def test_the_user_is_granted_only_the_management_permission(app):
    from pyramid.interfaces import ISecurityPolicy
    from pyramid.request import Request
    login(app)
    cookie = app.cookies['auth_tkt']
    request = Request.blank('/', headers={'Cookie': 'auth_tkt=%s' % cookie})
    request.registry = app.app.registry
    policy = app.app.registry.getUtility(ISecurityPolicy)
    assert policy.permits(request, None, 'm01.remote.manage')
    assert not policy.permits(request, None, 'edit')
    assert not policy.permits(Request.blank('/'), None, 'm01.remote.manage')


def test_demo_jobs_and_scheduler_items(app):
    rp = app.app.registry.getUtility(IRemoteProcessor)
    assert sorted(rp.jobFactories.keys()) == ['echo', 'fail', 'sleep',
                                              'steps']
    assert sorted(item.title for item in rp.scheduler.values()) == \
        ['echo every minute', 'sleep every five minutes']
    echo = rp.addJob('echo', 'hi', immediate=True)
    sleep = rp.addJob('sleep', 0, immediate=True)
    fail = rp.addJob('fail', immediate=True)
    steps = rp.addJob('steps', 2, immediate=True)
    assert rp.processJobs() == 4
    transaction.commit()
    assert rp.getJobResult(echo) == 'hi'
    assert rp.getJobResult(sleep) == 0
    assert rp.getJobResult(steps) == 2
    assert rp.getJobStatus(fail) == 'queued'  # to be retried
    assert 'FailingJob always fails' in rp.getJobErrors(fail)[0]


def test_sleep_job_refuses_bad_input(app):
    rp = app.app.registry.getUtility(IRemoteProcessor)
    jobid = rp.addJob('sleep', 'long', immediate=True)
    rp.processJob(jobid)
    transaction.commit()
    assert rp.getJobStatus(jobid) == 'error'
    assert 'number of seconds' in rp.getJobErrors(jobid)[0]


@pytest.mark.parametrize('settings, message', [
    ({'demo.user': 'admin'}, 'demo.user and demo.password'),
    ({'demo.user': 'admin', 'demo.password': 'x', 'demo.colour': 'red'},
     'demo.colour'),
])
def test_demo_settings_are_checked(settings, message):
    with pytest.raises(ConfigurationError, match=message):
        demo.main({}, **settings)


def test_a_missing_secret_is_replaced_by_a_random_one():
    user, password, secret = demo.demo_settings(
        {'demo.user': 'admin', 'demo.password': 'x'})
    assert len(secret) == 64


@pytest.mark.parametrize('name', ['development.ini', 'production.ini'])
def test_the_ini_files_have_valid_settings(name):
    from m01.remote.settings import parse_settings
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(os.path.join(HERE, os.pardir, os.pardir, name))
    settings = parse_settings(dict(parser['app:main']))
    assert settings.start_worker is (name == 'development.ini')
    assert settings.embedded is (name == 'development.ini')
    assert demo.demo_settings(dict(parser['app:main']))[0] == 'admin'
