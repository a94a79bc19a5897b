"""Hostile clients: bodies bounded before they are parsed, strict JSON in
and out, the demo's login guarded, and the server's own settings.

Each case is refused with a 4xx before the work it would cause: a form
is counted in its bytes, not parsed; an anonymous form is never read;
the memory a refused request costs is measured (``tracemalloc``), not
its time (``benchmarks/bench_hostile.py`` prints the times).
"""
import configparser
import json
import os
import socket
import threading
import tracemalloc
import urllib.request

import m01remote_demo as demo
import pytest
import transaction
import waitress
import webob
import webtest

from m01.remote.interfaces import IRemoteProcessor
from m01.remote.limits import MAX_FORM_FIELDS, loadJSON
from m01.remote.operations.shapes import dumps, finite
from test_api import Api
from test_api import makeApp as makeApiApp
from test_demo import SETTINGS as DEMO_SETTINGS
from test_demo import login
from test_views import Site
from test_views import makeApp as makePagesApp

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture
def site(store_uri, database):
    site = Site(makePagesApp(store_uri, database.name))
    yield site
    site.rp.close()


@pytest.fixture
def api(store_uri, database):
    wsgi = makeApiApp(store_uri, database.name)
    api = Api(wsgi)
    yield api
    api.rp.close()


@pytest.fixture
def demoApp():
    wsgi = demo.main({}, **DEMO_SETTINGS)
    yield webtest.TestApp(wsgi)
    transaction.abort()
    wsgi.registry.getUtility(IRemoteProcessor).close()


def strictJSON(text):
    def refuse(name):
        raise AssertionError('%s in an answer' % name)
    return json.loads(text, parse_constant=refuse)


def peakBytes(call):
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# Bodies bounded before they are parsed

def emptyFields(count):
    return b'&'.join([b'a='] * count)


def test_an_anonymous_form_of_millions_of_fields_is_refused_unparsed(site):
    body = emptyFields(2 * 1024 * 1024)          # 6 MB, 2 million fields
    response, peak = peakBytes(lambda: site.anonymous.post(
        '/remote/jobs/add', body, status=403,
        content_type='application/x-www-form-urlencoded'))
    assert response.status_int == 403
    # The body is held once by the request; parsing it would take
    # hundreds of megabytes.
    assert peak < 3 * len(body)


def test_a_signed_in_form_of_too_many_fields_is_refused_unparsed(site):
    jobid, = site.addJobs('echo', [1])
    body = emptyFields(MAX_FORM_FIELDS + 1)
    response, peak = peakBytes(lambda: site.app.post(
        '/remote/jobs/add', body, status=413,
        content_type='application/x-www-form-urlencoded'))
    assert ('The form has %d fields; at most %d are read.'
            % (MAX_FORM_FIELDS + 1, MAX_FORM_FIELDS)) in response.text
    assert site.rp.getJobStatus(jobid) == 'queued'


def test_a_form_within_the_field_limit_is_read(site):
    # The limit leaves room for a bulk form of a whole page of jobs.
    jobids = site.addJobs('echo', range(3))
    params = [('csrf_token', site.token()), ('action', 'cancel')] + [
        ('jobid', jobid) for jobid in jobids] + [('pad', '')] * 500
    site.app.post('/remote/jobs/bulk', params, status='*')
    assert site.app.post('/remote/jobs/add', [('pad', '')] * 500,
                         status='*').status_int != 413


def test_the_demo_refuses_a_large_login_body_unread(demoApp, monkeypatch):
    parsed = []
    monkeypatch.setattr(webob.request.BaseRequest, 'POST', property(
        lambda self: parsed.append(self.path) or webob.multidict.NoVars()))
    response = demoApp.post('/login', emptyFields(300000), status=413,
                            content_type='application/x-www-form-urlencoded')
    assert 'at most %d bytes' % demo.MAX_DEMO_BODY in response.text
    assert parsed == []


# Strict JSON in and out

@pytest.mark.parametrize('text, word', [
    (b'{"name": "echo", "input": NaN}', 'NaN'),
    (b'{"name": "echo", "input": [Infinity]}', 'Infinity'),
    (b'{"name": "echo", "input": {"a": -Infinity}}', '-Infinity'),
    (b'{"name": "echo", "name": "fail", "input": 1}', "'name' twice"),
    (b'{"name": "echo", "input": {"a": 1, "a": 2}}', "'a' twice"),
])
def test_the_api_refuses_what_json_does_not_allow(api, text, word):
    answer = api.app.post(
        '/remote/api/jobs', text, status=400,
        headers={'X-CSRF-Token': api.token(),
                 'Content-Type': 'application/json'})
    assert word in strictJSON(answer.text)['error']['detail']
    assert api.rp.jobsCollection.count_documents({}) == 0


@pytest.mark.parametrize('text', ['NaN', '[Infinity]', '{"a": 1, "a": 2}'])
def test_the_add_form_refuses_what_json_does_not_allow(site, text):
    page = site.post('/remote/jobs/add', {'name': 'echo', 'input': text},
                     status=400)
    assert 'JSON' in page.text or 'twice' in page.text
    assert site.rp.jobsCollection.count_documents({}) == 0


def test_strict_json_names_what_it_refuses():
    with pytest.raises(ValueError, match='NaN is not a JSON number'):
        loadJSON('[NaN]')
    with pytest.raises(ValueError, match="names 'x' twice"):
        loadJSON('{"x": 1, "x": 1}', 'The body')
    assert loadJSON('{"x": [1.5, {"y": null}]}') == {'x': [1.5, {'y': None}]}


def test_an_output_json_cannot_write_is_answered_as_valid_json(api):
    jobid, = api.addJobs('echo', [1])
    api.rp.jobsCollection.update_one(
        {'_id': api.rp.jobsCollection.find_one()['_id']},
        {'$set': {'status': 'completed', 'output': {
            'nan': float('nan'), 'values': [float('inf'), -float('inf')]}}})
    answer = api.app.get('/remote/api/jobs/%s' % jobid)
    output = strictJSON(answer.text)['output']
    assert output == {'nan': 'NaN', 'values': ['Infinity', '-Infinity']}


def test_finite_leaves_finite_values_alone():
    value = {'a': [1, 2.5, {'b': 'x'}]}
    assert finite(value) is value
    assert strictJSON(dumps({'a': float('nan')})) == {'a': 'NaN'}


# The demo's login

def test_the_demo_pages_have_the_security_headers(demoApp):
    for url in ('/', '/login'):
        response = demoApp.get(url)
        assert response.headers['X-Frame-Options'] == 'DENY'
        assert "frame-ancestors 'none'" in \
            response.headers['Content-Security-Policy']
        assert response.headers['Cache-Control'] == 'no-store'
        assert response.headers['X-Content-Type-Options'] == 'nosniff'


def test_the_demo_pages_look_like_the_add_on_and_fit_a_phone(demoApp):
    page = demoApp.get('/login')
    assert page.html.find('meta', {'name': 'viewport'})['content'] == \
        'width=device-width, initial-scale=1'
    stylesheet = page.html.find('link', {'rel': 'stylesheet'})['href']
    assert demoApp.get(stylesheet).content_type == 'text/css'
    assert 'admin' in page.html.find(id='login-hint').text


def test_the_login_cookie_is_secure_over_https(demoApp):
    form = demoApp.get('/login', extra_environ={
        'wsgi.url_scheme': 'https', 'HTTP_HOST': 'localhost:443'}).forms[0]
    form['login'] = 'admin'
    form['password'] = DEMO_SETTINGS['demo.password']
    response = form.submit(status=303, extra_environ={
        'wsgi.url_scheme': 'https', 'HTTP_HOST': 'localhost:443'})
    tickets = [value for name, value in response.headerlist
               if name == 'Set-Cookie' and value.startswith('auth_tkt=')]
    assert tickets and all('secure' in value.lower() for value in tickets)


def test_the_login_cookie_over_http_is_not_marked_secure(demoApp):
    response = login(demoApp, DEMO_SETTINGS['demo.password'])
    tickets = [value for name, value in response.headerlist
               if name == 'Set-Cookie' and value.startswith('auth_tkt=')]
    assert tickets and not any('secure' in value.lower()
                               for value in tickets)


def test_failed_logins_are_throttled(demoApp):
    for _ in range(demo.FAILURES_PER_ADDRESS):
        login(demoApp, 'wrong', status=400)
    # Refused unchecked now, the right password too.
    refused = login(demoApp, DEMO_SETTINGS['demo.password'], status=429)
    assert 0 < int(refused.headers['Retry-After']) <= demo.THROTTLE_WINDOW
    assert 'Too many failed logins' in refused.text
    # Another address is not held back by this one.
    form = demoApp.get('/login').forms[0]
    form['login'] = 'admin'
    form['password'] = DEMO_SETTINGS['demo.password']
    form.submit(status=303, extra_environ={'REMOTE_ADDR': '10.0.0.2'})


def test_the_throttle_forgets_after_its_window():
    now = [1000.0]
    throttle = demo.LoginThrottle(clock=lambda: now[0])
    for _ in range(demo.FAILURES_PER_ADDRESS):
        throttle.failed('a', 'admin')
    assert throttle.retryAfter('a', 'admin') > 0
    assert throttle.retryAfter('b', 'other') == 0
    now[0] += demo.THROTTLE_WINDOW + 1
    assert throttle.retryAfter('a', 'admin') == 0


def test_the_throttle_holds_a_user_guessed_from_many_addresses():
    throttle = demo.LoginThrottle(clock=lambda: 0.0)
    for number in range(demo.FAILURES_PER_USER):
        throttle.failed('10.0.%d.1' % number, 'admin')
    assert throttle.retryAfter('10.9.9.9', 'admin') > 0
    assert throttle.retryAfter('10.9.9.9', 'someone') == 0


def test_the_throttle_remembers_a_bounded_number_of_keys():
    throttle = demo.LoginThrottle(clock=lambda: 0.0)
    for number in range(demo.THROTTLE_KEYS):
        throttle.failed('address %d' % number, 'name %d' % number)
    assert len(throttle._failures) <= demo.THROTTLE_KEYS


def test_redirects_follow_the_configured_url_not_the_host_header():
    wsgi = demo.main({}, **dict(DEMO_SETTINGS,
                                **{'demo.url': 'https://queue.example.com'}))
    try:
        app = webtest.TestApp(wsgi, extra_environ={
            'HTTP_HOST': 'evil.example.net'})
        response = app.get('/remote/jobs', status=303)
        assert response.location.startswith(
            'https://queue.example.com/login')
        assert 'evil' not in response.location
    finally:
        wsgi.registry.getUtility(IRemoteProcessor).close()


@pytest.mark.parametrize('url', ['queue.example.com', 'ftp://x.example',
                                 'https://x.example/path'])
def test_a_bad_demo_url_fails_at_start(url):
    with pytest.raises(demo.ConfigurationError, match='demo.url'):
        demo.main({}, **dict(DEMO_SETTINGS, **{'demo.url': url}))


# The server's own settings

def serverSettings(name):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(os.path.join(ROOT, name))
    return dict(parser['server:main'])


@pytest.mark.parametrize('name', ['development.ini', 'production.ini'])
def test_the_servers_listen_on_loopback_with_bounded_connections(name):
    settings = serverSettings(name)
    assert settings['listen'].startswith('127.0.0.1:')
    assert int(settings['connection_limit']) >= 1000
    assert int(settings['channel_timeout']) <= 30
    assert int(settings['max_request_body_size']) <= 64 * 1024 * 1024


def hello(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'hello']


@pytest.mark.parametrize('name', ['development.ini', 'production.ini'])
def test_connections_that_never_finish_their_headers_lock_nobody_out(name):
    settings = serverSettings(name)
    settings.pop('use')
    settings['listen'] = '127.0.0.1:0'
    server = waitress.create_server(hello, **settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    host, port = server.effective_host, int(server.effective_port)
    idle = []
    try:
        for _ in range(150):
            connection = socket.create_connection((host, port), timeout=5)
            connection.sendall(b'GET / HTTP/1.1\r\nHost: x\r\n')
            idle.append(connection)
        url = 'http://%s:%d/' % (host, port)
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.read() == b'hello'
    finally:
        for connection in idle:
            connection.close()
        server.close()
        thread.join(10)
