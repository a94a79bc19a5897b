"""Random and hostile requests for the management pages, and a test site
to send them to.

``FuzzSite`` is a site as ``tests/functional/test_views.py`` builds one
(a cookie session, ``RemoteUserPolicy``), seeded with jobs in every
status and a Delay and a Cron item; ``DemoFuzzSite`` is the demo site,
logged in through its form. ``requests()`` is a hypothesis strategy
drawing ``FuzzRequest`` objects: a path of every page and action and of
the JSON API (with ids of jobs and items that exist, ids that do not,
random text, bytes and percent-escapes), a query string and a form
(known field names and NoSQL-shaped ones, with huge numbers, deep JSON,
long strings, control characters and invalid UTF-8), sent logged in or
anonymous, POSTs mostly with the session's valid CSRF token so that the
handlers are reached.

``FuzzSite.send`` sends one through the WSGI application directly (no
client-side URL handling, so any byte reaches the server), keeps the
cookies the site sets, and returns a ``Sent`` record. Used by
``tests/functional/test_fuzz.py`` (a short run) and
``benchmarks/fuzz_pages.py`` (a long one).
"""
import dataclasses
import http.cookies
import time
import urllib.parse

import transaction
import webob
from hypothesis import strategies as st
from pyramid.config import Configurator
from pyramid.session import SignedCookieSessionFactory

from m01.remote import testing
from m01.remote.interfaces import IRemoteProcessor
from m01.remote.scheduler import Cron, Delay

PERMISSION = 'm01.remote.manage'
MISSING_ID = '0123456789abcdef01234567'
#: No answer may be larger, whatever was sent.
MAX_RESPONSE = 2 * 1024 * 1024

# Every page and action; {job} and {item} are filled with an id.
PATHS = (
    '', 'jobs', 'jobs/add', 'factories', 'scheduler', 'api', 'metrics',
    'scheduler/add-delay', 'scheduler/add-cron', 'start-processor',
    'stop-processor', 'start-scheduler', 'stop-scheduler',
    'jobs/{job}', 'jobs/{job}/cancel', 'jobs/{job}/retry',
    'jobs/{job}/delete', 'jobs/{job}/input.json', 'jobs/{job}/output.json',
    'jobs/{job}/errors.json', 'scheduler/{item}', 'scheduler/{item}/edit',
    'scheduler/{item}/toggle', 'scheduler/{item}/run',
    'scheduler/{item}/delete', 'scheduler/{item}/input.json',
    'factories/echo', 'nothing', 'm01remote.css', 'm01remote.js',
    'scheduler/pause-all', 'scheduler/resume-all', 'workers',
    'jobs/bulk', 'control-worker', 'factories/echo/pause',
    'factories/echo/resume',
    # The JSON API.
    'api/', 'api/overview', 'api/stats', 'api/csrf', 'api/openapi.json',
    'api/jobs',
    'api/jobs/bulk', 'api/jobs/{job}', 'api/jobs/{job}/cancel',
    'api/jobs/{job}/retry', 'api/factories', 'api/factories/echo/pause',
    'api/factories/echo/resume', 'api/scheduler', 'api/scheduler/{item}',
    'api/scheduler/{item}/run', 'api/scheduler/{item}/deactivate',
    'api/workers', 'api/workers/{job}/quiet', 'api/workers/{job}/stop',
)
FIELDS = (
    'name', 'input', 'status', 'page', 'sort', 'order', 'jobName', 'title',
    'description', 'delay', 'retryDelay', 'minute', 'hour', 'dayOfMonth',
    'month', 'dayOfWeek', 'timezone', 'expression', 'active', 'keep-input',
    'at', 'priority', 'timeout', 'key',
    'came_from', 'csrf_token', 'shown', 'span', 'q', 'job', 'all',
    'action', 'process', 'window', 'pageSize',
)
NOSQL_FIELDS = ('a[$ne]', 'status[$ne]', 'name[$gt]', '$where', 'input.$',
                '_id', 'jobName[$regex]', '__proto__', 'page[]')


def deepJSON(depth, opener='['):
    closer = {'[': ']', '{': '}'}[opener]
    if opener == '{':
        return '{"a":' * depth + '0' + '}' * depth
    return opener * depth + '0' + closer * depth


HOSTILE = (
    '', ' ', '0', '-1', '1.5', '1e309', 'NaN', 'Infinity', 'null', 'true',
    '9' * 5000, str(10 ** 40), '-' + '9' * 30, '0-10000000',
    '0-%d' % 10 ** 12, '5-3', '*/0', '*/1', '1,' * 500, '*', '@yearly',
    '* * * * *', '0-59 ' * 100, '99 * * * *', 'MON-FRI', 'America',
    'Europe', 'Europe/Zurich', 'x' * 5000, '../../etc/passwd',
    '<script>alert(1)</script>', '"><img src=x>', '\r\nSet-Cookie: x=1',
    '\x00', '\x00\x01\x1f\x7f', '\u202e\u200b', '\ud7ff\ufffd', 'é' * 300,
    '{"$ne": 1}', '{"$where": "sleep(1000)"}', '[', '{', '"', '{"a": ',
    deepJSON(65), deepJSON(500), deepJSON(5000), deepJSON(5000, '{'),
    '[' + ','.join(['0'] * 20000) + ']', '"%s"' % ('x' * 100000),
    'queued', 'processing', 'completed', 'error', 'cancelled', 'created',
    'desc', 'asc', 'echo', 'gone', MISSING_ID, '%ff', '%00', '/', '//x',
    'javascript:alert(1)', '//evil.example.com', '/\\evil.example.com',
)

# A value as bytes: mostly text (encoded as UTF-8), sometimes raw bytes
# that are not UTF-8 (a request with one is refused as a whole, so they
# are rare, for most requests to reach the handlers).
_values = st.one_of(
    st.sampled_from(HOSTILE).map(str.encode),
    st.sampled_from(HOSTILE).map(str.encode),
    st.text(max_size=40).map(lambda text: text.encode('utf-8', 'replace')),
    st.integers(-10 ** 30, 10 ** 30).map(lambda n: str(n).encode()),
    st.integers(1, 3000).map(lambda depth: deepJSON(depth).encode()),
    st.sampled_from(HOSTILE).map(lambda text: text.encode()[:-1] + b'\xff'),
    st.binary(max_size=24),
)
_names = st.one_of(st.sampled_from(FIELDS), st.sampled_from(FIELDS),
                   st.sampled_from(NOSQL_FIELDS),
                   st.text(min_size=1, max_size=12))
# The actions take a POST, the pages a GET; other methods now and then.
ACTIONS = ('add', 'processor', 'scheduler', 'cancel', 'retry',
           'delete', 'edit', 'toggle', 'run', 'add-delay', 'add-cron',
           'bulk', 'control-worker', 'pause', 'resume', 'deactivate',
           'quiet', 'stop')
SITE_ACTIONS = ('login', 'logout')


def _segment(draw, kind, ids):
    choice = draw(st.integers(0, 9))
    if choice <= 6:
        return draw(st.sampled_from(ids[kind]))
    if choice == 7:
        return MISSING_ID
    if choice == 8:
        return urllib.parse.quote(draw(st.text(max_size=30)), safe='')
    return ''.join('%%%02x' % byte for byte in draw(st.binary(max_size=8)))


def _encode(pairs):
    # Percent-escapes of arbitrary bytes, as a browser would send them.
    return b'&'.join(
        urllib.parse.quote_from_bytes(name, safe='[]$.').encode()
        + b'=' + urllib.parse.quote_from_bytes(value, safe='').encode()
        for name, value in pairs)


@dataclasses.dataclass
class FuzzRequest:
    method: str
    path: str
    query: bytes
    body: bytes
    content_type: str
    anonymous: bool

    def __str__(self):
        return '%s %s%s (%d bytes%s)' % (
            self.method, self.path,
            '?' + self.query.decode('latin-1')[:60] if self.query else '',
            len(self.body), ', anonymous' if self.anonymous else '')


@st.composite
def requests(draw, ids, token, paths=PATHS, sitePaths=()):
    """A ``FuzzRequest`` for the pages; ``ids`` maps 'job' and 'item' to
    the ids that exist, ``token`` is the session's CSRF token. ``paths``
    are under the route, ``sitePaths`` the site's own (drawn now and
    then)."""
    if sitePaths and draw(st.integers(0, 4)) == 0:
        path = draw(st.sampled_from(sitePaths))
    else:
        template = draw(st.sampled_from(paths))
        path = template.format(job=_segment(draw, 'job', ids),
                               item=_segment(draw, 'item', ids))
        if draw(st.integers(0, 9)) == 0:
            path += '/' + _segment(draw, 'job', ids)
        path = '/remote/' + path
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(('GET', 'POST', 'HEAD', 'PUT',
                                       'DELETE', 'OPTIONS')))
    elif any(path.endswith(action) for action in ACTIONS + SITE_ACTIONS):
        method = 'POST'
    else:
        method = 'GET'
    # Some GET forms (remove) and every page take parameters: the query.
    query = _encode(draw(st.lists(st.tuples(_names.map(str.encode),
                                            _values), max_size=4)))
    pairs = draw(st.lists(st.tuples(_names.map(str.encode), _values),
                          max_size=8))
    csrf = draw(st.sampled_from(('valid',) * 8 + ('none', 'forged')))
    if csrf == 'valid':
        pairs.append((b'csrf_token', token.encode()))
    elif csrf == 'forged':
        pairs.append((b'csrf_token', b'forged'))
    body = _encode(pairs) if method in ('POST', 'PUT') else b''
    content_type = draw(st.sampled_from(
        ('application/x-www-form-urlencoded',) * 17
        + ('application/json', 'text/plain', 'multipart/form-data')))
    return FuzzRequest(method, path, query, body, content_type,
                       anonymous=draw(st.integers(0, 9)) == 0)


@dataclasses.dataclass
class Sent:
    request: FuzzRequest
    status: int
    size: int
    seconds: float


class FuzzSite:
    """The test site, its seeded ids, and a cookie jar of its own."""

    #: What the strategy draws from (see ``strategy``).
    paths = PATHS
    sitePaths = ()
    #: What a logged-in request adds to its environment, and the cookies
    #: an anonymous one leaves out.
    identity = {'REMOTE_USER': 'admin'}
    loginCookies = ()
    #: A job factory whose jobs fail.
    failing = 'error'

    def __init__(self, uri='mongomock://', databaseName='m01fuzz'):
        self.wsgi = self.makeApp(uri, databaseName)
        self.rp = self.wsgi.registry.getUtility(IRemoteProcessor)
        self.cookies = {}
        self.ids = self.seed()
        self.token = self.csrfToken()

    def makeApp(self, uri, databaseName):
        config = Configurator(settings={'m01.remote.uri': uri,
                                        'm01.remote.database': databaseName})
        config.set_session_factory(SignedCookieSessionFactory('fuzz'))
        config.set_security_policy(testing.RemoteUserPolicy(PERMISSION))
        config.include('m01.remote')
        config.add_remote_job_factory('echo', testing.EchoJob)
        config.add_remote_job_factory('error', testing.ErrorJob)
        return config.make_wsgi_app()

    def strategy(self):
        """The requests for this site, with its current CSRF token."""
        return requests(self.ids, self.token, self.paths, self.sitePaths)

    def seed(self):
        rp = self.rp
        jobs = [rp.addJob('echo', {'n': n, 'text': '<b>%d</b>' % n})
                for n in range(3)]
        jobs.append(rp.addJob(self.failing))
        # Too large for a page to show whole.
        jobs.append(rp.addJob('echo', nestedObjects(60, [0] * 20000)))
        transaction.commit()
        rp.processJobs()
        transaction.commit()
        jobs += [rp.addJob('echo', [1, 2, 3]), rp.addJob('echo')]
        transaction.commit()
        rp.pullNextJob()    # one is processing
        transaction.commit()
        items = [
            rp.addScheduler(Delay({'jobName': 'echo', 'delay': 60,
                                   'title': 'Delay <i>', 'input': {'a': 1}})),
            rp.addScheduler(Cron.fromExpression(
                '*/5 9-17 * * MON-FRI', jobName='echo', title='Cron',
                timezone='Europe/Zurich')),
            rp.addScheduler(Cron({'jobName': 'gone', 'minute': [0]})),
        ]
        return {'job': jobs, 'item': items}

    def csrfToken(self):
        from bs4 import BeautifulSoup
        page = self.call('GET', '/remote/')
        return BeautifulSoup(page.body, 'html.parser').find(
            'input', {'name': 'csrf_token'})['value']

    def call(self, method, path, query=b'', body=b'', anonymous=False,
             content_type='application/x-www-form-urlencoded',
             extra=None):
        environ = {
            'REQUEST_METHOD': method, 'SCRIPT_NAME': '',
            # WSGI: the path decoded from its escapes, as latin-1 text.
            'PATH_INFO': urllib.parse.unquote_to_bytes(path).decode(
                'latin-1'),
            'QUERY_STRING': query.decode('latin-1'),
            'SERVER_NAME': 'localhost', 'SERVER_PORT': '80',
            'HTTP_HOST': 'localhost', 'wsgi.url_scheme': 'http',
        }
        if not anonymous:
            environ.update(self.identity)
        environ.update(extra or {})
        request = webob.Request.blank('/', environ, body=body)
        request.environ.update(environ)
        if body:
            request.content_type = content_type
        cookies = [item for item in self.cookies.items()
                   if not (anonymous and item[0] in self.loginCookies)]
        if cookies:
            request.headers['Cookie'] = '; '.join(
                '%s=%s' % item for item in cookies)
        response = request.get_response(self.wsgi)
        self._keepCookies(response)
        return response

    def _keepCookies(self, response):
        for header in response.headers.getall('Set-Cookie'):
            cookie = http.cookies.SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                if morsel['max-age'] == '0' or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def send(self, fuzz):
        started = time.perf_counter()
        try:
            response = self.call(fuzz.method, fuzz.path, fuzz.query,
                                 fuzz.body, fuzz.anonymous,
                                 fuzz.content_type)
            status, size = response.status_int, len(response.body)
        finally:
            # What a request left in the thread's transaction is not the
            # next one's (pyramid_tm ends its own).
            transaction.abort()
        return Sent(fuzz, status, size, time.perf_counter() - started)

    def close(self):
        self.rp.stopProcessor(5)
        self.rp.stopScheduler(5)


def nestedObjects(depth, leaf):
    for _level in range(depth):
        leaf = {'a': leaf}
    return leaf


DEMO_SETTINGS = {'demo.user': 'admin', 'demo.password': 'admin',
                 'demo.secret': 'fuzz'}


class DemoFuzzSite(FuzzSite):
    """The demo site (``examples/demo``), logged in through its login
    form, and its own pages too. Its processor is never started: a sleep
    job could hold it for minutes."""

    paths = tuple(path for path in PATHS if path != 'start-processor')
    sitePaths = ('/', '/login', '/logout', '/nothing')
    identity = {}
    loginCookies = ('auth_tkt',)
    failing = 'fail'

    def makeApp(self, uri, databaseName):
        import m01remote_demo
        return m01remote_demo.main({}, **dict(
            DEMO_SETTINGS, **{'m01.remote.uri': uri,
                              'm01.remote.database': databaseName}))

    def csrfToken(self):
        self.call('GET', '/login')
        # From an address of its own: the fuzzed requests' failed logins
        # hold back theirs (the demo throttles them), not this one.
        response = self.call(
            'POST', '/login', body=urllib.parse.urlencode({
                'login': 'admin', 'password': 'admin',
                'csrf_token': self.cookies['csrf_token']}).encode(),
            extra={'REMOTE_ADDR': '192.0.2.10'})
        assert response.status_int == 303, response.status
        # Renewed at the login.
        return self.cookies['csrf_token']

    def send(self, fuzz):
        sent = super().send(fuzz)
        if fuzz.path.startswith(('/login', '/logout')):
            # It may have logged out, or renewed the token: log in again.
            self.token = self.csrfToken()
        return sent
